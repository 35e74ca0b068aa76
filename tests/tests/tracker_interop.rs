//! Our tracker brings real clients together: a libtorrent seeder and an aria2 leecher that
//! know nothing but the torrent's announce URL find each other through it, and the download
//! completes byte for byte; the tracker's scrape and `/stats` show the swarm. And our client
//! announces to Debian's opentracker over UDP (BEP 15), its only source of peers.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use metainfo::TorrentBuilder;
use tests::client::{fetch_command, seed_existing_command, start_seeder};
use tests::files::{assert_same_bytes, write_tree};
use tests::http::http_get;
use tests::peers::{Aria2, LibtorrentPeer};
use tests::ports::free_port;
use tests::process::{Proc, Stream};
use tests::tracker::LocalTracker;
use tests::{Program, require};

const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole UDP scenario, from opentracker's start to the leecher's exit.
const UDP_SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn libtorrent_seeds_to_aria2_through_our_tracker() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    let tracker = LocalTracker::start()?;
    let tmp = tempfile::tempdir()?;
    let (seed_dir, leech_dir) = (tmp.path().join("seed"), tmp.path().join("leech"));
    let files = [("big.bin", 3_000_000), ("notes/small.txt", 1_234)];
    write_tree(&seed_dir.join("payload"), &files, 17)?;
    let meta = TorrentBuilder::new(seed_dir.join("payload"))
        .piece_length(64 * 1024)
        .trackers(vec![vec![tracker.announce_url()]])
        .build(&|_| {})?;
    let torrent = tmp.path().join("payload.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    let hash = meta.info_hash;

    let seeder = LibtorrentPeer::seed(&torrent, &seed_dir, free_port()?)?;
    // The leecher gets peers only at its first announce: start it once the seeder is known.
    tracker
        .wait_for_scrape(&hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)
        .context("the seeder's announce never reached the tracker")?;

    let mut leecher = Aria2::leech(&torrent, &leech_dir, free_port()?)?;
    leecher.wait_done(TRANSFER_TIMEOUT)?;
    assert_same_bytes(&seed_dir.join("payload"), &leech_dir.join("payload"));

    // aria2 leaves with `event=stopped` (it sends no `completed` when it stops right at the
    // end); the seeder stays.
    tracker
        .wait_for_scrape(&hash, ANNOUNCE_TIMEOUT, |s| {
            s.complete == 1 && s.incomplete == 0
        })
        .context("the swarm is not back to the one seeder")?;
    let stats = tracker.stats()?;
    assert_eq!(tracker.stat("swarms")?, 1, "{stats}");
    // The seeder's `started`, the leecher's `started` and `stopped`.
    assert!(tracker.stat("announces")? >= 3, "{stats}");
    assert_eq!(tracker.stat("failures")?, 0, "{stats}");

    let sent = seeder.stop()?;
    assert!(
        sent.uploaded >= meta.info.total_length(),
        "seeder sent {sent:?}"
    );
    Ok(())
}

#[test]
fn aria2_seeds_to_libtorrent_through_our_tracker() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    let tracker = LocalTracker::start()?;
    let tmp = tempfile::tempdir()?;
    let (seed_dir, leech_dir) = (tmp.path().join("seed"), tmp.path().join("leech"));
    write_tree(&seed_dir, &[("single.bin", 1_500_001)], 23)?;
    let meta = TorrentBuilder::new(seed_dir.join("single.bin"))
        .piece_length(32 * 1024)
        .trackers(vec![vec![tracker.announce_url()]])
        .build(&|_| {})?;
    let torrent = tmp.path().join("single.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;

    let _seeder = Aria2::seed(&torrent, &seed_dir, free_port()?)?;
    tracker
        .wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)
        .context("aria2's announce never reached the tracker")?;
    // No --connect: libtorrent learns the seeder from our tracker's compact peer list.
    let mut leecher = LibtorrentPeer::leech(&torrent, &leech_dir, free_port()?)?;
    leecher.wait_done(TRANSFER_TIMEOUT)?;
    assert_same_bytes(&seed_dir.join("single.bin"), &leech_dir.join("single.bin"));
    // libtorrent announces `completed` when it finishes (then `stopped` as it exits).
    let after =
        tracker.wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| s.downloaded == 1)?;
    assert!(after.complete >= 1, "the seeder left the swarm: {after:?}");
    Ok(())
}

/// `swarm seed` and `swarm fetch` without the DHT, knowing nothing but a torrent whose one
/// tracker is opentracker's `udp://` URL: the UDP announces (BEP 15) are the only way the
/// leecher can learn the seeder, and the download completes byte for byte.
#[test]
fn swarm_finds_swarm_through_opentracker_over_udp() -> Result<()> {
    let opentracker = require!(Program::Opentracker);
    // Build our binaries first (a minute after a change), outside the scenario's time.
    tests::bins::swarm()?;
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("swarm-udp-tracker")
        .tempdir_in("/tmp")?;
    let logs = tmp.path().join("logs");
    let seed_dir = tmp.path().join("seed");
    write_tree(&seed_dir, &[("udp.bin", 700_001)], 31)?;
    let (udp_port, tcp_port) = (free_port()?, free_port()?);
    let meta = TorrentBuilder::new(seed_dir.join("udp.bin"))
        .piece_length(32 * 1024)
        .trackers(vec![vec![format!("udp://127.0.0.1:{udp_port}/announce")]])
        .build(&|_| {})?;
    let torrent = tmp.path().join("udp.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    let hash = meta.info_hash;

    // Debian's opentracker serves whitelisted torrents only.
    let whitelist = tmp.path().join("whitelist");
    std::fs::write(&whitelist, format!("{}\n", hex(hash.as_bytes())))?;
    let mut cmd = Command::new(opentracker);
    cmd.current_dir(tmp.path())
        .args(["-i", "127.0.0.1", "-P", &udp_port.to_string()])
        .args(["-p", &tcp_port.to_string()])
        .arg("-w")
        .arg(&whitelist);
    let _tracker = Proc::spawn(cmd, "opentracker", &logs)?;
    tests::ports::wait_listening(tcp_port, Duration::from_secs(10))
        .context("opentracker did not start")?;

    let mut seed = seed_existing_command(&torrent, &seed_dir.join("udp.bin"))?;
    seed.arg("--no-dht");
    let (_seeder, _) = start_seeder(seed, "seeder", &logs, Duration::from_secs(20))?;
    // The leecher learns peers at its first announce: start it once the seeder's UDP announce
    // reached opentracker (seen through its HTTP scrape).
    let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, tcp_port));
    wait_for_seeds(tcp, hash.as_bytes(), Duration::from_secs(20))
        .context("the seeder's UDP announce never reached opentracker")?;

    let out = tmp.path().join("leech");
    let mut fetch = fetch_command(&torrent, &out)?;
    fetch.arg("--no-dht");
    let mut leecher = Proc::spawn(fetch, "leecher", &logs)?;
    let left = UDP_SCENARIO_TIMEOUT.saturating_sub(started.elapsed());
    leecher.wait_success(left)?;
    assert_same_bytes(&seed_dir.join("udp.bin"), &out.join("udp.bin"));
    let stderr = leecher.output(Stream::Stderr);
    ensure!(!stderr.contains("panicked"), "{}", leecher.describe());
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Polls opentracker's HTTP scrape until the torrent has a seeder.
fn wait_for_seeds(tracker: SocketAddr, hash: &[u8], timeout: Duration) -> Result<()> {
    let query = hash.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "%{b:02X}");
        s
    });
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(r) = http_get(
            tracker,
            &format!("/scrape?info_hash={query}"),
            Duration::from_secs(2),
        ) {
            last = r.text();
            if last.contains("8:completei1e") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("no seeder after {timeout:?}; last scrape {last:?}")
}
