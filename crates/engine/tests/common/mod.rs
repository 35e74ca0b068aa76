//! What the simulation tests share: deterministic content, handshake bits, an info dictionary.

#![allow(dead_code)] // each test binary uses its own part

use bytes::Bytes;
use metainfo::Geometry;
use sha1::{Digest, Sha1};
use wire::Reserved;

/// Deterministic content for byte `i` of the torrent.
pub fn byte_at(i: u64) -> u8 {
    (i.wrapping_mul(2_654_435_761) >> 13) as u8
}

/// The whole torrent's content.
pub fn content(g: &Geometry) -> Vec<u8> {
    (0..g.total_len()).map(byte_at).collect()
}

/// Reserved bits with the extension protocol, and Fast if `fast`.
pub fn reserved(fast: bool) -> Reserved {
    let mut r = Reserved::default();
    r.set_extension_protocol(true);
    r.set_fast(fast);
    r
}

/// A single-file info dictionary for `content` cut by `g`, padded with an unknown key of
/// `pad` bytes (metadata of several 16 KiB pieces without a huge torrent).
pub fn info_dict(g: &Geometry, content: &[u8], pad: usize) -> Bytes {
    let mut hashes = Vec::with_capacity(20 * g.piece_count() as usize);
    for p in g.pieces() {
        let start = g.piece_offset(p) as usize;
        let end = start + g.piece_len(p) as usize;
        hashes.extend_from_slice(&Sha1::digest(&content[start..end]));
    }
    let mut out = format!(
        "d6:lengthi{}e4:name8:test.bin12:piece lengthi{}e6:pieces{}:",
        g.total_len(),
        g.nominal_piece_len(),
        hashes.len()
    )
    .into_bytes();
    out.extend_from_slice(&hashes);
    if pad > 0 {
        out.extend_from_slice(format!("8:zpadding{pad}:").as_bytes());
        out.extend(std::iter::repeat_n(b'x', pad));
    }
    out.push(b'e');
    out.into()
}
