//! Measures `write_piece`, `flush`, `verify_piece` and `verify_all` throughput on a single-file
//! torrent in the system temp directory.
//!
//! ```text
//! cargo run --release -p storage --example throughput -- [SIZE_MIB] [PIECE_KIB] [keep|verify-only]
//! ```
//!
//! Defaults: 1024 MiB in 256 KiB pieces. `keep` leaves the file for a later `verify-only` run
//! (for example after dropping the page cache to measure reads from the disk).

use std::path::Path;
use std::time::Instant;

use sha1::{Digest, Sha1};
use storage::{FileSpec, Layout, OpenOptions, Storage};

/// Distinct piece contents cycled through the torrent (keeps memory small).
const PATTERNS: usize = 16;

fn mb_per_s(bytes: u64, secs: f64) -> String {
    format!("{:8.1} MB/s", bytes as f64 / 1e6 / secs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let size_mib: u64 = args.first().map_or(Ok(1024), |s| s.parse())?;
    let piece_kib: u64 = args.get(1).map_or(Ok(256), |s| s.parse())?;
    let mode = args.get(2).map(String::as_str).unwrap_or("");
    let total = size_mib * 1024 * 1024;
    let piece = piece_kib * 1024;
    if !total.is_multiple_of(piece) {
        return Err("size must be a multiple of the piece length".into());
    }

    let patterns: Vec<Vec<u8>> = (0..PATTERNS as u64)
        .map(|k| {
            let mut x = 0x2545_f491_4f6c_dd1d ^ (k + 1);
            (0..piece / 8)
                .flat_map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x.to_le_bytes()
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    let pattern_hashes: Vec<[u8; 20]> = patterns.iter().map(|p| Sha1::digest(p).into()).collect();
    let sha_secs = t.elapsed().as_secs_f64();
    let count = (total / piece) as usize;
    let hashes: Vec<[u8; 20]> = (0..count).map(|i| pattern_hashes[i % PATTERNS]).collect();
    let spec = FileSpec {
        path: vec!["throughput.bin".into()],
        length: total,
        pad: false,
    };
    let layout = Layout::new(piece, vec![spec], hashes)?;
    let dir = std::env::temp_dir().join("storage-throughput");
    println!(
        "{size_mib} MiB in {count} pieces of {piece_kib} KiB under {}",
        dir.display()
    );
    println!(
        "sha1 in memory      {}",
        mb_per_s(piece * PATTERNS as u64, sha_secs)
    );

    let s = Storage::new(layout, &dir, OpenOptions::default())?;
    let g = *s.layout().geometry();
    if mode != "verify-only" {
        let t = Instant::now();
        for p in g.pieces() {
            s.write_piece(p, &patterns[p.idx() % PATTERNS])?;
        }
        let write_secs = t.elapsed().as_secs_f64();
        s.flush()?;
        let flushed_secs = t.elapsed().as_secs_f64();
        println!("write_piece         {}", mb_per_s(total, write_secs));
        println!("write_piece + fsync {}", mb_per_s(total, flushed_secs));
    }

    let t = Instant::now();
    let mut ok = 0;
    for p in g.pieces() {
        ok += usize::from(s.verify_piece(p)?);
    }
    let verify_secs = t.elapsed().as_secs_f64();
    println!(
        "verify_piece        {} ({ok}/{count} ok)",
        mb_per_s(total, verify_secs)
    );

    for threads in [1, 2] {
        let t = Instant::now();
        let have = s.verify_all(threads, &|_| {})?;
        println!(
            "verify_all({threads})       {} ({}/{count} ok)",
            mb_per_s(total, t.elapsed().as_secs_f64()),
            have.count()
        );
    }
    drop(s);
    if mode.is_empty() {
        remove(&dir)?;
    }
    Ok(())
}

fn remove(dir: &Path) -> std::io::Result<()> {
    std::fs::remove_dir_all(dir)
}
