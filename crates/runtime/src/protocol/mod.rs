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
//!   both ways, `Resize` from the client, and `Notice`, `Replaced` or `Ended` from the shim;
//! - `Exec`: stdin follows as `Data` frames ended by an empty one; the shim streams `Stdout`/`Stderr` frames and ends
//!   with `ExecDone`.

pub mod client;
pub mod frame;
pub mod message;

pub use frame::{decode, encode, Frame, FrameError, Kind, MAX_FRAME};
pub use message::*;

/// The lowest protocol version this build speaks.
pub const VERSION_MIN: u32 = 1;
/// The highest protocol version this build speaks.
pub const VERSION_MAX: u32 = 1;

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
        assert_eq!(negotiate(1, 1), Some(1));
        assert_eq!(negotiate(1, 9), Some(VERSION_MAX));
        assert_eq!(negotiate(VERSION_MAX + 1, VERSION_MAX + 3), None);
        assert_eq!(negotiate(0, 0), None);
    }
}
