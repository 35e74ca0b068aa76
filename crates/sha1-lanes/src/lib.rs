//! SHA-1 of several messages of the same length at once.
//!
//! Torrent pieces all have the same length (but the last), and hashing them is most of the CPU
//! a client spends creating a torrent or checking data. One SHA-1 stream cannot use a modern
//! CPU fully: each round depends on the one before. Independent messages can share it:
//! - with AVX-512, 16 messages go through the rounds together, one per 32-bit lane;
//! - with the SHA extensions (SHA-NI), two interleaved streams fill each other's waits on the
//!   SHA unit's latency;
//! - elsewhere each message goes through the `sha1` crate's compression function in turn.
//!
//! Every path gives the same digests (the tests compare each with the `sha1` crate); `cargo
//! bench -p sha1-lanes` measures them on the machine at hand. It is not a general SHA-1
//! library: use the `sha1` crate for one message.

#[cfg(target_arch = "x86_64")]
mod avx512;
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

/// The most messages one [`Sha1Lanes`] hashes at once.
pub const MAX_LANES: usize = 16;

/// How the blocks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// One message after another through `sha1::compress`.
    Portable,
    /// Pairs of messages interleaved on SHA-NI.
    ShaNi,
    /// Sixteen lanes of AVX-512 registers.
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU runs for `n` messages.
    fn best(n: usize) -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if avx512_from().is_some_and(|from| n >= from) {
                return Kernel::Avx512;
            }
            if n >= 2 && ni::available() {
                return Kernel::ShaNi;
            }
        }
        let _ = n;
        Kernel::Portable
    }
}

/// From how many messages on the 16-lane AVX-512 path is the faster one on this CPU, or `None`
/// where it does not run (or is never faster).
///
/// That path costs the same for one message as for 16, while pairs on SHA-NI (or one message
/// after another elsewhere) cost in proportion to the messages; where the break-even lies
/// depends on the core (Zen 4, for one, runs each 512-bit operation as two halves, and its SHA
/// unit is quick), so no constant serves every CPU. It is measured once per process, the
/// fastest of five runs of each path over 16 KiB per message (about 1.4 MiB hashed, once).
/// This and `storage`'s timing of its direct writes are the only clock reads in `crates/`
/// (ARCHITECTURE.md, invariant 1): they measure the machine, not protocol time.
/// Either answer gives the same digests; only the speed depends on it.
pub fn avx512_from() -> Option<usize> {
    static FROM: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *FROM.get_or_init(calibrate)
}

/// See [`avx512_from`].
fn calibrate() -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if !avx512::available() {
            return None;
        }
        let other = if ni::available() {
            Kernel::ShaNi
        } else {
            Kernel::Portable
        };
        let data = vec![[0x5au8; 64]; 256];
        let fastest = |kernel: Kernel, n: usize| {
            (0..5)
                .map(|_| {
                    let mut h = Sha1Lanes::with_kernel(n, kernel);
                    let t = std::time::Instant::now();
                    h.compress([&data[..]; MAX_LANES]);
                    std::hint::black_box(&h.state);
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        let wide = fastest(Kernel::Avx512, MAX_LANES);
        let pair = fastest(other, 2);
        if pair <= 0.0 {
            return Some(MAX_LANES);
        }
        // The 16-lane call wins for n messages once n * (pair / 2) >= wide.
        let from = (2.0 * wide / pair).ceil();
        (from <= MAX_LANES as f64).then(|| (from as usize).max(2))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// How many messages to hash at once for the best throughput on this CPU: 16 where AVX-512 is
/// faster for 16 messages, 2 with SHA-NI, else 1.
pub fn best_lanes() -> usize {
    match Kernel::best(MAX_LANES) {
        Kernel::Avx512 => MAX_LANES,
        Kernel::ShaNi => 2,
        Kernel::Portable => 1,
    }
}

/// The SHA-1 digests of `messages`, which must all have the same length, hashed
/// [`MAX_LANES`] at a time.
///
/// # Panics
/// If the messages differ in length.
pub fn digest_all(messages: &[&[u8]]) -> Vec<[u8; 20]> {
    let mut out = Vec::with_capacity(messages.len());
    for group in messages.chunks(MAX_LANES) {
        let mut h = Sha1Lanes::new(group.len());
        h.update(group);
        out.extend(h.finalize());
    }
    out
}

/// SHA-1 of `n` messages fed in step: each [`update`](Self::update) appends the same number
/// of bytes to every message.
#[derive(Debug, Clone)]
pub struct Sha1Lanes {
    n: usize,
    /// One state per lane; lanes from `n` on are scratch for the 16-lane kernel.
    state: [State; MAX_LANES],
    /// Bytes fed to each message so far.
    len: u64,
    /// The bytes of each message not yet compressed (`len % 64` of them).
    pending: Box<[[u8; 64]; MAX_LANES]>,
    kernel: Kernel,
}

impl Sha1Lanes {
    /// `n` empty messages.
    ///
    /// # Panics
    /// Unless `1 <= n <= MAX_LANES`.
    pub fn new(n: usize) -> Self {
        Self::with_kernel(n, Kernel::best(n))
    }

    fn with_kernel(n: usize, kernel: Kernel) -> Self {
        assert!(
            (1..=MAX_LANES).contains(&n),
            "Sha1Lanes takes 1 to 16 messages"
        );
        Sha1Lanes {
            n,
            state: [INITIAL; MAX_LANES],
            len: 0,
            pending: Box::new([[0; 64]; MAX_LANES]),
            kernel,
        }
    }

    /// The number of messages.
    pub fn lanes(&self) -> usize {
        self.n
    }

    /// Appends `parts[i]` to message `i`.
    ///
    /// # Panics
    /// If there are not [`lanes`](Self::lanes) parts or they differ in length.
    pub fn update(&mut self, parts: &[&[u8]]) {
        assert_eq!(
            parts.len(),
            self.n,
            "Sha1Lanes::update takes one part per message"
        );
        let len = parts[0].len();
        assert!(
            parts.iter().all(|p| p.len() == len),
            "Sha1Lanes::update takes parts of equal length"
        );
        let mut parts: [&[u8]; MAX_LANES] =
            std::array::from_fn(|i| parts.get(i).map_or(&[][..], |p| *p));
        let fill = (self.len % 64) as usize;
        self.len += len as u64;
        if fill > 0 {
            let take = (64 - fill).min(len);
            for (p, part) in self.pending.iter_mut().zip(&mut parts).take(self.n) {
                p[fill..fill + take].copy_from_slice(&part[..take]);
                *part = &part[take..];
            }
            if fill + take < 64 {
                return;
            }
            let pending = *self.pending;
            self.compress(std::array::from_fn(|i| std::slice::from_ref(&pending[i])));
        }
        self.compress(parts.map(|p| p.as_chunks::<64>().0));
        for (p, part) in self.pending.iter_mut().zip(parts).take(self.n) {
            let rest = part.as_chunks::<64>().1;
            p[..rest.len()].copy_from_slice(rest);
        }
    }

    /// The digests, message by message.
    pub fn finalize(mut self) -> Vec<[u8; 20]> {
        let bits = self.len.wrapping_mul(8).to_be_bytes();
        let fill = (self.len % 64) as usize;
        // 0x80, zeros up to 8 bytes short of a block boundary, the length in bits.
        let pad_len = if fill < 56 { 64 - fill } else { 128 - fill };
        let mut pad = [0u8; 128];
        pad[0] = 0x80;
        pad[pad_len - 8..pad_len].copy_from_slice(&bits);
        let pads = [&pad[..pad_len]; MAX_LANES];
        self.update(&pads[..self.n]);
        debug_assert_eq!(self.len % 64, 0);
        self.state[..self.n]
            .iter()
            .map(|s| {
                let mut out = [0u8; 20];
                for (o, w) in out.as_chunks_mut::<4>().0.iter_mut().zip(s) {
                    *o = w.to_be_bytes();
                }
                out
            })
            .collect()
    }

    /// Compresses `blocks[i]` into lane `i`'s state, for the first `n` lanes (all with the same
    /// number of blocks; the rest of `blocks` is ignored).
    fn compress(&mut self, blocks: [&[[u8; 64]]; MAX_LANES]) {
        if blocks[0].is_empty() {
            return;
        }
        let n = self.n;
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => {
                // Lanes past `n` hash lane 0's blocks again into scratch states.
                let blocks = std::array::from_fn(|i| if i < n { blocks[i] } else { blocks[0] });
                #[allow(unsafe_code)]
                // SAFETY: this kernel is chosen only where `avx512::available()` found every
                // CPU feature `compress16` is compiled for.
                unsafe {
                    avx512::compress16(&mut self.state, blocks)
                };
                return;
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => {
                let (pairs, odd) = self.state[..n].as_chunks_mut::<2>();
                for (k, [sa, sb]) in pairs.iter_mut().enumerate() {
                    #[allow(unsafe_code)]
                    // SAFETY: this kernel is chosen only where `ni::available()` found every
                    // CPU feature `compress2` is compiled for.
                    unsafe {
                        ni::compress2(sa, sb, blocks[2 * k], blocks[2 * k + 1])
                    };
                }
                if let Some(s) = odd.first_mut() {
                    compress_portable(s, blocks[n - 1]);
                }
                return;
            }
            _ => {}
        }
        for (s, b) in self.state.iter_mut().zip(blocks).take(n) {
            compress_portable(s, b);
        }
    }
}

/// `blocks` into `state` through the `sha1` crate (its own SHA-NI or portable code).
fn compress_portable(state: &mut State, blocks: &[[u8; 64]]) {
    for block in blocks {
        sha1::compress(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

#[cfg(test)]
mod tests;
