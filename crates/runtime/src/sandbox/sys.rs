//! Thin wrappers over the Linux calls that `nix` does not cover: the new mount API (for idmapped mounts), a fork-like
//! `clone` into new namespaces, `pivot_root`, the PTY peer ioctl, and descriptor passing over a socket.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn check(r: libc::c_long) -> io::Result<libc::c_long> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const OPEN_TREE_CLOEXEC: libc::c_uint = libc::O_CLOEXEC as libc::c_uint;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
/// `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Clones the tree at `path` as a detached mount, then makes it read-only (plus `extra` attributes) and, when
/// `userns` is given, idmapped through that user namespace, so that files owned by host root appear owned by root
/// inside it. Needs CAP_SYS_ADMIN in the initial user namespace.
pub fn detached_idmapped_tree(path: &Path, userns: Option<RawFd>, extra: u64) -> io::Result<OwnedFd> {
    let tree = detached_tree(path)?;
    let mut attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY | extra, attr_clr: 0, propagation: 0, userns_fd: 0 };
    if let Some(ns) = userns {
        attr.attr_set |= MOUNT_ATTR_IDMAP;
        attr.userns_fd = ns as u64;
    }
    let empty = c"";
    // SAFETY: attr lives across the call and has the size we pass.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            (libc::AT_EMPTY_PATH as libc::c_uint) | AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(tree)
}

/// Clones the tree at `path` (recursively) as a detached mount, as it is: no attribute changes.
pub fn detached_tree(path: &Path) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: plain syscall with a valid C string; the result is checked.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE,
        )
    })? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `MOUNT_ATTR_NOEXEC`.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
const AT_SYMLINK_NOFOLLOW: libc::c_uint = libc::AT_SYMLINK_NOFOLLOW as libc::c_uint;
const AT_EMPTY_PATH: libc::c_uint = libc::AT_EMPTY_PATH as libc::c_uint;

/// Clones the mount (or, with `recursive`, the tree) at `name` below the directory `dir`, as a detached mount,
/// without following a symlink in `name`'s last component. `name` may be empty: then `dir` itself is cloned.
pub fn clone_mount_at(dir: RawFd, name: &std::ffi::CStr, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    if name.is_empty() {
        flags |= AT_EMPTY_PATH;
    }
    // SAFETY: plain syscall with a valid C string; the result is checked.
    let fd = check(unsafe { libc::syscall(libc::SYS_open_tree, dir, name.as_ptr(), flags) })? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets (and clears) mount attributes on a detached mount, on all of its tree when `recursive`.
pub fn set_mount_attrs(tree: &OwnedFd, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    let attr = MountAttr { attr_set: set, attr_clr: clear, propagation: 0, userns_fd: 0 };
    let mut flags = AT_EMPTY_PATH;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    let empty = c"";
    // SAFETY: attr lives across the call and has the size we pass.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

/// Attaches a detached mount onto the object open at `target` (an `O_PATH` descriptor), so that the mount lands
/// exactly on what was resolved, whatever happens to paths meanwhile.
pub fn attach_tree_at_fd(tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    let empty = c"";
    // SAFETY: valid descriptors and C strings; result checked.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            target.as_raw_fd(),
            empty.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// A new, detached tmpfs with the given string options and mount attributes (`MOUNT_ATTR_*`).
pub fn detached_tmpfs(options: &[(&str, &str)], attrs: u64) -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_STRING: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: plain syscalls with valid C strings; results checked; descriptors owned right away.
    unsafe {
        let fs =
            OwnedFd::from_raw_fd(check(libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), FSOPEN_CLOEXEC))? as RawFd);
        for (k, v) in options {
            let (k, v) = (CString::new(*k)?, CString::new(*v)?);
            check(libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_SET_STRING, k.as_ptr(), v.as_ptr(), 0))?;
        }
        check(libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        ))?;
        let mnt = check(libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs as libc::c_uint))?;
        Ok(OwnedFd::from_raw_fd(mnt as RawFd))
    }
}

/// Sets (and clears) mount attributes on the mount at `path` in the caller's mount namespace (and on every mount
/// below it when `recursive`).
pub fn set_mount_attrs_at(path: &Path, set: u64, clear: u64, recursive: bool) -> io::Result<()> {
    let c = cstr(path)?;
    let attr = MountAttr { attr_set: set, attr_clr: clear, propagation: 0, userns_fd: 0 };
    let flags = if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: attr lives across the call and has the size we pass.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// `RESOLVE_NO_XDEV`.
pub const RESOLVE_NO_XDEV: u64 = 0x01;
/// `RESOLVE_NO_MAGICLINKS`.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// `RESOLVE_NO_SYMLINKS`.
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// `RESOLVE_BENEATH`.
pub const RESOLVE_BENEATH: u64 = 0x08;
/// `RESOLVE_IN_ROOT`.
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(dir, path, flags, resolve)`: opens `path` below `dir` with the given `RESOLVE_*` restrictions (for
/// example `RESOLVE_IN_ROOT`, so that a symlink planted by someone else resolves inside `dir`, never outside it).
pub fn open_beneath(dir: RawFd, path: &Path, flags: libc::c_int, resolve: u64) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow { flags: (flags | libc::O_CLOEXEC) as u64, mode: 0, resolve };
    // SAFETY: how lives across the call and has the size we pass.
    let fd = check(unsafe {
        libc::syscall(libc::SYS_openat2, dir, c.as_ptr(), &how as *const OpenHow, std::mem::size_of::<OpenHow>())
    })? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The names in the directory open at `dir` (which must be open for reading), without `.` and `..`, sorted.
pub fn list_dir(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    // fdopendir takes ownership of the descriptor it is given: give it a duplicate.
    // SAFETY: plain descriptor calls; the DIR is closed below.
    unsafe {
        let dup = libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0);
        if dup < 0 {
            return Err(io::Error::last_os_error());
        }
        let d = libc::fdopendir(dup);
        if d.is_null() {
            let e = io::Error::last_os_error();
            libc::close(dup);
            return Err(e);
        }
        libc::rewinddir(d);
        let mut names = Vec::new();
        loop {
            *libc::__errno_location() = 0;
            let ent = libc::readdir64(d);
            if ent.is_null() {
                let e = *libc::__errno_location();
                libc::closedir(d);
                if e != 0 {
                    return Err(io::Error::from_raw_os_error(e));
                }
                break;
            }
            let name = std::ffi::CStr::from_ptr((*ent).d_name.as_ptr());
            if name != c"." && name != c".." {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`.
pub fn lstat_at(dir: RawFd, name: &std::ffi::CStr) -> io::Result<libc::stat64> {
    // SAFETY: st is written by the kernel; the name is a valid C string.
    unsafe {
        let mut st: libc::stat64 = std::mem::zeroed();
        if libc::fstatat64(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

/// `fstat` of a descriptor (an `O_PATH` one included).
pub fn fstat(fd: &OwnedFd) -> io::Result<libc::stat64> {
    // SAFETY: st is written by the kernel.
    unsafe {
        let mut st: libc::stat64 = std::mem::zeroed();
        if libc::fstatat64(fd.as_raw_fd(), c"".as_ptr(), &mut st, libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    }
}

/// Changes the owner and group of what `fd` (a detached mount's root included) names.
pub fn chown_fd(fd: &OwnedFd, id: u32) -> io::Result<()> {
    // SAFETY: plain syscall on our descriptor.
    if unsafe { libc::fchownat(fd.as_raw_fd(), c"".as_ptr(), id, id, libc::AT_EMPTY_PATH) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `readlinkat(dir, name)`.
pub fn readlink_at(dir: RawFd, name: &std::ffi::CStr) -> io::Result<std::path::PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buf is writable for its length.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(std::ffi::OsString::from_vec(buf).into())
}

/// Attaches a detached mount at `target` in the caller's mount namespace.
pub fn attach_tree(tree: &OwnedFd, target: &Path) -> io::Result<()> {
    let t = cstr(target)?;
    let empty = c"";
    // SAFETY: valid descriptors and C strings; result checked.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// A fork that puts the child into new namespaces (`flags` are `CLONE_NEW*`). Returns 0 in the child and the child's
/// pid (in the caller's pid namespace) in the parent.
///
/// # Safety
/// As for `fork`: the caller must be single-threaded, or the child may only call async-signal-safe functions.
pub unsafe fn clone_into_namespaces(flags: libc::c_int) -> io::Result<libc::pid_t> {
    let r = check(libc::syscall(
        libc::SYS_clone,
        (flags | libc::SIGCHLD) as libc::c_ulong,
        std::ptr::null_mut::<libc::c_void>(),
        std::ptr::null_mut::<libc::c_int>(),
        std::ptr::null_mut::<libc::c_int>(),
        0 as libc::c_ulong,
    ))?;
    Ok(r as libc::pid_t)
}

/// `pivot_root(".", ".")` in the current directory: the new root is stacked over the old one, which the caller then
/// detaches with `umount2(".", MNT_DETACH)`.
pub fn pivot_root_here() -> io::Result<()> {
    let dot = c".";
    // SAFETY: valid C strings.
    check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) })?;
    Ok(())
}

/// `TIOCGPTPEER`: opens the slave side of a PTY from its master, through the master's own devpts instance (so it works
/// from outside the sandbox's mount namespace).
pub fn pty_peer(master: &OwnedFd) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: ioctl on a descriptor we own; result checked.
    let fd = check(unsafe {
        libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) as libc::c_long
    })?;
    // SAFETY: the kernel returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets a terminal's window size.
pub fn set_winsize(fd: RawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: ws is a valid winsize.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } as libc::c_long)?;
    Ok(())
}

/// Sends one message with descriptors attached on a SOCK_SEQPACKET or stream unix socket.
pub fn send_with_fds(sock: RawFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(data)];
    let cmsgs = if fds.is_empty() { vec![] } else { vec![ControlMessage::ScmRights(fds)] };
    sendmsg::<()>(sock, &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None).map_err(io::Error::from)?;
    Ok(())
}

/// Receives one message and the descriptors attached to it. `Ok(None)` at end of stream.
pub fn recv_with_fds(sock: RawFd, buf: &mut [u8]) -> io::Result<Option<(usize, Vec<OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut cmsg = nix::cmsg_space!([RawFd; 32]);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(list) = c {
            // SAFETY: SCM_RIGHTS gives us fresh descriptors that nobody else owns.
            fds.extend(list.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    if msg.flags.contains(MsgFlags::MSG_TRUNC) || msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "message or descriptors truncated"));
    }
    Ok(Some((msg.bytes, fds)))
}

/// Writes a whole file with one `write`.
pub fn write_file(path: &Path, data: &str) -> io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(data.as_bytes())
}

/// Brings the loopback interface up in the current network namespace.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls with a zeroed ifreq; results checked; the socket is closed by OwnedFd.
    unsafe {
        let s = check(libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as libc::c_long)? as RawFd;
        let sock = OwnedFd::from_raw_fd(s);
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) as libc::c_long)?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        check(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) as libc::c_long)?;
    }
    Ok(())
}

/// Whether a process exists (signal 0).
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Becomes uid and gid 0 of the current user namespace (host uid `base`), with no supplementary groups: a process
/// that entered the namespace as host root is unmapped there until it does.
pub fn become_namespace_root() -> io::Result<()> {
    let gid = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| io::Error::other(format!("setresgid: {e}")))?;
    nix::unistd::setgroups(&[]).map_err(|e| io::Error::other(format!("setgroups: {e}")))?;
    let uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| io::Error::other(format!("setresuid: {e}")))
}

/// The parent of the user namespace `ns` (`ioctl(NS_GET_PARENT)`).
pub fn parent_userns(ns: &OwnedFd) -> io::Result<OwnedFd> {
    const NS_GET_PARENT: libc::c_ulong = 0xb702; // _IO(0xb7, 0x2)
                                                 // SAFETY: an ioctl on a namespace descriptor we own; it returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_PARENT as _) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor the kernel just gave us, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
