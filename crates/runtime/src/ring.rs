//! The scrollback ring of one terminal: the last `capacity` bytes of output, replayed on attach.

/// A fixed-capacity byte ring. Its buffer is allocated zeroed on first use, so pages that output never reached cost
/// no memory.
pub struct Ring {
    buf: Vec<u8>,
    cap: usize,
    /// Next write position.
    head: usize,
    /// Bytes held.
    len: usize,
}

impl Ring {
    /// An empty ring of `cap` bytes.
    pub fn new(cap: usize) -> Ring {
        Ring { buf: Vec::new(), cap: cap.max(1), head: 0, len: 0 }
    }

    /// Appends, dropping the oldest bytes when full.
    pub fn push(&mut self, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.cap];
        }
        if data.len() > self.cap {
            data = &data[data.len() - self.cap..];
        }
        let first = data.len().min(self.cap - self.head);
        self.buf[self.head..self.head + first].copy_from_slice(&data[..first]);
        let rest = &data[first..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.head = (self.head + data.len()) % self.cap;
        self.len = (self.len + data.len()).min(self.cap);
    }

    /// The contents, oldest first, as up to two slices.
    pub fn slices(&self) -> (&[u8], &[u8]) {
        if self.len < self.cap {
            // Never wrapped: the bytes end at head.
            return (&self.buf[self.head - self.len..self.head], &[]);
        }
        (&self.buf[self.head..], &self.buf[..self.head])
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(r: &Ring) -> Vec<u8> {
        let (a, b) = r.slices();
        [a, b].concat()
    }

    #[test]
    fn keeps_the_last_bytes_in_order() {
        let mut r = Ring::new(8);
        assert!(r.is_empty());
        r.push(b"abc");
        assert_eq!(contents(&r), b"abc");
        r.push(b"defgh");
        assert_eq!(contents(&r), b"abcdefgh");
        r.push(b"ij");
        assert_eq!(contents(&r), b"cdefghij");
        r.push(b"0123456789xyz");
        assert_eq!(contents(&r), b"56789xyz");
        assert_eq!(r.len(), 8);
    }

    #[test]
    fn matches_a_naive_model() {
        let mut r = Ring::new(100);
        let mut model: Vec<u8> = Vec::new();
        let mut x: u32 = 1;
        for i in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let n = (x >> 16) as usize % 150;
            let chunk: Vec<u8> = (0..n).map(|j| (i + j) as u8).collect();
            r.push(&chunk);
            model.extend_from_slice(&chunk);
            let keep = model.len().saturating_sub(100);
            model.drain(..keep);
            assert_eq!(contents(&r), model, "step {i}");
        }
    }
}
