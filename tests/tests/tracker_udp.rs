//! Our tracker over UDP (BEP 15) brings real clients together: a libtorrent seeder and an aria2
//! leecher that know nothing but `udp://127.0.0.1:PORT/announce` find each other through it and
//! the file arrives byte for byte. aria2 speaks UDP trackers only with its DHT on: it gets a DHT
//! port on loopback and no bootstrap node, so nothing leaves the machine.

use std::time::Duration;

use anyhow::{Context, Result};
use metainfo::TorrentBuilder;
use tests::files::{assert_same_bytes, write_tree};
use tests::peers::{Aria2, LibtorrentPeer};
use tests::ports::free_port;
use tests::tracker::LocalTracker;
use tests::{Program, require};

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
