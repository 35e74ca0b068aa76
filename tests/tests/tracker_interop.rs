//! Our tracker brings real clients together: a libtorrent seeder and an aria2 leecher that
//! know nothing but the torrent's announce URL find each other through it, and the download
//! completes byte for byte; the tracker's scrape and `/stats` show the swarm. And our client
//! announces to Debian's opentracker over UDP (BEP 15), its only source of peers, and
//! `swarm info --scrape` reads the counts of opentracker (UDP) and of our tracker (HTTP).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use metainfo::{InfoHash, PeerId, TorrentBuilder};
use tests::client::{fetch_command, seed_existing_command, start_seeder};
use tests::files::{assert_same_bytes, write_tree};
use tests::http::http_get;
use tests::peers::{Aria2, LibtorrentPeer};
use tests::ports::free_port;
use tests::process::{Proc, Stream};
use tests::tracker::LocalTracker;
use tests::{Program, require};
use tracker_proto::udp::{
    ConnectRequest, ConnectResponse, PeerFamily, UdpAnnounce, decode_announce_response,
};
use tracker_proto::{AnnounceRequest, Event};

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
    let _tracker = start_opentracker(&opentracker, tmp.path(), &[hash], udp_port, tcp_port)?;

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

/// A libtorrent seeder and `swarm fetch` that know nothing but opentracker's `udp://` URL: the
/// leecher's UDP announce is its only way to the seeder (no DHT), and the file arrives byte for
/// byte.
#[test]
fn swarm_fetches_from_libtorrent_through_opentracker_over_udp() -> Result<()> {
    let opentracker = require!(Program::Opentracker);
    require!(Program::Libtorrent);
    tests::bins::swarm()?;
    let started = Instant::now();
    let tmp = tempfile::Builder::new()
        .prefix("swarm-udp-lt")
        .tempdir_in("/tmp")?;
    let logs = tmp.path().join("logs");
    let seed_dir = tmp.path().join("seed");
    write_tree(&seed_dir, &[("lt-udp.bin", 900_017)], 37)?;
    let (udp_port, tcp_port) = (free_port()?, free_port()?);
    let meta = TorrentBuilder::new(seed_dir.join("lt-udp.bin"))
        .piece_length(64 * 1024)
        .trackers(vec![vec![format!("udp://127.0.0.1:{udp_port}/announce")]])
        .build(&|_| {})?;
    let torrent = tmp.path().join("lt-udp.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    let _tracker = start_opentracker(
        &opentracker,
        tmp.path(),
        &[meta.info_hash],
        udp_port,
        tcp_port,
    )?;

    let _seeder = LibtorrentPeer::seed(&torrent, &seed_dir, free_port()?)?;
    let tcp = SocketAddr::from((Ipv4Addr::LOCALHOST, tcp_port));
    wait_for_seeds(tcp, meta.info_hash.as_bytes(), Duration::from_secs(30))
        .context("libtorrent's UDP announce never reached opentracker")?;

    let out = tmp.path().join("leech");
    let mut fetch = fetch_command(&torrent, &out)?;
    fetch.arg("--no-dht");
    let mut leecher = Proc::spawn(fetch, "leecher", &logs)?;
    leecher.wait_success(UDP_SCENARIO_TIMEOUT.saturating_sub(started.elapsed()))?;
    assert_same_bytes(&seed_dir.join("lt-udp.bin"), &out.join("lt-udp.bin"));
    ensure!(
        !leecher.output(Stream::Stderr).contains("panicked"),
        "{}",
        leecher.describe()
    );
    Ok(())
}

/// `swarm info --scrape` asks opentracker over UDP (BEP 15 scrape) and our tracker over HTTP
/// (BEP 48) and prints each one's counts, which the test set with announces of its own: two
/// seeders, one leecher, one completed download at each; a tracker without a scrape URL shows
/// its error on its own line.
#[test]
fn swarm_info_scrapes_opentracker_over_udp_and_our_tracker_over_http() -> Result<()> {
    let opentracker = require!(Program::Opentracker);
    let swarm = tests::bins::swarm()?;
    let tmp = tempfile::Builder::new()
        .prefix("swarm-scrape")
        .tempdir_in("/tmp")?;
    let data = tmp.path().join("scrape.bin");
    write_tree(tmp.path(), &[("scrape.bin", 50_000)], 41)?;
    let (udp_port, tcp_port) = (free_port()?, free_port()?);
    let http = LocalTracker::start()?;
    let udp_url = format!("udp://127.0.0.1:{udp_port}/announce");
    let no_scrape = "http://127.0.0.1:9/tracker".to_owned();
    let meta = TorrentBuilder::new(&data)
        .piece_length(16 * 1024)
        .trackers(vec![
            vec![udp_url.clone()],
            vec![http.announce_url()],
            vec![no_scrape.clone()],
        ])
        .build(&|_| {})?;
    let torrent = tmp.path().join("scrape.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    let hash = meta.info_hash;
    let _ot = start_opentracker(&opentracker, tmp.path(), &[hash], udp_port, tcp_port)?;

    // Peer 1 seeds; peer 2 leeches; peer 3 started, then completed.
    let tracker_udp = SocketAddr::from((Ipv4Addr::LOCALHOST, udp_port));
    let steps = [
        (1, 0, Event::Started),
        (2, 500, Event::Started),
        (3, 500, Event::Started),
        (3, 0, Event::Completed),
    ];
    for (peer, left, event) in steps {
        let req = announce(hash, peer, left, event);
        udp_announce(tracker_udp, &req).with_context(|| format!("UDP announce of peer {peer}"))?;
        http.get(&format!("/announce?{}", req.to_query()))
            .with_context(|| format!("HTTP announce of peer {peer}"))?;
    }

    let out = Command::new(swarm)
        .args(["info", "--scrape"])
        .arg(&torrent)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(out.status.success(), "swarm info failed: {out:?}");
    // The scrape lines come last, one per tracker (the `trackers` lines name them too).
    let scrape_lines: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("scrape "))
        .collect();
    ensure!(scrape_lines.len() == 3, "{stdout}");
    let line_of = |url: &str| {
        scrape_lines
            .iter()
            .find(|l| l.contains(url))
            .with_context(|| format!("no line for {url} in\n{stdout}"))
    };
    for url in [udp_url.as_str(), http.announce_url().as_str()] {
        let line = line_of(url)?;
        ensure!(
            line.ends_with("seeders 2  leechers 1  completed 1"),
            "{url}: {line}\n{stdout}"
        );
        ensure!(line.starts_with("scrape") == (url == udp_url), "{line}");
    }
    ensure!(
        line_of(&no_scrape)?.contains("error: no scrape URL"),
        "{stdout}"
    );
    for line in &scrape_lines {
        ensure!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }
    Ok(())
}

/// Debian's opentracker on 127.0.0.1 (UDP and HTTP ports), serving `hashes` only: its
/// whitelist is a file it reads after dropping privileges, so it sits in `dir` (a world-readable
/// temporary directory).
fn start_opentracker(
    opentracker: &Path,
    dir: &Path,
    hashes: &[InfoHash],
    udp_port: u16,
    tcp_port: u16,
) -> Result<Proc> {
    let whitelist = dir.join("whitelist");
    let list: String = hashes
        .iter()
        .map(|h| format!("{}\n", hex(h.as_bytes())))
        .collect();
    std::fs::write(&whitelist, list)?;
    let mut cmd = Command::new(opentracker);
    cmd.current_dir(dir)
        .args(["-i", "127.0.0.1", "-P", &udp_port.to_string()])
        .args(["-p", &tcp_port.to_string()])
        .arg("-w")
        .arg(&whitelist);
    let p = Proc::spawn(cmd, "opentracker", &dir.join("logs"))?;
    tests::ports::wait_listening(tcp_port, Duration::from_secs(10))
        .context("opentracker did not start")?;
    Ok(p)
}

/// An announce of test peer `n` (its own peer id and port).
fn announce(info_hash: InfoHash, n: u8, left: u64, event: Event) -> AnnounceRequest {
    let mut peer_id = [b'0'; 20];
    peer_id[..8].copy_from_slice(b"-TE0001-");
    peer_id[19] = b'0' + n;
    AnnounceRequest {
        info_hash,
        peer_id: PeerId(peer_id),
        port: 40_000 + u16::from(n),
        uploaded: 0,
        downloaded: 0,
        left,
        event,
        compact: true,
        no_peer_id: true,
        numwant: Some(0),
        key: None,
        trackerid: None,
        ip: None,
    }
}

/// Connect and announce over UDP with a blocking socket, as a second client would.
fn udp_announce(tracker: SocketAddr, req: &AnnounceRequest) -> Result<()> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 2048];
    let mut ask = |out: &[u8], tid: u32| -> Result<Vec<u8>> {
        for _ in 0..3 {
            sock.send_to(out, tracker)?;
            while let Ok((n, _)) = sock.recv_from(&mut buf) {
                let d = &buf[..n];
                if d.len() >= 8 && d[4..8] == tid.to_be_bytes() {
                    return Ok(d.to_vec());
                }
            }
        }
        bail!("no answer from {tracker}")
    };
    let c = ask(&ConnectRequest { transaction_id: 11 }.encode(), 11)?;
    let conn = ConnectResponse::decode(&c, 11)?.connection_id;
    let a = UdpAnnounce::from_request(req, conn, 12, 0).encode();
    let r = ask(&a, 12)?;
    decode_announce_response(&r, 12, PeerFamily::V4)?;
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
