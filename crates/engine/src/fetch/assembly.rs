//! One copy of the metadata being assembled: which pieces are missing, asked for (of whom,
//! since when) or in (from whom), and their bytes.

use std::time::Instant;

use wire::metadata::{METADATA_PIECE_LEN, metadata_piece_count};

use crate::peer::PeerKey;

/// The state of one metadata piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Slot {
    /// Nobody is asked for it.
    Missing,
    /// Asked of `by` at `at`.
    Requested { by: PeerKey, at: Instant },
    /// In, sent by `from`.
    Have { from: PeerKey },
}

/// The pieces of one copy of the metadata; the bytes are at most its size (<= 8 MiB).
#[derive(Debug)]
pub(super) struct Assembly {
    size: u32,
    slots: Vec<Slot>,
    /// The whole dictionary, allocated when the first piece arrives.
    buf: Vec<u8>,
    received: u32,
}

impl Assembly {
    /// An empty copy of `size` bytes (1 to 8 MiB: at most 512 pieces).
    pub fn new(size: u32) -> Assembly {
        Assembly {
            size,
            slots: vec![Slot::Missing; metadata_piece_count(size) as usize],
            buf: Vec::new(),
            received: 0,
        }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Pieces in all.
    pub fn count(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// Pieces in.
    pub fn received(&self) -> u32 {
        self.received
    }

    pub fn is_complete(&self) -> bool {
        self.received == self.count()
    }

    pub fn slot(&self, piece: u32) -> Option<Slot> {
        self.slots.get(piece as usize).copied()
    }

    pub fn set(&mut self, piece: u32, slot: Slot) {
        if let Some(s) = self.slots.get_mut(piece as usize) {
            *s = slot;
        }
    }

    /// Pieces asked of `key` are missing again.
    pub fn release_all(&mut self, key: PeerKey) {
        for s in &mut self.slots {
            if matches!(*s, Slot::Requested { by, .. } if by == key) {
                *s = Slot::Missing;
            }
        }
    }

    /// The requests at or past `timeout` at `now`, as `(piece, asked of)`.
    pub fn expired(&self, now: Instant, timeout: std::time::Duration) -> Vec<(u32, PeerKey)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match *s {
                Slot::Requested { by, at } if now >= at + timeout => {
                    Some((u32::try_from(i).ok()?, by))
                }
                _ => None,
            })
            .collect()
    }

    /// When the oldest request times out.
    pub fn next_expiry(&self, timeout: std::time::Duration) -> Option<Instant> {
        self.slots
            .iter()
            .filter_map(|s| match *s {
                Slot::Requested { at, .. } => at.checked_add(timeout),
                _ => None,
            })
            .min()
    }

    /// Copies in `piece` (its length checked by the decoder against this size) from `from`.
    /// False if it was in already or does not fit.
    pub fn store(&mut self, piece: u32, data: &[u8], from: PeerKey) -> bool {
        if matches!(self.slot(piece), None | Some(Slot::Have { .. })) {
            return false;
        }
        if self.buf.is_empty() {
            self.buf = vec![0; self.size as usize];
        }
        let start = piece as usize * METADATA_PIECE_LEN as usize;
        let Some(dst) = self.buf.get_mut(start..start + data.len()) else {
            return false;
        };
        dst.copy_from_slice(data);
        self.set(piece, Slot::Have { from });
        self.received += 1;
        true
    }

    /// How many pieces of this copy each peer sent, by key.
    pub fn contributors(&self) -> Vec<(PeerKey, u32)> {
        let mut out: Vec<(PeerKey, u32)> = Vec::new();
        for s in &self.slots {
            if let Slot::Have { from } = *s {
                match out.iter_mut().find(|(k, _)| *k == from) {
                    Some((_, n)) => *n += 1,
                    None => out.push((from, 1)),
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The assembled bytes; the copy is empty again afterwards (every piece missing).
    pub fn take_bytes(&mut self) -> Vec<u8> {
        self.slots.fill(Slot::Missing);
        self.received = 0;
        std::mem::take(&mut self.buf)
    }
}
