//! .torrent files and bare info dictionaries (BEP 9 metadata): `Metainfo::from_bytes` and
//! `Info::from_bytes`. What they accept must be self-consistent: the info-hash is the SHA-1 of
//! the raw info bytes, files tile the torrent, pieces cover it, and the magnet link made from a
//! torrent parses back to itself.

use metainfo::{Info, Magnet, Metainfo};
use sha1::{Digest, Sha1};

/// Pieces whose file spans are checked per input (the rest are covered by the same code).
const SPAN_CHECKS: u32 = 64;

/// Parses `data` as a .torrent and as a bare info dictionary.
pub fn run(data: &[u8]) {
    if let Ok(m) = Metainfo::from_bytes(data) {
        assert_eq!(m.as_bytes(), data, "raw bytes not kept as given");
        assert_eq!(m.info_hash, m.info.info_hash());
        check_info(&m.info);
        let magnet = m.magnet();
        let text = magnet.to_string();
        assert_eq!(
            Magnet::parse(&text).as_ref(),
            Ok(&magnet),
            "magnet link {text:?} does not parse back"
        );
    }
    if let Ok(info) = Info::from_bytes(data) {
        assert_eq!(info.raw_info(), data, "raw info bytes not kept as given");
        check_info(&info);
    }
}

fn check_info(info: &Info) {
    let hash: [u8; 20] = Sha1::digest(info.raw_info()).into();
    assert_eq!(
        info.info_hash().0,
        hash,
        "info-hash is not the SHA-1 of the raw info"
    );
    assert_eq!(
        Info::from_bytes(info.raw_info()).as_ref(),
        Ok(info),
        "raw info does not parse back to the same Info"
    );
    assert!(!info.name().is_empty(), "empty name accepted");

    let g = info.geometry();
    assert_eq!(g.piece_count() as usize, info.pieces().len());
    assert_eq!(g.total_len(), info.total_length());
    assert_eq!(g.nominal_piece_len(), info.piece_length());
    let mut offset = 0u64;
    for f in info.files() {
        assert_eq!(f.offset, offset, "files do not lie end to end");
        offset = f.offset.checked_add(f.length).expect("file end overflows");
        if !f.pad {
            assert!(!f.path.is_empty(), "a data file with no path");
        }
    }
    assert_eq!(
        offset,
        info.total_length(),
        "files do not add up to the total"
    );

    for p in g.pieces().take(SPAN_CHECKS as usize) {
        assert!(info.piece_hash(p).is_some());
        let mut pos = g.piece_offset(p);
        for s in info.file_spans(p) {
            assert!(s.len > 0);
            assert_eq!(s.torrent_offset, pos, "file spans leave a gap");
            let f = info.files().get(s.file).expect("span names a file");
            assert_eq!(f.offset + s.file_offset, s.torrent_offset);
            assert!(s.file_offset + s.len <= f.length, "span beyond its file");
            pos += s.len;
        }
        assert_eq!(pos - g.piece_offset(p), u64::from(g.piece_len(p)));
    }
    // Storage checks paths again; it must not panic on anything the parser let through.
    let _ = storage::Layout::from_info(info);
}
