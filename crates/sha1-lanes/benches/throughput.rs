//! Hashing throughput in cache: 256 KiB pieces one at a time through the `sha1` crate, and
//! through `Sha1Lanes` 2, 4, 6, 8 and 16 at a time, alternating kinds within each round,
//! median of 9 rounds. `cargo bench -p sha1-lanes`

use std::time::Instant;

use sha1::{Digest, Sha1};
use sha1_lanes::Sha1Lanes;

const PIECE: usize = 256 * 1024;
/// Pieces hashed per round and kind (32 MiB).
const PIECES: usize = 128;
const ROUNDS: usize = 9;
const GROUPS: [usize; 5] = [2, 4, 6, 8, 16];

fn main() {
    let pieces: Vec<Vec<u8>> = (0..16)
        .map(|p| (0..PIECE).map(|i| (i * (2 * p + 3) + p) as u8).collect())
        .collect();
    let mut single = Vec::with_capacity(ROUNDS);
    let mut grouped: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); GROUPS.len()];
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for i in 0..PIECES {
            let d: [u8; 20] = Sha1::digest(&pieces[i % 16]).into();
            std::hint::black_box(d);
        }
        single.push(t.elapsed().as_secs_f64());
        for (g, times) in GROUPS.iter().zip(&mut grouped) {
            let parts: Vec<&[u8]> = pieces[..*g].iter().map(Vec::as_slice).collect();
            let t = Instant::now();
            for _ in 0..PIECES / g {
                let mut h = Sha1Lanes::new(*g);
                h.update(&parts);
                std::hint::black_box(h.finalize());
            }
            times.push(t.elapsed().as_secs_f64() * PIECES as f64 / (PIECES / g * g) as f64);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mb = (PIECES * PIECE) as f64 / 1e6;
    let t1 = median(&mut single);
    println!(
        "best lanes on this CPU: {}; AVX-512 path from {} messages on",
        sha1_lanes::best_lanes(),
        sha1_lanes::avx512_from().map_or("(never)".to_string(), |n| n.to_string())
    );
    println!("sha1 crate, one piece at a time: {:>6.0} MB/s", mb / t1);
    for (g, times) in GROUPS.iter().zip(&mut grouped) {
        let t = median(times);
        println!(
            "Sha1Lanes, {g:>2} pieces at once:   {:>6.0} MB/s  ({:.2}x)",
            mb / t,
            t1 / t
        );
    }
}
