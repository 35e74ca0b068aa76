//! Our client (`swarm seed`, `swarm fetch`) against real BitTorrent programs on 127.0.0.1:
//! libtorrent and aria2 as leechers and seeders (also both at once), Transmission as a seeder,
//! and a mixed swarm through our tracker. Every transfer must end with byte-identical data.
//!
//! Each scenario runs over two payloads with 256 KiB pieces: one file of several MB, and a
//! directory of files whose boundaries fall inside pieces; both end in a short last piece.
//! Our processes log at debug level (override with `RUST_LOG`) beside their data, and a
//! failure quotes the tail of every log; `SWARM_KEEP_TEST_DIRS=1` keeps the directories.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use metainfo::{InfoHash, Metainfo, TorrentBuilder};
use tests::bins;
use tests::files::{compare_paths, write_tree};
use tests::peers::{Aria2, LibtorrentPeer, LtOptions, Transmission};
use tests::ports::{free_port, loopback};
use tests::process::{Proc, Stream};
use tests::tracker::LocalTracker;
use tests::{Program, require};

/// One whole transfer, start to exit.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
/// A peer's first announce reaching the tracker (includes verifying a seed's data).
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(60);
/// Our seeder hashing or verifying its data and listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Our processes' logging unless the test's environment sets `RUST_LOG`.
const LOG_FILTER: &str = "debug,hyper=info,hyper_util=info,reqwest=info,h2=info";
/// 2^18 = 256 KiB pieces.
const PIECE_LEN: u32 = 256 * 1024;

/// The two payload shapes every scenario runs over.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// One file of ~5.7 MiB: 23 pieces, the last one short.
    SingleFile,
    /// Three files (two in a subdirectory), boundaries inside pieces, a short last piece.
    MultiFile,
}

const SHAPES: [Shape; 2] = [Shape::SingleFile, Shape::MultiFile];

impl Shape {
    /// The files, relative to the seeder's data directory.
    fn files(self) -> &'static [(&'static str, u64)] {
        match self {
            Shape::SingleFile => &[("single.bin", 6_012_345)],
            Shape::MultiFile => &[
                ("album/big.bin", 3_500_000),
                ("album/sub/mid.bin", 1_048_577),
                ("album/sub/notes.txt", 1_234),
            ],
        }
    }

    /// The torrent's root (file or directory) under a data directory.
    fn root_name(self) -> &'static str {
        match self {
            Shape::SingleFile => "single.bin",
            Shape::MultiFile => "album",
        }
    }
}

/// Data written in `seed_dir` and a torrent for it that announces to one tracker.
struct Payload {
    shape: Shape,
    seed_dir: PathBuf,
    torrent: PathBuf,
    meta: Metainfo,
}

impl Payload {
    /// Writes the data under `tmp/seed` and builds its torrent (with our builder).
    fn new(tmp: &Path, shape: Shape, announce: &str) -> Result<Self> {
        let seed_dir = tmp.join("seed");
        write_tree(&seed_dir, shape.files(), 41)?;
        let meta = TorrentBuilder::new(seed_dir.join(shape.root_name()))
            .piece_length(PIECE_LEN)
            .trackers(vec![vec![announce.to_owned()]])
            .build(&|_| {})?;
        let last = meta.info.total_length() % u64::from(PIECE_LEN);
        ensure!(last != 0, "{shape:?}: the last piece should be short");
        let torrent = tmp.join(format!("{}.torrent", shape.root_name()));
        std::fs::write(&torrent, meta.as_bytes())?;
        Ok(Payload {
            shape,
            seed_dir,
            torrent,
            meta,
        })
    }

    /// The seeder's file or top directory.
    fn data(&self) -> PathBuf {
        self.seed_dir.join(self.shape.root_name())
    }

    fn hash(&self) -> InfoHash {
        self.meta.info_hash
    }

    fn total(&self) -> u64 {
        self.meta.info.total_length()
    }

    /// Fails unless `dir` holds the same torrent root, byte for byte.
    fn check(&self, dir: &Path, who: &str) -> Result<()> {
        compare_paths(&self.data(), &dir.join(self.shape.root_name()))
            .with_context(|| format!("{who} ({:?})", self.shape))
    }
}

/// A scratch directory for one scenario; kept (and named on stderr) when the environment sets
/// `SWARM_KEEP_TEST_DIRS`, to read the peers' logs afterwards.
fn scratch() -> Result<tempfile::TempDir> {
    let mut dir = tempfile::Builder::new()
        .prefix("client-interop-")
        .tempdir()?;
    if std::env::var_os("SWARM_KEEP_TEST_DIRS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    Ok(dir)
}

/// `swarm` with our log filter, logs beside the data.
fn swarm_command(args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(bins::swarm()?);
    cmd.args(args);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", LOG_FILTER);
    }
    Ok(cmd)
}

fn listen_arg(port: u16) -> String {
    loopback(port).to_string()
}

fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}

/// Our seeder for an existing torrent and its data, with `extra` flags; returns once it
/// verified its data and listens.
fn our_seeder(payload: &Payload, port: u16, log_dir: &Path, extra: &[&str]) -> Result<Proc> {
    let mut cmd = swarm_command(&[
        "seed",
        path_str(&payload.torrent)?,
        "--data",
        path_str(&payload.data())?,
        "--listen",
        &listen_arg(port),
    ])?;
    cmd.args(extra);
    let mut proc = Proc::spawn(cmd, &format!("swarm-seed-{port}"), log_dir)?;
    proc.wait_for_line(Stream::Stdout, START_TIMEOUT, |l| {
        l.starts_with("listening on port")
    })
    .context("our seeder did not start")?;
    Ok(proc)
}

/// Our leecher with `extra` flags, downloading into `dir` and exiting 0 once complete.
fn our_leecher(
    payload: &Payload,
    dir: &Path,
    port: u16,
    log_dir: &Path,
    extra: &[&str],
) -> Result<Proc> {
    let mut cmd = swarm_command(&[
        "fetch",
        path_str(&payload.torrent)?,
        "-o",
        path_str(dir)?,
        "--listen",
        &listen_arg(port),
        "-q",
    ])?;
    cmd.args(extra);
    Proc::spawn(cmd, &format!("swarm-fetch-{port}"), log_dir)
}

/// Waits for `seeders` announces, then runs our leecher (with `extra` flags) to completion and
/// checks its bytes.
fn our_leecher_completes(
    tracker: &LocalTracker,
    payload: &Payload,
    tmp: &Path,
    seeders: u64,
    extra: &[&str],
) -> Result<()> {
    tracker
        .wait_for_scrape(&payload.hash(), ANNOUNCE_TIMEOUT, |s| s.complete >= seeders)
        .with_context(|| format!("{seeders} seeders never announced"))?;
    let dir = tmp.join("ours");
    let mut leecher = our_leecher(payload, &dir, free_port()?, tmp, extra)?;
    leecher
        .wait_success(TRANSFER_TIMEOUT)
        .context("our leecher did not complete")?;
    payload.check(&dir, "our leecher")
}

/// 1. Our seeder (hashing the data itself) -> a libtorrent leecher.
#[test]
fn our_seeder_to_libtorrent() -> Result<()> {
    require!(Program::Libtorrent);
    for shape in SHAPES {
        let tracker = LocalTracker::start()?;
        let tmp = scratch()?;
        let payload = Payload::new(tmp.path(), shape, &tracker.announce_url())?;
        // `swarm seed PATH --tracker URL` makes its own torrent; it must equal ours.
        let made = tmp.path().join("made.torrent");
        let port = free_port()?;
        let cmd = swarm_command(&[
            "seed",
            path_str(&payload.data())?,
            "--tracker",
            &tracker.announce_url(),
            "--torrent",
            path_str(&made)?,
            "--listen",
            &listen_arg(port),
        ])?;
        let mut seeder = Proc::spawn(cmd, &format!("swarm-seed-{port}"), tmp.path())?;
        seeder.wait_for_line(Stream::Stdout, START_TIMEOUT, |l| {
            l.starts_with("listening on port")
        })?;
        let made_meta = Metainfo::from_bytes(&std::fs::read(&made)?)?;
        assert_eq!(made_meta.info_hash, payload.hash(), "{shape:?}");
        tracker.wait_for_scrape(&payload.hash(), ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;

        let dir = tmp.path().join("lt");
        let mut leecher = LibtorrentPeer::leech(&made, &dir, free_port()?)?;
        leecher.wait_done(TRANSFER_TIMEOUT)?;
        let moved = leecher.stop()?;
        payload.check(&dir, "libtorrent leecher")?;
        // No block sent twice over one connection (libtorrent counts payload it received).
        assert_eq!(moved.downloaded, payload.total(), "{shape:?}: {moved:?}");
        seeder.terminate(Duration::from_secs(10))?;
    }
    Ok(())
}

/// 2. Our seeder -> an aria2 leecher.
#[test]
fn our_seeder_to_aria2() -> Result<()> {
    require!(Program::Aria2c);
    for shape in SHAPES {
        let tracker = LocalTracker::start()?;
        let tmp = scratch()?;
        let payload = Payload::new(tmp.path(), shape, &tracker.announce_url())?;
        let _seeder = our_seeder(&payload, free_port()?, tmp.path(), &[])?;
        tracker.wait_for_scrape(&payload.hash(), ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;
        let dir = tmp.path().join("aria2");
        let mut leecher = Aria2::leech(&payload.torrent, &dir, free_port()?)?;
        leecher.wait_done(TRANSFER_TIMEOUT)?;
        payload.check(&dir, "aria2 leecher")?;
    }
    Ok(())
}

/// 3. A libtorrent seeder -> our leecher.
#[test]
fn libtorrent_seeder_to_ours() -> Result<()> {
    require!(Program::Libtorrent);
    for shape in SHAPES {
        let tracker = LocalTracker::start()?;
        let tmp = scratch()?;
        let payload = Payload::new(tmp.path(), shape, &tracker.announce_url())?;
        let seeder = LibtorrentPeer::seed(&payload.torrent, &payload.seed_dir, free_port()?)?;
        our_leecher_completes(&tracker, &payload, tmp.path(), 1, &[])?;
        let moved = seeder.stop()?;
        assert!(
            moved.uploaded >= payload.total(),
            "{shape:?}: libtorrent sent only {moved:?}"
        );
    }
    Ok(())
}

/// 4. An aria2 seeder -> our leecher.
#[test]
fn aria2_seeder_to_ours() -> Result<()> {
    require!(Program::Aria2c);
    for shape in SHAPES {
        let tracker = LocalTracker::start()?;
        let tmp = scratch()?;
        let payload = Payload::new(tmp.path(), shape, &tracker.announce_url())?;
        let _seeder = Aria2::seed(&payload.torrent, &payload.seed_dir, free_port()?)?;
        our_leecher_completes(&tracker, &payload, tmp.path(), 1, &[])?;
    }
    Ok(())
}

/// 5. A Transmission daemon seeder -> our leecher (Transmission accepts our loopback dial).
#[test]
fn transmission_seeder_to_ours() -> Result<()> {
    require!(Program::TransmissionDaemon);
    require!(Program::TransmissionRemote);
    for shape in SHAPES {
        let tracker = LocalTracker::start()?;
        let tmp = scratch()?;
        let payload = Payload::new(tmp.path(), shape, &tracker.announce_url())?;
        let daemon = Transmission::start(&tmp.path().join("transmission"))?;
        daemon.add(&payload.torrent, &payload.seed_dir)?;
        // It verifies the data it finds, then announces as a seed.
        daemon.wait_complete(&payload.hash(), ANNOUNCE_TIMEOUT)?;
        our_leecher_completes(&tracker, &payload, tmp.path(), 1, &[])?;
    }
    Ok(())
}

/// Two real seeders at once (libtorrent and aria2) -> our leecher: requests spread over both,
/// and the end-game CANCELs (which libtorrent answers with REJECTs) cost no connection.
#[test]
fn libtorrent_and_aria2_seeders_to_ours() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    for shape in SHAPES {
        let tracker = LocalTracker::start()?;
        let tmp = scratch()?;
        let payload = Payload::new(tmp.path(), shape, &tracker.announce_url())?;
        let lt = LibtorrentPeer::seed(&payload.torrent, &payload.seed_dir, free_port()?)?;
        let _aria = Aria2::seed(&payload.torrent, &payload.seed_dir, free_port()?)?;
        // Capped, so that both connections are up long before the end.
        let cap = ["--download-limit", "2M"];
        our_leecher_completes(&tracker, &payload, tmp.path(), 2, &cap)?;
        let moved = lt.stop()?;
        assert!(
            moved.uploaded > 0 && moved.downloaded == 0,
            "{shape:?}: libtorrent seeder moved {moved:?}"
        );
    }
    Ok(())
}

/// 6. Our seeder, a libtorrent leecher, an aria2 leecher and two of our leechers find each
///    other through our tracker; all complete with identical bytes.
#[test]
fn mixed_swarm_through_our_tracker() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    for shape in SHAPES {
        let tracker = LocalTracker::start()?;
        let tmp = scratch()?;
        let t = tmp.path();
        let payload = Payload::new(t, shape, &tracker.announce_url())?;
        // Capped so the leechers overlap and trade pieces among themselves, not each take a
        // whole copy from the seeder in a few milliseconds.
        let _seeder = our_seeder(&payload, free_port()?, t, &["--upload-limit", "1M"])?;
        tracker.wait_for_scrape(&payload.hash(), ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;

        let stay = LtOptions {
            stay: true,
            ..LtOptions::default()
        };
        let (lt_dir, aria_dir) = (t.join("lt"), t.join("aria2"));
        let (ours1, ours2) = (t.join("ours1"), t.join("ours2"));
        let mut lt = LibtorrentPeer::leech_with(&payload.torrent, &lt_dir, free_port()?, &stay)?;
        let mut a1 = our_leecher(&payload, &ours1, free_port()?, t, &[])?;
        let mut aria = Aria2::leech(&payload.torrent, &aria_dir, free_port()?)?;
        let mut a2 = our_leecher(&payload, &ours2, free_port()?, t, &[])?;

        lt.wait_done(TRANSFER_TIMEOUT)?;
        aria.wait_done(TRANSFER_TIMEOUT)?;
        a1.wait_success(TRANSFER_TIMEOUT)
            .context("our first leecher")?;
        a2.wait_success(TRANSFER_TIMEOUT)
            .context("our second leecher")?;
        payload.check(&lt_dir, "libtorrent leecher")?;
        payload.check(&aria_dir, "aria2 leecher")?;
        payload.check(&ours1, "our first leecher")?;
        payload.check(&ours2, "our second leecher")?;
        let moved = lt.stop()?;
        assert!(moved.downloaded >= payload.total(), "{shape:?}: {moved:?}");
        // Everyone announced to our tracker: the seeder, and four leechers that completed.
        let stats =
            tracker.wait_for_scrape(&payload.hash(), ANNOUNCE_TIMEOUT, |s| s.downloaded >= 3)?;
        assert!(stats.complete >= 1, "{shape:?}: {stats:?}");
    }
    Ok(())
}
