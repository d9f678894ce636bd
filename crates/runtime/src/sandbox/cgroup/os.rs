//! The "syscall trait": every filesystem and signal operation this module
//! performs goes through [`CgroupOs`], so unit tests can substitute an
//! in-memory fake and the real implementation stays a thin shim over `std`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

/// The operating-system operations the cgroup code needs.
///
/// Implementations must behave like cgroupfs: `write` never creates a file,
/// `mkdir`/`rmdir` act on one directory level, and errors carry the real
/// errno (`ENOENT`, `EEXIST`, `EBUSY`, `ESRCH`, ...) so callers can tell
/// "already gone" from "still busy" from a real failure.
pub trait CgroupOs {
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `data` to an existing file in a single `write(2)`; never creates it.
    fn write(&self, path: &Path, data: &str) -> io::Result<()>;
    /// Creates one directory (the parent must exist); `EEXIST` if it already does.
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes one empty directory (`EBUSY` for a cgroup still in use).
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Names of the direct subdirectories of `path` (files are left out).
    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Sends signal `sig` to process `pid`. Implementations must refuse `pid <= 0`.
    fn kill(&self, pid: i32, sig: i32) -> io::Result<()>;
    /// Gives `path` (a group's directory or one of its files) to `uid`:`uid` (delegation).
    fn chown(&self, path: &Path, uid: u32) -> io::Result<()>;
    /// Sleeps for `d`. All waiting in this module goes through here, and
    /// timeouts are measured as the sum of the requested sleeps, so a fake
    /// can make time-dependent code deterministic.
    fn sleep(&self, d: Duration);
    /// The calling process's pid (used to refuse freezing or killing a group
    /// that contains the caller itself).
    fn self_pid(&self) -> i32 {
        i32::try_from(std::process::id()).unwrap_or(i32::MAX)
    }
}

impl<T: CgroupOs + ?Sized> CgroupOs for &T {
    fn read(&self, path: &Path) -> io::Result<String> {
        (**self).read(path)
    }
    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        (**self).write(path, data)
    }
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        (**self).mkdir(path)
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        (**self).rmdir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        (**self).exists(path)
    }
    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>> {
        (**self).list_dirs(path)
    }
    fn kill(&self, pid: i32, sig: i32) -> io::Result<()> {
        (**self).kill(pid, sig)
    }
    fn chown(&self, path: &Path, uid: u32) -> io::Result<()> {
        (**self).chown(path, uid)
    }
    fn sleep(&self, d: Duration) {
        (**self).sleep(d)
    }
    fn self_pid(&self) -> i32 {
        (**self).self_pid()
    }
}

/// The real operating system: `std::fs`, `kill(2)` and `std::thread::sleep`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealOs;

impl CgroupOs for RealOs {
    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        use std::io::Write as _;
        // No O_CREAT: a missing control file must be an error, not a new
        // regular file. cgroupfs wants one value per write(2).
        let mut f = fs::OpenOptions::new().write(true).open(path)?;
        let n = f.write(data.as_bytes())?;
        if n != data.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, format!("short write ({n} of {} bytes)", data.len())));
        }
        Ok(())
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.symlink_metadata().is_ok()
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                if let Ok(name) = entry.file_name().into_string() {
                    out.push(name);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn chown(&self, path: &Path, uid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(uid))
    }

    fn kill(&self, pid: i32, sig: i32) -> io::Result<()> {
        // kill(0, ..) and kill(-1, ..) address process groups / everything:
        // never let a bogus pid read from a file turn into that.
        if pid <= 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("refusing to signal pid {pid}")));
        }
        let sig = nix::sys::signal::Signal::try_from(sig).map_err(io::Error::from)?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(io::Error::from)
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// `ENOENT` (or `ENODEV`, which cgroupfs returns for a removed group).
pub(crate) fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENODEV))
}

/// `EEXIST`.
pub(crate) fn is_exists(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::AlreadyExists || e.raw_os_error() == Some(libc::EEXIST)
}

/// `EBUSY` or `ENOTEMPTY`: the directory is still in use; retrying may help.
pub(crate) fn is_busy(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY))
}

/// `ESRCH`: the process is already gone.
pub(crate) fn is_no_such_process(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ESRCH)
}
