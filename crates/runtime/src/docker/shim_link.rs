//! Reaching the shim inside a container (the contract of issue 14): the container's init pid from the Engine, a
//! process descriptor for it, its network namespace, a check that the descriptor still names a live process (so a
//! reused pid is never trusted), then, on a thread of its own, `setns` into that namespace and a connection to the
//! abstract unix socket `\0examroom-shim`, which the shim bound before any candidate process existed. No path in the
//! container's filesystem is involved, so root inside cannot put a fake shim in its place; the shim accepts only peers
//! outside its pid namespace.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use bollard::Docker;
use tokio::net::UnixStream;

use super::{engine_error, is_not_found, SHIM_SOCKET_NAME};
use crate::error::RuntimeError;
use crate::protocol::client::ShimClient;

/// How the container is, as far as reaching its shim goes.
struct Running {
    pid: i32,
    started_at: String,
}

/// The container's init, or why there is none to reach ([`RuntimeError::Lost`] when the container stopped).
async fn running(docker: &Docker, socket: &Path, container: &str) -> Result<Running, RuntimeError> {
    let c = match tokio::time::timeout(Duration::from_secs(10), docker.inspect_container(container, None)).await {
        Err(_) => {
            return Err(RuntimeError::Timeout { what: format!("the Docker Engine to inspect {container}"), ms: 10_000 })
        }
        Ok(Err(e)) if is_not_found(&e) => return Err(RuntimeError::NotFound),
        Ok(Err(e)) => return Err(engine_error(socket, "inspect the environment's container", e)),
        Ok(Ok(c)) => c,
    };
    let state = c.state.unwrap_or_default();
    if state.paused == Some(true) {
        return Err(RuntimeError::Backend("the environment is frozen (its container is paused)".into()));
    }
    if state.running != Some(true) {
        return Err(RuntimeError::Lost(stopped_reason(&state)));
    }
    let pid = state.pid.unwrap_or(0);
    if pid <= 0 || pid > i32::MAX as i64 {
        return Err(RuntimeError::Lost(format!("its container runs but the Engine gives no pid ({pid})")));
    }
    Ok(Running { pid: pid as i32, started_at: state.started_at.unwrap_or_default() })
}

/// Why a container is not running, for a person.
pub(super) fn stopped_reason(state: &bollard::models::ContainerState) -> String {
    if state.oom_killed == Some(true) {
        return "its container was killed for running out of memory".into();
    }
    let status = state.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
    let mut why = format!("its container is {status}");
    if let Some(code) = state.exit_code.filter(|_| status == "exited") {
        why.push_str(&format!(" (exit code {code})"));
    }
    if let Some(err) = state.error.as_deref().filter(|e| !e.is_empty()) {
        why.push_str(&format!(": {err}"));
    }
    why
}

/// Connects to the shim of `container` and says hello. While the shim starts (nothing bound yet), tries again for up
/// to `wait`.
pub(super) async fn connect(
    docker: &Docker,
    socket: &Path,
    container: &str,
    wait: Duration,
) -> Result<ShimClient<UnixStream>, RuntimeError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let run = running(docker, socket, container).await?;
        let (pidfd, netns) = match open_namespace(run.pid) {
            Ok(v) => v,
            // The process went between the inspect and here: ask again.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) || e.kind() == std::io::ErrorKind::NotFound => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(RuntimeError::Lost("its container's init went away".into()));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            Err(e) => return Err(RuntimeError::io("open the container's network namespace", e)),
        };
        // The descriptor names a live process and the container still runs with that pid, started when it did: the
        // namespace is the container's, not a reused pid's.
        let again = running(docker, socket, container).await?;
        if !alive(&pidfd) || again.pid != run.pid || again.started_at != run.started_at {
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Lost("its container's init changed while connecting".into()));
            }
            continue;
        }
        match connect_in(netns, SHIM_SOCKET_NAME).await {
            Ok(fd) => {
                let std = std::os::unix::net::UnixStream::from(fd);
                std.set_nonblocking(true).map_err(|e| RuntimeError::io("set the shim connection non-blocking", e))?;
                let stream =
                    UnixStream::from_std(std).map_err(|e| RuntimeError::io("register the shim connection", e))?;
                return ShimClient::handshake(stream).await.map_err(|e| match e {
                    RuntimeError::Io { source, .. } => RuntimeError::Lost(format!("its shim went away ({source})")),
                    other => other,
                });
            }
            Err(e) if crate::error::is_out_of_resources(&e) => return Err(RuntimeError::io("connect to a shim", e)),
            // Nothing bound yet (the shim is starting), or it is going.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ECONNREFUSED | libc::ENOENT)) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(RuntimeError::Lost(format!("its shim does not answer ({e})")));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(RuntimeError::Lost(format!("its shim does not answer ({e})"))),
        }
    }
}

/// A process descriptor for `pid` and its network namespace.
fn open_namespace(pid: i32) -> std::io::Result<(OwnedFd, OwnedFd)> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    Ok((pidfd, OwnedFd::from(ns)))
}

/// Whether a process descriptor still names a live process (signal 0).
fn alive(pidfd: &OwnedFd) -> bool {
    // SAFETY: pidfd_send_signal with signal 0 only checks; the descriptor is valid.
    unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), 0, std::ptr::null::<u8>(), 0) == 0 }
}

/// On a dedicated thread (setns changes only the calling thread, which then ends): enters `netns` and connects a
/// unix stream socket to the abstract name `name`. The socket stays in the namespace it was made in.
async fn connect_in(netns: OwnedFd, name: &'static str) -> std::io::Result<OwnedFd> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("examroom-shim-link".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(netns, name));
        })
        .map_err(|e| std::io::Error::new(e.kind(), format!("start a thread to reach the shim: {e}")))?;
    rx.await.map_err(|_| std::io::Error::other("the thread that reaches the shim ended without an answer"))?
}

fn connect_blocking(netns: OwnedFd, name: &str) -> std::io::Result<OwnedFd> {
    // SAFETY: setns on a namespace descriptor we own; only this thread changes namespace.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; zeroed is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = name.as_bytes();
    if bytes.len() + 1 > addr.sun_path.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "shim socket name too long"));
    }
    // Abstract: a leading NUL, then the name (no trailing NUL; the length says where it ends).
    for (i, b) in bytes.iter().enumerate() {
        addr.sun_path[i + 1] = *b as libc::c_char;
    }
    let len = (std::mem::size_of::<libc::sa_family_t>() + 1 + bytes.len()) as libc::socklen_t;
    // Bounded: a shim that accepts nothing for 5 s is not answering.
    let tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
    // SAFETY: setsockopt with a timeval of the right size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    // SAFETY: addr is a valid sockaddr_un of `len` bytes.
    if unsafe { libc::connect(sock.as_raw_fd(), &addr as *const _ as *const libc::sockaddr, len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sock)
}
