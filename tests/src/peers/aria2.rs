//! aria2 as a BitTorrent seeder or leecher on 127.0.0.1, and `aria2c -S`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use metainfo::InfoHash;

use super::{default_log_dir, hash_after, located, run_to_string};
use crate::ports::loopback;
use crate::process::{Proc, Stream};
use crate::programs::Program;

/// How long aria2 may take to verify a seed's data and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running aria2c on `127.0.0.1:port`, killed on drop.
#[derive(Debug)]
pub struct Aria2 {
    proc: Proc,
    port: u16,
}

impl Aria2 {
    /// Seeds `torrent` from the data in `dir`; returns once aria2 verified it and listens.
    pub fn seed(torrent: &Path, dir: &Path, port: u16) -> Result<Self> {
        let mut cmd = base_command(torrent, dir, port)?;
        cmd.args(["--seed-ratio=0.0", "--check-integrity=true"]);
        let mut aria = Self::spawn(cmd, "aria2-seed", dir, port)?;
        let (mut verified, mut listening) = (false, false);
        aria.proc
            .wait_for_line(Stream::Stdout, START_TIMEOUT, |line| {
                verified |= line.contains("Verification finished successfully");
                listening |= line.contains("listening on TCP port");
                verified && listening
            })
            .context("aria2 seeder did not verify its data and listen")?;
        Ok(aria)
    }

    /// Leeches `torrent` into `dir` and exits when complete; returns once aria2 listens.
    pub fn leech(torrent: &Path, dir: &Path, port: u16) -> Result<Self> {
        let mut cmd = base_command(torrent, dir, port)?;
        cmd.arg("--seed-time=0");
        let mut aria = Self::spawn(cmd, "aria2-leech", dir, port)?;
        aria.proc
            .wait_for_line(Stream::Stdout, START_TIMEOUT, |l| {
                l.contains("listening on TCP port")
            })
            .context("aria2 leecher did not listen")?;
        Ok(aria)
    }

    /// [`Aria2::leech`] with aria2's DHT on: aria2 announces to `udp://` trackers only then. Its
    /// DHT listens on UDP `dht_port` with no bootstrap node and a fresh routing table file in
    /// `dir`'s parent, so it reaches nothing but the torrent's trackers and peers.
    pub fn leech_with_dht(torrent: &Path, dir: &Path, port: u16, dht_port: u16) -> Result<Self> {
        let table = dir.with_extension("dht.dat");
        let dht = [
            "--enable-dht=true".to_owned(),
            format!("--dht-listen-port={dht_port}"),
            format!("--dht-file-path={}", table.display()),
        ];
        let mut cmd = command(torrent, dir, port, &dht)?;
        cmd.arg("--seed-time=0");
        let mut aria = Self::spawn(cmd, "aria2-leech", dir, port)?;
        aria.proc
            .wait_for_line(Stream::Stdout, START_TIMEOUT, |l| {
                l.contains("listening on TCP port")
            })
            .context("aria2 leecher did not listen")?;
        Ok(aria)
    }

    fn spawn(cmd: Command, name: &str, dir: &Path, port: u16) -> Result<Self> {
        let name = format!("{name}-{port}");
        let proc = Proc::spawn(cmd, &name, &default_log_dir(dir))?;
        Ok(Aria2 { proc, port })
    }

    /// Waits at most `timeout` for a leecher to finish and exit with status 0.
    pub fn wait_done(&mut self, timeout: Duration) -> Result<()> {
        self.proc
            .wait_success(timeout)
            .context("aria2 leecher did not complete")
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    /// The underlying process (logs, signals, waits).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// aria2c with every discovery but trackers off, bound to 127.0.0.1, plain log lines.
fn base_command(torrent: &Path, dir: &Path, port: u16) -> Result<Command> {
    command(torrent, dir, port, &["--enable-dht=false".to_owned()])
}

/// [`base_command`] with `dht` (the DHT flags) in place of `--enable-dht=false`.
fn command(torrent: &Path, dir: &Path, port: u16, dht: &[String]) -> Result<Command> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let mut cmd = Command::new(located(Program::Aria2c)?);
    cmd.arg("-d")
        .arg(dir)
        .arg(format!("--listen-port={port}"))
        .args([
            "--no-conf=true",
            "--interface=127.0.0.1",
            "--disable-ipv6=true",
            "--enable-dht6=false",
            "--bt-enable-lpd=false",
            "--enable-peer-exchange=false",
            "--file-allocation=none",
            "--auto-file-renaming=false",
            "--summary-interval=0",
            "--show-console-readout=false",
            "--enable-color=false",
            "--console-log-level=notice",
        ])
        .args(dht)
        .arg(format!("--stop-with-process={}", std::process::id()))
        .arg(torrent);
    Ok(cmd)
}

/// aria2's info-hash of a .torrent file (`aria2c -S`).
pub fn aria2_show(torrent: &Path) -> Result<InfoHash> {
    let mut cmd = Command::new(located(Program::Aria2c)?);
    cmd.arg("-S").arg(torrent);
    hash_after(&run_to_string(cmd)?, "Info Hash:")
}
