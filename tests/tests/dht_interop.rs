//! libtorrent in our DHT on loopback, no tracker anywhere: a libtorrent seeder announces
//! itself through our in-process nodes and our `swarm fetch` given only the magnet link finds
//! it, gets the metadata from it and downloads; the other way round, a libtorrent leecher
//! given only our seeder's magnet link finds our seeder through the DHT and downloads from it.
//!
//! libtorrent runs with its internet-only DHT filters relaxed (`lt_peer.py --dht-bootstrap`);
//! every node and peer has its own 127.0.B.x address. Logs stay beside the data;
//! `SWARM_KEEP_TEST_DIRS=1` keeps the directories.

mod dht_net;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use dht_net::{Deadline, DhtNet, ip, path_str, scratch, seed_command, start_seed, swarm};
use metainfo::TorrentBuilder;
use tests::files::{compare_paths, write_file};
use tests::peers::{LibtorrentPeer, LtOptions};
use tests::ports::free_port;
use tests::process::Proc;
use tests::{Program, require};

/// Each scenario's whole budget.
const TEST_TIME: Duration = Duration::from_secs(55);
/// In-process DHT nodes per scenario.
const NODES: usize = 20;
/// Routing-table size every node must exceed before the peers join: k, one full bucket.
const K: usize = 8;
/// 2^18 = 256 KiB pieces.
const PIECE_LEN: u32 = 256 * 1024;
/// The libtorrent peer's host part in the scenario's block.
const LT_HOST: u8 = 20;

/// libtorrent on `127.0.block.20`, bootstrapping from `node`, logging its alerts to `log_dir`.
fn lt_options(block: u8, node: &str, log_dir: &std::path::Path) -> Result<LtOptions> {
    Ok(LtOptions {
        listen_ip: Some(ip(block, LT_HOST)),
        dht_bootstrap: vec![node.parse().context("node address")?],
        verbose: true,
        log_dir: Some(log_dir.to_path_buf()),
        timeout: TEST_TIME,
        ..LtOptions::default()
    })
}

/// Starts the in-process network and waits for full tables.
fn network(block: u8, deadline: Deadline) -> Result<DhtNet> {
    let net = DhtNet::start(block, NODES, deadline)?;
    net.wait_routing_above(K, deadline)?;
    Ok(net)
}

#[test]
fn our_magnet_fetch_finds_a_libtorrent_seed_through_the_dht() -> Result<()> {
    require!(Program::Libtorrent);
    const BLOCK: u8 = 4;
    let deadline = Deadline::start(TEST_TIME)?;
    let tmp = scratch("dht-interop-lt-seed-")?;
    let t = tmp.path();
    let net = network(BLOCK, deadline)?;

    let seed_dir = t.join("lt");
    std::fs::create_dir_all(&seed_dir)?;
    let file = seed_dir.join("payload.bin");
    write_file(&file, 3_000_000, 71)?;
    // No trackers: the DHT is the only way to this seed.
    let meta = TorrentBuilder::new(file.clone())
        .piece_length(PIECE_LEN)
        .build(&|_| {})?;
    let torrent = t.join("payload.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    let opts = lt_options(BLOCK, &net.addr(0), t)?;
    let lt = LibtorrentPeer::seed_with(&torrent, &seed_dir, free_port()?, &opts)?;
    let (took, lookups) = net.wait_for_peer(meta.info_hash, lt.addr(), deadline)?;
    eprintln!("libtorrent's announce was found after {took:?} ({lookups} lookups)");

    let out = t.join("out");
    let listen = SocketAddr::from((ip(BLOCK, 3), 0));
    let cmd = swarm(
        &[
            "fetch",
            &meta.magnet().to_string(),
            "-o",
            path_str(&out)?,
            "--listen",
            &listen.to_string(),
            "--bootstrap",
            &net.addr(net.len() - 1),
        ],
        &t.join("state-fetch"),
    )?;
    Proc::spawn(cmd, "swarm-fetch", t)?
        .wait_success(deadline.left())
        .context("swarm fetch of libtorrent's magnet link")?;
    compare_paths(&file, &out.join("payload.bin"))
}

#[test]
fn a_libtorrent_magnet_leecher_finds_our_seed_through_the_dht() -> Result<()> {
    require!(Program::Libtorrent);
    const BLOCK: u8 = 5;
    let deadline = Deadline::start(TEST_TIME)?;
    let tmp = scratch("dht-interop-lt-leech-")?;
    let t = tmp.path();
    let net = network(BLOCK, deadline)?;

    let file = t.join("payload.bin");
    write_file(&file, 3_000_000, 72)?;
    let listen = SocketAddr::from((ip(BLOCK, 2), 0));
    let cmd = seed_command(&file, listen, &net.addr(0), &t.join("state-seed"))?;
    let (_seeder, s) = start_seed(cmd, "swarm-seed", t, deadline)?;
    let peer = SocketAddr::from((ip(BLOCK, 2), s.port));
    ensure!(s.dht.ip() == peer.ip(), "our DHT node is on {}", s.dht);
    let (took, lookups) = net.wait_for_peer(s.info_hash, peer, deadline)?;
    eprintln!("our seeder was found after {took:?} ({lookups} lookups)");

    let dir = t.join("lt");
    let opts = lt_options(BLOCK, &net.addr(net.len() - 1), t)?;
    let mut lt = LibtorrentPeer::leech_magnet(&s.magnet, &dir, free_port()?, &opts)?;
    lt.wait_metadata(deadline.left())?;
    lt.wait_done(deadline.left())?;
    compare_paths(&file, &dir.join("payload.bin"))
}
