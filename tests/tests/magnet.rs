//! A magnet link between real `swarm` processes, with no tracker and no DHT: the leecher knows
//! the seeder only from the link's `x.pe`, fetches the info dictionary from it, and downloads
//! over the same connection -- the seeder sees one connection from it, not a second one dialed
//! after the metadata arrived.
//!
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::bins;
use tests::files::{assert_same_bytes, write_file};
use tests::ports::free_port;
use tests::process::{Proc, Stream};

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn a_magnet_download_keeps_the_connection_that_gave_the_metadata() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("seed/magnet.bin");
    write_file(&data, 5 * 1024 * 1024 + 123, 29)?;
    let (ps, pl) = (free_port()?, free_port()?);
    let seeder_addr = format!("127.0.0.51:{ps}");

    let mut cmd = Command::new(bins::swarm()?);
    cmd.arg("seed")
        .arg(&data)
        .args(["--no-tracker", "--no-dht", "--piece-size", "64K"])
        .args(["--listen", &seeder_addr])
        // Debug logs name every peer the engine admits.
        .env("RUST_LOG", "engine=debug");
    let mut seeder = Proc::spawn(cmd, "seeder", &logs)?;
    let line = seeder.wait_for_line(Stream::Stdout, TIMEOUT, |l| l.contains("magnet:"))?;
    let magnet = line
        .split_whitespace()
        .find(|w| w.starts_with("magnet:?"))
        .context("no magnet link")?
        .to_owned();
    seeder.wait_for_line(Stream::Stdout, TIMEOUT, |l| l.starts_with("listening on"))?;

    let mut cmd = Command::new(bins::swarm()?);
    cmd.arg("fetch")
        .arg(format!("{magnet}&x.pe={seeder_addr}"))
        .arg("-o")
        .arg(tmp.path().join("leecher"))
        .args(["--no-dht", "--listen", &format!("127.0.0.52:{pl}")])
        .env("RUST_LOG", "client=debug");
    let mut leecher = Proc::spawn(cmd, "leecher", &logs)?;
    leecher.wait_success(TIMEOUT)?;
    assert_same_bytes(&data, &tmp.path().join("leecher/magnet.bin"));
    let out = leecher.output(Stream::Stdout);
    ensure!(
        out.lines().any(|l| l.starts_with("metadata: magnet.bin")),
        "the leecher did not fetch the metadata:\n{out}"
    );
    let log = leecher.output(Stream::Stderr);
    ensure!(
        log.contains("connection handed over"),
        "the leecher never handed its metadata connection to the torrent:\n{log}"
    );
    let seen = seeder.output(Stream::Stderr);
    // The leecher is the seeder's only peer (its dials leave from 127.0.0.1).
    let from_leecher: Vec<&str> = seen.lines().filter(|l| l.contains("peer added")).collect();
    ensure!(
        from_leecher.len() == 1,
        "the seeder saw {} connections from the leecher (one wanted):\n{}",
        from_leecher.len(),
        from_leecher.join("\n")
    );
    drop(seeder);
    Ok(())
}
