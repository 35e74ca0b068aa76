use proptest::prelude::*;
use sha1::{Digest, Sha1};

use super::*;

fn reference(m: &[u8]) -> [u8; 20] {
    Sha1::digest(m).into()
}

/// Both paths: the interleaved one where the CPU has it, and the portable one always.
fn hashers() -> Vec<Sha1x2> {
    let mut portable = Sha1x2::new();
    portable.fast = false;
    let mut v = vec![portable];
    if interleaved() {
        v.push(Sha1x2::new());
    } else {
        eprintln!("interleaved SHA-NI path not tested: this CPU lacks the SHA extensions");
    }
    v
}

#[test]
fn known_answers() {
    // FIPS 180 examples: "abc" and the empty message.
    let [abc, empty] = [&b"abc"[..], b""].map(|m| {
        let [d, _] = digest2(m, m);
        hex(&d)
    });
    assert_eq!(abc, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(empty, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

fn hex(d: &[u8; 20]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_length_around_the_padding_boundaries() {
    let a: Vec<u8> = (0..300u32).map(|i| (i * 7 + 1) as u8).collect();
    let b: Vec<u8> = (0..300u32).map(|i| (i * 13 + 5) as u8).collect();
    for len in 0..=300 {
        for h in hashers() {
            let mut h = h;
            h.update(&a[..len], &b[..len]);
            let [da, db] = h.finalize();
            assert_eq!(da, reference(&a[..len]), "len {len}");
            assert_eq!(db, reference(&b[..len]), "len {len}");
        }
    }
}

#[test]
fn a_whole_piece() {
    let a: Vec<u8> = (0..256 * 1024u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let b: Vec<u8> = a.iter().rev().copied().collect();
    for mut h in hashers() {
        h.update(&a, &b);
        assert_eq!(h.finalize(), [reference(&a), reference(&b)]);
    }
}

#[test]
#[should_panic(expected = "equal length")]
fn unequal_lengths_are_refused() {
    let _ = digest2(b"ab", b"abc");
}

proptest! {
    #[test]
    fn matches_sha1_whatever_the_split(
        (a, b, cuts) in (0usize..2000).prop_flat_map(|n| (
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(any::<u8>(), n),
            proptest::collection::vec(0..=n, 0..6),
        ))
    ) {
        let mut cuts = cuts;
        cuts.push(0);
        cuts.push(a.len());
        cuts.sort_unstable();
        for mut h in hashers() {
            for w in cuts.windows(2) {
                h.update(&a[w[0]..w[1]], &b[w[0]..w[1]]);
            }
            prop_assert_eq!(h.finalize(), [reference(&a), reference(&b)]);
        }
    }
}
