//! The check's view of the environment, and the check itself.
//!
//! Code comes only from the pristine base: `/usr` (with its `/usr/local`), the top-level `bin`, `sbin` and `lib*`,
//! and `/examroom` (the `examroom-run` helper with the host's loader and libraries). Everything of the candidate's is
//! data: their top-level directories (`/root`, `/home`, `/srv`, `/opt`, `/var`, `/run`...) bound read-only, nosuid,
//! nodev and **noexec**, their `/etc` as [`super::etc`] assembles it, and their whole tree, as they left it, at
//! `/candidate` (read-only, noexec). `/tmp` is the check's own (noexec), `/dev` a minimal one, `/proc` the
//! environment's (mounted by the check itself, inside the pid namespace).
//!
//! The check runs in the environment's user namespace as uid and gid [`RESERVED_CHECK_ID`] (no candidate process can
//! take it: the candidate's seccomp filter refuses it) with `CAP_DAC_READ_SEARCH` only, under the candidate's seccomp
//! filter, with a fixed environment. Its mount namespace is owned by the host's user namespace, so it holds no
//! capability over any mount there.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};

use super::etc;
use crate::sandbox::rootfs::{hide, m, make_dev, mask_proc, mkdir, DevSource};
use crate::sandbox::seccomp::RESERVED_CHECK_ID;
use crate::sandbox::{caps, seccomp, sys};
use crate::types::Base;

/// Top-level names whose content is code: always the pristine base's.
pub(super) const CODE_TOPS: &[&str] = &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// Top-level names of the candidate's tree that the view never takes as data.
const NOT_DATA: &[&str] = &["etc", "proc", "sys", "dev", "tmp", "examroom", "candidate"];

/// The `PATH` of every check: the pristine base, then the helper.
pub(super) const CHECK_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin:/examroom/bin";

/// What a view is built from, as the grader sees it (all below its staging tmpfs).
pub(super) struct Sources<'a> {
    /// The candidate's whole tree (attached, recursive).
    pub candidate: &'a Path,
    /// The pristine base's root: the directory holding `usr`, `etc`... (for a host base, the staged trees).
    pub pristine: &'a Path,
    /// Top-level symlinks of the pristine base that are not in `pristine` (host base: `bin -> usr/bin`...).
    pub links: &'a [(String, PathBuf)],
    /// Files for `/examroom/lib`: (name, detached mount of the file).
    pub helpers: &'a [(String, OwnedFd)],
    /// The loader's name among `helpers`, if the helper is dynamically linked.
    pub loader: Option<&'a str>,
    /// Host paths to hide, and the base (to map them).
    pub hidden: &'a [PathBuf],
    pub base: &'a Base,
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    sys::open_beneath(libc::AT_FDCWD, path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))
}

/// Builds the view at `view` (an empty directory).
pub(super) fn build(view: &Path, src: &Sources<'_>) -> io::Result<()> {
    m(
        Some("examroom-check"),
        view,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=256k,nr_inodes=4096,mode=0755"),
    )?;
    let pristine = open_dir(src.pristine)?;
    let candidate = open_dir(src.candidate)?;
    // Code: the pristine base's top levels.
    for (name, target) in src.links {
        if CODE_TOPS.contains(&name.as_str()) {
            std::os::unix::fs::symlink(target, view.join(name))?;
        }
    }
    for name in CODE_TOPS {
        let c = etc::cname(name);
        let Ok(st) = sys::lstat_at(pristine.as_raw_fd(), &c) else { continue };
        let at = view.join(name);
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK if !at.exists() => {
                std::os::unix::fs::symlink(sys::readlink_at(pristine.as_raw_fd(), &c)?, &at)?;
            }
            libc::S_IFDIR => {
                mkdir(&at, 0o755)?;
                let tree = sys::clone_mount_at(pristine.as_raw_fd(), &c, true)?;
                sys::set_mount_attrs(&tree, sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV, 0, true)?;
                sys::attach_tree(&tree, &at)?;
            }
            _ => {}
        }
    }
    // The candidate's /etc, with the pristine entries that steer code.
    mkdir(view.join("etc"), 0o755)?;
    let beneath = |root: &OwnedFd| {
        sys::open_beneath(root.as_raw_fd(), Path::new("etc"), libc::O_RDONLY | libc::O_DIRECTORY, sys::RESOLVE_IN_ROOT)
            .ok()
    };
    let (cand_etc, pristine_etc) = (beneath(&candidate), beneath(&pristine));
    etc::build(&view.join("etc"), cand_etc.as_ref(), pristine_etc.as_ref())?;
    // The candidate's other top-level entries, as data.
    for name in sys::list_dir(&candidate)? {
        let s = name.to_string_lossy();
        if CODE_TOPS.contains(&s.as_ref()) || NOT_DATA.contains(&s.as_ref()) {
            continue;
        }
        let Ok(st) = sys::lstat_at(candidate.as_raw_fd(), &name) else { continue };
        let at = view.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        match st.st_mode & libc::S_IFMT {
            libc::S_IFLNK => std::os::unix::fs::symlink(sys::readlink_at(candidate.as_raw_fd(), &name)?, &at)?,
            libc::S_IFDIR => {
                std::fs::create_dir(&at)?;
                etc::bind_read_only(&candidate, &name, &at)?;
            }
            libc::S_IFREG => {
                std::fs::File::create(&at)?;
                etc::bind_read_only(&candidate, &name, &at)?;
            }
            _ => {}
        }
    }
    // Their whole tree as they left it.
    mkdir(view.join("candidate"), 0o755)?;
    etc::bind_read_only(&candidate, c"", &view.join("candidate"))?;
    // The check's own /tmp, /dev and /proc (mounted by the check).
    mkdir(view.join("tmp"), 0o1777)?;
    m(
        Some("tmp"),
        view.join("tmp"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=64m,mode=1777"),
    )?;
    mkdir(view.join("dev"), 0o755)?;
    make_dev(view, DevSource::Fresh(1 << 20))?;
    mkdir(view.join("proc"), 0o555)?;
    helpers(&view.join("examroom"), src)?;
    hide(view, src.hidden, src.base, None)?;
    Ok(())
}

/// `/examroom`: `bin/examroom-run` and the files it runs on, from the host.
fn helpers(dir: &Path, src: &Sources<'_>) -> io::Result<()> {
    mkdir(dir, 0o755)?;
    m(Some("examroom"), dir, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("size=64k,mode=0755"))?;
    mkdir(dir.join("bin"), 0o755)?;
    mkdir(dir.join("lib"), 0o755)?;
    for (name, tree) in src.helpers {
        let at = dir.join("lib").join(name);
        std::fs::File::create(&at)?;
        sys::attach_tree(tree, &at).map_err(|e| io::Error::new(e.kind(), format!("attach helper {name}: {e}")))?;
    }
    let exec = match src.loader {
        Some(ld) => format!(
            "exec /examroom/lib/{ld} --library-path /examroom/lib --argv0 examroom-run /examroom/lib/examroom \"$@\""
        ),
        None => "exec /examroom/lib/examroom-run \"$@\"".to_string(),
    };
    if src.loader.is_none() {
        std::os::unix::fs::symlink("examroom", dir.join("lib/examroom-run"))?;
    }
    let script = dir.join("bin/examroom-run");
    std::fs::write(
        &script,
        format!("#!/bin/sh\n# Runs a program of the candidate's in a throwaway copy of their environment.\n{exec}\n"),
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
}

/// Makes the view's own tmpfs and `/examroom` read-only (after the run socket was bound in it).
pub(super) fn seal(view: &Path) -> io::Result<()> {
    m(
        None,
        view.join("examroom"),
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=64k,mode=0755"),
    )?;
    m(
        None,
        view,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=256k,nr_inodes=4096,mode=0755"),
    )
}

/// What the check process needs (computed before the fork).
pub(super) struct Check<'a> {
    /// The environment's user namespace (`None` without one).
    pub userns: Option<RawFd>,
    pub view: &'a Path,
    pub argv: &'a [CString],
    pub env: &'a [CString],
    pub cwd: &'a str,
    pub fds: [RawFd; 3],
    pub filter: &'a seccomp::BpfProgram,
    /// Without a user namespace: the candidate's host uid (the check then runs as that slot's last uid).
    pub unprivileged_uid: Option<u32>,
}

/// In the forked check process: its own mount namespace with `/proc`, the pivot into the view, the check's
/// credentials and filter, then exec. Returns only on failure.
pub(super) fn exec_check(c: &Check<'_>) -> io::Error {
    match prepare(c) {
        Ok(()) => {}
        Err(e) => return e,
    }
    let mut argv_p: Vec<*const libc::c_char> = c.argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = c.env.iter().map(|a| a.as_ptr()).collect();
    env_p.push(std::ptr::null());
    // SAFETY: null-terminated arrays of valid C strings.
    unsafe { libc::execve(c.argv[0].as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    io::Error::last_os_error()
}

fn prepare(c: &Check<'_>) -> io::Result<()> {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| io::Error::other(format!("unshare: {e}")))?;
    m(
        Some("proc"),
        c.view.join("proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )?;
    mask_proc(&c.view.join("proc"), None)?;
    std::env::set_current_dir(c.view)?;
    sys::pivot_root_here().map_err(|e| io::Error::other(format!("pivot_root: {e}")))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| io::Error::other(format!("detach the old root: {e}")))?;
    std::env::set_current_dir("/")?;
    if Path::new(c.cwd).is_dir() {
        let _ = std::env::set_current_dir(c.cwd);
    }
    // SAFETY: raw descriptor calls in our own single-threaded process.
    unsafe {
        let moved: Vec<RawFd> = c.fds.iter().map(|fd| libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10)).collect();
        for (i, fd) in moved.iter().enumerate() {
            if *fd < 0 || libc::dup2(*fd, i as RawFd) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
        libc::umask(0o022);
    }
    if let Some(ns) = c.userns {
        // SAFETY: setns on a namespace descriptor the grader opened; we are single-threaded.
        if unsafe { libc::setns(ns, libc::CLONE_NEWUSER) } < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("join the user namespace: {e}")));
        }
    }
    let id = match c.unprivileged_uid {
        None => RESERVED_CHECK_ID,
        Some(base) => base + RESERVED_CHECK_ID,
    };
    caps::become_checker(id, id).map_err(|e| io::Error::other(format!("capabilities: {e}")))?;
    // A change of credentials clears the parent-death signal.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    seccomp::apply(c.filter).map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
    Ok(())
}

/// The `LANG` a check runs with: the request's when it is a plain locale name, else `C.UTF-8`.
pub(super) fn check_env(requested: &[(String, String)]) -> Vec<(String, String)> {
    let plain =
        |v: &str| !v.is_empty() && v.len() < 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b));
    let lang = requested
        .iter()
        .find(|(k, v)| k == "LANG" && plain(v))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "C.UTF-8".into());
    vec![
        ("PATH".into(), CHECK_PATH.into()),
        ("HOME".into(), "/tmp".into()),
        ("TMPDIR".into(), "/tmp".into()),
        ("LANG".into(), lang),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_get_a_fixed_environment() {
        let env = check_env(&[
            ("LANG".into(), "de_DE.UTF-8".into()),
            ("LD_PRELOAD".into(), "/root/x.so".into()),
            ("PATH".into(), "/root/bin".into()),
            ("BASH_ENV".into(), "/root/.evil".into()),
        ]);
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["PATH", "HOME", "TMPDIR", "LANG"]);
        assert_eq!(env[0].1, CHECK_PATH);
        assert_eq!(env[3].1, "de_DE.UTF-8");
        // A locale that names a path (glibc would load it from there) is not taken.
        assert_eq!(check_env(&[("LANG".into(), "/root/locale".into())])[3].1, "C.UTF-8");
    }
}
