//! Peer exchange (BEP 11) between real `swarm` processes, with no tracker and no DHT: a leecher
//! told of one peer only learns the seeder's address from that peer's ut_pex message and
//! connects to it.
//!
//! Each process has its own loopback address (127.0.0.41-43) so connections tell who is who.
//! Both leechers are rate-limited so they are still running when the first PEX message
//! arrives (5 s after the extension handshake).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use tests::bins;
use tests::files::{assert_same_bytes, write_file};
use tests::ports::free_port;
use tests::process::{Proc, Stream};

const TIMEOUT: Duration = Duration::from_secs(60);

fn swarm() -> Result<Command> {
    Ok(Command::new(bins::swarm()?))
}

#[test]
fn a_leecher_finds_the_seeder_through_pex() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("seed/pex.bin");
    write_file(&data, 3 * 1024 * 1024 + 77, 11)?;
    let (ps, p1, p2) = (free_port()?, free_port()?, free_port()?);
    let seeder_addr = format!("127.0.0.41:{ps}");
    let l1_addr = format!("127.0.0.42:{p1}");

    let mut cmd = swarm()?;
    cmd.arg("seed").arg(&data).args([
        "--no-tracker",
        "--piece-size",
        "64K",
        "--listen",
        &seeder_addr,
    ]);
    let mut seeder = Proc::spawn(cmd, "seeder", &logs)?;
    let line = seeder.wait_for_line(Stream::Stdout, TIMEOUT, |l| l.contains("magnet:"))?;
    let magnet = line
        .split_whitespace()
        .find(|w| w.starts_with("magnet:?"))
        .context("no magnet link")?
        .to_owned();
    seeder.wait_for_line(Stream::Stdout, TIMEOUT, |l| l.starts_with("listening on"))?;

    // The first leecher knows the seeder (x.pe). It is slowed down so it is still downloading,
    // connected to the seeder, when the second arrives: two seeds disconnect, and PEX names
    // only connected peers.
    let mut cmd = swarm()?;
    cmd.arg("fetch")
        .arg(format!("{magnet}&x.pe={seeder_addr}"))
        .arg("-o")
        .arg(tmp.path().join("l1"))
        .args(["--seed", "--listen", &l1_addr, "--download-limit", "128K"]);
    let mut l1 = Proc::spawn(cmd, "leecher1", &logs)?;
    l1.wait_for_line(Stream::Stdout, TIMEOUT, |l| l.starts_with("metadata:"))?;

    // The second knows only the first; debug logs name every peer it adds.
    let mut cmd = swarm()?;
    cmd.arg("fetch")
        .arg(format!("{magnet}&x.pe={l1_addr}"))
        .arg("-o")
        .arg(tmp.path().join("l2"))
        .args(["--listen", &format!("127.0.0.43:{p2}")])
        .args(["--download-limit", "256K"])
        .env("RUST_LOG", "engine=debug,client=info");
    let mut l2 = Proc::spawn(cmd, "leecher2", &logs)?;
    l2.wait_success(TIMEOUT)?;
    assert_same_bytes(&data, &tmp.path().join("l2/pex.bin"));
    let log = l2.output(Stream::Stderr);
    let added: Vec<&str> = log.lines().filter(|l| l.contains("peer added")).collect();
    ensure!(
        added.iter().any(|l| l.contains("127.0.0.42")),
        "leecher 2 never added leecher 1:\n{log}"
    );
    ensure!(
        added.iter().any(|l| l.contains("127.0.0.41")),
        "leecher 2 and the seeder never connected; only PEX could tell one about the other:\n{}",
        added.join("\n")
    );
    drop(l1);
    drop(seeder);
    Ok(())
}
