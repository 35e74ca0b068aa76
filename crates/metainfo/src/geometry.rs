//! Piece geometry: how a torrent's bytes divide into pieces and 16 KiB blocks.
//!
//! [`PieceIndex`] and [`BlockRef`] can only be made through a [`Geometry`], so a value of either
//! type is always in range for the torrent it came from.

/// The size of a block: the unit of REQUEST and PIECE messages (16 KiB).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// A piece length or total size that cannot describe a torrent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// Piece length zero, or too large to be sane.
    #[error("invalid piece length {0}")]
    PieceLength(u64),
    /// The torrent has no bytes.
    #[error("torrent has zero total length")]
    Empty,
    /// More pieces than the cap, or the count does not fit the total size.
    #[error("piece count {0} is out of range")]
    PieceCount(u64),
}

/// Largest piece length accepted from a torrent (libtorrent accepts up to 128 MiB-ish; we cap at 64 MiB).
pub const MAX_PIECE_LENGTH: u64 = 64 * 1024 * 1024;
/// Largest number of pieces accepted (a 16 MiB bitfield would be absurd; this is 2^22 pieces).
pub const MAX_PIECES: u64 = 1 << 22;

/// How a torrent of `total_len` bytes splits into pieces of `piece_len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    total_len: u64,
    piece_len: u32,
    piece_count: u32,
}

/// A piece number known to be `< piece_count` of the geometry that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PieceIndex(u32);

/// One block of a piece: `begin` is a multiple of [`BLOCK_SIZE`], `len` is `BLOCK_SIZE` except for
/// the final block of the final piece (or of a piece shorter than a block).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    piece: PieceIndex,
    begin: u32,
    len: u32,
}

impl PieceIndex {
    /// The piece number.
    pub fn get(self) -> u32 {
        self.0
    }

    /// As a `usize`, for indexing per-piece arrays.
    pub fn idx(self) -> usize {
        self.0 as usize
    }
}

impl BlockRef {
    /// The piece this block belongs to.
    pub fn piece(self) -> PieceIndex {
        self.piece
    }
    /// Byte offset of the block within its piece.
    pub fn begin(self) -> u32 {
        self.begin
    }
    /// Length of the block in bytes.
    pub fn len(self) -> u32 {
        self.len
    }
    /// Always false: a block has at least one byte. (Present for clippy's `len_without_is_empty`.)
    pub fn is_empty(self) -> bool {
        self.len == 0
    }
    /// The block's number within its piece (`begin / BLOCK_SIZE`).
    pub fn index_in_piece(self) -> u32 {
        self.begin / BLOCK_SIZE
    }
}

impl Geometry {
    /// A geometry for `total_len` bytes in pieces of `piece_len` bytes.
    pub fn new(total_len: u64, piece_len: u64) -> Result<Self, GeometryError> {
        if piece_len == 0 || piece_len > MAX_PIECE_LENGTH {
            return Err(GeometryError::PieceLength(piece_len));
        }
        if total_len == 0 {
            return Err(GeometryError::Empty);
        }
        let count = total_len.div_ceil(piece_len);
        if count > MAX_PIECES {
            return Err(GeometryError::PieceCount(count));
        }
        Ok(Geometry {
            total_len,
            piece_len: piece_len as u32,
            piece_count: count as u32,
        })
    }

    /// Total bytes in the torrent.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }
    /// The nominal piece length (all pieces but the last).
    pub fn nominal_piece_len(&self) -> u32 {
        self.piece_len
    }
    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    /// Bytes in a bitfield for this torrent: `ceil(pieces / 8)`.
    pub fn bitfield_len(&self) -> usize {
        (self.piece_count as usize).div_ceil(8)
    }

    /// The index `i`, if it is in range.
    pub fn piece(&self, i: u32) -> Option<PieceIndex> {
        (i < self.piece_count).then_some(PieceIndex(i))
    }

    /// Every piece, in order.
    pub fn pieces(&self) -> impl ExactSizeIterator<Item = PieceIndex> + use<> {
        (0..self.piece_count).map(PieceIndex)
    }

    /// Length of piece `p` (shorter for the last piece).
    pub fn piece_len(&self, p: PieceIndex) -> u32 {
        if p.0 + 1 == self.piece_count {
            (self.total_len - u64::from(self.piece_len) * u64::from(p.0)) as u32
        } else {
            self.piece_len
        }
    }

    /// Length of the last piece.
    pub fn last_piece_len(&self) -> u32 {
        self.piece_len(PieceIndex(self.piece_count - 1))
    }

    /// Byte offset of piece `p` in the torrent.
    pub fn piece_offset(&self, p: PieceIndex) -> u64 {
        u64::from(p.0) * u64::from(self.piece_len)
    }

    /// Number of blocks in piece `p`.
    pub fn block_count(&self, p: PieceIndex) -> u32 {
        self.piece_len(p).div_ceil(BLOCK_SIZE)
    }

    /// Block number `n` of piece `p`, if it exists.
    pub fn block_at(&self, p: PieceIndex, n: u32) -> Option<BlockRef> {
        let plen = self.piece_len(p);
        let begin = n.checked_mul(BLOCK_SIZE)?;
        (begin < plen).then(|| BlockRef {
            piece: p,
            begin,
            len: (plen - begin).min(BLOCK_SIZE),
        })
    }

    /// All blocks of piece `p`, in order.
    pub fn blocks(&self, p: PieceIndex) -> impl Iterator<Item = BlockRef> + use<> {
        let this = *self;
        (0..self.block_count(p)).filter_map(move |n| this.block_at(p, n))
    }

    /// Validates a block named on the wire (REQUEST / PIECE / CANCEL / REJECT): the piece is in
    /// range and `(begin, len)` is exactly one of our 16 KiB blocks of it.
    pub fn block(&self, piece: u32, begin: u32, len: u32) -> Option<BlockRef> {
        let p = self.piece(piece)?;
        if !begin.is_multiple_of(BLOCK_SIZE) {
            return None;
        }
        let b = self.block_at(p, begin / BLOCK_SIZE)?;
        (b.len == len).then_some(b)
    }

    /// Validates an arbitrary byte range inside a piece (`len` > 0, within the piece). Peers may
    /// request unaligned ranges; serving them is allowed while `len <= BLOCK_SIZE`.
    pub fn range_in_piece(
        &self,
        piece: u32,
        begin: u32,
        len: u32,
    ) -> Option<(PieceIndex, u32, u32)> {
        let p = self.piece(piece)?;
        let end = begin.checked_add(len)?;
        (len > 0 && end <= self.piece_len(p)).then_some((p, begin, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_last_piece() {
        let g = Geometry::new(5 * 262_144 + 100, 262_144).unwrap();
        assert_eq!(g.piece_count(), 6);
        let last = g.piece(5).unwrap();
        assert_eq!(g.piece_len(last), 100);
        assert_eq!(g.block_count(last), 1);
        assert_eq!(g.block_count(g.piece(0).unwrap()), 16);
        assert!(g.piece(6).is_none());
        assert_eq!(g.bitfield_len(), 1);
        let b: Vec<_> = g.blocks(last).collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].len(), 100);
    }

    #[test]
    fn block_validation() {
        let g = Geometry::new(40_000, 32_768).unwrap();
        assert!(g.block(0, 0, BLOCK_SIZE).is_some());
        assert!(g.block(0, 16_384, BLOCK_SIZE).is_some());
        assert!(g.block(0, 100, BLOCK_SIZE).is_none());
        assert!(g.block(1, 0, 40_000 - 32_768).is_some());
        assert!(g.block(1, 0, BLOCK_SIZE).is_none());
        assert!(g.block(2, 0, 1).is_none());
        assert!(g.range_in_piece(1, 0, 7232).is_some());
        assert!(g.range_in_piece(1, 1, 7232).is_none());
        assert!(g.range_in_piece(0, u32::MAX, 2).is_none());
    }

    #[test]
    fn rejects_bad_geometry() {
        assert_eq!(Geometry::new(0, 16384), Err(GeometryError::Empty));
        assert!(Geometry::new(1, 0).is_err());
        assert!(Geometry::new(u64::MAX, 16384).is_err());
    }
}
