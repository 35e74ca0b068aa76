//! RC4 alone, the cost of every encrypted byte: `cargo bench -p mse --bench rc4` prints MB/s
//! for the cipher the handshake hands over (blocks of 16 KiB, as pieces travel) beside
//! RustCrypto's `rc4` in the same run, and the time of one side's DH work (a public key and a
//! shared secret).

use std::time::Instant;

use mse::{Cipher, PrivateKey};
use rc4::{KeyInit, StreamCipher, consts::U20};

fn main() {
    const BLOCK: usize = 16 * 1024;
    const TOTAL: usize = 256 << 20;
    let mut ours = Cipher::new(&[7; 20]);
    let mut theirs = rc4::Rc4::<U20>::new(&[7; 20].into());
    let mut buf = vec![0u8; BLOCK];
    let (mut rates, mut reference) = (Vec::new(), Vec::new());
    // Alternating rounds, so both see the same machine.
    for _ in 0..5 {
        rates.push(rate(TOTAL / BLOCK, || ours.apply(&mut buf)));
        reference.push(rate(TOTAL / BLOCK, || theirs.apply_keystream(&mut buf)));
    }
    for (name, r) in [
        ("rc4 (ours)", &mut rates),
        ("rc4 (RustCrypto)", &mut reference),
    ] {
        r.sort_by(f64::total_cmp);
        println!(
            "{name:<17} 16 KiB blocks, 256 MiB x 5: median {:.0} MB/s (min {:.0}, max {:.0})",
            r[2], r[0], r[4]
        );
    }
    println!(
        "checksum {}",
        buf.iter().map(|&b| u64::from(b)).sum::<u64>()
    );

    let n = 200;
    let t = Instant::now();
    let mut acc = 0u8;
    for i in 0..n {
        let k = PrivateKey([i as u8 | 1; 20]);
        let y = k.public_key();
        acc ^= k.shared_secret(&y)[0];
    }
    println!(
        "dh (public key + shared secret): {:.0} us per side ({acc})",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}

/// MB/s of `blocks` calls of `f` on 16 KiB each.
fn rate(blocks: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..blocks {
        f();
    }
    (blocks * 16 * 1024) as f64 / t.elapsed().as_secs_f64() / 1e6
}
