//! SHA-1 of two messages of the same length at once.
//!
//! Torrent pieces all have the same length (but the last), and hashing them is most of the CPU
//! a client spends creating a torrent or checking data. On CPUs with the SHA extensions
//! (SHA-NI) one SHA-1 stream leaves the SHA unit waiting on each instruction's latency; running
//! two streams interleaved fills those waits (on the machine in BENCHMARKS.md, 2.15 GB/s for
//! one stream of the `sha1` crate, about 2.5 GB/s for two interleaved). Elsewhere it hashes the two
//! messages one after the other with the `sha1` crate's compression function, so the result
//! is the same everywhere.
//!
//! It is not a general SHA-1 library: use the `sha1` crate for one message.

#[cfg(target_arch = "x86_64")]
mod ni;

use sha1::digest::generic_array::GenericArray;

/// The five words of SHA-1's chaining state.
type State = [u32; 5];

const INITIAL: State = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// Whether the interleaved SHA-NI code runs on this CPU (else two plain compressions do).
pub fn interleaved() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        ni::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The SHA-1 digests of `a` and `b`, which must have the same length.
///
/// # Panics
/// If `a.len() != b.len()`.
pub fn digest2(a: &[u8], b: &[u8]) -> [[u8; 20]; 2] {
    let mut h = Sha1x2::new();
    h.update(a, b);
    h.finalize()
}

/// Two SHA-1 computations fed in step: each [`update`](Self::update) appends the same number
/// of bytes to both messages.
#[derive(Debug, Clone)]
pub struct Sha1x2 {
    state: [State; 2],
    /// Bytes fed to each message so far.
    len: u64,
    /// The bytes of each message not yet compressed (`len % 64` of them).
    pending: [[u8; 64]; 2],
    fast: bool,
}

impl Default for Sha1x2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha1x2 {
    /// Two empty messages.
    pub fn new() -> Self {
        Sha1x2 {
            state: [INITIAL; 2],
            len: 0,
            pending: [[0; 64]; 2],
            fast: interleaved(),
        }
    }

    /// Appends `a` to the first message and `b` to the second.
    ///
    /// # Panics
    /// If `a.len() != b.len()`.
    pub fn update(&mut self, mut a: &[u8], mut b: &[u8]) {
        assert_eq!(
            a.len(),
            b.len(),
            "Sha1x2::update takes runs of equal length"
        );
        let fill = (self.len % 64) as usize;
        self.len += a.len() as u64;
        if fill > 0 {
            let take = (64 - fill).min(a.len());
            self.pending[0][fill..fill + take].copy_from_slice(&a[..take]);
            self.pending[1][fill..fill + take].copy_from_slice(&b[..take]);
            (a, b) = (&a[take..], &b[take..]);
            if fill + take < 64 {
                return;
            }
            let [pa, pb] = self.pending;
            self.compress(&[pa], &[pb]);
        }
        let (blocks_a, rest_a) = a.as_chunks::<64>();
        let (blocks_b, rest_b) = b.as_chunks::<64>();
        self.compress(blocks_a, blocks_b);
        self.pending[0][..rest_a.len()].copy_from_slice(rest_a);
        self.pending[1][..rest_b.len()].copy_from_slice(rest_b);
    }

    /// The two digests.
    pub fn finalize(mut self) -> [[u8; 20]; 2] {
        let bits = self.len.wrapping_mul(8).to_be_bytes();
        let fill = (self.len % 64) as usize;
        // 0x80, zeros up to 8 bytes short of a block boundary, the length in bits.
        let pad_len = if fill < 56 { 64 - fill } else { 128 - fill };
        let mut pad = [0u8; 128];
        pad[0] = 0x80;
        pad[pad_len - 8..pad_len].copy_from_slice(&bits);
        self.update(&pad[..pad_len], &pad[..pad_len]);
        debug_assert_eq!(self.len % 64, 0);
        self.state.map(|s| {
            let mut out = [0u8; 20];
            for (o, w) in out.as_chunks_mut::<4>().0.iter_mut().zip(s) {
                *o = w.to_be_bytes();
            }
            out
        })
    }

    fn compress(&mut self, a: &[[u8; 64]], b: &[[u8; 64]]) {
        let [sa, sb] = &mut self.state;
        #[cfg(target_arch = "x86_64")]
        if self.fast {
            #[allow(unsafe_code)]
            // SAFETY: `fast` is set only where `ni::available()` found every CPU feature
            // `compress2` is compiled for.
            unsafe {
                ni::compress2(sa, sb, a, b)
            };
            return;
        }
        for (s, blocks) in [(sa, a), (sb, b)] {
            for block in blocks {
                sha1::compress(s, std::slice::from_ref(GenericArray::from_slice(block)));
            }
        }
    }
}

#[cfg(test)]
mod tests;
