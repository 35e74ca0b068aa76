//! The piece hashes of a torrent: 20-byte SHA-1s end to end, as they stand in the info
//! dictionary's `pieces` string.
//!
//! [`PieceHashes`] is a shared view of those bytes: normally into the info dictionary a parsed
//! torrent keeps, so the parsed [`Info`](crate::Info), storage's layout and the metadata served
//! to peers can all hold the hashes without copying them; or into a file holding that
//! dictionary ([`Info::store_in`](crate::Info::store_in)), so a torrent of any size costs no
//! memory for them.

use std::fmt;

use bytes::Bytes;

use crate::stored::StoredBytes;

/// The SHA-1 of every piece, in order; cloning shares the bytes.
#[derive(Clone, Default)]
pub struct PieceHashes {
    /// Where the hashes are: `count` of them from byte `start` on.
    src: StoredBytes,
    start: usize,
    count: usize,
}

impl PieceHashes {
    /// The hashes in `bytes` (20 per piece), or `None` if its length is not a multiple of 20.
    pub fn from_bytes(bytes: Bytes) -> Option<PieceHashes> {
        bytes.len().is_multiple_of(20).then(|| PieceHashes {
            count: bytes.len() / 20,
            src: StoredBytes::from(bytes),
            start: 0,
        })
    }
    /// The `count` hashes at byte `start` of `src`, or `None` if they are not all inside it.
    pub fn within(src: StoredBytes, start: usize, count: usize) -> Option<PieceHashes> {
        let end = count.checked_mul(20)?.checked_add(start)?;
        (end <= src.len()).then_some(PieceHashes { src, start, count })
    }
    /// The same hashes at the same place in `src`, a copy of the bytes these are a view of.
    pub(crate) fn rebased(&self, src: StoredBytes) -> Option<PieceHashes> {
        PieceHashes::within(src, self.start, self.count)
    }
    /// The number of pieces.
    pub fn len(&self) -> usize {
        self.count
    }
    /// True if there are no hashes.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// True if the hashes are held in memory (not read from a file).
    pub fn is_in_memory(&self) -> bool {
        self.src.is_in_memory()
    }
    /// The hash of piece `i`, if there is one (and, from a file, if it could be read).
    pub fn get(&self, i: usize) -> Option<[u8; 20]> {
        if i >= self.count {
            return None;
        }
        let mut h = [0u8; 20];
        self.src
            .read_into(self.start.checked_add(i.checked_mul(20)?)?, &mut h)
            .then_some(h)
    }
    /// The hashes end to end, 20 bytes per piece, when they are held in memory.
    pub fn in_memory(&self) -> Option<&[u8]> {
        self.src
            .in_memory()?
            .get(self.start..self.start + self.count * 20)
    }
    /// A copy of every hash (`None` if one could not be read).
    pub fn to_vec(&self) -> Option<Vec<[u8; 20]>> {
        (0..self.count).map(|i| self.get(i)).collect()
    }
}

impl PartialEq for PieceHashes {
    /// The same hashes, wherever they are held.
    fn eq(&self, other: &PieceHashes) -> bool {
        if self.count != other.count {
            return false;
        }
        match (self.in_memory(), other.in_memory()) {
            (Some(a), Some(b)) => a == b,
            _ => (0..self.count).all(|i| self.get(i) == other.get(i)),
        }
    }
}

impl Eq for PieceHashes {}

impl From<Vec<[u8; 20]>> for PieceHashes {
    fn from(hashes: Vec<[u8; 20]>) -> PieceHashes {
        PieceHashes::from(&hashes[..])
    }
}

impl From<&[[u8; 20]]> for PieceHashes {
    fn from(hashes: &[[u8; 20]]) -> PieceHashes {
        PieceHashes {
            count: hashes.len(),
            src: StoredBytes::from(Bytes::from(hashes.concat())),
            start: 0,
        }
    }
}

impl fmt::Debug for PieceHashes {
    /// The count only: a large torrent has hundreds of thousands of hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PieceHashes({} pieces)", self.len())
    }
}

/// The part of `whole` that `part` borrows (`part` must be a slice of `whole`'s bytes, as a
/// decoded value of them is), without copying; `None` if it is not inside `whole`.
pub(crate) fn shared_slice(whole: &Bytes, part: &[u8]) -> Option<Bytes> {
    let start = part.as_ptr().addr().checked_sub(whole.as_ptr().addr())?;
    let end = start.checked_add(part.len())?;
    (end <= whole.len()).then(|| whole.slice(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_index_and_convert() {
        let raw: Vec<u8> = (0..60).collect();
        let h = PieceHashes::from_bytes(Bytes::from(raw.clone())).unwrap();
        assert_eq!((h.len(), h.is_empty()), (3, false));
        assert_eq!(h.get(1).map(|x| x[0]), Some(20));
        assert_eq!(h.get(2).map(|x| x[19]), Some(59));
        assert_eq!(h.get(3), None);
        assert_eq!(h.get(usize::MAX), None);
        assert_eq!(h.in_memory(), Some(&raw[..]));
        assert_eq!(PieceHashes::from(h.to_vec().unwrap()), h);
        assert!(PieceHashes::from_bytes(Bytes::from_static(&[0; 21])).is_none());
        assert!(PieceHashes::default().is_empty());
        assert_eq!(format!("{h:?}"), "PieceHashes(3 pieces)");
    }

    #[test]
    fn hashes_in_a_file_read_as_in_memory() {
        // Two hashes at byte 7 of 60 stored bytes.
        let raw: Vec<u8> = (0..60).collect();
        let file = StoredBytes::to_file(&raw, tempfile::tempfile().unwrap()).unwrap();
        let h = PieceHashes::within(file, 7, 2).unwrap();
        assert!(!h.is_in_memory() && h.in_memory().is_none());
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(0).map(|x| x[0]), Some(7));
        assert_eq!(h.get(1).map(|x| x[19]), Some(46));
        assert_eq!(h.get(2), None);
        let mem = PieceHashes::from_bytes(Bytes::from(raw[7..47].to_vec())).unwrap();
        assert_eq!(h, mem);
        assert_ne!(
            h,
            PieceHashes::from_bytes(Bytes::from(raw[8..48].to_vec())).unwrap()
        );
        // Not all inside the bytes.
        let small = StoredBytes::from(Bytes::from(raw.clone()));
        assert!(PieceHashes::within(small.clone(), 41, 1).is_none());
        assert!(PieceHashes::within(small.clone(), 40, 1).is_some());
        assert!(PieceHashes::within(small, usize::MAX, 1).is_none());
    }

    #[test]
    fn shared_slice_only_inside() {
        let whole = Bytes::from(b"0123456789".to_vec());
        let part = &whole[2..5];
        assert_eq!(shared_slice(&whole, part).as_deref(), Some(&b"234"[..]));
        assert_eq!(
            shared_slice(&whole, &whole[10..]).as_deref(),
            Some(&b""[..])
        );
        let other = b"234".to_vec();
        assert_eq!(shared_slice(&whole, &other), None);
    }
}
