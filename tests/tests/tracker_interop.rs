//! Our tracker brings real clients together: a libtorrent seeder and an aria2 leecher that
//! know nothing but the torrent's announce URL find each other through it, and the download
//! completes byte for byte; the tracker's scrape and `/stats` show the swarm.

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
