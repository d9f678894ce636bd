//! The client side of the shim protocol, over any async byte stream.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    frame, DesktopSpec, DesktopStatus, ExecSpec, ExecStatus, Frame, Kind, Reply, Request, VERSION_DIAL, VERSION_FLOW,
    VERSION_MAX, VERSION_MIN,
};
use crate::error::RuntimeError;
use crate::types::TerminalEvent;

/// How long a control request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn proto(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Protocol(e.to_string())
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, kind: Kind, payload: &[u8]) -> Result<(), RuntimeError> {
    let mut buf = Vec::with_capacity(payload.len() + 5);
    frame::encode(kind, payload, &mut buf);
    w.write_all(&buf).await.map_err(|e| RuntimeError::io("write to shim", e))
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Frame>, RuntimeError> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head[..4]).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(RuntimeError::io("read from shim", e)),
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    frame::check_len(len).map_err(proto)?;
    r.read_exact(&mut head[4..5]).await.map_err(|e| RuntimeError::io("read from shim", e))?;
    let kind = frame::kind_from_byte(head[4]).map_err(proto)?;
    let mut payload = vec![0u8; len - 1];
    r.read_exact(&mut payload).await.map_err(|e| RuntimeError::io("read from shim", e))?;
    Ok(Some(Frame { kind, payload }))
}

/// Writes a control request.
pub async fn write_request<W: AsyncWrite + Unpin>(w: &mut W, req: &Request) -> Result<(), RuntimeError> {
    let j = serde_json::to_vec(req).map_err(proto)?;
    write_frame(w, Kind::Control, &j).await
}

fn parse_reply(f: &Frame) -> Result<Reply, RuntimeError> {
    serde_json::from_slice(&f.payload).map_err(|e| proto(format!("bad reply: {e}")))
}

/// A connection to a shim, after the version handshake.
pub struct ShimClient<S> {
    stream: S,
    version: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> ShimClient<S> {
    /// Says hello on a fresh stream and agrees on a version.
    pub async fn handshake(mut stream: S) -> Result<Self, RuntimeError> {
        let go = async {
            write_request(&mut stream, &Request::Hello { min: VERSION_MIN, max: VERSION_MAX }).await?;
            match read_frame(&mut stream).await? {
                Some(f) if f.kind == Kind::Control => match parse_reply(&f)? {
                    Reply::Hello { version, .. } => Ok(version),
                    Reply::Error { code, message } => Err(proto(format!("{code}: {message}"))),
                    other => Err(proto(format!("unexpected hello answer {other:?}"))),
                },
                _ => Err(proto("the shim closed the connection during hello")),
            }
        };
        let version = tokio::time::timeout(REQUEST_TIMEOUT, go).await.map_err(|_| RuntimeError::Timeout {
            what: "shim hello".into(),
            ms: REQUEST_TIMEOUT.as_millis() as u64,
        })??;
        Ok(ShimClient { stream, version })
    }

    /// The negotiated version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Sends a control request and waits (bounded) for its answer.
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> Result<Reply, RuntimeError> {
        let go = async {
            write_request(&mut self.stream, req).await?;
            loop {
                match read_frame(&mut self.stream).await? {
                    Some(f) if f.kind == Kind::Control => return parse_reply(&f),
                    Some(_) => continue,
                    None => return Err(proto("the shim closed the connection")),
                }
            }
        };
        tokio::time::timeout(timeout, go).await.map_err(|_| RuntimeError::Timeout {
            what: format!("shim answer to {req:?}"),
            ms: timeout.as_millis() as u64,
        })?
    }

    /// Runs a command (a trusted one for grading when `trusted`): sends the request and stdin, collects output until
    /// `ExecDone`.
    pub async fn exec(
        mut self,
        spec: ExecSpec,
        trusted: bool,
        stdin: &[u8],
        timeout: Duration,
    ) -> Result<(ExecStatus, Vec<u8>, Vec<u8>), RuntimeError> {
        let go = async {
            let req = if trusted { Request::TrustedExec(spec) } else { Request::Exec(spec) };
            write_request(&mut self.stream, &req).await?;
            for chunk in stdin.chunks(frame::MAX_FRAME / 2) {
                write_frame(&mut self.stream, Kind::Data, chunk).await?;
            }
            write_frame(&mut self.stream, Kind::Data, &[]).await?;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            loop {
                match read_frame(&mut self.stream).await? {
                    Some(Frame { kind: Kind::Stdout, payload }) => out.extend_from_slice(&payload),
                    Some(Frame { kind: Kind::Stderr, payload }) => err.extend_from_slice(&payload),
                    Some(f @ Frame { kind: Kind::Control, .. }) => match parse_reply(&f)? {
                        Reply::ExecDone(st) => return Ok((st, out, err)),
                        Reply::Error { code, message } => {
                            return Err(if code == "environment_lost" {
                                RuntimeError::Lost(message)
                            } else {
                                RuntimeError::Backend(format!("{code}: {message}"))
                            })
                        }
                        other => return Err(proto(format!("unexpected exec answer {other:?}"))),
                    },
                    Some(_) => continue,
                    None => return Err(proto("the shim closed the connection during exec")),
                }
            }
        };
        tokio::time::timeout(timeout, go)
            .await
            .map_err(|_| RuntimeError::Timeout { what: "exec".into(), ms: timeout.as_millis() as u64 })?
    }

    /// Opens a TCP connection to `port` on the environment's loopback (version 3). Returns the stream, which now
    /// relays bytes as `Data` frames; [`relay`] turns it into a plain byte stream.
    pub async fn dial(mut self, port: u16) -> Result<S, RuntimeError> {
        if self.version < VERSION_DIAL {
            return Err(RuntimeError::Unsupported(format!(
                "this environment's shim speaks protocol version {}; reaching a port inside needs version {VERSION_DIAL} \
                 (environments made by an older examroom cannot)",
                self.version
            )));
        }
        match self.call(&Request::Dial { port }, REQUEST_TIMEOUT).await? {
            Reply::Dialed { .. } => Ok(self.stream),
            Reply::Error { code, message } if code == "connection_refused" => Err(RuntimeError::Refused(message)),
            Reply::Error { code, message } if code == "environment_lost" => Err(RuntimeError::Lost(message)),
            Reply::Error { code, message } => Err(RuntimeError::Backend(format!("{code}: {message}"))),
            other => Err(proto(format!("unexpected dial answer {other:?}"))),
        }
    }

    /// Starts the environment's desktop, or finds it running (version 3).
    pub async fn start_desktop(&mut self, spec: DesktopSpec) -> Result<DesktopStatus, RuntimeError> {
        if self.version < VERSION_DIAL {
            return Err(RuntimeError::Unsupported(format!(
                "this environment's shim speaks protocol version {}; a desktop needs version {VERSION_DIAL}",
                self.version
            )));
        }
        match self.call(&Request::StartDesktop(spec), REQUEST_TIMEOUT).await? {
            Reply::Desktop(st) => Ok(st),
            Reply::Error { code, message } if code == "environment_lost" => Err(RuntimeError::Lost(message)),
            Reply::Error { code, message } if code == "desktop_unsupported" => Err(RuntimeError::Unsupported(message)),
            Reply::Error { code, message } => Err(RuntimeError::Backend(format!("{code}: {message}"))),
            other => Err(proto(format!("unexpected start_desktop answer {other:?}"))),
        }
    }

    /// Attaches to a terminal; returns the stream (now a terminal stream) and the negotiated version.
    pub async fn attach(mut self, terminal: &str, replay: bool) -> Result<(S, u32), RuntimeError> {
        match self.call(&Request::Attach { terminal: terminal.into(), replay }, REQUEST_TIMEOUT).await? {
            Reply::Attached { .. } => {}
            Reply::Error { code, message } if code == "environment_lost" => return Err(RuntimeError::Lost(message)),
            Reply::Error { code, message } if code == "no_such_terminal" => {
                return Err(RuntimeError::invalid("terminal", message))
            }
            other => return Err(proto(format!("unexpected attach answer {other:?}"))),
        }
        Ok((self.stream, self.version))
    }
}

/// Turns a dialled shim connection into a plain byte stream: a task relays between the two, translating `Data`
/// frames both ways (an empty frame is the end of one direction). The task ends when both directions have, or either
/// side fails.
pub fn relay<S>(stream: S) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (ours, theirs) = tokio::io::duplex(super::DIAL_QUEUE);
    tokio::spawn(async move {
        let (mut shim_r, mut shim_w) = tokio::io::split(stream);
        let (mut r, mut w) = tokio::io::split(ours);
        let down = async {
            // Shim → consumer.
            let mut reader = TerminalReader::new(&mut shim_r);
            loop {
                match reader.next_data().await {
                    Ok(Some(bytes)) if !bytes.is_empty() => {
                        if w.write_all(&bytes).await.is_err() {
                            return;
                        }
                    }
                    // The end of the shim's side, or of the connection.
                    _ => {
                        let _ = w.shutdown().await;
                        return;
                    }
                }
            }
        };
        let up = async {
            // Consumer → shim.
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = write_frame(&mut shim_w, Kind::Data, &[]).await;
                        return;
                    }
                    Ok(n) => {
                        if write_frame(&mut shim_w, Kind::Data, &buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        };
        tokio::join!(down, up);
    });
    theirs
}

/// The output side of an attached terminal. [`TerminalReader::next`] is cancel-safe: it may be raced in `select!`
/// or under a timeout without losing or splitting a frame.
pub struct TerminalReader<R> {
    r: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already decoded.
    at: usize,
    done: bool,
    /// Output bytes returned so far.
    delivered: u64,
    /// Output bytes returned before the shim's flow-control marker, once it has passed.
    flow_base: Option<u64>,
    /// Read size: grows while output comes in bulk.
    read_size: usize,
}

/// The smallest and largest read from the shim's socket.
const READ_MIN: usize = 16 * 1024;
const READ_MAX: usize = 256 * 1024;

impl<R: AsyncRead + Unpin> TerminalReader<R> {
    /// Wraps a stream that is already attached.
    pub fn new(r: R) -> Self {
        TerminalReader { r, buf: Vec::new(), at: 0, done: false, delivered: 0, flow_base: None, read_size: READ_MIN }
    }

    /// Once flow control is on (see [`TerminalWriter::flow_control`]): how many output bytes this reader had returned
    /// before the shim started counting. A client that acknowledges output it consumed since the attach subtracts
    /// this; `None` until the shim's marker has been read.
    pub fn flow_base(&self) -> Option<u64> {
        self.flow_base
    }

    /// On a dialled connection: the next `Data` frame's bytes (empty: the shim's side has finished); `Ok(None)` at
    /// the end of the stream. Control frames are skipped.
    pub async fn next_data(&mut self) -> Result<Option<Vec<u8>>, RuntimeError> {
        loop {
            if let Some((f, n)) = frame::decode(&self.buf[self.at..]).map_err(proto)? {
                self.at += n;
                if f.kind == Kind::Data {
                    return Ok(Some(f.payload));
                }
                continue;
            }
            self.buf.drain(..self.at);
            self.at = 0;
            self.buf.reserve(self.read_size);
            let n = self.r.read_buf(&mut self.buf).await.map_err(|e| RuntimeError::io("read from shim", e))?;
            if n == 0 {
                return Ok(None);
            }
        }
    }

    /// The next event; `Ok(None)` once the stream has ended. Waits as long as the terminal is quiet: callers bound it
    /// with their own timeouts where they need to.
    pub async fn next(&mut self) -> Result<Option<TerminalEvent>, RuntimeError> {
        loop {
            if self.done {
                return Ok(None);
            }
            // Whole frames already buffered come first; only then is the stream read (a cancel-safe read).
            while let Some((f, n)) = frame::decode(&self.buf[self.at..]).map_err(proto)? {
                self.at += n;
                match f.kind {
                    Kind::Data => {
                        self.delivered += f.payload.len() as u64;
                        return Ok(Some(TerminalEvent::Output(f.payload)));
                    }
                    Kind::Control => match parse_reply(&f)? {
                        Reply::FlowControl { .. } => {
                            self.flow_base.get_or_insert(self.delivered);
                            continue;
                        }
                        Reply::Notice { message } => return Ok(Some(TerminalEvent::Notice(message))),
                        Reply::Replaced => {
                            self.done = true;
                            return Ok(Some(TerminalEvent::Replaced));
                        }
                        Reply::Ended => {
                            self.done = true;
                            return Ok(Some(TerminalEvent::Ended));
                        }
                        _ => continue,
                    },
                    _ => continue,
                }
            }
            // Everything before `at` is consumed: drop it before reading more (one move per read, not per frame).
            self.buf.drain(..self.at);
            self.at = 0;
            // Read straight into the buffer's spare room: the read size doubles while reads come back full (a flood)
            // and falls back once they do not (keystrokes), so bulk output costs few reads and idle terminals little
            // memory. `read_buf` is cancel-safe: it appends only what a completed read returned.
            self.buf.reserve(self.read_size);
            let n = self.r.read_buf(&mut self.buf).await.map_err(|e| RuntimeError::io("read from shim", e))?;
            if n == 0 {
                self.done = true;
                return Ok(None);
            }
            self.read_size = if n >= self.read_size { (n * 2).min(READ_MAX) } else { READ_MIN };
            if self.buf.capacity() > 2 * READ_MAX && self.buf.len() < READ_MIN {
                self.buf.shrink_to(READ_MAX);
            }
        }
    }
}

/// The input side of an attached terminal.
pub struct TerminalWriter<W> {
    w: W,
    terminal: String,
    /// The protocol version of the connection.
    version: u32,
    flow: bool,
}

impl<W: AsyncWrite + Unpin> TerminalWriter<W> {
    /// Wraps a stream that is already attached to `terminal`, over a connection of protocol `version`.
    pub fn new(w: W, terminal: &str, version: u32) -> Self {
        TerminalWriter { w, terminal: terminal.to_string(), version, flow: false }
    }

    /// Turns on flow control for this connection, with a window in bytes (`None`: the shim's default), if the shim
    /// speaks it (version 2); false for an older shim, which keeps streaming without acknowledgements. From the shim's
    /// marker on (see [`TerminalReader::flow_base`]) the client must [`ack`](Self::ack) the output it consumes, or the
    /// shim stops reading the terminal once a window is unacknowledged.
    pub async fn flow_control(&mut self, window: Option<u64>) -> Result<bool, RuntimeError> {
        if self.version < VERSION_FLOW {
            return Ok(false);
        }
        if !self.flow {
            write_request(&mut self.w, &Request::FlowControl { window }).await?;
            self.flow = true;
        }
        Ok(true)
    }

    /// Acknowledges `bytes` more bytes of output (counted from the flow-control marker). Does nothing without flow
    /// control.
    pub async fn ack(&mut self, bytes: u64) -> Result<(), RuntimeError> {
        if !self.flow || bytes == 0 {
            return Ok(());
        }
        write_request(&mut self.w, &Request::Ack { bytes }).await
    }

    /// Sends keystrokes.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), RuntimeError> {
        for chunk in bytes.chunks(frame::MAX_FRAME / 2) {
            write_frame(&mut self.w, Kind::Data, chunk).await?;
        }
        Ok(())
    }

    /// Resizes the terminal.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        write_request(&mut self.w, &Request::Resize { terminal: self.terminal.clone(), cols, rows }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn reply<W: AsyncWrite + Unpin>(w: &mut W, r: &Reply) {
        write_frame(w, Kind::Control, &serde_json::to_vec(r).unwrap()).await.unwrap();
    }

    async fn request<R: AsyncRead + Unpin>(r: &mut R) -> Frame {
        read_frame(r).await.unwrap().expect("a frame")
    }

    /// A shim of version 1, from before flow control: a newer client attaches to it as before and never sends it a
    /// flow-control request or an ack.
    #[tokio::test]
    async fn an_old_shim_still_attaches_without_flow_control() {
        let (ours, mut shim) = tokio::io::duplex(1 << 16);
        let fake = tokio::spawn(async move {
            let hello: Request = serde_json::from_slice(&request(&mut shim).await.payload).unwrap();
            assert_eq!(hello, Request::Hello { min: 1, max: VERSION_MAX });
            reply(&mut shim, &Reply::Hello { version: 1, shim: "old".into() }).await;
            let attach = request(&mut shim).await;
            assert_eq!(attach.payload, br#"{"op":"attach","terminal":"main","replay":true}"#, "the version 1 form");
            reply(&mut shim, &Reply::Attached { terminal: "main".into(), replay_bytes: 2 }).await;
            write_frame(&mut shim, Kind::Data, b"hi").await.unwrap();
            // The next thing the client sends is the keystroke: no flow control, no ack.
            request(&mut shim).await
        });
        let c = ShimClient::handshake(ours).await.unwrap();
        assert_eq!(c.version(), 1);
        let (stream, version) = c.attach("main", true).await.unwrap();
        let (r, w) = tokio::io::split(stream);
        let (mut output, mut input) = (TerminalReader::new(r), TerminalWriter::new(w, "main", version));
        assert!(!input.flow_control(None).await.unwrap(), "no flow control with a version 1 shim");
        input.ack(100).await.unwrap();
        assert_eq!(output.next().await.unwrap(), Some(TerminalEvent::Output(b"hi".to_vec())));
        assert_eq!(output.flow_base(), None);
        input.write(b"x").await.unwrap();
        assert_eq!(fake.await.unwrap(), Frame { kind: Kind::Data, payload: b"x".to_vec() });
    }

    /// A shim of version 2 (made by an older server) is never asked to dial or to start a desktop: the answer says
    /// the environment is too old, and nothing is sent.
    #[tokio::test]
    async fn an_older_shim_is_not_asked_for_a_port_or_a_desktop() {
        let (ours, mut shim) = tokio::io::duplex(1 << 16);
        let fake = tokio::spawn(async move {
            let _hello = request(&mut shim).await;
            reply(&mut shim, &Reply::Hello { version: 2, shim: "older".into() }).await;
            // Whatever comes next (nothing, until the client hangs up).
            read_frame(&mut shim).await.unwrap()
        });
        let mut c = ShimClient::handshake(ours).await.unwrap();
        let d = c.start_desktop(DesktopSpec { width: 1280, height: 800, port: 5900 }).await;
        assert!(matches!(d, Err(RuntimeError::Unsupported(ref m)) if m.contains("version 2")), "{d:?}");
        match c.dial(8000).await {
            Err(RuntimeError::Unsupported(m)) => assert!(m.contains("version 3"), "{m}"),
            other => panic!("expected unsupported, got {:?}", other.map(|_| ())),
        }
        assert_eq!(fake.await.unwrap(), None, "nothing was sent after hello");
    }

    /// With a version 2 shim: the request goes out once, the marker is consumed by the reader and says where the
    /// shim's count starts, and acks go out.
    #[tokio::test]
    async fn flow_control_marks_where_the_count_starts() {
        let (ours, mut shim) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(ours);
        let (mut output, mut input) = (TerminalReader::new(r), TerminalWriter::new(w, "main", 2));
        assert!(input.flow_control(Some(65536)).await.unwrap());
        assert!(input.flow_control(None).await.unwrap());
        input.ack(0).await.unwrap();
        input.ack(7).await.unwrap();
        let first: Request = serde_json::from_slice(&request(&mut shim).await.payload).unwrap();
        assert_eq!(first, Request::FlowControl { window: Some(65536) });
        let second: Request = serde_json::from_slice(&request(&mut shim).await.payload).unwrap();
        assert_eq!(second, Request::Ack { bytes: 7 }, "one request, and no empty ack");

        write_frame(&mut shim, Kind::Data, b"abc").await.unwrap();
        reply(&mut shim, &Reply::FlowControl { high: 10, low: 5 }).await;
        write_frame(&mut shim, Kind::Data, b"de").await.unwrap();
        assert_eq!(output.next().await.unwrap(), Some(TerminalEvent::Output(b"abc".to_vec())));
        assert_eq!(output.flow_base(), None, "the marker is not read yet");
        assert_eq!(output.next().await.unwrap(), Some(TerminalEvent::Output(b"de".to_vec())));
        assert_eq!(output.flow_base(), Some(3));
    }
}
