//! The shim's socket, and who may use it.
//!
//! The socket is an abstract unix socket (`\0<name>`) in the container's own network namespace, bound before any
//! process of the candidate's exists: while the shim lives, nobody else can hold that name, and no path in the
//! container's filesystem is involved. The server reaches it from the host (`setns` into the container's network
//! namespace).
//!
//! A connection is accepted only from a peer outside the container's pid namespace: `SO_PEERCRED` reports pid 0 for
//! a peer whose process has no number in the shim's pid namespace (the server's, on the host). A process inside the
//! container always has one, and is refused (`forbidden`, then the connection is closed).

use std::io::{self, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};

use examroom_runtime::protocol::{self, Kind, Reply};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};

/// Binds the abstract socket `\0<name>` in the current network namespace, non-blocking.
pub fn bind(name: &str) -> io::Result<UnixListener> {
    let addr = SocketAddr::from_abstract_name(name.as_bytes())?;
    let listener = UnixListener::bind_addr(&addr).map_err(|e| {
        let hint = if e.kind() == io::ErrorKind::AddrInUse {
            "; another process of this network namespace holds it (the shim must be the container's first process)"
        } else {
            ""
        };
        io::Error::new(e.kind(), format!("bind the abstract unix socket @{name}: {e}{hint}"))
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Who connected.
#[derive(Debug, PartialEq, Eq)]
pub enum Peer {
    /// A process outside the container's pid namespace (the server).
    Outside,
    /// A process inside the container, with its pid there.
    Inside(i32),
}

/// Tells where the peer of an accepted connection is (its credentials as of its `connect`).
pub fn peer(stream: &UnixStream) -> io::Result<Peer> {
    let cred = getsockopt(stream, PeerCredentials).map_err(io::Error::from)?;
    Ok(if cred.pid() == 0 { Peer::Outside } else { Peer::Inside(cred.pid()) })
}

/// Refuses a connection from inside the container: one `forbidden` error (best effort, never blocking), then close.
pub fn refuse(stream: UnixStream, pid: i32) {
    let mut frame = Vec::new();
    let reply = Reply::Error {
        code: "forbidden".into(),
        message: format!(
            "the shim serves only the examroom server, from outside the container (this connection is from pid {pid} \
             inside it)"
        ),
    };
    if let Ok(j) = serde_json::to_vec(&reply) {
        protocol::encode(Kind::Control, &j, &mut frame);
    }
    if stream.set_nonblocking(true).is_ok() {
        let mut s = &stream;
        let _ = s.write(&frame);
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}
