//! Property tests: random file layouts (zero-length and padding files included), random writes
//! and reads, checked against an in-memory model of the torrent's bytes.

use proptest::prelude::*;
use sha1::{Digest, Sha1};
use storage::{FileSpec, HandlePool, Layout, OpenOptions, Storage};

/// A random layout: (length, pad) per file, and a piece length.
fn layouts() -> impl Strategy<Value = (Vec<(u64, bool)>, u64)> {
    let file = (
        prop_oneof![Just(0u64), 1u64..3000],
        prop::bool::weighted(0.2),
    );
    (
        prop::collection::vec(file, 1..8),
        prop_oneof![1u64..64, 64u64..5000],
    )
        .prop_filter("torrent has bytes", |(files, _)| {
            files.iter().map(|f| f.0).sum::<u64>() > 0
        })
}

fn build(files: &[(u64, bool)], piece: u64, content: &[u8]) -> Layout {
    let specs = files
        .iter()
        .enumerate()
        .map(|(i, &(length, pad))| FileSpec {
            path: vec!["t".into(), format!("d{}", i % 3), format!("f{i}")],
            length,
            pad,
        })
        .collect();
    let hashes: Vec<[u8; 20]> = content
        .chunks(piece as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    Layout::new(piece, specs, hashes).expect("generated layout is valid")
}

/// Random torrent content, zero on padding.
fn content(files: &[(u64, bool)], seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    files
        .iter()
        .flat_map(|&(len, pad)| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if pad { 0 } else { x as u8 }
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_writes_and_reads_round_trip(
        (files, piece) in layouts(),
        seed in any::<u64>(),
        ops in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<bool>()), 1..40),
    ) {
        let src = content(&files, seed);
        let layout = build(&files, piece, &src);
        let g = *layout.geometry();
        let dir = tempfile::tempdir().unwrap();
        let opts = OpenOptions { pool: Some(HandlePool::new(2)), ..OpenOptions::default() };
        let s = Storage::new(layout, dir.path(), opts).unwrap();
        // The model: what reads must return. Unwritten bytes are zeros (sparse files).
        let mut model = vec![0u8; src.len()];
        for (pi, a, b, is_write) in ops {
            let p = g.piece(pi.index(g.piece_count() as usize) as u32).unwrap();
            let plen = g.piece_len(p) as usize;
            let (x, y) = (a.index(plen + 1), b.index(plen + 1));
            let (begin, end) = (x.min(y), x.max(y));
            let off = g.piece_offset(p) as usize + begin;
            if is_write {
                s.write(p, begin as u32, &src[off..off + end - begin]).unwrap();
                model[off..off + end - begin].copy_from_slice(&src[off..off + end - begin]);
            } else {
                let mut buf = vec![0xa5; end - begin];
                s.read(p, begin as u32, &mut buf).unwrap();
                prop_assert_eq!(&buf[..], &model[off..off + end - begin]);
            }
        }
        for p in g.pieces() {
            let off = g.piece_offset(p) as usize;
            let mut buf = vec![0xa5; g.piece_len(p) as usize];
            s.read_piece(p, &mut buf).unwrap();
            prop_assert_eq!(&buf[..], &model[off..off + buf.len()]);
        }
        prop_assert!(s.open_handles() <= 2);
    }

    #[test]
    fn verify_all_finds_exactly_the_complete_pieces(
        (files, piece) in layouts(),
        seed in any::<u64>(),
        picks in prop::collection::vec(any::<bool>(), 64),
        threads in 1usize..4,
    ) {
        let src = content(&files, seed);
        let layout = build(&files, piece, &src);
        let g = *layout.geometry();
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(layout, dir.path(), OpenOptions::default()).unwrap();
        let mut want = Vec::new();
        for p in g.pieces() {
            let off = g.piece_offset(p) as usize;
            let data = &src[off..off + g.piece_len(p) as usize];
            let written = picks[p.idx() % picks.len()];
            if written {
                s.write_piece(p, data).unwrap();
            }
            // An unwritten piece is zeros on disk: present only if its content is all zeros.
            if written || data.iter().all(|&b| b == 0) {
                want.push(p.get());
            }
        }
        let have = s.verify_all(threads, &|_| {}).unwrap();
        prop_assert_eq!(have.iter_ones().collect::<Vec<_>>(), want);
    }
}
