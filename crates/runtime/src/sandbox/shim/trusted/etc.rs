//! The `/etc` of a check: the candidate's files, read as data where checks expect them, except the entries that the
//! base's own programs read as code, or as instructions about which code to load or run: those come from the pristine
//! base (or are absent when the base has none).
//!
//! The view is a small tmpfs with one read-only, `noexec` bind per entry of the candidate's `/etc` (symlinks are
//! recreated as symlinks, never followed), then the pristine entries. Every lookup below the candidate's tree and the
//! pristine tree is made through descriptors with `RESOLVE_IN_ROOT`, so a symlink planted by the candidate resolves
//! inside their own files and never reaches the grader's.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::MsFlags;

use crate::sandbox::rootfs::m;
use crate::sandbox::sys;

/// Entries of `/etc` that a check takes from the pristine base, never from the candidate. A trailing `*` matches any
/// suffix; `a/b` names an entry inside the directory `a` (the rest of `a` stays the candidate's).
///
/// - the loader and libc: `ld.so.*`, `nsswitch.conf` (names NSS modules to load), `host.conf`, `gai.conf`;
/// - which program a name runs: `alternatives`;
/// - shells and sessions: `environment`, `environment.d`, `profile`, `profile.d`, `bash.bashrc`,
///   `bash.bash_logout`, `bash_completion`, `bash_completion.d`, `zsh*`, `inputrc`, `shells`, `pam.conf`, `pam.d`,
///   `security`;
/// - interpreters that load code from `/etc`: `perl` (first on Perl's `@INC`), `python3*` (`sitecustomize`);
/// - tools whose configuration runs commands: `gitconfig`, `mailcap`, `wgetrc`, `vim`, `ssh/ssh_config`,
///   `ssh/ssh_config.d`, `ssl/openssl.cnf` (engines and providers), `locale.alias`.
pub(crate) const FROM_PRISTINE: &[&str] = &[
    "ld.so.*",
    "nsswitch.conf",
    "host.conf",
    "gai.conf",
    "alternatives",
    "environment",
    "environment.d",
    "profile",
    "profile.d",
    "bash.bashrc",
    "bash.bash_logout",
    "bash_completion",
    "bash_completion.d",
    "zsh*",
    "inputrc",
    "shells",
    "pam.conf",
    "pam.d",
    "security",
    "perl",
    "python3*",
    "gitconfig",
    "mailcap",
    "wgetrc",
    "vim",
    "locale.alias",
    "ssh/ssh_config",
    "ssh/ssh_config.d",
    "ssl/openssl.cnf",
];

/// Whether `name` (one path component) matches one of `rules` that have no `/`.
pub(crate) fn matches(name: &[u8], rules: &[&str]) -> bool {
    rules.iter().filter(|r| !r.contains('/')).any(|r| match r.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix.as_bytes()),
        None => name == r.as_bytes(),
    })
}

/// The rules that apply inside the directory `name`: `name/x` becomes `x`.
pub(crate) fn nested<'a>(name: &[u8], rules: &[&'a str]) -> Vec<&'a str> {
    rules
        .iter()
        .filter_map(|r| r.split_once('/'))
        .filter(|(dir, _)| dir.as_bytes() == name)
        .map(|(_, rest)| rest)
        .collect()
}

/// Builds the check's `/etc` at `target` (an existing empty directory) from the candidate's `/etc` (a directory
/// descriptor, or `None` when they have none) and the pristine one. Leaves it read-only.
pub(super) fn build(target: &Path, candidate: Option<&OwnedFd>, pristine: Option<&OwnedFd>) -> io::Result<()> {
    m(
        Some("examroom-etc"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=1m,nr_inodes=16384,mode=0755"),
    )?;
    fill(target, candidate, pristine, FROM_PRISTINE)?;
    m(
        None,
        target,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=1m,nr_inodes=16384,mode=0755"),
    )
}

fn fill(target: &Path, candidate: Option<&OwnedFd>, pristine: Option<&OwnedFd>, rules: &[&str]) -> io::Result<()> {
    if let Some(cand) = candidate {
        for name in sys::list_dir(cand)? {
            let bytes = name.as_bytes();
            if matches(bytes, rules) {
                continue;
            }
            let Ok(st) = sys::lstat_at(cand.as_raw_fd(), &name) else { continue };
            let inner = nested(bytes, rules);
            let at = target.join(std::ffi::OsStr::from_bytes(bytes));
            if !inner.is_empty() && st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                // Only some entries of this directory come from the pristine base: build it entry by entry too.
                std::fs::create_dir(&at)?;
                let sub = |root: &OwnedFd| {
                    sys::open_beneath(
                        root.as_raw_fd(),
                        Path::new(std::ffi::OsStr::from_bytes(bytes)),
                        libc::O_RDONLY | libc::O_DIRECTORY,
                        sys::RESOLVE_IN_ROOT,
                    )
                    .ok()
                };
                let (c, p) = (sub(cand), pristine.and_then(sub));
                fill(&at, c.as_ref(), p.as_ref(), &inner)?;
                continue;
            }
            place(cand, &name, &st, &at)?;
        }
    }
    if let Some(pri) = pristine {
        for name in sys::list_dir(pri)? {
            if !matches(name.as_bytes(), rules) {
                continue;
            }
            let Ok(st) = sys::lstat_at(pri.as_raw_fd(), &name) else { continue };
            place(pri, &name, &st, &target.join(std::ffi::OsStr::from_bytes(name.as_bytes())))?;
        }
    }
    Ok(())
}

/// Puts the entry `name` of the directory `dir` at `at`, read-only and `noexec`: a symlink is recreated (never
/// followed), a directory or a regular file is bound, anything else (devices, sockets, pipes) is left out.
fn place(dir: &OwnedFd, name: &CStr, st: &libc::stat64, at: &Path) -> io::Result<()> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => {
            let to = sys::readlink_at(dir.as_raw_fd(), name)?;
            std::os::unix::fs::symlink(to, at)
        }
        libc::S_IFDIR => {
            std::fs::create_dir(at)?;
            bind_read_only(dir, name, at)
        }
        libc::S_IFREG => {
            std::fs::File::create(at)?;
            bind_read_only(dir, name, at)
        }
        _ => Ok(()),
    }
}

/// Binds `dir/name` (recursively, without following a last symlink) at `at`, read-only, nosuid, nodev and noexec
/// before it is attached.
pub(super) fn bind_read_only(dir: &OwnedFd, name: &CStr, at: &Path) -> io::Result<()> {
    let tree = sys::clone_mount_at(dir.as_raw_fd(), name, true)
        .map_err(|e| io::Error::new(e.kind(), format!("clone {}: {e}", at.display())))?;
    sys::set_mount_attrs(
        &tree,
        sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
        0,
        true,
    )?;
    sys::attach_tree(&tree, at).map_err(|e| io::Error::new(e.kind(), format!("attach {}: {e}", at.display())))
}

/// A `CString` from a file name (never fails for names read from a directory).
pub(super) fn cname(name: &str) -> CString {
    CString::new(name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_names_and_prefixes_and_nest() {
        for yes in ["ld.so.preload", "ld.so.cache", "ld.so.conf.d", "nsswitch.conf", "python3.11", "python3", "zshrc"] {
            assert!(matches(yes.as_bytes(), FROM_PRISTINE), "{yes}");
        }
        for no in ["passwd", "group", "shadow", "hosts", "cron.d", "ssl", "ssh", "nsswitch.conf.bak", "xld.so.cache"] {
            assert!(!matches(no.as_bytes(), FROM_PRISTINE), "{no}");
        }
        assert_eq!(nested(b"ssl", FROM_PRISTINE), ["openssl.cnf"]);
        assert_eq!(nested(b"ssh", FROM_PRISTINE), ["ssh_config", "ssh_config.d"]);
        assert!(nested(b"cron.d", FROM_PRISTINE).is_empty());
    }
}
