//! A set of pieces, one bit each, in the wire order of BEP 3 (high bit of byte 0 is piece 0).

use crate::geometry::PieceIndex;

/// Which pieces of a torrent somebody has.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

/// A BITFIELD payload that does not fit the torrent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BitfieldError {
    /// The payload length is not `ceil(pieces / 8)`.
    #[error("bitfield has {got} bytes, the torrent needs {want}")]
    Length {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// Bits past the last piece are set.
    #[error("bitfield has spare bits set past piece {0}")]
    SpareBits(u32),
}

impl Bitfield {
    /// An empty set over `len` pieces.
    pub fn new(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; (len as usize).div_ceil(8)],
            len,
            ones: 0,
        }
    }

    /// A full set over `len` pieces.
    pub fn full(len: u32) -> Self {
        let mut b = Bitfield {
            bytes: vec![0xff; (len as usize).div_ceil(8)],
            len,
            ones: len,
        };
        b.clear_spare();
        b
    }

    /// Parses a BITFIELD payload for a torrent of `len` pieces: exact length, spare bits zero.
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let want = (len as usize).div_ceil(8);
        if bytes.len() != want {
            return Err(BitfieldError::Length {
                got: bytes.len(),
                want,
            });
        }
        let spare = (want * 8) as u32 - len;
        if spare > 0 && bytes[want - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::SpareBits(len));
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    fn clear_spare(&mut self) {
        let spare = (self.bytes.len() * 8) as u32 - self.len;
        if let Some(last) = self.bytes.last_mut()
            && spare > 0
        {
            *last &= !((1u8 << spare) - 1);
        }
    }

    /// The wire form (spare bits zero).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Number of pieces the set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the torrent has no pieces (never for a valid torrent).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of pieces in the set.
    pub fn count(&self) -> u32 {
        self.ones
    }

    /// True when every piece is in the set.
    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// True when no piece is in the set.
    pub fn is_none(&self) -> bool {
        self.ones == 0
    }

    /// Is piece `i` in the set? (Out of range: false.)
    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Is piece `p` in the set?
    pub fn has(&self, p: PieceIndex) -> bool {
        self.get(p.get())
    }

    /// Adds piece `p`; returns true if it was not there before.
    pub fn set(&mut self, p: PieceIndex) -> bool {
        self.set_bit(p.get(), true)
    }

    /// Removes piece `p`; returns true if it was there.
    pub fn unset(&mut self, p: PieceIndex) -> bool {
        self.set_bit(p.get(), false)
    }

    fn set_bit(&mut self, i: u32, on: bool) -> bool {
        if i >= self.len {
            return false;
        }
        let byte = &mut self.bytes[(i / 8) as usize];
        let mask = 0x80 >> (i % 8);
        let was = *byte & mask != 0;
        if on && !was {
            *byte |= mask;
            self.ones += 1;
        } else if !on && was {
            *byte &= !mask;
            self.ones -= 1;
        }
        was != on
    }

    /// The piece numbers in the set, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes.iter().enumerate().flat_map(|(bi, &b)| {
            (0..8u32).filter_map(move |k| (b & (0x80 >> k) != 0).then_some(bi as u32 * 8 + k))
        })
    }
}

impl std::fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Geometry;

    #[test]
    fn wire_order_and_spare_bits() {
        let g = Geometry::new(10 * 16384, 16384).unwrap();
        let mut b = Bitfield::new(g.piece_count());
        assert!(b.set(g.piece(0).unwrap()));
        assert!(b.set(g.piece(9).unwrap()));
        assert!(!b.set(g.piece(9).unwrap()));
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count(), 2);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
        assert_eq!(Bitfield::from_bytes(&[0x80, 0x40], 10).unwrap(), b);
        assert_eq!(
            Bitfield::from_bytes(&[0x80, 0x41], 10),
            Err(BitfieldError::SpareBits(10))
        );
        assert!(matches!(
            Bitfield::from_bytes(&[0x80], 10),
            Err(BitfieldError::Length { got: 1, want: 2 })
        ));
        let f = Bitfield::full(10);
        assert_eq!(f.as_bytes(), &[0xff, 0xc0]);
        assert!(f.is_full());
    }
}
