//! `Dial` (protocol version 3): a TCP connection to a port on the container's own loopback, relayed over one
//! connection, as in the sandbox backend. The shim lives in the container's network namespace, so its sockets are
//! the container's. Bytes flow both ways as `Data` frames, each side read only while the other's queue has room
//! ([`protocol::DIAL_QUEUE`]).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};

use examroom_runtime::protocol::conn::Mode;
use examroom_runtime::protocol::{self, Reply};
use nix::sys::socket::{AddressFamily, SockFlag, SockType};

use crate::serve::Shim;

/// One dialled connection.
pub struct Dial {
    /// The socket.
    pub sock: TcpStream,
    /// The port.
    pub port: u16,
    /// The connect is still in progress.
    pub connecting: bool,
    /// Bytes from the client not yet written to the socket.
    pub to_sock: Vec<u8>,
    /// The client said it has finished sending; the socket's write side is shut once `to_sock` is written.
    pub client_done: bool,
    /// The socket's peer finished (or failed), and the client was told.
    pub sock_done: bool,
}

impl Dial {
    /// Whether the socket should be read now: connected, not finished, and the client's queue has room.
    pub fn wants_read(&self, client_queued: usize) -> bool {
        !self.connecting && !self.sock_done && client_queued < protocol::DIAL_QUEUE
    }

    /// Whether the client's frames should be read now (the socket's queue has room).
    pub fn takes_input(&self) -> bool {
        self.to_sock.len() < protocol::DIAL_QUEUE
    }

    /// Both sides have finished.
    pub fn finished(&self) -> bool {
        self.sock_done && self.client_done && self.to_sock.is_empty()
    }
}

impl Shim {
    /// `Dial`: opens the connection; the answer follows once it is made (see [`Shim::on_dial_ready`]).
    pub(crate) fn dial(&mut self, id: u64, port: u16) {
        if self.conn_version(id) < protocol::VERSION_DIAL {
            return self.reply_error(id, "bad_request", "dial needs protocol version 3");
        }
        if port == 0 {
            return self.reply_error(id, "bad_request", "port 0 cannot be dialled");
        }
        let fd = match nix::sys::socket::socket(
            AddressFamily::Inet,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        ) {
            Ok(fd) => fd,
            Err(e) => return self.reply_error(id, "dial_failed", &format!("a socket in the environment: {e}")),
        };
        let connecting = match connect_loopback(&fd, port) {
            Ok(()) => false,
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
            Err(e) => return self.dial_refused(id, port, e),
        };
        let dial = Dial {
            sock: TcpStream::from(fd),
            port,
            connecting,
            to_sock: Vec::new(),
            client_done: false,
            sock_done: false,
        };
        self.dials.insert(id, dial);
        self.set_mode(id, Mode::Dial);
        if !connecting {
            self.reply(id, Reply::Dialed { port });
        }
    }

    fn dial_refused(&mut self, id: u64, port: u16, e: io::Error) {
        self.dials.remove(&id);
        self.set_mode(id, Mode::Control);
        let (code, message) = if e.kind() == io::ErrorKind::ConnectionRefused {
            ("connection_refused", format!("nothing is listening on port {port} inside the environment"))
        } else {
            ("dial_failed", format!("connecting to port {port} inside the environment: {e}"))
        };
        self.reply_error(id, code, &message);
    }

    /// The socket of a dialled connection is ready.
    pub(crate) fn on_dial_ready(&mut self, id: u64, readable: bool, writable: bool, failed: bool) {
        let Some(d) = self.dials.get_mut(&id) else { return };
        if d.connecting {
            if !(writable || failed) {
                return;
            }
            let port = d.port;
            let outcome = match d.sock.take_error() {
                Ok(Some(e)) | Err(e) => Err(e),
                // Connected exactly when the socket has a peer.
                Ok(None) => d.sock.peer_addr().map(|_| ()),
            };
            match outcome {
                Ok(()) => {
                    d.connecting = false;
                    self.reply(id, Reply::Dialed { port });
                }
                Err(e) => self.dial_refused(id, port, e),
            }
            return;
        }
        if writable {
            self.dial_write(id);
        }
        if readable || failed {
            self.dial_read(id);
        }
    }

    /// Reads the socket into the client's queue, as far as the queue has room.
    fn dial_read(&mut self, id: u64) {
        let Some(d) = self.dials.get_mut(&id) else { return };
        let Some(c) = self.conns.get_mut(&id) else { return };
        let mut buf = [0u8; 64 * 1024];
        while d.wants_read(c.queued()) {
            match d.sock.read(&mut buf) {
                Ok(0) => {
                    d.sock_done = true;
                    c.end_of_data();
                }
                Ok(n) => c.data(protocol::Kind::Data, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    d.sock_done = true;
                    c.end_of_data();
                }
            }
        }
    }

    /// Writes what the client sent to the socket, and shuts its write side once the client has finished.
    pub(crate) fn dial_write(&mut self, id: u64) {
        let Some(d) = self.dials.get_mut(&id) else { return };
        if d.connecting {
            return;
        }
        while !d.to_sock.is_empty() {
            match d.sock.write(&d.to_sock) {
                Ok(0) => break,
                Ok(n) => {
                    d.to_sock.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The peer is gone: what the client still sends has nowhere to go.
                    d.to_sock.clear();
                    d.client_done = true;
                    break;
                }
            }
        }
        if d.client_done && d.to_sock.is_empty() {
            let _ = d.sock.shutdown(Shutdown::Write);
        }
    }

    /// A `Data` frame from the client of a dialled connection (empty: it has finished sending).
    pub(crate) fn dial_input(&mut self, id: u64, payload: Vec<u8>) {
        let Some(d) = self.dials.get_mut(&id) else { return };
        if payload.is_empty() {
            d.client_done = true;
        } else if !d.client_done {
            d.to_sock.extend_from_slice(&payload);
        }
        self.dial_write(id);
    }

    /// Closes the dialled connections that are finished, and forgets those whose client went away.
    pub(crate) fn settle_dials(&mut self) {
        let ids: Vec<u64> = self.dials.keys().copied().collect();
        for id in ids {
            match self.conns.get_mut(&id) {
                None => {
                    self.dials.remove(&id);
                }
                Some(c) if c.dead => {
                    self.dials.remove(&id);
                }
                Some(c) => {
                    if self.dials.get(&id).is_some_and(Dial::finished) {
                        c.closing = true;
                        self.dials.remove(&id);
                    }
                }
            }
        }
    }

    /// Ends every dialled connection (the environment is going away).
    pub(crate) fn end_dials(&mut self) {
        for (id, _) in self.dials.drain() {
            if let Some(c) = self.conns.get_mut(&id) {
                c.end_of_data();
                c.closing = true;
            }
        }
    }
}

/// Connects a non-blocking TCP socket to `127.0.0.1:port`.
fn connect_loopback(fd: &OwnedFd, port: u16) -> io::Result<()> {
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    loop {
        // SAFETY: a valid socket and a sockaddr_in of the size given.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
