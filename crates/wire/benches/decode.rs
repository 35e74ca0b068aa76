//! Decoding throughput of 16 KiB PIECE frames, the codec's hot path.
//!
//! Run with `cargo bench -p wire --bench decode [-- MiB]` (default 1024 MiB of block data).
//! It streams a pre-encoded run of frames into a `BytesMut` in 64 KiB "reads", as a socket
//! would, and decodes as it goes. Two scenarios: blocks dropped at once, and blocks held in a
//! queue of 64 (as while they wait for a disk write), which stops the read buffer from reusing
//! its memory. Reported: MB/s of block data for the whole loop (copy in + decode) and for the
//! decode calls alone. No assertions on timing: this is a measurement, not a test.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use wire::{Decoder, Message};

const BLOCK: usize = 16 * 1024;
const READ: usize = 64 * 1024;

fn wire_chunk(frames: u32) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for i in 0..frames {
        let data = Bytes::from(vec![(i % 251) as u8; BLOCK]);
        Message::Piece {
            piece: i / 16,
            begin: (i % 16) * BLOCK as u32,
            data,
        }
        .encode(&mut buf);
    }
    buf.to_vec()
}

/// Streams `total` bytes of block data through a decoder; returns (wall time, decode time).
fn run(chunk: &[u8], total: u64, hold: usize) -> (Duration, Duration) {
    let d = Decoder::default();
    let mut buf = BytesMut::with_capacity(4 * READ);
    let mut held: VecDeque<Bytes> = VecDeque::with_capacity(hold + 1);
    let mut got: u64 = 0;
    let mut pos = 0;
    let mut in_decode = Duration::ZERO;
    let start = Instant::now();
    while got < total {
        let end = (pos + READ).min(chunk.len());
        buf.reserve(READ);
        buf.extend_from_slice(chunk.get(pos..end).unwrap_or_default());
        pos = if end == chunk.len() { 0 } else { end };
        let t = Instant::now();
        while let Some(m) = d.decode(&mut buf).expect("valid stream") {
            if let Message::Piece { data, .. } = m {
                got += data.len() as u64;
                if hold > 0 {
                    held.push_back(data);
                    if held.len() > hold {
                        black_box(held.pop_front());
                    }
                } else {
                    black_box(data);
                }
            }
        }
        in_decode += t.elapsed();
    }
    (start.elapsed(), in_decode)
}

fn mbps(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / 1e6 / t.as_secs_f64()
}

fn main() {
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let total = mib << 20;
    // 4 MiB of frames, replayed; a frame boundary rarely aligns with a 64 KiB read.
    let chunk = wire_chunk(256);
    for (name, hold) in [("drop at once", 0), ("hold 64 blocks", 64)] {
        let (wall, dec) = run(&chunk, total, hold);
        println!(
            "{name:>15}: {mib} MiB of 16 KiB PIECE frames: {:>7.0} MB/s copy-in + decode, \
             {:>7.0} MB/s decode only ({:.1} ns/frame), {:.3} s",
            mbps(total, wall),
            mbps(total, dec),
            dec.as_nanos() as f64 / (total / BLOCK as u64) as f64,
            wall.as_secs_f64(),
        );
    }
}
