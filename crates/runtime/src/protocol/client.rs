//! The client side of the shim protocol, over any async byte stream.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{frame, ExecSpec, ExecStatus, Frame, Kind, Reply, Request, VERSION_MAX, VERSION_MIN};
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

    /// Attaches to a terminal and splits the stream into its two directions.
    pub async fn attach(mut self, terminal: &str, replay: bool) -> Result<S, RuntimeError> {
        match self.call(&Request::Attach { terminal: terminal.into(), replay }, REQUEST_TIMEOUT).await? {
            Reply::Attached { .. } => {}
            Reply::Error { code, message } if code == "environment_lost" => return Err(RuntimeError::Lost(message)),
            Reply::Error { code, message } if code == "no_such_terminal" => {
                return Err(RuntimeError::invalid("terminal", message))
            }
            other => return Err(proto(format!("unexpected attach answer {other:?}"))),
        }
        Ok(self.stream)
    }
}

/// The output side of an attached terminal. [`TerminalReader::next`] is cancel-safe: it may be raced in `select!`
/// or under a timeout without losing or splitting a frame.
pub struct TerminalReader<R> {
    r: R,
    buf: Vec<u8>,
    /// Bytes of `buf` already decoded.
    at: usize,
    done: bool,
}

impl<R: AsyncRead + Unpin> TerminalReader<R> {
    /// Wraps a stream that is already attached.
    pub fn new(r: R) -> Self {
        TerminalReader { r, buf: Vec::new(), at: 0, done: false }
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
                    Kind::Data => return Ok(Some(TerminalEvent::Output(f.payload))),
                    Kind::Control => match parse_reply(&f)? {
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
            let mut chunk = [0u8; 64 * 1024];
            let n = self.r.read(&mut chunk).await.map_err(|e| RuntimeError::io("read from shim", e))?;
            if n == 0 {
                self.done = true;
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The input side of an attached terminal.
pub struct TerminalWriter<W> {
    w: W,
    terminal: String,
}

impl<W: AsyncWrite + Unpin> TerminalWriter<W> {
    /// Wraps a stream that is already attached to `terminal`.
    pub fn new(w: W, terminal: &str) -> Self {
        TerminalWriter { w, terminal: terminal.to_string() }
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
