//! The shim protocol: how a runtime client talks to the shim that holds one environment.
//!
//! It is independent of its transport: any ordered, reliable, bidirectional byte stream carries it (a unix socket in the
//! state directory for the sandbox backend; later a bind-mounted socket for Docker, or a pod's network or exec stream
//! for Kubernetes).
//!
//! # Framing
//! A frame is `len: u32 (big endian) | kind: u8 | payload`, where `len` counts the kind byte and the payload, and is at
//! most [`MAX_FRAME`]. Kinds:
//! - [`Kind::Control`]: a JSON message, [`Request`] from the client or [`Reply`] from the shim;
//! - [`Kind::Data`]: raw bytes (terminal output to the client, terminal input or exec stdin to the shim);
//! - [`Kind::Stdout`], [`Kind::Stderr`]: raw bytes of an exec's output.
//!
//! # Conversation
//! Every connection opens with [`Request::Hello`], naming the range of versions the client speaks; the shim answers
//! [`Reply::Hello`] with the highest version both speak (or [`Reply::Error`] `unsupported_version`). This lets an
//! upgraded server talk to shims started by an older one. Then one of:
//! - a control exchange: any number of `Status`, `Resize`, `OpenTerminal` and `Destroy` requests, each answered once;
//! - `Attach`: the connection becomes a terminal stream: `Attached`, the scrollback replay as `Data`, then live `Data`
//!   both ways, `Resize` from the client, and `Notice`, `Replaced` or `Ended` from the shim. From version 2 the client
//!   may turn on flow control (see below);
//! - `Exec`: stdin follows as `Data` frames ended by an empty one; the shim streams `Stdout`/`Stderr` frames and ends
//!   with `ExecDone`;
//! - `Dial` (version 3): the shim opens a TCP connection to a port on the environment's own loopback, from inside the
//!   environment's network namespace (a handle it took at create, never a path), and answers `Dialed`; from then on
//!   the connection relays bytes, as `Data` frames both ways, and an empty `Data` frame says that side has finished
//!   sending (the other may still send). Each side stops reading while the other's queue is full, so neither a
//!   flood from inside nor a fast client queues more than [`DIAL_QUEUE`] in the shim.
//!
//! A control exchange may also ask `StartDesktop` (version 3): the shim starts the desktop's X server (with its VNC
//! server on the environment's loopback) in its own cgroup below the environment's, and the desktop session (window
//! manager and terminal emulator) with the candidate's processes; it answers `Desktop` with its state.
//!
//! # Flow control (version 2)
//! On an attached stream the client may send [`Request::FlowControl`] once, with a window (default
//! [`FLOW_WINDOW`], clamped to [`FLOW_WINDOW_MIN`]..=[`FLOW_WINDOW_MAX`]). The shim answers in the stream with
//! [`Reply::FlowControl`]: from that marker on it counts the terminal output it sends to this connection, and the
//! client acknowledges what it has consumed with [`Request::Ack`] (`bytes` since its previous ack). Once a window of
//! bytes is unacknowledged (the high watermark) the shim stops reading the PTY (the writing program blocks in the
//! kernel; nothing is dropped, and the scrollback keeps every byte that was read); at half of it (the low watermark)
//! it reads again. A small window bounds what a slow renderer has queued in front of the prompt; a large one keeps
//! a fast client, or one far away, busy.
//! Input and `Resize` still flow while output is paused, so Ctrl-C reaches the shell at once. A connection without
//! flow control (every version 1 connection) keeps the other rule: past 1 MiB of queued output it is dropped.

pub mod client;
pub mod conn;
pub mod frame;
pub mod message;

pub use frame::{decode, encode, Frame, FrameError, Kind, MAX_FRAME};
pub use message::*;

/// The lowest protocol version this build speaks.
pub const VERSION_MIN: u32 = 1;
/// The highest protocol version this build speaks.
pub const VERSION_MAX: u32 = 3;
/// The first version with flow control on attached streams ([`Request::FlowControl`], [`Request::Ack`]).
pub const VERSION_FLOW: u32 = 2;
/// The first version with [`Request::Dial`] and [`Request::StartDesktop`].
pub const VERSION_DIAL: u32 = 3;

/// The flow-control window when the client names none: the shim stops reading a terminal once this many bytes sent
/// to the client are unacknowledged, and reads it again at half of it.
pub const FLOW_WINDOW: u64 = 256 * 1024;
/// The smallest window a client may ask for.
pub const FLOW_WINDOW_MIN: u64 = 16 * 1024;
/// The largest window a client may ask for.
pub const FLOW_WINDOW_MAX: u64 = 1024 * 1024;

/// Bytes a dialled connection queues in the shim in either direction before it stops reading the other side.
pub const DIAL_QUEUE: usize = 256 * 1024;

/// Picks the version two peers share: the highest version in both ranges.
pub fn negotiate(client_min: u32, client_max: u32) -> Option<u32> {
    let hi = client_max.min(VERSION_MAX);
    let lo = client_min.max(VERSION_MIN);
    (lo <= hi).then_some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_picks_the_highest_shared_version() {
        assert_eq!(negotiate(1, 1), Some(1), "an old client still gets version 1");
        assert_eq!(negotiate(1, 2), Some(2), "a version 2 server still talks to a newer shim");
        assert_eq!(negotiate(1, 3), Some(3));
        assert_eq!(negotiate(1, 9), Some(VERSION_MAX));
        assert_eq!(negotiate(VERSION_MAX + 1, VERSION_MAX + 3), None);
        assert_eq!(negotiate(0, 0), None);
    }
}
