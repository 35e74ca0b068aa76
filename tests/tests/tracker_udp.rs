//! Our tracker over UDP (BEP 15) brings real clients together: a libtorrent seeder and an aria2
//! leecher that know nothing but `udp://127.0.0.1:PORT/announce` find each other through it and
//! the file arrives byte for byte. aria2 speaks UDP trackers only with its DHT on: it gets a DHT
//! port on loopback and no bootstrap node, so nothing leaves the machine. And `swarm seed`'s
//! embedded tracker answers BEP 15 on its HTTP port.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use metainfo::TorrentBuilder;
use tests::client::start_seeder;
use tests::files::{assert_same_bytes, write_file, write_tree};
use tests::peers::{Aria2, LibtorrentPeer};
use tests::ports::free_port;
use tests::tracker::LocalTracker;
use tests::{Program, require};
use tracker_proto::udp::{ConnectRequest, ConnectResponse, PeerFamily, UdpAnnounce};
use tracker_proto::{AnnounceRequest, Event};

const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);

#[test]
fn libtorrent_seeds_to_aria2_through_our_udp_tracker() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    let tracker = LocalTracker::start()?;
    let tmp = tempfile::tempdir()?;
    let (seed_dir, leech_dir) = (tmp.path().join("seed"), tmp.path().join("leech"));
    write_tree(&seed_dir, &[("udp.bin", 2_000_003)], 41)?;
    let meta = TorrentBuilder::new(seed_dir.join("udp.bin"))
        .piece_length(64 * 1024)
        .trackers(vec![vec![tracker.udp_announce_url()]])
        .build(&|_| {})?;
    let torrent = tmp.path().join("udp.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    let hash = meta.info_hash;

    let seeder = LibtorrentPeer::seed(&torrent, &seed_dir, free_port()?)?;
    // The leecher gets peers only at its first announce: start it once the seeder is known
    // (the counts are read over HTTP: the same store).
    tracker
        .wait_for_scrape(&hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)
        .context("the seeder's UDP announce never reached the tracker")?;
    let stats = tracker.stats()?;
    assert!(tracker.stat("udp announces")? >= 1, "{stats}");

    let mut leecher = Aria2::leech_with_dht(&torrent, &leech_dir, free_port()?, free_port()?)?;
    leecher.wait_done(TRANSFER_TIMEOUT)?;
    assert_same_bytes(&seed_dir.join("udp.bin"), &leech_dir.join("udp.bin"));

    let stats = tracker.stats()?;
    // Both clients connected and announced; nothing came over HTTP (the torrent names no
    // http:// tracker), and no request was refused.
    assert!(tracker.stat("udp connects")? >= 2, "{stats}");
    assert!(tracker.stat("udp announces")? >= 2, "{stats}");
    assert_eq!(
        tracker.stat("announces")?,
        tracker.stat("udp announces")?,
        "{stats}"
    );
    assert_eq!(tracker.stat("udp bad ids")?, 0, "{stats}");
    assert_eq!(tracker.stat("udp errors")?, 0, "{stats}");
    assert_eq!(tracker.stat("swarms")?, 1, "{stats}");

    let sent = seeder.stop()?;
    assert!(
        sent.uploaded >= meta.info.total_length(),
        "seeder sent {sent:?}"
    );
    Ok(())
}

/// `swarm seed` with its own tracker: a BEP 15 client on its tracker port gets a connection id
/// and, announcing with it, the seeder's address.
#[test]
fn swarm_seeds_embedded_tracker_answers_udp() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("seed/e.bin");
    write_file(&data, 100_001, 5)?;
    let tracker_port = free_port()?;
    let mut seed = std::process::Command::new(tests::bins::swarm()?);
    seed.arg("seed")
        .arg(&data)
        .args(["--piece-size", "32K", "--listen", "127.0.0.1:0", "--no-dht"])
        .args(["--tracker-port", &tracker_port.to_string()])
        .args(["--announce-host", "127.0.0.1"]);
    let (_seeder, peer_port) =
        start_seeder(seed, "seeder", &tmp.path().join("logs"), ANNOUNCE_TIMEOUT)?;
    let meta =
        metainfo::Metainfo::from_bytes(&std::fs::read(tmp.path().join("seed/e.bin.torrent"))?)?;

    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    let tracker = (Ipv4Addr::LOCALHOST, tracker_port);
    let mut buf = [0u8; 2048];
    let mut ask = |req: &[u8]| -> Result<Vec<u8>> {
        sock.send_to(req, tracker)?;
        let (n, _) = sock.recv_from(&mut buf).context("no UDP answer")?;
        Ok(buf[..n].to_vec())
    };
    let cid = ConnectResponse::decode(&ask(&ConnectRequest { transaction_id: 8 }.encode())?, 8)?
        .connection_id;
    // The seeder announces on its own schedule: poll until it is listed (bounded).
    let req = AnnounceRequest {
        info_hash: meta.info_hash,
        peer_id: metainfo::PeerId([9; 20]),
        port: 1,
        uploaded: 0,
        downloaded: 0,
        left: 1,
        event: Event::Started,
        compact: true,
        no_peer_id: true,
        numwant: Some(10),
        key: None,
        trackerid: None,
        ip: None,
    };
    let announce = UdpAnnounce::from_request(&req, cid, 9, 0).encode();
    let mut peers = Vec::new();
    for _ in 0..100 {
        let r = tracker_proto::udp::decode_announce_response(&ask(&announce)?, 9, PeerFamily::V4)?;
        peers = r.peers;
        if !peers.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        peers.iter().any(|p| p.port() == peer_port),
        "the seeder (port {peer_port}) is not among {peers:?}"
    );
    Ok(())
}
