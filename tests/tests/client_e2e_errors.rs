//! Mistakes a person can make with `swarm fetch` and `swarm seed`: each ends the process with a
//! non-zero exit code and exactly one `error: ...` line on stderr that names the culprit, and
//! never with a panic.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, ensure};
use metainfo::TorrentBuilder;
use tests::bins;
use tests::client::{LISTEN, fetch_command, seed_command};
use tests::files::write_file;
use tests::process::{Proc, Stream};

/// A bound: each of these fails in well under a second.
const TIMEOUT: Duration = Duration::from_secs(30);
/// A tracker URL nothing answers (port 1 on loopback): no test here gets as far as announcing.
const NO_TRACKER: &str = "http://127.0.0.1:1/announce";

/// Runs `cmd` to its end and checks it failed with one `error:` line containing `needle`.
fn fails_with(cmd: Command, dir: &Path, needle: &str) -> Result<()> {
    let mut proc = Proc::spawn(cmd, "swarm", &dir.join("logs"))?;
    let status = proc.wait(TIMEOUT)?;
    let stderr = proc.output(Stream::Stderr);
    ensure!(!status.success(), "exit {status}\n{}", proc.describe());
    ensure!(!stderr.contains("panicked"), "{}", proc.describe());
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        lines.len() == 1 && lines.iter().all(|l| l.starts_with("error: ")),
        "want one error line on stderr\n{}",
        proc.describe()
    );
    ensure!(
        lines.iter().any(|l| l.contains(needle)),
        "the error does not mention {needle:?}\n{}",
        proc.describe()
    );
    Ok(())
}

/// A valid single-file torrent of 100 KB in `dir` (its data beside it), announcing nowhere.
fn a_torrent(dir: &Path) -> Result<std::path::PathBuf> {
    let data = dir.join("data.bin");
    write_file(&data, 100_000, 61)?;
    let meta = TorrentBuilder::new(data)
        .piece_length(32 * 1024)
        .trackers(vec![vec![NO_TRACKER.to_owned()]])
        .build(&|_| {})?;
    let torrent = dir.join("data.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    Ok(torrent)
}

#[test]
fn fetch_of_a_missing_torrent_file() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let cmd = fetch_command(&tmp.path().join("nope.torrent"), &tmp.path().join("out"))?;
    fails_with(cmd, tmp.path(), "nope.torrent")
}

#[test]
fn fetch_of_malformed_torrents() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let garbage = tmp.path().join("garbage.torrent");
    std::fs::write(&garbage, b"this is not bencode\n")?;
    fails_with(
        fetch_command(&garbage, &tmp.path().join("out"))?,
        tmp.path(),
        "garbage.torrent",
    )?;
    // A real torrent cut short: valid bencode up to the cut.
    let whole = std::fs::read(a_torrent(tmp.path())?)?;
    let cut = tmp.path().join("cut.torrent");
    std::fs::write(&cut, &whole[..whole.len() / 2])?;
    fails_with(
        fetch_command(&cut, &tmp.path().join("out"))?,
        tmp.path(),
        "cut.torrent",
    )?;
    // An empty file.
    let empty = tmp.path().join("empty.torrent");
    std::fs::write(&empty, b"")?;
    fails_with(
        fetch_command(&empty, &tmp.path().join("out"))?,
        tmp.path(),
        "empty.torrent",
    )
}

#[test]
fn fetch_into_a_directory_that_cannot_be_made() -> Result<()> {
    // Tests may run as root, where permission bits do not stop writes: put the output
    // directory under a regular file instead, which stops everyone.
    let tmp = tempfile::tempdir()?;
    let torrent = a_torrent(tmp.path())?;
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x")?;
    let cmd = fetch_command(&torrent, &file.join("sub"))?;
    fails_with(cmd, tmp.path(), "a-file/sub")
}

#[test]
fn fetch_listening_on_a_port_in_use() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let torrent = a_torrent(tmp.path())?;
    let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let addr = held.local_addr()?;
    let mut cmd = Command::new(bins::swarm()?);
    cmd.arg("fetch")
        .arg(&torrent)
        .arg("-o")
        .arg(tmp.path().join("out"))
        .args(["--listen", &addr.to_string()]);
    fails_with(cmd, tmp.path(), &addr.to_string())?;
    drop(held);
    Ok(())
}

#[test]
fn seed_of_a_missing_path() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let cmd = seed_command(
        &tmp.path().join("not-here"),
        &tmp.path().join("x.torrent"),
        NO_TRACKER,
        "32K",
    )?;
    fails_with(cmd, tmp.path(), "not-here")?;
    ensure!(
        !tmp.path().join("x.torrent").exists(),
        "a torrent was written"
    );
    Ok(())
}

#[test]
fn seed_with_its_tracker_port_in_use() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data.bin");
    write_file(&data, 10_000, 67)?;
    let held = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = held.local_addr()?.port();
    let mut cmd = Command::new(bins::swarm()?);
    cmd.arg("seed")
        .arg(&data)
        .args(["--listen", LISTEN, "--announce-host", "127.0.0.1"])
        .args(["--tracker-port", &port.to_string()]);
    fails_with(cmd, tmp.path(), &port.to_string())?;
    drop(held);
    Ok(())
}
