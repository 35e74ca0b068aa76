//! `swarm fetch` stopped half-way and run again: after SIGKILL it finds the verified pieces on
//! disk by checking the data, after Ctrl-C from its resume data; either way it fetches only the
//! missing pieces and ends with the seeder's bytes.
//!
//! The first run is slowed with `--download-limit` so it is still running when stopped; the
//! second runs at full speed.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, ensure};
use metainfo::Metainfo;
use nix::sys::signal::Signal;
use tests::client::{
    fetch_command, interrupt, matching_pieces, seed_command, start_seeder, wait_for_pieces,
};
use tests::files::{assert_same_bytes, write_file};
use tests::process::{Proc, Stream};
use tests::resume::{only_missing_pieces_received, resume_file, resumed_pieces};
use tests::tracker::LocalTracker;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(15);
/// A bound for a download of a few MB, or for a process to stop.
const TIMEOUT: Duration = Duration::from_secs(60);
const PIECE: usize = 32 * 1024;
/// The interrupted run's download rate: about 8 s for the file, far longer than the test
/// waits before stopping it.
const SLOW: &str = "256K";

/// A seeder of one 2 MB file on a fresh tracker, and where a leecher should put it.
struct Setup {
    _tmp: tempfile::TempDir,
    _tracker: LocalTracker,
    _seeder: Proc,
    logs: PathBuf,
    data: PathBuf,
    torrent: PathBuf,
    meta: Metainfo,
    out: PathBuf,
}

impl Setup {
    fn new(seed: u64) -> Result<Setup> {
        let tmp = tempfile::tempdir()?;
        let logs = tmp.path().join("logs");
        let data = tmp.path().join("seed/movie.bin");
        write_file(&data, 2 * 1024 * 1024 + 1_001, seed)?;
        let tracker = LocalTracker::start()?;
        let torrent = tmp.path().join("movie.torrent");
        let cmd = seed_command(&data, &torrent, &tracker.announce_url(), "32K")?;
        let (seeder, _) = start_seeder(cmd, "seeder", &logs, START_TIMEOUT)?;
        let meta = Metainfo::from_bytes(&std::fs::read(&torrent)?)?;
        tracker.wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;
        let out = tmp.path().join("leech");
        Ok(Setup {
            logs,
            data,
            torrent,
            meta,
            out,
            _seeder: seeder,
            _tracker: tracker,
            _tmp: tmp,
        })
    }

    /// The leecher's copy of the file.
    fn got(&self) -> PathBuf {
        self.out.join("movie.bin")
    }

    /// Starts a slow leecher and waits until `at_least` pieces are on its disk.
    fn slow_leecher(&self, at_least: usize) -> Result<Proc> {
        let mut cmd = fetch_command(&self.torrent, &self.out)?;
        cmd.args(["--download-limit", SLOW]);
        let mut proc = Proc::spawn(cmd, "leecher-1", &self.logs)?;
        wait_for_pieces(&mut proc, &self.data, &self.got(), PIECE, at_least, TIMEOUT)?;
        Ok(proc)
    }

    /// Runs the leecher again at full speed to the end; returns its stdout.
    fn rerun(&self) -> Result<String> {
        let cmd = fetch_command(&self.torrent, &self.out)?;
        let mut proc = Proc::spawn(cmd, "leecher-2", &self.logs)?;
        proc.wait_success(TIMEOUT)?;
        assert_same_bytes(&self.data, &self.got());
        Ok(proc.output(Stream::Stdout))
    }

    fn pieces(&self) -> u32 {
        self.meta.info.geometry().piece_count()
    }
}

#[test]
fn a_leecher_killed_half_way_resumes_without_fetching_verified_pieces_again() -> Result<()> {
    let s = Setup::new(51)?;
    let mut first = s.slow_leecher(8)?;
    first.signal(Signal::SIGKILL)?;
    first.wait(TIMEOUT)?;
    let on_disk = matching_pieces(&s.data, &s.got(), PIECE)?;
    let total = s.pieces();
    ensure!(
        on_disk < total as usize,
        "the first run had finished: {}",
        first.describe()
    );

    let stdout = s.rerun()?;
    let have = resumed_pieces(&stdout, total)?;
    // No resume data was saved (SIGKILL): the check of the data found exactly what is there.
    ensure!(
        have as usize == on_disk,
        "resumed with {have} pieces, {on_disk} were on disk"
    );
    only_missing_pieces_received(&stdout, have, total, PIECE)
}

#[test]
fn ctrl_c_exits_130_keeps_resume_data_and_a_rerun_completes() -> Result<()> {
    let s = Setup::new(53)?;
    let mut first = s.slow_leecher(4)?;
    interrupt(&mut first, Signal::SIGINT, TIMEOUT)?;
    let stdout = first.output(Stream::Stdout);
    ensure!(
        stdout.contains("interrupted; "),
        "no interrupted line:\n{stdout}"
    );
    let resume = resume_file(&s.out, &s.meta);
    ensure!(
        resume.is_file(),
        "no resume data at {}\n{}",
        resume.display(),
        first.describe()
    );

    let stdout = s.rerun()?;
    let have = resumed_pieces(&stdout, s.pieces())?;
    only_missing_pieces_received(&stdout, have, s.pieces(), PIECE)
}
