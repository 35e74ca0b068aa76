//! Property tests: creating then parsing a torrent round-trips, magnet links round-trip, and the
//! parser never panics on arbitrary or mutated input.

use std::fs;

use metainfo::{Info, InfoHash, Magnet, Metainfo, TorrentBuilder};
use proptest::prelude::*;
use sha1::{Digest, Sha1};

/// A small valid multi-file torrent with a padding file, trackers and extras, built by hand.
fn sample_torrent() -> Vec<u8> {
    let mut pieces = Vec::new();
    for i in 0..3u8 {
        pieces.extend_from_slice(&[i; 20]);
    }
    let mut info = b"d5:filesl".to_vec();
    info.extend_from_slice(b"d6:lengthi100e4:pathl1:aee");
    info.extend_from_slice(b"d4:attr1:p6:lengthi16284e4:pathl4:.pad5:16284ee");
    info.extend_from_slice(b"d6:lengthi20000e4:pathl3:sub5:b.binee");
    info.extend_from_slice(b"e4:name3:top12:piece lengthi16384e6:pieces60:");
    info.extend_from_slice(&pieces);
    info.extend_from_slice(b"7:privatei1ee");
    let mut t =
        b"d8:announce17:http://t/announce13:announce-listll17:http://t/announceel9:udp://u:1ee"
            .to_vec();
    t.extend_from_slice(b"7:comment2:hi4:info");
    t.extend_from_slice(&info);
    t.extend_from_slice(b"8:url-list9:http://w/e");
    t
}

#[test]
fn sample_torrent_is_valid() {
    let m = Metainfo::from_bytes(&sample_torrent()).unwrap();
    assert_eq!(m.info.files().len(), 3);
    assert!(m.info.is_private());
}

/// An info dictionary with keys out of order plus an unknown key, as interop tests need: our
/// info-hash is the SHA-1 of exactly these bytes, and `Info::from_bytes` on the raw info agrees.
#[test]
fn unsorted_info_with_unknown_key_hashes_exact_bytes() {
    let info = b"d12:piece lengthi16384e4:name5:x.bin6:lengthi5e7:unknownli1ei2ee6:pieces20:AAAAAAAAAAAAAAAAAAAAe";
    let mut t = b"d4:info".to_vec();
    t.extend_from_slice(info);
    t.push(b'e');
    let m = Metainfo::from_bytes(&t).unwrap();
    let want = InfoHash(Sha1::digest(info).into());
    assert_eq!(m.info_hash, want);
    assert_eq!(&m.info.raw_info()[..], info);
    assert_eq!(Info::from_bytes(info).unwrap().info_hash(), want);
}

/// File layouts: (relative path components, length).
fn layout() -> impl Strategy<Value = Vec<(Vec<String>, usize)>> {
    let comp = prop_oneof![
        "[a-c]",
        "[A-B][a-z]{0,3}",
        Just("é".to_owned()),
        Just(".h".to_owned())
    ];
    proptest::collection::vec(
        (proptest::collection::vec(comp, 1..4), 0usize..70_000),
        1..7,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn create_then_parse_round_trips(files in layout(), pl_shift in 14u32..17) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(&root).unwrap();
        // Write files, skipping ones that collide with an existing file or directory.
        let mut written: Vec<(Vec<String>, Vec<u8>)> = Vec::new();
        for (i, (comps, len)) in files.iter().enumerate() {
            let path = comps.iter().fold(root.clone(), |p, c| p.join(c));
            let clash = written.iter().any(|(w, _)| {
                w.starts_with(comps) || comps.starts_with(w)
            });
            if clash {
                continue;
            }
            let bytes: Vec<u8> = (0..*len).map(|j| (j * 31 + i * 7) as u8).collect();
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &bytes).unwrap();
            written.push((comps.clone(), bytes));
        }
        let total: usize = written.iter().map(|(_, b)| b.len()).sum();
        let result = TorrentBuilder::new(&root)
            .piece_length(1 << pl_shift)
            .trackers(vec![vec!["http://t/announce".into()]])
            .build(&|_| {});
        if total == 0 {
            prop_assert!(result.is_err());
            return Ok(());
        }
        let m = result.unwrap();
        let parsed = Metainfo::from_bytes(m.as_bytes()).unwrap();
        prop_assert_eq!(&parsed, &m);
        written.sort_by(|a, b| {
            a.0.iter().map(|c| c.as_bytes()).cmp(b.0.iter().map(|c| c.as_bytes()))
        });
        let got: Vec<Vec<String>> = m.info.files().iter().map(|f| f.path[1..].to_vec()).collect();
        let want: Vec<Vec<String>> = written.iter().map(|(c, _)| c.clone()).collect();
        prop_assert_eq!(got, want);
        let stream: Vec<u8> = written.iter().flat_map(|(_, b)| b.iter().copied()).collect();
        let want_pieces: Vec<[u8; 20]> =
            stream.chunks(1 << pl_shift).map(|c| Sha1::digest(c).into()).collect();
        prop_assert_eq!(m.info.pieces().to_vec().unwrap(), want_pieces);
        // Spans of every piece tile exactly the piece, in order.
        let g = m.info.geometry();
        for p in g.pieces() {
            let mut at = g.piece_offset(p);
            for s in m.info.file_spans(p) {
                prop_assert_eq!(s.torrent_offset, at);
                let f = &m.info.files()[s.file];
                prop_assert_eq!(f.offset + s.file_offset, at);
                prop_assert!(s.len > 0 && s.file_offset + s.len <= f.length);
                at += s.len;
            }
            prop_assert_eq!(at, g.piece_offset(p) + u64::from(g.piece_len(p)));
        }
    }
}

proptest! {
    #[test]
    fn magnet_format_then_parse_round_trips(
        hash in any::<[u8; 20]>(),
        name in proptest::option::of("\\PC{0,20}"),
        trackers in proptest::collection::vec("[a-z]{1,5}://[ -~]{0,20}", 0..4),
        peers in proptest::collection::vec("[0-9.]{1,15}:[0-9]{1,5}", 0..4),
    ) {
        let dedup = |v: Vec<String>| {
            let mut out: Vec<String> = Vec::new();
            for x in v {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
            out
        };
        let m = Magnet {
            info_hash: InfoHash(hash),
            display_name: name,
            trackers: dedup(trackers),
            peers: dedup(peers),
        };
        prop_assert_eq!(Magnet::parse(&m.to_string()), Ok(m));
    }

    #[test]
    fn magnet_parse_never_panics(s in "\\PC{0,80}") {
        let _ = Magnet::parse(&s);
        let _ = Magnet::parse(&format!("magnet:?{s}"));
    }

    #[test]
    fn from_bytes_never_panics_on_arbitrary_input(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Metainfo::from_bytes(&bytes);
        let _ = Info::from_bytes(&bytes);
    }

    #[test]
    fn from_bytes_never_panics_on_mutated_torrents(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)
    ) {
        let mut t = sample_torrent();
        for (at, byte, op) in edits {
            let i = at.index(t.len());
            match op {
                0 => t[i] = byte,
                1 => t.insert(i, byte),
                _ => { t.remove(i); }
            }
        }
        if let Ok(m) = Metainfo::from_bytes(&t) {
            // Whatever parses must satisfy the invariants the rest of the code relies on.
            prop_assert_eq!(m.info_hash, InfoHash(Sha1::digest(m.info.raw_info()).into()));
            let end = m.info.files().last().map(|f| f.offset + f.length);
            prop_assert_eq!(end, Some(m.info.total_length()));
            prop_assert_eq!(m.info.pieces().len() as u32, m.info.geometry().piece_count());
        }
    }
}
