//! Length-prefixed frames, encoded and decoded without I/O so that blocking, polling and async peers share them.

/// The largest frame accepted, kind byte included.
pub const MAX_FRAME: usize = 1 << 20;

/// What a frame's payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A JSON control message.
    Control = 1,
    /// Terminal bytes, or exec stdin.
    Data = 2,
    /// An exec's standard output.
    Stdout = 3,
    /// An exec's standard error.
    Stderr = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Control,
            2 => Kind::Data,
            3 => Kind::Stdout,
            4 => Kind::Stderr,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is.
    pub kind: Kind,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A peer sent something that is not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is zero or above [`MAX_FRAME`].
    #[error("frame length {0} is out of range (1..={MAX_FRAME})")]
    Length(usize),
    /// The kind byte is unknown.
    #[error("unknown frame kind {0}")]
    Kind(u8),
}

/// Appends one frame to `out`. Payloads larger than the limit must be split by the caller.
pub fn encode(kind: Kind, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() < MAX_FRAME);
    let len = (payload.len() + 1) as u32;
    out.extend_from_slice(&len.to_be_bytes());
    out.push(kind as u8);
    out.extend_from_slice(payload);
}

/// Reads one frame from the front of `buf`: `Ok(Some((frame, consumed)))`, or `Ok(None)` if more bytes are needed.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, FrameError> {
    if buf.len() < 5 {
        if buf.len() >= 4 {
            check_len(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize)?;
        }
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    check_len(len)?;
    let kind = Kind::from_u8(buf[4]).ok_or(FrameError::Kind(buf[4]))?;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    Ok(Some((Frame { kind, payload: buf[5..4 + len].to_vec() }, 4 + len)))
}

/// Checks a length prefix.
pub fn check_len(len: usize) -> Result<(), FrameError> {
    if len == 0 || len > MAX_FRAME {
        return Err(FrameError::Length(len));
    }
    Ok(())
}

/// Parses a kind byte.
pub fn kind_from_byte(b: u8) -> Result<Kind, FrameError> {
    Kind::from_u8(b).ok_or(FrameError::Kind(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_partial_input() {
        let mut buf = Vec::new();
        encode(Kind::Data, b"hello", &mut buf);
        encode(Kind::Control, b"{}", &mut buf);
        for cut in 0..10 {
            assert_eq!(decode(&buf[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (f, n) = decode(&buf).unwrap().unwrap();
        assert_eq!(f, Frame { kind: Kind::Data, payload: b"hello".to_vec() });
        let (g, m) = decode(&buf[n..]).unwrap().unwrap();
        assert_eq!(g.kind, Kind::Control);
        assert_eq!(n + m, buf.len());
    }

    #[test]
    fn hostile_frames_are_refused() {
        assert_eq!(decode(&[0, 0, 0, 0, 1]), Err(FrameError::Length(0)));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), Err(FrameError::Length(u32::MAX as usize)));
        assert_eq!(decode(&[0, 0, 0, 1, 9]), Err(FrameError::Kind(9)));
        let empty_data = {
            let mut b = Vec::new();
            encode(Kind::Data, b"", &mut b);
            b
        };
        assert_eq!(decode(&empty_data).unwrap().unwrap().0.payload, b"");
    }
}

/// Hostile input (issue 16): whatever bytes a peer sends, decoding answers and never panics.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let mut at = 0;
            // Frames are read one after the other as a connection reads them, until one is refused or incomplete.
            while let Ok(Some((_, n))) = decode(&bytes[at..]) {
                prop_assert!(n > 0 && at + n <= bytes.len());
                at += n;
            }
        }

        #[test]
        fn a_frame_round_trips(kind in 1u8..=4, payload in proptest::collection::vec(any::<u8>(), 0..8192)) {
            let kind = kind_from_byte(kind).unwrap();
            let mut buf = Vec::new();
            encode(kind, &payload, &mut buf);
            let (f, n) = decode(&buf).unwrap().unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!(f, Frame { kind, payload });
        }

        #[test]
        fn any_control_payload_parses_or_is_refused(text in ".{0,512}") {
            let _ = serde_json::from_str::<crate::protocol::Request>(&text);
            let _ = serde_json::from_str::<crate::protocol::Reply>(&text);
        }
    }
}
