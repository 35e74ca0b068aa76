use proptest::prelude::*;
use sha1::{Digest, Sha1};

use super::*;

fn reference(m: &[u8]) -> [u8; 20] {
    Sha1::digest(m).into()
}

/// The kernels this CPU runs, the portable one always. Says which ones it cannot test.
fn kernels() -> Vec<Kernel> {
    let mut v = vec![Kernel::Portable];
    #[cfg(target_arch = "x86_64")]
    {
        if ni::available() {
            v.push(Kernel::ShaNi);
        } else {
            eprintln!("SHA-NI pair kernel not tested: this CPU lacks the SHA extensions");
        }
        if avx512::available() {
            v.push(Kernel::Avx512);
        } else {
            eprintln!("AVX-512 kernel not tested: this CPU lacks AVX-512F/BW");
        }
    }
    v
}

/// `n` distinct messages of `len` bytes.
fn messages(n: usize, len: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|m| {
            (0..len)
                .map(|i| (i * (2 * m + 7) + m) as u8 ^ (i >> 8) as u8)
                .collect()
        })
        .collect()
}

fn hash_with(kernel: Kernel, msgs: &[Vec<u8>], cuts: &[usize]) -> Vec<[u8; 20]> {
    let mut h = Sha1Lanes::with_kernel(msgs.len(), kernel);
    for w in cuts.windows(2) {
        let parts: Vec<&[u8]> = msgs.iter().map(|m| &m[w[0]..w[1]]).collect();
        h.update(&parts);
    }
    h.finalize()
}

#[test]
fn known_answers() {
    // FIPS 180 examples: "abc" and the empty message.
    let d = digest_all(&[b"abc", b"abc"]);
    let e = digest_all(&[b"", b"", b""]);
    let hex = |d: &[u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert_eq!(hex(&d[1]), "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_eq!(hex(&e[2]), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

#[test]
fn every_length_around_the_padding_boundaries_every_kernel_every_lane_count() {
    for kernel in kernels() {
        for n in [1, 2, 3, 5, 6, 15, 16] {
            let msgs = messages(n, 200);
            for len in 0..=200 {
                let cut: Vec<Vec<u8>> = msgs.iter().map(|m| m[..len].to_vec()).collect();
                let want: Vec<_> = cut.iter().map(|m| reference(m)).collect();
                assert_eq!(
                    hash_with(kernel, &cut, &[0, len]),
                    want,
                    "{kernel:?} n {n} len {len}"
                );
            }
        }
    }
}

#[test]
fn whole_pieces_in_steps() {
    let msgs = messages(16, 256 * 1024);
    let want: Vec<_> = msgs.iter().map(|m| reference(m)).collect();
    let cuts: Vec<usize> = (0..=4).map(|i| i * 64 * 1024).collect();
    for kernel in kernels() {
        assert_eq!(hash_with(kernel, &msgs, &cuts), want, "{kernel:?}");
    }
}

#[test]
fn the_measured_break_even_agrees_with_the_kernel_choice() {
    let from = avx512_from();
    if let Some(from) = from {
        assert!((2..=MAX_LANES).contains(&from), "break-even at {from}");
    }
    for n in 1..=MAX_LANES {
        let wide = Sha1Lanes::new(n).kernel == Kernel::Avx512;
        assert_eq!(wide, from.is_some_and(|f| n >= f), "{n} messages");
    }
    assert_eq!(best_lanes() == MAX_LANES, from.is_some());
    // Measured once: the same answer every time.
    assert_eq!(avx512_from(), from);
}

#[test]
fn digest_all_takes_more_than_sixteen() {
    let msgs = messages(37, 1000);
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let want: Vec<_> = msgs.iter().map(|m| reference(m)).collect();
    assert_eq!(digest_all(&refs), want);
}

#[test]
#[should_panic(expected = "equal length")]
fn unequal_lengths_are_refused() {
    let _ = digest_all(&[b"ab", b"abc"]);
}

#[test]
#[should_panic(expected = "one part per message")]
fn a_missing_part_is_refused() {
    Sha1Lanes::new(3).update(&[b"ab", b"ab"]);
}

proptest! {
    #[test]
    fn matches_sha1_whatever_the_split(
        (msgs, cuts) in (1usize..=16, 0usize..1500).prop_flat_map(|(n, len)| (
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), len), n),
            proptest::collection::vec(0..=len, 0..6),
        ))
    ) {
        let len = msgs[0].len();
        let mut cuts = cuts;
        cuts.push(0);
        cuts.push(len);
        cuts.sort_unstable();
        let want: Vec<_> = msgs.iter().map(|m| reference(m)).collect();
        for kernel in kernels() {
            prop_assert_eq!(hash_with(kernel, &msgs, &cuts), want.clone());
        }
    }
}
