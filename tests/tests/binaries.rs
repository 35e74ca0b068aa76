//! The workspace's binaries as a person runs them: `swarm create` / `swarm info` and
//! `swarm-tracker`, as processes.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use metainfo::InfoHash;
use tests::bins;
use tests::files::write_file;
use tests::http::http_get;
use tests::peers::{libtorrent_info_hash, mktorrent};
use tests::ports::{free_port, loopback, wait_listening};
use tests::process::{Proc, Stream};
use tests::{Program, require};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `swarm <args>` to completion and returns its stdout.
fn swarm(args: &[&str], dir: &std::path::Path) -> Result<String> {
    let mut cmd = Command::new(bins::swarm()?);
    cmd.args(args).current_dir(dir);
    let mut proc = Proc::spawn(cmd, "swarm", dir)?;
    proc.wait_success(TIMEOUT)?;
    Ok(proc.output(Stream::Stdout))
}

/// The hash on `swarm info`'s `info-hash` line.
fn info_hash_line(info: &str) -> Result<InfoHash> {
    let value = info
        .lines()
        .find_map(|l| l.strip_prefix("info-hash"))
        .with_context(|| format!("no info-hash line in:\n{info}"))?;
    Ok(InfoHash::from_hex(value.trim())?)
}

#[test]
fn swarm_create_and_info_agree_with_libtorrent_and_mktorrent() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Mktorrent);
    let tmp = tempfile::tempdir()?;
    write_file(&tmp.path().join("movie.bin"), 5 * 65_536 + 99, 31)?;
    swarm(
        &[
            "create",
            "movie.bin",
            "-o",
            "ours.torrent",
            "--piece-size",
            "64K",
        ],
        tmp.path(),
    )?;
    let info = swarm(&["info", "ours.torrent"], tmp.path())?;
    let ours = info_hash_line(&info)?;
    assert_eq!(
        libtorrent_info_hash(&tmp.path().join("ours.torrent"))?,
        ours
    );
    // A single file with the same piece size and no optional info keys: mktorrent writes the
    // same info dictionary, byte for byte.
    let theirs = tmp.path().join("theirs.torrent");
    mktorrent(&tmp.path().join("movie.bin"), &theirs, 16, None)?;
    assert_eq!(libtorrent_info_hash(&theirs)?, ours);
    Ok(())
}

#[test]
fn swarm_tracker_serves_stats_and_stops_on_sigterm() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let port = free_port()?;
    let mut cmd = Command::new(bins::swarm_tracker()?);
    cmd.args(["--listen", &loopback(port).to_string()]);
    let mut tracker = Proc::spawn(cmd, "swarm-tracker", tmp.path())?;
    wait_listening(port, TIMEOUT)?;
    let stats = http_get(loopback(port), "/stats", TIMEOUT)?;
    assert_eq!(stats.status, 200);
    assert!(stats.text().contains("swarms:"), "{}", stats.text());
    let status = tracker.terminate(TIMEOUT)?;
    ensure!(status.success(), "exit {status}\n{}", tracker.describe());
    Ok(())
}
