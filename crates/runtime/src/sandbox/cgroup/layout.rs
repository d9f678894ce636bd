//! Which cgroup hierarchies are mounted where, parsed from
//! `/proc/self/mountinfo`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::os::CgroupOs;
use super::CgroupError;

/// Where the mount table is read from.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Where cgroup hierarchies are conventionally mounted; a mount below it is
/// preferred when the same hierarchy is mounted more than once.
const CONVENTIONAL_MOUNT: &str = "/sys/fs/cgroup";

/// Super-block options of a v1 `cgroup` mount that name a controller.
/// (Everything else there is a flag: `rw`, `xattr`, `noprefix`,
/// `clone_children`, `release_agent=...`, ...; `name=X` names a
/// controller-less hierarchy and is kept as the key `name=X`.)
const V1_CONTROLLERS: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "debug",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// The cgroup hierarchies this host offers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Layout {
    /// Legacy or hybrid: one v1 mount per controller (or co-mounted group of
    /// controllers), plus possibly a controller-less cgroup2 mount.
    V1 {
        /// Controller (`"memory"`, `"cpu"`, ..., and `"name=systemd"`) to the
        /// mount point of its hierarchy. Co-mounted controllers (e.g.
        /// `cpu,cpuacct`) map to the same path.
        controllers: BTreeMap<String, PathBuf>,
        /// The cgroup2 mount of a hybrid host (usually `/sys/fs/cgroup/unified`).
        unified: Option<PathBuf>,
    },
    /// Pure cgroup v2: one unified hierarchy holding every controller.
    V2 {
        /// Its mount point (usually `/sys/fs/cgroup`).
        root: PathBuf,
    },
}

impl Layout {
    /// The mount point of v1 controller `name`, if this is a v1 layout that has it.
    pub fn v1_controller(&self, name: &str) -> Option<&Path> {
        match self {
            Layout::V1 { controllers, .. } => controllers.get(name).map(PathBuf::as_path),
            Layout::V2 { .. } => None,
        }
    }

    /// The cgroup2 mount: the unified root of a v2 host, or the
    /// controller-less `unified` mount of a hybrid one.
    pub fn v2_mount(&self) -> Option<&Path> {
        match self {
            Layout::V1 { unified, .. } => unified.as_deref(),
            Layout::V2 { root } => Some(root),
        }
    }

    /// Every distinct mount point in the layout (each hierarchy once).
    pub fn mounts(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        match self {
            Layout::V1 { controllers, unified } => {
                for p in controllers.values().chain(unified.iter()) {
                    if !out.contains(p) {
                        out.push(p.clone());
                    }
                }
            }
            Layout::V2 { root } => out.push(root.clone()),
        }
        out
    }

    /// Whether `path` lies in (or is) a cgroup2 hierarchy of this layout.
    pub fn is_v2_path(&self, path: &Path) -> bool {
        self.v2_mount().is_some_and(|m| path.starts_with(m))
    }
}

/// Detects the layout by reading [`MOUNTINFO`] through `os`.
///
/// The host is treated as v1 (legacy/hybrid) when the `memory` controller
/// is mounted as a v1 hierarchy, since then it cannot be in the cgroup2
/// hierarchy; otherwise as pure v2 when a `cgroup2` filesystem is mounted.
pub fn detect_layout(os: &impl CgroupOs) -> Result<Layout, CgroupError> {
    let path = Path::new(MOUNTINFO);
    let text = os.read(path).map_err(|source| CgroupError::Read { path: path.to_path_buf(), source })?;
    parse_mountinfo(&text)
}

/// Parses the text of a `mountinfo` file (see `proc(5)`) into a [`Layout`].
///
/// Malformed lines are skipped. When a hierarchy is mounted more than once,
/// the first mount below `/sys/fs/cgroup` wins, else the first one.
pub fn parse_mountinfo(text: &str) -> Result<Layout, CgroupError> {
    let mut controllers: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut unified: Option<PathBuf> = None;

    for line in text.lines() {
        let Some(m) = parse_line(line) else {
            continue;
        };
        match m.fstype {
            "cgroup2" => prefer(&mut unified, m.mount_point),
            "cgroup" => {
                for opt in m.super_opts.split(',') {
                    if V1_CONTROLLERS.contains(&opt) || (opt.starts_with("name=") && opt.len() > "name=".len()) {
                        let slot = controllers.entry(opt.to_string());
                        match slot {
                            std::collections::btree_map::Entry::Vacant(v) => {
                                v.insert(m.mount_point.clone());
                            }
                            std::collections::btree_map::Entry::Occupied(mut o) => {
                                if better(o.get(), &m.mount_point) {
                                    o.insert(m.mount_point.clone());
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    if controllers.contains_key("memory") {
        return Ok(Layout::V1 { controllers, unified });
    }
    if let Some(root) = unified {
        return Ok(Layout::V2 { root });
    }
    if !controllers.is_empty() {
        return Err(CgroupError::MissingController {
            controller: "memory".into(),
            detail: format!(
                "cgroup v1 hierarchies are mounted ({}) but not the memory controller, \
                 and there is no cgroup2 mount",
                controllers.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    Err(CgroupError::NoCgroupMount)
}

struct MountLine<'a> {
    mount_point: PathBuf,
    fstype: &'a str,
    super_opts: &'a str,
}

/// `36 25 0:31 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct`
fn parse_line(line: &str) -> Option<MountLine<'_>> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sep = fields.iter().position(|f| *f == "-")?;
    // id parent major:minor root mount-point options [optional...] - fstype source super-options
    if sep < 6 || fields.len() < sep + 3 {
        return None;
    }
    Some(MountLine {
        mount_point: PathBuf::from(unescape(fields[4])),
        fstype: fields[sep + 1],
        super_opts: fields.get(sep + 3).copied().unwrap_or(""),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for `\`...).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = (u32::from(oct[0] - b'0') << 6) | (u32::from(oct[1] - b'0') << 3) | u32::from(oct[2] - b'0');
                if let Ok(b) = u8::try_from(v) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_conventional(p: &Path) -> bool {
    p.starts_with(CONVENTIONAL_MOUNT)
}

/// Whether `new` should replace `old` as the mount of a hierarchy.
fn better(old: &Path, new: &Path) -> bool {
    !is_conventional(old) && is_conventional(new)
}

fn prefer(slot: &mut Option<PathBuf>, new: PathBuf) {
    match slot {
        None => *slot = Some(new),
        Some(old) if better(old, &new) => *slot = Some(new),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape(r"/a\040b"), "/a b");
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
        assert_eq!(unescape(r"/a\04"), r"/a\04");
        assert_eq!(unescape(r"/plain"), "/plain");
    }

    #[test]
    fn skips_garbage_lines() {
        let text = "garbage\n1 2 3\n\n28 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(parse_mountinfo(text).ok(), Some(Layout::V2 { root: PathBuf::from("/sys/fs/cgroup") }));
    }

    #[test]
    fn nothing_mounted_is_an_error() {
        let text = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n";
        assert!(matches!(parse_mountinfo(text), Err(CgroupError::NoCgroupMount)));
    }

    #[test]
    fn prefers_conventional_mount_point() {
        let text = "\
40 30 0:40 / /var/lib/x/memory rw - cgroup cgroup rw,memory
35 25 0:40 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 25 0:41 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
";
        let Ok(Layout::V1 { controllers, .. }) = parse_mountinfo(text) else {
            panic!("expected v1");
        };
        assert_eq!(controllers["memory"], PathBuf::from("/sys/fs/cgroup/memory"));
        assert_eq!(controllers["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(controllers["cpuacct"], controllers["cpu"]);
    }
}
