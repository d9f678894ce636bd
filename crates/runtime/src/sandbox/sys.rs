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
    let mut cmsg = nix::cmsg_space!([RawFd; 8]);
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
