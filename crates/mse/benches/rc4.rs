//! RC4 alone, the cost of every encrypted byte: `cargo bench -p mse --bench rc4` prints MB/s
//! for the cipher the handshake hands over (blocks of 16 KiB, as pieces travel), and the
//! time of one side's DH work (a public key and a shared secret).

use std::time::Instant;

use mse::{Cipher, PrivateKey};

fn main() {
    const BLOCK: usize = 16 * 1024;
    const TOTAL: usize = 256 << 20;
    let mut c = Cipher::new(&[7; 20]);
    let mut buf = vec![0u8; BLOCK];
    let mut rates = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..TOTAL / BLOCK {
            c.apply(&mut buf);
        }
        let secs = t.elapsed().as_secs_f64();
        rates.push(TOTAL as f64 / secs / 1e6);
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "rc4 (16 KiB blocks, 256 MiB x 5): median {:.0} MB/s (min {:.0}, max {:.0}); checksum {}",
        rates[2],
        rates[0],
        rates[4],
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
