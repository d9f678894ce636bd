//! One client connection of the shim: non-blocking reads into frames, and a bounded write queue.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use crate::protocol::{self, Frame, Kind, Reply};

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Before `Hello`.
    New,
    /// Request/response.
    Control,
    /// Streaming a terminal (index into the shim's terminals).
    Attached(usize),
    /// Running an exec (its process id).
    Exec(u64),
}

/// A terminal stream whose client lets this much output pile up is dropped; it re-attaches and gets the replay.
pub(crate) const ATTACHED_QUEUE_LIMIT: usize = 1 << 20;

pub(crate) struct Conn {
    pub stream: UnixStream,
    pub rbuf: Vec<u8>,
    pub wbuf: Vec<u8>,
    pub mode: Mode,
    /// Close once the write queue is flushed.
    pub closing: bool,
    /// The peer closed its side (or errored).
    pub dead: bool,
}

impl Conn {
    pub fn new(stream: UnixStream) -> Conn {
        Conn { stream, rbuf: Vec::new(), wbuf: Vec::new(), mode: Mode::New, closing: false, dead: false }
    }

    /// Reads what is available; returns the complete frames. A protocol error marks the connection for closing.
    pub fn read_frames(&mut self) -> Result<Vec<Frame>, protocol::FrameError> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.dead = true;
                    break;
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    if self.rbuf.len() > 2 * protocol::MAX_FRAME {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        let mut frames = Vec::new();
        let mut at = 0;
        while let Some((f, n)) = protocol::decode(&self.rbuf[at..])? {
            frames.push(f);
            at += n;
        }
        self.rbuf.drain(..at);
        Ok(frames)
    }

    /// Queues a control reply.
    pub fn reply(&mut self, r: &Reply) {
        if let Ok(j) = serde_json::to_vec(r) {
            protocol::encode(Kind::Control, &j, &mut self.wbuf);
        }
    }

    /// Queues raw bytes as frames of `kind`, split to the frame limit.
    pub fn data(&mut self, kind: Kind, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = bytes.len().min(protocol::MAX_FRAME - 1);
            protocol::encode(kind, &bytes[..n], &mut self.wbuf);
            bytes = &bytes[n..];
        }
    }

    /// Writes as much of the queue as the socket takes.
    pub fn flush(&mut self) {
        while !self.wbuf.is_empty() && !self.dead {
            match self.stream.write(&self.wbuf) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    self.wbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => self.dead = true,
            }
        }
    }

    /// Flushes with a short blocking wait (used just before the shim exits).
    pub fn flush_blocking(&mut self, limit: std::time::Duration) {
        let _ = self.stream.set_nonblocking(false);
        let _ = self.stream.set_write_timeout(Some(limit));
        let _ = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
    }

    /// Whether the shim should forget this connection.
    pub fn finished(&self) -> bool {
        self.dead || (self.closing && self.wbuf.is_empty())
    }
}
