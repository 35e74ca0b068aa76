//! Sixteen SHA-1 compressions at once, one message per 32-bit lane of AVX-512 registers.
//!
//! SHA-1's rounds are 32-bit additions, rotations and three-input boolean functions; AVX-512
//! does each for 16 lanes in one instruction (`vpternlogd` computes a round function in one).
//! Each 64-byte block of the 16 messages is loaded as 16 rows and transposed, so that register
//! `w[i]` holds message word `i` of every lane.

use std::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_rol_epi32, _mm512_set_epi64,
    _mm512_set1_epi32, _mm512_setzero_si512, _mm512_shuffle_epi8, _mm512_shuffle_i32x4,
    _mm512_storeu_si512, _mm512_ternarylogic_epi32, _mm512_unpackhi_epi32, _mm512_unpackhi_epi64,
    _mm512_unpacklo_epi32, _mm512_unpacklo_epi64, _mm512_xor_si512,
};

use crate::State;

/// Lanes per register.
pub(crate) const LANES: usize = 16;

/// Whether this CPU runs [`compress16`].
pub(crate) fn available() -> bool {
    std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
}

/// The 64 bytes of `block` as one register.
#[inline]
#[target_feature(enable = "avx512f")]
fn load(block: &[u8; 64]) -> __m512i {
    #[allow(unsafe_code)]
    // SAFETY: `block` is 64 readable bytes, the size of the load; `loadu` needs no alignment.
    unsafe {
        _mm512_loadu_si512(block.as_ptr().cast())
    }
}

/// The 16 lanes of `v`.
#[inline]
#[target_feature(enable = "avx512f")]
fn lanes(v: __m512i) -> [u32; LANES] {
    let mut out = [0u32; LANES];
    #[allow(unsafe_code)]
    // SAFETY: `out` is 64 writable bytes, the size of the store; `storeu` needs no alignment.
    unsafe {
        _mm512_storeu_si512(out.as_mut_ptr().cast(), v)
    };
    out
}

/// A register holding `f(lane)` in each lane.
#[inline]
#[target_feature(enable = "avx512f")]
fn from_lanes(f: impl Fn(usize) -> u32) -> __m512i {
    let mut block = [0u8; 64];
    for (l, dst) in block.as_chunks_mut::<4>().0.iter_mut().enumerate() {
        *dst = f(l).to_le_bytes();
    }
    load(&block)
}

/// Block `k` of every lane, transposed and byte-swapped: message word `i` of every lane in
/// `out[i]`. Rows are loaded four at a time so that everything stays in registers.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn message(blocks: &[&[[u8; 64]]; LANES], k: usize, bswap: __m512i) -> [__m512i; 16] {
    let mut u = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        let r0 = load(&blocks[4 * g][k]);
        let r1 = load(&blocks[4 * g + 1][k]);
        let r2 = load(&blocks[4 * g + 2][k]);
        let r3 = load(&blocks[4 * g + 3][k]);
        let (t0, t1) = (_mm512_unpacklo_epi32(r0, r1), _mm512_unpackhi_epi32(r0, r1));
        let (t2, t3) = (_mm512_unpacklo_epi32(r2, r3), _mm512_unpackhi_epi32(r2, r3));
        // In each 128-bit lane L: u[4g + j] holds word 4L + j of rows 4g..4g+3.
        u[4 * g] = _mm512_unpacklo_epi64(t0, t2);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t0, t2);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t1, t3);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t1, t3);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for j in 0..4 {
        let [a, b, c, d] = [u[j], u[4 + j], u[8 + j], u[12 + j]];
        let (x0, x1) = (
            _mm512_shuffle_i32x4::<0x44>(a, b),
            _mm512_shuffle_i32x4::<0xEE>(a, b),
        );
        let (y0, y1) = (
            _mm512_shuffle_i32x4::<0x44>(c, d),
            _mm512_shuffle_i32x4::<0xEE>(c, d),
        );
        out[j] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4::<0x88>(x0, y0), bswap);
        out[4 + j] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4::<0xDD>(x0, y0), bswap);
        out[8 + j] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4::<0x88>(x1, y1), bswap);
        out[12 + j] = _mm512_shuffle_epi8(_mm512_shuffle_i32x4::<0xDD>(x1, y1), bswap);
    }
    out
}

/// Compresses block `k` of `blocks[l]` into `states[l]`, for every `k` and all 16 lanes; every
/// lane has the same number of blocks.
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) fn compress16(states: &mut [State; LANES], blocks: [&[[u8; 64]]; LANES]) {
    let n = blocks[0].len();
    debug_assert!(blocks.iter().all(|b| b.len() == n));
    let mut v: [__m512i; 5] = std::array::from_fn(|i| from_lanes(|l| states[l][i]));
    // Reverses the bytes of each 32-bit word (message words are big-endian).
    let bswap = _mm512_set_epi64(
        0x0c0d_0e0f_0809_0a0b,
        0x0405_0607_0001_0203,
        0x0c0d_0e0f_0809_0a0b,
        0x0405_0607_0001_0203,
        0x0c0d_0e0f_0809_0a0b,
        0x0405_0607_0001_0203,
        0x0c0d_0e0f_0809_0a0b,
        0x0405_0607_0001_0203,
    );
    for k in 0..n {
        let mut w = message(&blocks, k, bswap);
        let [mut a, mut b, mut c, mut d, mut e] = v;
        macro_rules! rounds {
            ($f:literal, $k:literal: $($t:literal)*) => {$({
                const T: usize = $t;
                if T >= 16 {
                    // w[t] = rol1(w[t-3] ^ w[t-8] ^ w[t-14] ^ w[t-16]), indices mod 16.
                    let x = _mm512_xor_si512(w[(T + 13) % 16], w[(T + 8) % 16]);
                    let x = _mm512_ternarylogic_epi32::<0x96>(x, w[(T + 2) % 16], w[T % 16]);
                    w[T % 16] = _mm512_rol_epi32::<1>(x);
                }
                let f = _mm512_ternarylogic_epi32::<$f>(b, c, d);
                let kw = _mm512_add_epi32(_mm512_set1_epi32($k as u32 as i32), w[T % 16]);
                let t = _mm512_add_epi32(
                    _mm512_add_epi32(_mm512_rol_epi32::<5>(a), f),
                    _mm512_add_epi32(e, kw),
                );
                e = d;
                d = c;
                c = _mm512_rol_epi32::<30>(b);
                b = a;
                a = t;
            })*};
        }
        // Ch = b ? c : d (0xCA), Parity = b ^ c ^ d (0x96), Maj (0xE8).
        rounds!(0xCA, 0x5A82_7999: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
        rounds!(0x96, 0x6ED9_EBA1: 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39);
        rounds!(0xE8, 0x8F1B_BCDC: 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59);
        rounds!(0x96, 0xCA62_C1D6: 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79);
        v = [
            _mm512_add_epi32(v[0], a),
            _mm512_add_epi32(v[1], b),
            _mm512_add_epi32(v[2], c),
            _mm512_add_epi32(v[3], d),
            _mm512_add_epi32(v[4], e),
        ];
    }
    let out = v.map(|x| lanes(x));
    for (l, s) in states.iter_mut().enumerate() {
        *s = std::array::from_fn(|i| out[i][l]);
    }
}
