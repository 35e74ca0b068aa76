//! The DHT over real UDP on loopback: 60 in-process nodes bootstrap into one network; a
//! `swarm seed --no-tracker` announces itself in it and a `swarm fetch` given only the magnet
//! link finds it there, fetches the metadata and the data; the routing table is saved at exit
//! and the next run starts from it; a private torrent is never announced.
//!
//! Every node and process has its own 127.0.B.x address (the DHT keeps one routing entry per
//! IP). Our processes log beside their data; `SWARM_KEEP_TEST_DIRS=1` keeps the directories.

mod dht_net;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use dht_net::{Deadline, DhtNet, ip, path_str, scratch, seed_command, start_seed, swarm};
use metainfo::Metainfo;
use nix::sys::signal::Signal;
use tests::files::{compare_paths, write_file};
use tests::process::{Proc, Stream};

/// Each scenario's whole budget.
const TEST_TIME: Duration = Duration::from_secs(55);
/// Routing-table size every node must exceed: k, one full bucket.
const K: usize = 8;
/// How long a stopped process gets to save its table and exit.
const STOP_GRACE: Duration = Duration::from_secs(10);

#[test]
fn sixty_nodes_bootstrap_and_a_magnet_fetch_finds_the_seed() -> Result<()> {
    const BLOCK: u8 = 1;
    let deadline = Deadline::start(TEST_TIME)?;
    let tmp = scratch("dht-swarm-")?;
    let t = tmp.path();
    let net = DhtNet::start(BLOCK, 60, deadline)?;
    let sizes = net.wait_routing_above(K, deadline)?;
    eprintln!(
        "{} nodes bootstrapped; routing sizes min {} max {} mean {:.1}",
        net.len(),
        sizes.iter().min().unwrap_or(&0),
        sizes.iter().max().unwrap_or(&0),
        sizes.iter().sum::<usize>() as f64 / sizes.len() as f64
    );

    let file = t.join("payload.bin");
    write_file(&file, 3_000_000, 61)?;
    let seed_listen = SocketAddr::from((ip(BLOCK, 2), 0));
    let cmd = seed_command(&file, seed_listen, &net.addr(0), &t.join("state-seed"))?;
    let (_seeder, s) = start_seed(cmd, "swarm-seed", t, deadline)?;
    let seed_peer = SocketAddr::from((ip(BLOCK, 2), s.port));
    ensure!(
        s.dht.ip() == seed_peer.ip(),
        "the seeder's DHT node is on {}, not its listen address",
        s.dht
    );
    let (took, lookups) = net.wait_for_peer(s.info_hash, seed_peer, deadline)?;
    eprintln!("the seeder was found through the DHT after {took:?} ({lookups} lookups)");

    let out = t.join("out");
    let fetch_listen = SocketAddr::from((ip(BLOCK, 3), 0));
    let cmd = swarm(
        &[
            "fetch",
            &s.magnet,
            "-o",
            path_str(&out)?,
            "--listen",
            &fetch_listen.to_string(),
            "--bootstrap",
            &net.addr(net.len() - 1),
        ],
        &t.join("state-fetch"),
    )?;
    let mut fetch = Proc::spawn(cmd, "swarm-fetch", t)?;
    fetch
        .wait_success(deadline.left())
        .context("swarm fetch of the magnet link")?;
    compare_paths(&file, &out.join("payload.bin"))?;
    let saved = out
        .join(".swarm")
        .join(format!("{}.torrent", s.info_hash.to_hex()));
    let bytes = std::fs::read(&saved).with_context(|| format!("read {}", saved.display()))?;
    let meta = Metainfo::from_bytes(&bytes).context("the saved .torrent")?;
    ensure!(
        meta.info_hash == s.info_hash,
        "saved .torrent has info-hash {}, the magnet {}",
        meta.info_hash,
        s.info_hash
    );
    Ok(())
}

#[test]
fn the_routing_table_is_saved_at_exit_and_the_next_run_starts_from_it() -> Result<()> {
    const BLOCK: u8 = 2;
    let deadline = Deadline::start(TEST_TIME)?;
    let tmp = scratch("dht-state-")?;
    let t = tmp.path();
    let net = DhtNet::start(BLOCK, 16, deadline)?;
    let file = t.join("state.bin");
    write_file(&file, 300_000, 62)?;
    let state = t.join("state");
    let table = state.join("dht.dat");

    // First run: bootstraps from a node, joins, is found; SIGTERM saves the table.
    let listen = SocketAddr::from((ip(BLOCK, 2), 0));
    let cmd = seed_command(&file, listen, &net.addr(0), &state)?;
    let (mut first, s) = start_seed(cmd, "swarm-seed-first", t, deadline)?;
    let peer = SocketAddr::from((ip(BLOCK, 2), s.port));
    net.wait_for_peer(s.info_hash, peer, deadline)?;
    first.signal(Signal::SIGTERM)?;
    let status = first.wait(STOP_GRACE)?;
    ensure!(
        status.success(),
        "first run: {status}\n{}",
        first.describe()
    );
    let bytes =
        std::fs::read(&table).with_context(|| format!("no table at {}", table.display()))?;
    let saved = client::dht::parse_state(&bytes).context("the saved table")?;
    let ours: Vec<String> = (0..net.len()).map(|i| net.addr(i)).collect();
    ensure!(!saved.nodes.is_empty(), "the saved table is empty");
    for n in &saved.nodes {
        ensure!(
            ours.contains(&n.addr.to_string()),
            "saved node {} is not one of ours",
            n.addr
        );
    }
    eprintln!("saved {} nodes ({} bytes)", saved.nodes.len(), bytes.len());

    // Second run, same address and port, its only --bootstrap a dead address, seeding a
    // torrent never announced before: it can only get that announced from the saved table.
    let file2 = t.join("state2.bin");
    write_file(&file2, 300_000, 63)?;
    let dead = SocketAddr::from((ip(BLOCK, 9), 9)).to_string();
    let again = SocketAddr::from((ip(BLOCK, 2), s.port));
    let mut cmd = seed_command(&file2, again, &dead, &state)?;
    cmd.env("RUST_LOG", "info");
    let (mut second, s2) = start_seed(cmd, "swarm-seed-second", t, deadline)?;
    ensure!(
        s2.port == s.port,
        "second run on port {}, not {}",
        s2.port,
        s.port
    );
    second
        .wait_for_line(Stream::Stderr, deadline.left(), |l| {
            l.contains("loaded the saved DHT table")
        })
        .context("the second run did not load the saved table")?;
    let (took, lookups) = net.wait_for_peer(s2.info_hash, peer, deadline)?;
    eprintln!("the second run's torrent was found after {took:?} ({lookups} lookups)");
    Ok(())
}

#[test]
fn a_private_torrent_is_not_announced_while_a_public_one_is() -> Result<()> {
    const BLOCK: u8 = 3;
    let deadline = Deadline::start(TEST_TIME)?;
    let tmp = scratch("dht-private-")?;
    let t = tmp.path();
    let net = DhtNet::start(BLOCK, 16, deadline)?;

    let private = t.join("private.bin");
    write_file(&private, 300_000, 64)?;
    let private_torrent = t.join("private.torrent");
    let create = swarm(
        &[
            "create",
            path_str(&private)?,
            "--private",
            "-o",
            path_str(&private_torrent)?,
        ],
        &t.join("state-create"),
    )?;
    Proc::spawn(create, "swarm-create", t)?.wait_success(deadline.left())?;
    let meta = Metainfo::from_bytes(&std::fs::read(&private_torrent)?)?;
    ensure!(
        meta.info.is_private(),
        "swarm create --private made a public torrent"
    );

    // The private seeder starts first and so has had at least as long to announce.
    let private_listen = SocketAddr::from((ip(BLOCK, 2), 0));
    let cmd = swarm(
        &[
            "seed",
            path_str(&private_torrent)?,
            "--data",
            path_str(&private)?,
            "--listen",
            &private_listen.to_string(),
            "--bootstrap",
            &net.addr(0),
        ],
        &t.join("state-private"),
    )?;
    let (_private_seed, p) = start_seed(cmd, "swarm-seed-private", t, deadline)?;
    ensure!(p.info_hash == meta.info_hash);

    let public = t.join("public.bin");
    write_file(&public, 300_000, 65)?;
    let public_listen = SocketAddr::from((ip(BLOCK, 3), 0));
    let cmd = seed_command(
        &public,
        public_listen,
        &net.addr(1),
        &t.join("state-public"),
    )?;
    let (_public_seed, q) = start_seed(cmd, "swarm-seed-public", t, deadline)?;
    let public_peer = SocketAddr::from((ip(BLOCK, 3), q.port));
    let (took, _) = net.wait_for_peer(q.info_hash, public_peer, deadline)?;
    eprintln!("the public torrent was found after {took:?}");

    // A lookup from every node: none finds a peer for the private torrent.
    for i in 0..net.len() {
        let found = net.lookup(i, p.info_hash);
        ensure!(
            found.is_empty(),
            "node {i} found peers {found:?} for the private torrent"
        );
    }
    Ok(())
}
