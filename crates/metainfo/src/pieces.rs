//! The piece hashes of a torrent: 20-byte SHA-1s end to end, as they stand in the info
//! dictionary's `pieces` string.
//!
//! [`PieceHashes`] is a shared view of those bytes (normally into the info dictionary a parsed
//! torrent keeps), so the parsed [`Info`](crate::Info), storage's layout and the metadata served
//! to peers can all hold the hashes without copying them.

use std::fmt;

use bytes::Bytes;

/// The SHA-1 of every piece, in order; cloning shares the bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PieceHashes(Bytes);

impl PieceHashes {
    /// The hashes in `bytes` (20 per piece), or `None` if its length is not a multiple of 20.
    pub fn from_bytes(bytes: Bytes) -> Option<PieceHashes> {
        bytes.len().is_multiple_of(20).then_some(PieceHashes(bytes))
    }
    /// The number of pieces.
    pub fn len(&self) -> usize {
        self.0.len() / 20
    }
    /// True if there are no hashes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The hash of piece `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&[u8; 20]> {
        let start = i.checked_mul(20)?;
        let slice = self.0.get(start..start.checked_add(20)?)?;
        <&[u8; 20]>::try_from(slice).ok()
    }
    /// Every hash, in piece order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8; 20]> + '_ {
        self.0
            .chunks_exact(20)
            .filter_map(|c| <&[u8; 20]>::try_from(c).ok())
    }
    /// The hashes end to end, 20 bytes per piece.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    /// A copy of every hash.
    pub fn to_vec(&self) -> Vec<[u8; 20]> {
        self.iter().copied().collect()
    }
}

impl From<Vec<[u8; 20]>> for PieceHashes {
    fn from(hashes: Vec<[u8; 20]>) -> PieceHashes {
        PieceHashes(Bytes::from(hashes.concat()))
    }
}

impl From<&[[u8; 20]]> for PieceHashes {
    fn from(hashes: &[[u8; 20]]) -> PieceHashes {
        PieceHashes(Bytes::from(hashes.concat()))
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
        assert_eq!(h.iter().count(), 3);
        assert_eq!(h.as_bytes(), &raw[..]);
        assert_eq!(PieceHashes::from(h.to_vec()), h);
        assert!(PieceHashes::from_bytes(Bytes::from_static(&[0; 21])).is_none());
        assert!(PieceHashes::default().is_empty());
        assert_eq!(format!("{h:?}"), "PieceHashes(3 pieces)");
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
