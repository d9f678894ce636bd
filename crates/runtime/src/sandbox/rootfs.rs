//! The environment's filesystem.
//!
//! The host side ([`BaseTrees::open`], run by the shim as host root) clones the read-only base as detached mounts,
//! idmapped through the environment's user namespace so that files owned by host root appear owned by root inside.
//! The sandbox side ([`build_root`], run by the environment's init inside its user and mount namespaces) stacks a
//! bounded tmpfs (the writable layer) at `/tmp` of its private copy of the mount table, attaches the base trees there,
//! overlays them, makes `/dev`, `/proc` and `/tmp`, hides what must never be visible, and pivots into the result.
//!
//! Layout of the writable layer while it is built (`S` = the staging tmpfs):
//! `S/l/<name>` the attached base trees; `S/u/<name>`, `S/w/<name>` overlay upper and work dirs; `S/r` the new root.
//! After the pivot only `S/r` is reachable.

use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::sys;
use crate::types::Base;

const STAGE: &str = "/tmp";

/// Top-level names under `/` that the host base takes from the host (symlinks are mirrored, directories mounted).
const HOST_TOP: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The read-only base, as detached mounts ready to be attached inside the sandbox.
pub struct BaseTrees {
    /// (name under the new root, detached tree). An empty name is the root itself (`rootfs:` bases).
    pub trees: Vec<(String, OwnedFd)>,
    /// Symlinks to make at the top of the new root (`bin -> usr/bin` on merged-/usr hosts).
    pub links: Vec<(String, PathBuf)>,
}

/// Host directories the host base shows read-only as they are (not overlaid): dpkg's database, so that `dpkg -l` and
/// `dpkg -S` answer for the base's packages.
const HOST_READ_ONLY: &[&str] = &["var/lib/dpkg"];

impl BaseTrees {
    /// Opens the base's trees, idmapped through `userns` when given. Host side, as host root.
    ///
    /// Idmapped, a set-user-ID file of the base can grant no more than root of the environment's own user namespace,
    /// so set-user-ID programs (`sudo`, `su`, `passwd`) are allowed there; without a user namespace the trees are
    /// `nosuid`, since a set-user-ID root file would then mean host root.
    pub fn open(base: &Base, base_etc: &Path, userns: Option<RawFd>) -> io::Result<BaseTrees> {
        let attrs =
            if userns.is_some() { sys::MOUNT_ATTR_NODEV } else { sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV };
        let mut trees = Vec::new();
        let mut links = Vec::new();
        match base {
            Base::Host => {
                trees.push(("usr".to_string(), sys::detached_idmapped_tree(Path::new("/usr"), userns, attrs)?));
                trees.push(("etc".to_string(), sys::detached_idmapped_tree(base_etc, userns, attrs)?));
                for name in HOST_READ_ONLY {
                    let p = Path::new("/").join(name);
                    if p.is_dir() {
                        let ro = attrs | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC;
                        trees.push((name.to_string(), sys::detached_idmapped_tree(&p, userns, ro)?));
                    }
                }
                for name in HOST_TOP {
                    let p = Path::new("/").join(name);
                    match std::fs::symlink_metadata(&p) {
                        Ok(m) if m.file_type().is_symlink() => links.push((name.to_string(), std::fs::read_link(&p)?)),
                        Ok(m) if m.is_dir() => {
                            trees.push((name.to_string(), sys::detached_idmapped_tree(&p, userns, attrs)?))
                        }
                        _ => {}
                    }
                }
            }
            Base::Rootfs(path) => trees.push((String::new(), sys::detached_idmapped_tree(path, userns, attrs)?)),
        }
        Ok(BaseTrees { trees, links })
    }
}

/// What [`build_root`] needs besides the trees.
pub struct RootPlan<'a> {
    /// Size of the writable layer in bytes.
    pub disk_bytes: u64,
    /// Size of `/dev/shm` in bytes.
    pub shm_bytes: u64,
    /// The environment's hostname (written to `/etc/hostname` and `/etc/hosts`).
    pub hostname: &'a str,
    /// Host paths that must never be visible inside (the data directory, the exam catalog...).
    pub hidden: &'a [PathBuf],
    /// The base (to map hidden paths into it).
    pub base: &'a Base,
    /// Without a user namespace: the host uid and gid the candidate runs as, who must own `/root` and `/home`.
    pub unprivileged_owner: Option<u32>,
    /// A `system` environment: `/proc/sys` stays writable where the kernel lets the environment write (its own
    /// network namespace's settings), and no cgroups are mounted for it (its service manager mounts them).
    pub system: bool,
    /// The writable layer is a machine's disk, booted again: its `/etc/hostname` and `/etc/hosts` are kept.
    pub rebooted: bool,
}

/// The filesystems of an environment's own that are made on the host side, by the shim as host root, and handed to
/// init as detached mounts: the writable layer, `/dev`, `/dev/shm`, and an empty read-only tmpfs that every mask over
/// a directory is a bind of. Made there, their superblocks belong to host root, so that `/proc/self/mountinfo` inside
/// names no host uid (a tmpfs mounted inside a user namespace lists its owner's host uid among its options); their
/// root directories are chowned to the environment's root.
pub struct Supers {
    pub stage: OwnedFd,
    pub dev: OwnedFd,
    pub shm: OwnedFd,
    pub empty: OwnedFd,
    /// `/sys/fs/cgroup` on a v1 or hybrid host (a directory per hierarchy).
    pub cgroup: OwnedFd,
}

impl Supers {
    /// Makes them (host side). `owner`: the host uid and gid of the environment's root, if not host root.
    pub fn make(disk_bytes: u64, shm_bytes: u64, owner: Option<u32>) -> io::Result<Supers> {
        let inodes = (disk_bytes / 4096).max(4096).to_string();
        let (disk, shm) = (disk_bytes.to_string(), shm_bytes.to_string());
        let rw = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
        let supers = Supers {
            stage: sys::detached_tmpfs(&[("size", &disk), ("nr_inodes", &inodes), ("mode", "0755")], rw)?,
            dev: sys::detached_tmpfs(
                &[("size", "64k"), ("nr_inodes", "64"), ("mode", "0755")],
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NOEXEC,
            )?,
            shm: sys::detached_tmpfs(&[("size", &shm), ("mode", "1777")], rw)?,
            empty: sys::detached_tmpfs(
                &[("size", "4k"), ("nr_inodes", "1"), ("mode", "0000")],
                sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
            )?,
            cgroup: sys::detached_tmpfs(
                &[("size", "64k"), ("nr_inodes", "64"), ("mode", "0755")],
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
            )?,
        };
        if let Some(id) = owner {
            for fd in [&supers.stage, &supers.dev, &supers.shm, &supers.cgroup] {
                sys::chown_fd(fd, id)?;
            }
        }
        Ok(supers)
    }

    /// The descriptors, in the order [`Supers::from_fds`] takes them.
    pub fn fds(&self) -> [RawFd; 5] {
        use std::os::fd::AsRawFd;
        [
            self.stage.as_raw_fd(),
            self.dev.as_raw_fd(),
            self.shm.as_raw_fd(),
            self.empty.as_raw_fd(),
            self.cgroup.as_raw_fd(),
        ]
    }

    /// From descriptors received in [`Supers::fds`] order.
    pub fn from_fds(fds: Vec<OwnedFd>) -> io::Result<Supers> {
        let [stage, dev, shm, empty, cgroup]: [OwnedFd; 5] =
            fds.try_into().map_err(|_| io::Error::other("expected five filesystems"))?;
        Ok(Supers { stage, dev, shm, empty, cgroup })
    }
}

pub(crate) fn m<P: AsRef<Path>>(
    src: Option<&str>,
    target: P,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> io::Result<()> {
    let t = target.as_ref();
    mount(src, t, fstype, flags, data).map_err(|e| {
        io::Error::new(io::Error::from(e).kind(), format!("mount {:?} on {}: {e}", fstype.or(src), t.display()))
    })
}

pub(crate) fn mkdir(p: impl AsRef<Path>, mode: u32) -> io::Result<()> {
    let p = p.as_ref();
    match std::fs::create_dir(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("mkdir {}: {e}", p.display()))),
    }
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Builds the new root and pivots into it. Sandbox side: the caller is init, inside its own user, mount and pid
/// namespaces, single-threaded.
pub fn build_root(
    plan: &RootPlan<'_>,
    trees: &BaseTrees,
    supers: &Supers,
    views: &[(String, OwnedFd)],
    binds: &[(String, OwnedFd)],
) -> io::Result<()> {
    // Nothing we mount may propagate back to the host.
    m(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    let stage = Path::new(STAGE);
    sys::attach_tree(&supers.stage, stage).map_err(|e| io::Error::new(e.kind(), format!("attach the stage: {e}")))?;
    for d in ["l", "u", "w", "r", "e"] {
        mkdir(stage.join(d), 0o755)?;
    }
    // The empty filesystem that masks are binds of.
    let empty = stage.join("e");
    sys::attach_tree(&supers.empty, &empty).map_err(|e| io::Error::new(e.kind(), format!("attach the mask: {e}")))?;
    let root = stage.join("r");
    let mut root_is_overlay = false;
    let (overlaid, read_only): (Vec<_>, Vec<_>) = trees.trees.iter().partition(|(name, _)| !name.contains('/'));
    for (name, tree) in overlaid {
        let key = if name.is_empty() { "root" } else { name.as_str() };
        let (l, u, w) = (stage.join("l").join(key), stage.join("u").join(key), stage.join("w").join(key));
        if plan.rebooted {
            // A volatile overlay leaves `work/incompat/volatile` behind, and refuses to mount over it again: the work
            // directory holds nothing else worth keeping.
            let _ = std::fs::remove_dir_all(&w);
        }
        for d in [&l, &u, &w] {
            mkdir(d, 0o755)?;
        }
        sys::attach_tree(tree, &l).map_err(|e| io::Error::new(e.kind(), format!("attach base {key}: {e}")))?;
        let target = if name.is_empty() {
            root_is_overlay = true;
            root.clone()
        } else {
            let t = root.join(name);
            mkdir(&t, 0o755)?;
            t
        };
        let opts =
            format!("lowerdir={},upperdir={},workdir={},userxattr,volatile", l.display(), u.display(), w.display());
        // Overlayfs does not inherit the lower mount's nosuid/nodev: set them on the overlay itself (nosuid only
        // without a user namespace, see `BaseTrees::open`).
        let flags = match plan.unprivileged_owner {
            Some(_) => MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            None => MsFlags::MS_NODEV,
        };
        m(Some("overlay"), &target, Some("overlay"), flags, Some(&opts))?;
    }
    if !root_is_overlay {
        // pivot_root needs the new root to be a mount point.
        m(Some(root.to_str().unwrap_or_default()), &root, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    }
    for (name, tree) in read_only {
        let at = root.join(name);
        std::fs::create_dir_all(&at)?;
        sys::attach_tree(tree, &at).map_err(|e| io::Error::new(e.kind(), format!("attach {name}: {e}")))?;
    }
    for (name, target) in &trees.links {
        let l = root.join(name);
        if std::fs::symlink_metadata(&l).is_err() {
            symlink(target, &l)?;
        }
    }
    for (d, mode) in [
        ("proc", 0o555),
        ("sys", 0o555),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("root", 0o700),
        ("home", 0o755),
        ("run", 0o755),
        ("var", 0o755),
        ("var/tmp", 0o1777),
        ("etc", 0o755),
        ("opt", 0o755),
        ("srv", 0o755),
        ("mnt", 0o755),
        ("media", 0o755),
    ] {
        mkdir(root.join(d), mode)?;
    }
    if matches!(plan.base, Base::Host) {
        // What a Debian system has and packages expect (a rootfs or an image brings its own).
        for (d, mode) in [
            ("var/log", 0o755),
            ("var/lib", 0o755),
            ("var/cache", 0o755),
            ("var/spool", 0o755),
            ("var/spool/cron", 0o755),
            ("var/spool/cron/crontabs", 0o1730),
            ("run/lock", 0o1777),
            ("run/sshd", 0o755),
        ] {
            mkdir(root.join(d), mode)?;
        }
        let group = std::fs::read_to_string(root.join("etc/group")).unwrap_or_default();
        if let Some(gid) = group.lines().find_map(|l| l.strip_prefix("crontab:x:")?.split(':').next()?.parse().ok()) {
            nix::unistd::chown(&root.join("var/spool/cron/crontabs"), None, Some(nix::unistd::Gid::from_raw(gid)))
                .map_err(io::Error::from)?;
        }
        for (link, target) in [("var/run", "/run"), ("var/lock", "/run/lock")] {
            if std::fs::symlink_metadata(root.join(link)).is_err() {
                symlink(target, root.join(link))?;
            }
        }
    }
    if let Some(uid) = plan.unprivileged_owner {
        for d in ["root", "home"] {
            nix::unistd::chown(&root.join(d), Some(uid.into()), Some(uid.into())).map_err(io::Error::from)?;
        }
    }
    if !plan.rebooted {
        write_identity(&root, plan.hostname)?;
    }
    make_dev(&root, DevSource::Made { dev: &supers.dev, shm: &supers.shm })?;
    m(
        Some("proc"),
        root.join("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    mask_proc_with(&root.join("proc"), Some(&empty), !plan.system)?;
    // The environment's own views of memory, CPUs, time and load (`procviews.rs`).
    for (name, view) in views {
        if !crate::sandbox::procviews::VIEWS.contains(&name.as_str()) {
            return Err(io::Error::other(format!("unknown /proc view {name:?}")));
        }
        sys::attach_tree(view, &root.join("proc").join(name))
            .map_err(|e| io::Error::new(e.kind(), format!("/proc/{name}: {e}")))?;
    }
    for (path, file) in binds {
        let rel = path.trim_start_matches('/');
        let target = sys::open_beneath(libc::AT_FDCWD, &root, libc::O_PATH | libc::O_DIRECTORY, 0).and_then(|r| {
            sys::open_beneath(std::os::fd::AsRawFd::as_raw_fd(&r), Path::new(rel), libc::O_PATH, sys::RESOLVE_IN_ROOT)
        });
        let target = target.map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        sys::attach_tree_at_fd(file, &target).map_err(|e| io::Error::new(e.kind(), format!("bind {path}: {e}")))?;
    }
    // /sys of the environment's own network namespace, read-only. A new sysfs must be mounted while the host's is
    // still in this mount table (the kernel wants a fully visible one to compare with): before the pivot.
    m(
        Some("sysfs"),
        root.join("sys"),
        Some("sysfs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    for masked in ["firmware", "kernel/security", "kernel/debug", "devices/virtual/powercap"] {
        let Ok(target) = sys::open_beneath(
            libc::AT_FDCWD,
            &root.join("sys").join(masked),
            libc::O_PATH | libc::O_NOFOLLOW,
            sys::RESOLVE_NO_SYMLINKS,
        ) else {
            continue;
        };
        mask(&target, Some(&empty)).map_err(|e| io::Error::new(e.kind(), format!("mask /sys/{masked}: {e}")))?;
    }
    hide(&root, plan.hidden, plan.base, Some(&empty))?;
    std::env::set_current_dir(&root)?;
    sys::pivot_root_here().map_err(|e| io::Error::new(e.kind(), format!("pivot_root: {e}")))?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("detach old root: {e}")))?;
    std::env::set_current_dir("/")?;
    Ok(())
}

fn write_identity(root: &Path, hostname: &str) -> io::Result<()> {
    let etc = root.join("etc");
    std::fs::write(etc.join("hostname"), format!("{hostname}\n"))?;
    std::fs::write(
        etc.join("hosts"),
        format!("127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    )?;
    Ok(())
}

/// Where `/dev` and `/dev/shm` come from.
pub(crate) enum DevSource<'a> {
    /// Filesystems made on the host side ([`Supers`]).
    Made { dev: &'a OwnedFd, shm: &'a OwnedFd },
    /// Fresh ones, mounted here; `/dev/shm` of this size.
    Fresh(u64),
}

pub(crate) fn make_dev(root: &Path, source: DevSource<'_>) -> io::Result<()> {
    let dev = root.join("dev");
    match &source {
        DevSource::Made { dev: fs, .. } => {
            sys::attach_tree(fs, &dev).map_err(|e| io::Error::new(e.kind(), format!("attach /dev: {e}")))?
        }
        DevSource::Fresh(_) => m(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("size=64k,nr_inodes=64,mode=0755"),
        )?,
    }
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let t = dev.join(name);
        std::fs::File::create(&t)?;
        let src = format!("/dev/{name}");
        m(Some(&src), &t, None, MsFlags::MS_BIND, None)?;
    }
    mkdir(dev.join("pts"), 0o755)?;
    m(
        Some("devpts"),
        dev.join("pts"),
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    symlink("pts/ptmx", dev.join("ptmx"))?;
    mkdir(dev.join("shm"), 0o1777)?;
    match source {
        DevSource::Made { shm, .. } => sys::attach_tree(shm, &dev.join("shm"))
            .map_err(|e| io::Error::new(e.kind(), format!("attach /dev/shm: {e}")))?,
        DevSource::Fresh(shm_bytes) => m(
            Some("shm"),
            dev.join("shm"),
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(&format!("size={shm_bytes},mode=1777")),
        )?,
    }
    for (l, t) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(t, dev.join(l))?;
    }
    Ok(())
}

/// Where a host path appears inside the new root, if the base exposes it.
fn inside_path(base: &Base, host: &Path) -> Option<PathBuf> {
    match base {
        Base::Host => {
            let exposed = host.starts_with("/usr") || HOST_TOP.iter().any(|t| host.starts_with(Path::new("/").join(t)));
            exposed.then(|| host.to_path_buf())
        }
        Base::Rootfs(r) => host.strip_prefix(r).ok().map(|rel| Path::new("/").join(rel)),
    }
}

/// Masks the hidden host paths where the base exposes them below `root`: an empty, read-only, mode-0000 tmpfs over a
/// directory, `/dev/null` over a file. The path below `root` is resolved without following any symlink, so a link
/// that someone planted in a writable layer can never redirect a mask elsewhere (the mask then fails loudly).
/// `empty`: an attached empty read-only filesystem to bind over directories; `None` mounts a fresh one per mask.
pub(crate) fn hide(root: &Path, hidden: &[PathBuf], base: &Base, empty: Option<&Path>) -> io::Result<()> {
    for h in hidden {
        let Some(inside) = inside_path(base, h) else { continue };
        let rel = inside.strip_prefix("/").unwrap_or(&inside);
        let root_fd = sys::open_beneath(libc::AT_FDCWD, root, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let target = match sys::open_beneath(
            std::os::fd::AsRawFd::as_raw_fd(&root_fd),
            rel,
            libc::O_PATH | libc::O_NOFOLLOW,
            sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                return Err(io::Error::new(e.kind(), format!("hide {}: {e}", inside.display())));
            }
        };
        mask(&target, empty).map_err(|e| io::Error::new(e.kind(), format!("hide {}: {e}", inside.display())))?;
    }
    Ok(())
}

/// Mounts the environment's own cgroups, read-only, under `/sys/fs/cgroup` (a tmpfs made read-only after), as a
/// host shows them: one directory per v1 hierarchy the process is in (`memory`, `cpu`…) and `unified` for the cgroup2
/// tree on a hybrid host, or the cgroup2 tree itself on a pure v2 host. Called by init inside its new cgroup namespace,
/// so each shows the environment's group as its root: a JVM or a Go program finds its limits where it looks.
pub(crate) fn mount_cgroups(tmpfs: &OwnedFd) -> io::Result<()> {
    let dir = Path::new("/sys/fs/cgroup");
    let lines = std::fs::read_to_string("/proc/self/cgroup")?;
    let mut v1: Vec<String> = Vec::new();
    let mut v2 = false;
    for line in lines.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers) = (f.next(), f.next().unwrap_or(""));
        if controllers.is_empty() {
            v2 = true;
        } else if !controllers.starts_with("name=") {
            v1.push(controllers.to_string());
        }
    }
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if v1.is_empty() {
        if v2 {
            m(Some("cgroup2"), dir, Some("cgroup2"), ro, None)?;
        }
        return Ok(());
    }
    sys::attach_tree(tmpfs, dir).map_err(|e| io::Error::new(e.kind(), format!("attach /sys/fs/cgroup: {e}")))?;
    for controllers in &v1 {
        let at = dir.join(controllers);
        mkdir(&at, 0o555)?;
        m(Some("cgroup"), &at, Some("cgroup"), ro, Some(controllers))?;
    }
    if v2 {
        mkdir(dir.join("unified"), 0o555)?;
        m(Some("cgroup2"), dir.join("unified"), Some("cgroup2"), ro, None)?;
    }
    sys::set_mount_attrs_at(dir, sys::MOUNT_ATTR_RDONLY, 0, false)
}

/// For a `system` environment, before its service manager starts: `/sys/fs/cgroup` as a tmpfs of its own with the
/// v1 `cpu` and `cpuacct` hierarchies mounted where a host has them, when they are separate hierarchies on this host.
/// systemd mounts the rest itself (and asks for `cpu,cpuacct` joined, which a user namespace cannot mount where the
/// host has them apart): without them a JVM finds no cpu controller and ignores every limit. Nothing is done where
/// they are joined or absent (v2). Called by init in the machine's own cgroup namespace.
pub(crate) fn mount_split_cpu_cgroups() -> io::Result<()> {
    let lines = std::fs::read_to_string("/proc/self/cgroup")?;
    let v1: Vec<&str> = lines.lines().filter_map(|l| l.split(':').nth(1)).filter(|c| !c.is_empty()).collect();
    if !(v1.contains(&"cpu") && v1.contains(&"cpuacct")) {
        return Ok(());
    }
    let dir = Path::new("/sys/fs/cgroup");
    m(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755,size=4096k,nr_inodes=1024"),
    )?;
    for c in ["cpu", "cpuacct"] {
        let at = dir.join(c);
        mkdir(&at, 0o755)?;
        m(Some("cgroup"), &at, Some("cgroup"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some(c))?;
    }
    Ok(())
}

/// Entries of `/proc` that an exam environment does not need and that tell about the host (its kernel command line
/// and configuration, symbols, memory, devices, other processes' timers) or reach into it: masked, as container
/// runtimes do. A file gets `/dev/null`, a directory an empty read-only tmpfs.
pub const PROC_MASKS: &[&str] = &[
    "acpi",
    "asound",
    "buddyinfo",
    "bus",
    "cmdline",
    "config.gz",
    "consoles",
    "driver",
    "dynamic_debug",
    "fs",
    "interrupts",
    "iomem",
    "ioports",
    "irq",
    "kallsyms",
    "kcore",
    "key-users",
    "keys",
    "kmsg",
    "kpagecgroup",
    "kpagecount",
    "kpageflags",
    "latency_stats",
    "modules",
    "mtrr",
    "pagetypeinfo",
    "sched_debug",
    "schedstat",
    "scsi",
    "slabinfo",
    "sysrq-trigger",
    "timer_list",
    "timer_stats",
    "vmallocinfo",
    "zoneinfo",
];

/// Masks [`PROC_MASKS`] in the procfs mounted at `proc`, and makes `proc/sys` read-only. `empty` as for [`hide`].
pub(crate) fn mask_proc(proc: &Path, empty: Option<&Path>) -> io::Result<()> {
    mask_proc_with(proc, empty, true)
}

/// [`mask_proc`], with `/proc/sys` read-only only when `read_only_sys`.
pub(crate) fn mask_proc_with(proc: &Path, empty: Option<&Path>, read_only_sys: bool) -> io::Result<()> {
    let dir = sys::open_beneath(libc::AT_FDCWD, proc, libc::O_PATH | libc::O_DIRECTORY, 0)?;
    for name in PROC_MASKS {
        let Ok(target) = sys::open_beneath(
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            Path::new(name),
            libc::O_PATH | libc::O_NOFOLLOW,
            sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_BENEATH,
        ) else {
            continue;
        };
        mask(&target, empty).map_err(|e| io::Error::new(e.kind(), format!("mask /proc/{name}: {e}")))?;
    }
    let sys_dir = proc.join("sys");
    if read_only_sys && sys_dir.is_dir() {
        m(Some(&sys_dir.to_string_lossy()), &sys_dir, None, MsFlags::MS_BIND, None)?;
        m(
            None,
            &sys_dir,
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None,
        )?;
    }
    Ok(())
}

/// Covers what `target` (an `O_PATH` descriptor) names: an empty, read-only, mode-0000 tmpfs over a directory,
/// `/dev/null` over anything else.
fn mask(target: &OwnedFd, empty: Option<&Path>) -> io::Result<()> {
    let md = sys::fstat(target)?;
    let cover = if md.st_mode & libc::S_IFMT == libc::S_IFDIR {
        match empty {
            Some(e) => sys::detached_tree(e)?,
            None => sys::detached_tmpfs(
                &[("size", "4k"), ("nr_inodes", "1"), ("mode", "0000")],
                sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
            )?,
        }
    } else {
        sys::clone_mount_at(libc::AT_FDCWD, c"/dev/null", false)?
    };
    sys::attach_tree_at_fd(&cover, target)
}

/// Opens the user namespace of `pid` (for idmapping).
pub fn userns_of(pid: i32) -> io::Result<OwnedFd> {
    let f = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
    Ok(OwnedFd::from(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_paths_map_into_the_base() {
        assert_eq!(
            inside_path(&Base::Host, Path::new("/usr/share/examroom/exams")),
            Some("/usr/share/examroom/exams".into())
        );
        assert_eq!(inside_path(&Base::Host, Path::new("/var/lib/examroom")), None);
        let r = Base::Rootfs("/srv/rootfs".into());
        assert_eq!(inside_path(&r, Path::new("/srv/rootfs/opt/exams")), Some("/opt/exams".into()));
        assert_eq!(inside_path(&r, Path::new("/srv/other")), None);
    }
}
