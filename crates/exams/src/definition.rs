//! The exam definition: what one `exam.toml` says once it has been validated ([`Exam`],
//! [`EnvironmentConfig`]), and the limits and defaults that validation applies.
//!
//! A value of these types has passed every check in [`crate::parse`]: the id is a valid [`ExamId`], every
//! duration is greater than zero and every limit is in range. The fields are public so that other crates
//! (and their tests) can build an [`Exam`] directly; [`EnvironmentConfig::host`] gives the defaults.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use examroom_core::ExamId;

/// The name of the definition file in every exam directory.
pub const EXAM_FILE: &str = "exam.toml";

/// The largest `exam.toml` that is read at all (256 KiB); a larger file is refused before it is parsed.
pub const MAX_EXAM_FILE_BYTES: u64 = 256 * KIB;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Memory when `environment.memory` is not given: 512 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 512 * MIB;
/// The least memory an environment may have: 32 MiB.
pub const MIN_MEMORY_BYTES: u64 = 32 * MIB;
/// The most memory an environment may have: 64 GiB.
pub const MAX_MEMORY_BYTES: u64 = 64 * GIB;

/// The process limit when `environment.pids` is not given.
pub const DEFAULT_PIDS: u64 = 512;
/// The lowest process limit allowed.
pub const MIN_PIDS: u64 = 16;
/// The highest process limit allowed.
pub const MAX_PIDS: u64 = 65_536;

/// CPU when `environment.cpu` is not given: one core.
pub const DEFAULT_CPU_MILLICORES: u32 = 1000;
/// The least CPU allowed: 0.05 cores.
pub const MIN_CPU_MILLICORES: u32 = 50;
/// The most CPU allowed: 64 cores.
pub const MAX_CPU_MILLICORES: u32 = 64_000;

/// The smallest disk allowed (`environment.disk`): 4 MiB. It must also be smaller than the memory.
pub const MIN_DISK_BYTES: u64 = 4 * MIB;

/// The only network mode accepted for now: no network at all.
pub const NETWORK_NONE: &str = "none";

/// The shortest `provisioning_timeout` allowed.
pub const MIN_PROVISIONING_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest `provisioning_timeout` allowed.
pub const MAX_PROVISIONING_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// The longest `start_grace` allowed. (The shortest is anything above zero: a duration of zero is refused.)
pub const MAX_START_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

/// One exam, as its `exam.toml` defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exam {
    /// The exam's id (`id`). It need not match the directory name, but it is unique within a catalog.
    pub id: ExamId,
    /// Its title (`title`), never blank.
    pub title: String,
    /// Its description (`description`), for candidates; may be empty.
    pub description: String,
    /// How long the exam clock runs (`duration`), greater than zero.
    pub duration: Duration,
    /// The isolated environment each candidate gets (`[environment]`).
    pub environment: EnvironmentConfig,
    /// How long provisioning may take (`provisioning_timeout`, default
    /// [`DEFAULT_PROVISIONING_TIMEOUT`](examroom_core::DEFAULT_PROVISIONING_TIMEOUT), 60 s), from
    /// [`MIN_PROVISIONING_TIMEOUT`] to [`MAX_PROVISIONING_TIMEOUT`].
    pub provisioning_timeout: Duration,
    /// How long a `ready` session waits for the candidate to start (`start_grace`, default
    /// [`DEFAULT_START_GRACE`](examroom_core::DEFAULT_START_GRACE), 10 min), at most [`MAX_START_GRACE`].
    pub start_grace: Duration,
    /// The exam's directory, canonical when it could be resolved; later setup scripts and checks are found
    /// relative to it.
    pub dir: PathBuf,
}

impl Exam {
    /// The path of this exam's `exam.toml`.
    pub fn file(&self) -> PathBuf {
        self.dir.join(EXAM_FILE)
    }
}

/// The `[environment]` section: what a candidate's isolated Linux environment is made from and how much it
/// may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentConfig {
    /// What the environment's root file system is (`base`): `"host"`, `"rootfs:/ABS/PATH"` or
    /// `"image:NAME"`. Checked for syntax only (see [`BaseKind::parse`]); whether the path or image exists
    /// is the runtime's business.
    pub base: String,
    /// The memory limit in bytes (`memory`, default [`DEFAULT_MEMORY_BYTES`]), from [`MIN_MEMORY_BYTES`] to
    /// [`MAX_MEMORY_BYTES`].
    pub memory_bytes: u64,
    /// The process limit (`pids`, default [`DEFAULT_PIDS`]), from [`MIN_PIDS`] to [`MAX_PIDS`].
    pub pids: u64,
    /// CPU in thousandths of a core (`cpu`, default [`DEFAULT_CPU_MILLICORES`]), from
    /// [`MIN_CPU_MILLICORES`] to [`MAX_CPU_MILLICORES`].
    pub cpu_millicores: u32,
    /// The size of the writable disk in bytes (`disk`), if limited: at least [`MIN_DISK_BYTES`] and smaller
    /// than `memory_bytes`.
    pub disk_bytes: Option<u64>,
    /// The network mode (`network`); only [`NETWORK_NONE`] for now.
    pub network: String,
    /// Whether the environment has a graphical desktop (`desktop`, default `false`).
    pub desktop: bool,
}

impl EnvironmentConfig {
    /// A `host` environment with every default: what an `[environment]` section holding only
    /// `base = "host"` gives.
    pub fn host() -> Self {
        Self {
            base: "host".to_owned(),
            memory_bytes: DEFAULT_MEMORY_BYTES,
            pids: DEFAULT_PIDS,
            cpu_millicores: DEFAULT_CPU_MILLICORES,
            disk_bytes: None,
            network: NETWORK_NONE.to_owned(),
            desktop: false,
        }
    }

    /// The base, taken apart. `None` only if `base` was set by hand to something that
    /// [`BaseKind::parse`] refuses; a loaded exam always has a valid base.
    pub fn base_kind(&self) -> Option<BaseKind<'_>> {
        BaseKind::parse(&self.base).ok()
    }
}

/// What an environment's root file system is made from: [`EnvironmentConfig::base`] taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseKind<'a> {
    /// `host`: the host's own file system, read-only.
    Host,
    /// `rootfs:/ABS/PATH`: an unpacked root file system at an absolute path without `..`.
    Rootfs(&'a Path),
    /// `image:NAME`: a container image, `NAME` made of `a-z 0-9 . _ / : -`.
    Image(&'a str),
}

impl<'a> BaseKind<'a> {
    /// Checks the syntax of a `base` value. The error says, for a person, what is wrong and how to write it.
    pub fn parse(base: &'a str) -> Result<Self, String> {
        const FORMS: &str = "write \"host\", \"rootfs:/absolute/path\" or \"image:name\"";
        if base == "host" {
            return Ok(Self::Host);
        }
        if let Some(path) = base.strip_prefix("rootfs:") {
            if path.is_empty() {
                return Err(format!("base \"rootfs:\" has no path; {FORMS}"));
            }
            if path.contains('\0') {
                return Err("the rootfs path contains a NUL character".to_owned());
            }
            let path = Path::new(path);
            if !path.is_absolute() {
                return Err(format!("the rootfs path {path:?} is not absolute; write it like rootfs:/srv/rootfs"));
            }
            if path.components().any(|c| c == Component::ParentDir) {
                return Err(format!("the rootfs path {path:?} contains \"..\"; write it without"));
            }
            return Ok(Self::Rootfs(path));
        }
        if let Some(name) = base.strip_prefix("image:") {
            if name.is_empty() {
                return Err(format!("base \"image:\" has no image name; {FORMS}"));
            }
            if let Some(ch) = name.chars().find(|&c| !is_image_char(c)) {
                return Err(format!(
                    "the image name contains {ch:?}; use only lowercase letters a-z, digits and . _ / : -"
                ));
            }
            return Ok(Self::Image(name));
        }
        Err(format!("unknown base {:?}; {FORMS}", shorten(base)))
    }
}

fn is_image_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '/' | ':' | '-')
}

/// `s` as quoted in messages: at most 60 characters.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}

/// Writes a byte count for messages: `512 MiB`, `1 GiB`, `3000 bytes`.
pub(crate) fn format_bytes(bytes: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        // Every unit is a power of two, so a mask tells whether it divides the size.
        if bytes >= size && bytes & (size - 1) == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

/// Writes millicores for messages: `1.5 cores (1500m)`.
pub(crate) fn format_cpu(millicores: i64) -> String {
    let cores = millicores as f64 / 1000.0;
    format!("{cores} cores ({millicores}m)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_kinds() {
        assert_eq!(BaseKind::parse("host"), Ok(BaseKind::Host));
        assert_eq!(BaseKind::parse("rootfs:/srv/rootfs"), Ok(BaseKind::Rootfs(Path::new("/srv/rootfs"))));
        assert_eq!(
            BaseKind::parse("image:docker.io/library/debian:12"),
            Ok(BaseKind::Image("docker.io/library/debian:12"))
        );
        for bad in [
            "",
            "Host",
            "hosts",
            "rootfs:",
            "rootfs:srv/rootfs",
            "rootfs:/srv/../etc",
            "rootfs:/srv/..",
            "rootfs:/a\0b",
            "image:",
            "image:Debian",
            "image:debian 12",
            "image:debian@sha256",
            "docker:debian",
        ] {
            assert!(BaseKind::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn host_defaults() {
        let env = EnvironmentConfig::host();
        assert_eq!(env.base_kind(), Some(BaseKind::Host));
        assert_eq!(env.memory_bytes, 512 * 1024 * 1024);
        assert_eq!(env.pids, 512);
        assert_eq!(env.cpu_millicores, 1000);
        assert_eq!(env.disk_bytes, None);
        assert_eq!(env.network, "none");
        assert!(!env.desktop);
    }

    #[test]
    fn formats_for_messages() {
        assert_eq!(format_bytes(512 * MIB), "512 MiB");
        assert_eq!(format_bytes(64 * GIB), "64 GiB");
        assert_eq!(format_bytes(1536 * KIB), "1536 KiB");
        assert_eq!(format_bytes(1000), "1000 bytes");
        assert_eq!(format_cpu(1500), "1.5 cores (1500m)");
        assert_eq!(shorten(&"x".repeat(100)).chars().count(), 61);
    }
}
