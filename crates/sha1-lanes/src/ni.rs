//! Two SHA-1 compressions interleaved on the CPU's SHA extensions (SHA-NI).
//!
//! One SHA-1 stream on SHA-NI waits on the latency of each `sha1rnds4` (every four rounds need
//! the previous four's result); two independent streams fill those waits. The round structure
//! is Intel's published SHA-NI schedule: 20 groups of four rounds, each group feeding the next
//! message word (`sha1nexte`) while the schedule for four groups ahead is built with
//! `sha1msg1`, XOR and `sha1msg2`.

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_extract_epi32, _mm_set_epi32, _mm_set_epi64x, _mm_sha1msg1_epu32,
    _mm_sha1msg2_epu32, _mm_sha1nexte_epu32, _mm_sha1rnds4_epu32, _mm_shuffle_epi8, _mm_xor_si128,
};

use crate::State;

/// Whether this CPU runs [`compress2`].
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("sha")
        && std::is_x86_feature_detected!("sse2")
        && std::is_x86_feature_detected!("ssse3")
        && std::is_x86_feature_detected!("sse4.1")
}

/// Four big-endian message words of `block`, starting at word `4 * i`, with the first word in
/// the highest lane (the order `sha1rnds4` takes): the 16 bytes as they lie in memory (two
/// adjacent 8-byte reads, which the compiler joins into one load), byte-reversed.
#[inline]
#[target_feature(enable = "sse2,ssse3")]
fn words(block: &[u8; 64], i: usize) -> __m128i {
    let (q, _) = block.as_chunks::<8>();
    let bytes = _mm_set_epi64x(
        i64::from_le_bytes(q[2 * i + 1]),
        i64::from_le_bytes(q[2 * i]),
    );
    let reverse = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
    _mm_shuffle_epi8(bytes, reverse)
}

/// One group of four rounds (`$i` of 0..20, round function `$f`) of one stream: its `abcd`,
/// its two E registers and its four message registers.
macro_rules! group {
    ($f:literal, $i:literal, $abcd:ident, $e:ident, $m:ident) => {{
        const I: usize = $i;
        const CUR: usize = I % 2;
        if I == 0 {
            $e[0] = _mm_add_epi32($e[0], $m[0]);
        } else {
            $e[CUR] = _mm_sha1nexte_epu32($e[CUR], $m[I % 4]);
        }
        $e[1 - CUR] = $abcd;
        if I >= 3 && I <= 18 {
            $m[(I + 1) % 4] = _mm_sha1msg2_epu32($m[(I + 1) % 4], $m[I % 4]);
        }
        $abcd = _mm_sha1rnds4_epu32::<$f>($abcd, $e[CUR]);
        if I >= 1 && I <= 16 {
            $m[(I + 3) % 4] = _mm_sha1msg1_epu32($m[(I + 3) % 4], $m[I % 4]);
        }
        if I >= 2 && I <= 17 {
            $m[(I + 2) % 4] = _mm_xor_si128($m[(I + 2) % 4], $m[I % 4]);
        }
    }};
}

/// Compresses `a[k]` into `sa` and `b[k]` into `sb` for every `k`; `a` and `b` have the same
/// number of blocks.
// rustc's liveness check does not follow the message registers through the unrolled groups
// and calls one XOR of the last groups dead; removing it fails every test.
#[allow(unused_assignments)]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn compress2(sa: &mut State, sb: &mut State, a: &[[u8; 64]], b: &[[u8; 64]]) {
    debug_assert_eq!(a.len(), b.len());
    // ABCD with A in the highest lane; E alone in the highest lane of its register.
    let load = |s: &State| {
        (
            _mm_set_epi32(s[0] as i32, s[1] as i32, s[2] as i32, s[3] as i32),
            _mm_set_epi32(s[4] as i32, 0, 0, 0),
        )
    };
    let (mut abcd_a, e0a) = load(sa);
    let (mut abcd_b, e0b) = load(sb);
    let mut ea = [e0a, e0a];
    let mut eb = [e0b, e0b];
    for (ba, bb) in a.iter().zip(b) {
        let (save_abcd_a, save_e_a) = (abcd_a, ea[0]);
        let (save_abcd_b, save_e_b) = (abcd_b, eb[0]);
        let mut ma = [words(ba, 0), words(ba, 1), words(ba, 2), words(ba, 3)];
        let mut mb = [words(bb, 0), words(bb, 1), words(bb, 2), words(bb, 3)];
        macro_rules! both {
            ($f:literal: $($i:literal)*) => {
                $(
                    group!($f, $i, abcd_a, ea, ma);
                    group!($f, $i, abcd_b, eb, mb);
                )*
            };
        }
        both!(0: 0 1 2 3 4);
        both!(1: 5 6 7 8 9);
        both!(2: 10 11 12 13 14);
        both!(3: 15 16 17 18 19);
        // The last group (odd) left the running ABCD's E in `e[0]`.
        ea[0] = _mm_sha1nexte_epu32(ea[0], save_e_a);
        abcd_a = _mm_add_epi32(abcd_a, save_abcd_a);
        eb[0] = _mm_sha1nexte_epu32(eb[0], save_e_b);
        abcd_b = _mm_add_epi32(abcd_b, save_abcd_b);
    }
    let store = |s: &mut State, abcd: __m128i, e: __m128i| {
        *s = [
            _mm_extract_epi32::<3>(abcd) as u32,
            _mm_extract_epi32::<2>(abcd) as u32,
            _mm_extract_epi32::<1>(abcd) as u32,
            _mm_extract_epi32::<0>(abcd) as u32,
            _mm_extract_epi32::<3>(e) as u32,
        ];
    };
    store(sa, abcd_a, ea[0]);
    store(sb, abcd_b, eb[0]);
}
