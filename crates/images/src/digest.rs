//! Content digests (`sha256:<64 hex>`) and a reader that hashes and bounds what passes through it.

use std::io::{self, Read};

use sha2::{Digest as _, Sha256};

use crate::{ImageError, Result};

/// A `sha256:` digest.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; other algorithms are refused.
    pub fn parse(s: &str) -> Result<Digest> {
        let bad =
            |why: &str| ImageError::InvalidReference { reference: s.chars().take(100).collect(), why: why.into() };
        let Some(hex) = s.strip_prefix("sha256:") else {
            return Err(bad("only sha256 digests are supported"));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(bad("a sha256 digest is 64 lowercase hex digits"));
        }
        Ok(Digest(s.to_string()))
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("sha256:{:x}", Sha256::digest(bytes)))
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hashes what is read through it, and fails once more than `cap` bytes came.
pub(crate) struct Hashing<R> {
    inner: R,
    hash: Sha256,
    read: u64,
    cap: u64,
}

impl<R: Read> Hashing<R> {
    pub(crate) fn new(inner: R, cap: u64) -> Self {
        Hashing { inner, hash: Sha256::new(), read: 0, cap }
    }

    /// Reads the rest (to EOF) and returns the digest and the byte count.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest(format!("sha256:{:x}", self.hash.finalize())), self.read))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.cap {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("more than the cap of {} bytes", self.cap),
            ));
        }
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_parse_strictly() {
        let d = Digest::of(b"");
        assert_eq!(d.hex(), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        for bad in ["", "sha256:", "sha512:00", "sha256:E3B0", &format!("{d}0"), "sha256:../../etc/passwd"] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashing_reader_caps() {
        let mut r = Hashing::new(&[0u8; 100][..], 10);
        assert!(io::copy(&mut r, &mut io::sink()).is_err());
        let (d, n) = Hashing::new(&b"abc"[..], 10).finish().unwrap();
        assert_eq!((d, n), (Digest::of(b"abc"), 3));
    }
}
