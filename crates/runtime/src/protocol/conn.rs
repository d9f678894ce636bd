//! The shim's side of one client connection, for a single-threaded `poll` loop (the sandbox's host shim and the
//! container shim share it): non-blocking reads into frames, a bounded write queue, and the flow-control window of an
//! attached terminal stream.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;

use crate::protocol::{self, Frame, Kind, Reply};

/// What a connection is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Before `Hello`.
    New,
    /// Request/response.
    Control,
    /// Streaming a terminal (index into the shim's terminals).
    Attached(usize),
    /// Running an exec (its process id).
    Exec(u64),
    /// Relaying a dialled connection (`Dial`, version 3).
    Dial,
}

/// A terminal stream without flow control whose client lets this much output pile up is dropped; it re-attaches and
/// gets the replay.
pub const ATTACHED_QUEUE_LIMIT: usize = 1 << 20;

/// Flow control of an attached stream: the output sent since the client's marker, less what it acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The high watermark (the window): at this many unacknowledged bytes the terminal is not read ...
    pub high: u64,
    /// ... until they are down to this one.
    pub low: u64,
    /// Bytes of output sent and not yet acknowledged.
    pub unacked: u64,
    /// Between the high watermark and the low one, on the way down.
    pub paused: bool,
}

impl Flow {
    /// Flow control with the window a client asked for (the default without one), clamped to the protocol's bounds.
    pub fn new(window: Option<u64>) -> Flow {
        let high = window.unwrap_or(protocol::FLOW_WINDOW).clamp(protocol::FLOW_WINDOW_MIN, protocol::FLOW_WINDOW_MAX);
        Flow { high, low: high / 2, unacked: 0, paused: false }
    }

    /// How many more bytes of output may be read for this client now.
    pub fn room(&self) -> usize {
        if self.paused {
            0
        } else {
            self.high.saturating_sub(self.unacked) as usize
        }
    }

    /// Counts output sent.
    pub fn sent(&mut self, n: usize) {
        self.unacked += n as u64;
        if self.unacked >= self.high {
            self.paused = true;
        }
    }

    /// Counts an acknowledgement (more than was sent is capped at what was sent).
    pub fn acked(&mut self, n: u64) {
        self.unacked = self.unacked.saturating_sub(n);
        if self.unacked <= self.low {
            self.paused = false;
        }
    }
}

/// One client connection of a shim.
pub struct Conn {
    /// The socket (non-blocking).
    pub stream: UnixStream,
    /// Bytes read and not yet decoded into frames.
    pub rbuf: Vec<u8>,
    /// The write queue: `wbuf[wpos..]` is still to be written.
    wbuf: Vec<u8>,
    wpos: usize,
    pub mode: Mode,
    /// The protocol version agreed at hello.
    pub version: u32,
    /// Flow control, once an attached client turned it on.
    pub flow: Option<Flow>,
    /// Close once the write queue is flushed.
    pub closing: bool,
    /// The peer closed its side (or errored).
    pub dead: bool,
}

impl Conn {
    /// A new connection (before `Hello`) on a non-blocking socket.
    pub fn new(stream: UnixStream) -> Conn {
        Conn {
            stream,
            rbuf: Vec::new(),
            wbuf: Vec::new(),
            wpos: 0,
            mode: Mode::New,
            version: 0,
            flow: None,
            closing: false,
            dead: false,
        }
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

    /// Queues the end of a dialled connection's data: an empty `Data` frame.
    pub fn end_of_data(&mut self) {
        protocol::encode(Kind::Data, &[], &mut self.wbuf);
    }

    /// Queues terminal output, counted against the flow-control window when there is one.
    pub fn output(&mut self, bytes: &[u8]) {
        if let Some(f) = &mut self.flow {
            f.sent(bytes.len());
        }
        self.data(Kind::Data, bytes);
    }

    /// Writes as much of the queue as the socket takes.
    pub fn flush(&mut self) {
        while self.queued() > 0 && !self.dead {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    // Advance rather than move the rest to the front on every partial write; compact once the
                    // written part is the larger half.
                    self.wpos += n;
                    if self.wpos == self.wbuf.len() {
                        self.wbuf.clear();
                        self.wpos = 0;
                    } else if self.wpos > self.wbuf.len() / 2 {
                        self.wbuf.drain(..self.wpos);
                        self.wpos = 0;
                    }
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
        let _ = self.stream.write_all(&self.wbuf[self.wpos..]);
        self.wbuf.clear();
        self.wpos = 0;
    }

    /// Whether the shim should forget this connection.
    pub fn finished(&self) -> bool {
        self.dead || (self.closing && self.queued() == 0)
    }

    /// Bytes queued and not yet written.
    pub fn queued(&self) -> usize {
        self.wbuf.len() - self.wpos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::FLOW_WINDOW as FLOW_HIGH;
    const FLOW_LOW: u64 = FLOW_HIGH / 2;

    #[test]
    fn windows_are_clamped() {
        assert_eq!(Flow::new(None).high, protocol::FLOW_WINDOW);
        assert_eq!((Flow::new(Some(65536)).high, Flow::new(Some(65536)).low), (65536, 32768));
        assert_eq!(Flow::new(Some(0)).high, protocol::FLOW_WINDOW_MIN);
        assert_eq!(Flow::new(Some(u64::MAX)).high, protocol::FLOW_WINDOW_MAX);
    }

    #[test]
    fn flow_pauses_at_the_high_watermark_and_resumes_at_the_low_one() {
        let mut f = Flow::new(None);
        assert_eq!(f.room(), FLOW_HIGH as usize);
        f.sent(100_000);
        assert_eq!(f.room(), FLOW_HIGH as usize - 100_000, "reads are bounded by what is left of the window");
        f.sent(FLOW_HIGH as usize - 100_000);
        assert!(f.paused);
        assert_eq!(f.room(), 0);
        // Acknowledging a little is not enough: nothing is read until the low watermark.
        f.acked(FLOW_HIGH - FLOW_LOW - 1);
        assert_eq!(f.room(), 0);
        f.acked(1);
        assert!(!f.paused);
        assert_eq!(f.room(), (FLOW_HIGH - FLOW_LOW) as usize);
        // More than was sent cannot be acknowledged.
        f.acked(u64::MAX);
        assert_eq!(f.unacked, 0);
        assert_eq!(f.room(), FLOW_HIGH as usize);
    }
}
