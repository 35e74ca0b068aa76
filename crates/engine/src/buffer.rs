//! [`PieceData`]: the bytes of one piece being downloaded, in a buffer whose start is aligned
//! for direct I/O, so the shell can write a verified piece around the page cache without first
//! copying it somewhere aligned.

use std::ops::{Deref, DerefMut};

/// Alignment of the start of every piece buffer the engine makes: 4 KiB, what a direct
/// (`O_DIRECT`) write needs of its buffer on any device.
pub const PIECE_ALIGN: usize = 4096;

/// The bytes of one piece. Dereferences to exactly the piece's length; the start is aligned to
/// [`PIECE_ALIGN`] for buffers the engine makes (one built [`From`] a `Vec` is as it came).
#[derive(Debug, Default, Clone)]
pub struct PieceData {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl PieceData {
    /// Makes this buffer `len` bytes long, reusing its allocation when it is large enough. The
    /// bytes of a reused buffer are left as they were: the caller overwrites every one.
    pub(crate) fn reset(&mut self, len: usize) {
        let need = len + PIECE_ALIGN - 1;
        if self.raw.len() < need {
            // A new zeroed allocation rather than `resize`: the allocator hands out fresh pages
            // already zeroed (calloc) instead of writing 256 KiB of zeros it is about to have
            // overwritten anyway.
            self.raw = vec![0; need];
        }
        // `align_offset` may decline (`usize::MAX`); the buffer then starts unaligned, which
        // costs the shell a slower write, never a wrong one.
        let start = self.raw.as_ptr().align_offset(PIECE_ALIGN);
        self.start = if start.saturating_add(len) <= self.raw.len() {
            start
        } else {
            0
        };
        self.len = len.min(self.raw.len());
    }

    /// Largest piece this buffer can hold without growing.
    pub fn capacity(&self) -> usize {
        self.raw.len().saturating_sub(PIECE_ALIGN - 1)
    }
}

impl From<Vec<u8>> for PieceData {
    fn from(raw: Vec<u8>) -> Self {
        PieceData {
            len: raw.len(),
            start: 0,
            raw,
        }
    }
}

impl Deref for PieceData {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.raw
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

impl DerefMut for PieceData {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.raw
            .get_mut(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_start_aligned_and_keep_their_length_when_reused() {
        let mut b = PieceData::default();
        b.reset(256 << 10);
        assert_eq!(b.len(), 256 << 10);
        assert_eq!(b.as_ptr().align_offset(PIECE_ALIGN), 0);
        b[0] = 7;
        let last = b.len() - 1;
        b[last] = 9;
        // A shorter piece (the last one) in the same allocation, still aligned.
        b.reset(1000);
        assert_eq!(b.len(), 1000);
        assert_eq!(b.as_ptr().align_offset(PIECE_ALIGN), 0);
        assert_eq!(b.capacity(), 256 << 10);
        // Growing reallocates and realigns.
        b.reset(300 << 10);
        assert_eq!(b.len(), 300 << 10);
        assert_eq!(b.as_ptr().align_offset(PIECE_ALIGN), 0);
    }

    #[test]
    fn from_vec_is_the_vec() {
        let b = PieceData::from(vec![1, 2, 3]);
        assert_eq!(&*b, &[1, 2, 3]);
        assert_eq!(b.capacity(), 0);
    }
}
