//! Hashing throughput in cache: pairs of 256 KiB pieces through `Sha1x2` against the same
//! pieces one at a time through the `sha1` crate, alternating, median of 9 rounds.
//! `cargo bench -p sha1x2`

use std::time::Instant;

use sha1::{Digest, Sha1};
use sha1x2::Sha1x2;

const PIECE: usize = 256 * 1024;
/// Pieces hashed per round and kind (64 MiB).
const PIECES: usize = 256;
const ROUNDS: usize = 9;

fn main() {
    let a: Vec<u8> = (0..PIECE).map(|i| (i * 7 + 3) as u8).collect();
    let b: Vec<u8> = (0..PIECE).map(|i| (i * 13 + 1) as u8).collect();
    let mut one = Vec::with_capacity(ROUNDS);
    let mut two = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..PIECES {
            let d: [u8; 20] = Sha1::digest(if i % 2 == 0 { &a } else { &b }).into();
            std::hint::black_box(d);
        }
        one.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..PIECES / 2 {
            let mut h = Sha1x2::new();
            h.update(&a, &b);
            std::hint::black_box(h.finalize());
        }
        two.push(t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mb = (PIECES * PIECE) as f64 / 1e6;
    let (t1, t2) = (median(&mut one), median(&mut two));
    println!(
        "sha1x2 interleaved: {} (SHA-NI pair path {})",
        if sha1x2::interleaved() { "yes" } else { "no" },
        if sha1x2::interleaved() {
            "in use"
        } else {
            "unavailable: portable path measured"
        }
    );
    println!("sha1 crate, one piece at a time: {:.0} MB/s", mb / t1);
    println!("Sha1x2, two pieces at once:      {:.0} MB/s", mb / t2);
    println!("ratio (time one / time pair):    {:.2}", t1 / t2);
}
