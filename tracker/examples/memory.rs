//! Measures resident memory per stored peer: fills a `Store` with N distinct IPv4 peers spread
//! over S swarms and reads VmRSS from /proc/self/status before and after (Linux).
//!
//! `cargo run --release -p tracker --example memory -- [peers] [swarms]` (default 1000000 1000).

use std::net::{Ipv4Addr, SocketAddr};

use metainfo::InfoHash;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tracker::PeerList;
use tracker::store::{Announce, Limits, Store};
use tracker_proto::Event;

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let peers: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let swarms: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000)
        .max(1);
    let before = vm_rss_kib();
    let store = Store::new(Limits::default());
    let mut rng = SmallRng::seed_from_u64(1);
    let mut out = PeerList::default();
    for i in 0..peers {
        let s = i % swarms;
        let mut ih = [0u8; 20];
        ih[..8].copy_from_slice(&s.to_le_bytes());
        ih[8..16].copy_from_slice(&s.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        // Distinct addresses: the peer's index spread over ip and port.
        let ip = Ipv4Addr::from(0x0a00_0000 + (i / 60_000) as u32);
        let port = 1024 + (i % 60_000) as u16;
        let a = Announce {
            info_hash: InfoHash(ih),
            addr: SocketAddr::from((ip, port)),
            seeder: i % 3 == 0,
            event: Event::Started,
            numwant: 0,
        };
        if store.announce(&a, 0, &mut rng, &mut out).is_err() {
            eprintln!("store refused peer {i}");
            return;
        }
    }
    let after = vm_rss_kib();
    let c = store.counts();
    let grown = (after.saturating_sub(before)) * 1024;
    println!(
        "peers stored {} in {} swarms; VmRSS {} KiB -> {} KiB; {:.1} bytes/peer RSS; {:.1} bytes/peer heap (estimate)",
        c.peers4,
        c.swarms,
        before,
        after,
        grown as f64 / c.peers4.max(1) as f64,
        store.heap_bytes() as f64 / c.peers4.max(1) as f64,
    );
}
