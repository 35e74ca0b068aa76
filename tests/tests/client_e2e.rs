//! Our client end to end, as a person runs it: `swarm seed` and `swarm fetch` processes on
//! loopback find each other through our tracker and move real files. Here: a swarm of one
//! seeder and five leechers, a seeder that dies mid-transfer, and the `--on-complete` hook.
//! Interrupted and resumed downloads are in `client_e2e_resume.rs`, mistakes a person can make
//! in `client_e2e_errors.rs`.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use metainfo::Metainfo;
use nix::sys::signal::Signal;
use tests::client::{
    LISTEN, fetch_command, seed_command, seed_existing_command, start_seeder, wait_for_pieces,
};
use tests::files::{assert_same_bytes, write_file, write_tree};
use tests::ports::{free_port, loopback};
use tests::process::{Proc, Stream};
use tests::tracker::{LocalTracker, wait_for_scrape};

/// Longest a seeder may take to hash its data and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a seeder's first announce may take to reach the tracker.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest one download of a few MB may take (a bound, not an expectation: they take seconds).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Piece size of every torrent here: small, so a few MB make many pieces.
const PIECE: usize = 32 * 1024;

/// The torrent `swarm seed` wrote, parsed.
fn read_torrent(path: &Path) -> Result<Metainfo> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    Ok(Metainfo::from_bytes(&bytes)?)
}

#[test]
fn one_seeder_and_five_leechers_all_end_with_the_same_bytes() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let payload = tmp.path().join("seed/payload");
    // 32 KiB pieces: sizes that are no multiple of it make pieces straddle files; the total
    // (2_900_013) leaves a short last piece; the empty file sits between two others.
    let files = [
        ("payload/a.bin", 1_000_003),
        ("payload/b-empty", 0),
        ("payload/c/d.bin", 700_001),
        ("payload/e.bin", 1_200_009),
    ];
    write_tree(&tmp.path().join("seed"), &files, 41)?;
    let tracker = LocalTracker::start()?;
    let torrent = tmp.path().join("payload.torrent");
    let (_seeder, _) = start_seeder(
        seed_command(&payload, &torrent, &tracker.announce_url(), "32K")?,
        "seeder",
        &logs,
        START_TIMEOUT,
    )?;
    let meta = read_torrent(&torrent)?;
    let geometry = meta.info.geometry();
    assert!(geometry.piece_count() > 80, "{geometry:?}");
    assert!(meta.info.total_length() % PIECE as u64 != 0);
    // A leecher learns peers only at its first announce: start them once the seeder is known.
    tracker.wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;

    let mut leechers = Vec::new();
    for i in 0..5 {
        let out = tmp.path().join(format!("leech{i}"));
        let proc = Proc::spawn(fetch_command(&torrent, &out)?, "leecher", &logs)?;
        leechers.push((proc, out));
    }
    for (proc, out) in &mut leechers {
        proc.wait_success(FETCH_TIMEOUT)?;
        assert_same_bytes(&payload, &out.join("payload"));
        let stdout = proc.output(Stream::Stdout);
        ensure!(stdout.contains("done: payload"), "{}", proc.describe());
    }
    // Every leecher told the tracker it completed, exactly once, even when it exited at once.
    tracker.wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| {
        s.downloaded == 5 && s.incomplete == 0
    })?;
    Ok(())
}

#[test]
fn a_seeder_killed_mid_transfer_leaves_the_other_to_finish() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("seed/movie.bin");
    let len = 2 * 1024 * 1024 + 777;
    write_file(&data, len, 43)?;
    let pieces = usize::try_from(len)?.div_ceil(PIECE);
    let tracker = LocalTracker::start()?;
    let torrent = tmp.path().join("movie.torrent");

    // The first seeder is slow (about 8 s for the file alone) and, for now, the only source.
    let mut first = seed_command(&data, &torrent, &tracker.announce_url(), "32K")?;
    first.args(["--upload-limit", "256K"]);
    let (mut first, _) = start_seeder(first, "seeder-1", &logs, START_TIMEOUT)?;
    let hash = read_torrent(&torrent)?.info_hash;
    tracker.wait_for_scrape(&hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;
    let out = tmp.path().join("leech");
    let mut leecher = Proc::spawn(fetch_command(&torrent, &out)?, "leecher", &logs)?;
    let got = out.join("movie.bin");
    // Pieces on the leecher's disk now can only have come from the first seeder.
    wait_for_pieces(&mut leecher, &data, &got, PIECE, 4, FETCH_TIMEOUT)?;

    // The second seeder checks the same data against the torrent; at its first announce it
    // learns the leecher and connects to it.
    let mut second = seed_existing_command(&torrent, &data)?;
    second.args(["--upload-limit", "1M"]);
    let (_second, _) = start_seeder(second, "seeder-2", &logs, START_TIMEOUT)?;
    tracker.wait_for_scrape(&hash, ANNOUNCE_TIMEOUT, |s| s.complete == 2)?;

    let before = tests::client::matching_pieces(&data, &got, PIECE)?;
    ensure!(
        leecher.try_status()?.is_none() && before < pieces,
        "the leecher finished before a seeder could be killed ({before} of {pieces} pieces)\n{}",
        leecher.describe()
    );
    first.signal(Signal::SIGKILL)?;
    first.wait(Duration::from_secs(10))?;

    leecher.wait_success(FETCH_TIMEOUT)?;
    assert_same_bytes(&data, &got);
    Ok(())
}

#[test]
fn on_complete_runs_with_the_torrent_in_its_environment() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("seed/clip.bin");
    write_file(&data, 300_001, 47)?;
    // This time the seeder's own tracker, on a port of our choosing, announced as 127.0.0.1.
    let tracker_port = free_port()?;
    let mut seed = std::process::Command::new(tests::bins::swarm()?);
    seed.arg("seed")
        .arg(&data)
        .args(["--piece-size", "32K", "--listen", LISTEN])
        .args(["--tracker-port", &tracker_port.to_string()])
        .args(["--announce-host", "127.0.0.1"]);
    let (mut seeder, _) = start_seeder(seed, "seeder", &logs, START_TIMEOUT)?;
    let torrent = tmp.path().join("seed/clip.bin.torrent");
    let meta = read_torrent(&torrent)?;
    let url = format!("http://127.0.0.1:{tracker_port}/announce");
    ensure!(
        meta.trackers().concat() == [url.clone()],
        "announce URLs {:?}, want {url}",
        meta.trackers()
    );
    let tracker = loopback(tracker_port);
    wait_for_scrape(tracker, &meta.info_hash, ANNOUNCE_TIMEOUT, |s| {
        s.complete == 1
    })?;

    let out = tmp.path().join("out");
    let record = tmp.path().join("hook.txt");
    let hook = format!(
        "echo \"$SWARM_NAME $SWARM_INFO_HASH $SWARM_PATH\" > '{}'",
        record.display()
    );
    let mut fetch = fetch_command(&torrent, &out)?;
    fetch.args(["--on-complete", &hook]);
    let mut leecher = Proc::spawn(fetch, "leecher", &logs)?;
    leecher.wait_success(FETCH_TIMEOUT)?;
    assert_same_bytes(&data, &out.join("clip.bin"));

    let written = std::fs::read_to_string(&record)
        .with_context(|| format!("the hook wrote nothing\n{}", leecher.describe()))?;
    let want = format!(
        "clip.bin {} {}\n",
        meta.info_hash.to_hex(),
        std::path::absolute(&out)?.join("clip.bin").display()
    );
    assert_eq!(written, want);

    // The embedded tracker saw the leecher come and go.
    wait_for_scrape(tracker, &meta.info_hash, ANNOUNCE_TIMEOUT, |s| {
        s.complete == 1 && s.incomplete == 0
    })?;
    let status = seeder.terminate(Duration::from_secs(10))?;
    ensure!(status.success(), "seeder: {status}\n{}", seeder.describe());
    Ok(())
}
