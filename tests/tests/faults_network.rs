//! Network faults around a `swarm fetch`: the tracker dies half-way, a tracker answers only
//! `failure reason` at first, and the link to the seeder is cut for 15 s and restored. Each time
//! the leecher tells the user what happened (where there is something to tell), keeps going
//! without a restart, and ends with the seeder's exact bytes.
//!
//! The cut link runs the seeder and the leecher in two network namespaces joined by a veth pair
//! (made by the test; needs root): without them the test prints `SKIP: ...` and passes.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use tests::bins;
use tests::client::{fetch_command, matching_pieces, seed_command, start_seeder, wait_for_pieces};
use tests::fake_tracker::{ScriptedTracker, failure_body, peers_body};
use tests::files::{assert_same_bytes, write_file};
use tests::netns::{A_ADDR, B_ADDR, VethPair};
use tests::process::{Proc, Stream};
use tests::seeded::{START_TIMEOUT, SeedSpec, Seeded};

/// A bound for a rate-limited download of a few MB.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The leecher's rate: a 2 MB file takes about 8 s.
const SLOW: &str = "256K";
/// Piece size of the torrents here.
const PIECE: usize = 32 * 1024;
/// The file size: 65 pieces, the last one short.
const FILE_LEN: u64 = 2 * 1024 * 1024 + 7_001;

#[test]
fn the_tracker_dying_half_way_does_not_stop_the_download() -> Result<()> {
    let mut s = Seeded::start(SeedSpec::new("orphan.bin", FILE_LEN, 101))?;
    let out = s.dir().join("leech");
    let mut cmd = s.fetch_command(&out)?;
    cmd.args(["--download-limit", SLOW]);
    let mut leecher = Proc::spawn(cmd, "leecher", &s.logs)?;
    let got = s.fetched(&out);
    let before = wait_for_pieces(&mut leecher, &s.data, &got, PIECE, 8, TIMEOUT)?;
    s.tracker.shutdown()?;
    ensure!(
        before < s.piece_count() as usize,
        "the download finished before the tracker was stopped"
    );
    leecher.wait_success(TIMEOUT)?;
    assert_same_bytes(&s.data, &got);
    let stderr = leecher.output(Stream::Stderr);
    ensure!(!stderr.contains("panicked"), "{}", leecher.describe());
    Ok(())
}

/// What the scripted tracker tells the leecher first.
const REASON: &str = "swarm test: this tracker is resting";

#[test]
fn a_tracker_failure_reason_is_shown_and_the_announce_retried() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("seed/refused.bin");
    write_file(&data, FILE_LEN, 103)?;
    // The tracker answers the seeder (left=0) with no peers; the leecher's first announce with
    // the failure reason, its later ones with the seeder's address.
    let seeder_addr = std::sync::Arc::new(std::sync::OnceLock::<SocketAddrV4>::new());
    let leecher_announces = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (addr, count) = (seeder_addr.clone(), leecher_announces.clone());
    let tracker = ScriptedTracker::start(move |target| {
        if target.contains("&left=0&") {
            return peers_body(&[], 1800);
        }
        if count.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            return failure_body(REASON);
        }
        peers_body(&addr.get().copied().into_iter().collect::<Vec<_>>(), 1800)
    })?;
    let torrent = tmp.path().join("refused.torrent");
    let cmd = seed_command(&data, &torrent, &tracker.announce_url(), "32K")?;
    let (_seeder, port) = start_seeder(cmd, "seeder", &logs, START_TIMEOUT)?;
    let _ = seeder_addr.set(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));

    let out = tmp.path().join("leech");
    let mut leecher = Proc::spawn(fetch_command(&torrent, &out)?, "leecher", &logs)?;
    let told = leecher.wait_for_line(Stream::Stderr, TIMEOUT, |l| l.contains(REASON))?;
    eprintln!("the user saw: {told}");
    ensure!(
        leecher.try_status()?.is_none(),
        "the leecher exited on a tracker failure\n{}",
        leecher.describe()
    );
    // The retry comes after a backoff (30 s for a first failure), then the download runs.
    leecher.wait_success(TIMEOUT)?;
    assert_same_bytes(&data, &out.join("refused.bin"));
    let n = leecher_announces.load(std::sync::atomic::Ordering::Relaxed);
    ensure!(n >= 2, "the leecher announced {n} times");
    ensure!(
        !leecher.output(Stream::Stderr).contains("panicked"),
        "{}",
        leecher.describe()
    );
    Ok(())
}

/// How long the link stays down.
const CUT: Duration = Duration::from_secs(15);

#[test]
fn a_link_cut_for_15_s_and_restored_lets_the_download_finish() -> Result<()> {
    let pair = match VethPair::create('n')? {
        Ok(p) => p,
        Err(why) => {
            eprintln!(
                "SKIP: a_link_cut_for_15_s_and_restored_lets_the_download_finish: {}",
                why.0
            );
            return Ok(());
        }
    };
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("seed/cut.bin");
    write_file(&data, FILE_LEN, 107)?;
    let torrent = tmp.path().join("cut.torrent");
    let swarm = bins::swarm()?;

    // The seeder in namespace a, with its own tracker there; the leecher in namespace b.
    let mut seed = pair.in_a(&swarm);
    seed.arg("seed")
        .arg(&data)
        .arg("--torrent")
        .arg(&torrent)
        .args([
            "--piece-size",
            "32K",
            "--announce-host",
            &A_ADDR.to_string(),
        ])
        .args(["--listen", &format!("{A_ADDR}:0")]);
    let (_seeder, _) = start_seeder(seed, "seeder", &logs, START_TIMEOUT)?;
    let mut fetch = pair.in_b(&swarm);
    fetch
        .arg("fetch")
        .arg(&torrent)
        .arg("-o")
        .arg(tmp.path().join("leech"))
        .args(["--listen", &format!("{B_ADDR}:0"), "--download-limit", SLOW]);
    let mut leecher = Proc::spawn(fetch, "leecher", &logs)?;
    let got = tmp.path().join("leech/cut.bin");
    let at_cut = wait_for_pieces(&mut leecher, &data, &got, PIECE, 10, TIMEOUT)?;

    pair.set_link(false)?;
    let cut_at = Instant::now();
    while cut_at.elapsed() < CUT {
        ensure!(
            leecher.try_status()?.is_none(),
            "the leecher exited while the link was down\n{}",
            leecher.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after_cut = matching_pieces(&data, &got, PIECE)?;
    pair.set_link(true)?;
    let restored = Instant::now();
    eprintln!("link cut with {at_cut} pieces on disk, restored with {after_cut}");

    leecher.wait_success(TIMEOUT)?;
    eprintln!(
        "completed {:?} after the link came back",
        restored.elapsed()
    );
    assert_same_bytes(&data, &got);
    ensure!(
        after_cut < FILE_LEN.div_ceil(PIECE as u64) as usize,
        "the download finished while the link was down"
    );
    Ok(())
}
