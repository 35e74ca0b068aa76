//! RC4, written here for speed (the issue that brought MSE asked for the fastest safe RC4):
//! RustCrypto's `rc4` keeps its permutation in bytes and costs about 3.4 s of CPU per GiB on
//! the 2-core EPYC VM; this one keeps it in 32-bit words (no byte store-to-load forwarding
//! stalls on x86) and XORs eight keystream bytes at a time, about 1.8 s per GiB
//! (BENCHMARKS.md). Nothing else about it is new: the same KSA and PRGA.
//! It is checked against RFC 6229's vectors and, over random keys and splits, against the
//! `rc4` crate byte for byte (tests/vectors.rs).

/// An RC4 state: the permutation and the two indices.
#[derive(Clone)]
pub struct Rc4 {
    s: [u32; 256],
    i: u8,
    j: u8,
}

impl Rc4 {
    /// The key schedule (KSA) for a key of 1 to 256 bytes; an empty key is treated as one zero
    /// byte (never used: MSE keys are 20 bytes).
    pub fn new(key: &[u8]) -> Rc4 {
        let key: &[u8] = if key.is_empty() { &[0] } else { key };
        let mut s = [0u32; 256];
        for (n, v) in (0u32..).zip(s.iter_mut()) {
            *v = n;
        }
        let mut j: u8 = 0;
        for (i, k) in (0..256).zip(key.iter().cycle()) {
            j = j.wrapping_add(s[i] as u8).wrapping_add(*k);
            s.swap(i, usize::from(j));
        }
        Rc4 { s, i: 0, j: 0 }
    }

    /// The next keystream byte (PRGA).
    #[inline(always)]
    fn next(&mut self) -> u8 {
        self.i = self.i.wrapping_add(1);
        let si = self.s[usize::from(self.i)];
        self.j = self.j.wrapping_add(si as u8);
        let sj = self.s[usize::from(self.j)];
        self.s[usize::from(self.i)] = sj;
        self.s[usize::from(self.j)] = si;
        self.s[(si.wrapping_add(sj) & 0xff) as usize] as u8
    }

    /// XORs the keystream into `data`, advancing the stream.
    pub fn apply(&mut self, data: &mut [u8]) {
        let mut words = data.chunks_exact_mut(8);
        for w in &mut words {
            let mut k = [0u8; 8];
            for b in &mut k {
                *b = self.next();
            }
            for (d, k) in w.iter_mut().zip(k) {
                *d ^= k;
            }
        }
        for d in words.into_remainder() {
            *d ^= self.next();
        }
    }
}

impl std::fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4(..)")
    }
}
