//! libtorrent-rasterbar peers, driven by the repository's `peers/lt_peer.py`.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use metainfo::InfoHash;
use nix::sys::signal::Signal;

use super::{default_log_dir, hash_after, located, run_to_string};
use crate::process::{Proc, Stream};
use crate::programs::Program;

/// The driver script, found through this package's manifest directory.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/lt_peer.py");
/// How long a seeder may take to verify its data and listen, or a leecher to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopped peer gets to print its byte counts.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How to run a libtorrent peer beyond torrent, directory and port.
#[derive(Debug, Clone)]
pub struct LtOptions {
    /// Peers to dial directly, besides whatever the torrent's trackers return.
    pub connect: Vec<SocketAddr>,
    /// The peer gives up (and exits) after this long (default 10 minutes): a safety net, not a
    /// test timeout; tests bound their own waits.
    pub timeout: Duration,
    /// A leecher keeps seeding after it completes.
    pub stay: bool,
    /// Where the peer's stdout/stderr go; default: the data directory's parent.
    pub log_dir: Option<PathBuf>,
    /// The address to listen and dial from (default 127.0.0.1; another 127.x, or one inside
    /// [`LtOptions::netns`]); the DHT uses it too.
    pub listen_ip: Option<Ipv4Addr>,
    /// DHT nodes to bootstrap from; empty (the default) leaves libtorrent's DHT off.
    pub dht_bootstrap: Vec<SocketAddr>,
    /// libtorrent's alerts and a progress line every second on stderr.
    pub verbose: bool,
    /// Local service discovery on (BEP 14), announcing every 2 seconds; off by default.
    pub lsd: bool,
    /// Run inside this network namespace (see [`crate::netns`]).
    pub netns: Option<String>,
    /// MSE/PE: `None` libtorrent's default (either, plaintext preferred); `Some(true)` forced
    /// both ways with RC4 only (`pe_forced`, `allowed_enc_level` = rc4); `Some(false)` never.
    pub encryption: Option<bool>,
}

impl Default for LtOptions {
    fn default() -> Self {
        LtOptions {
            connect: Vec::new(),
            timeout: Duration::from_secs(600),
            stay: false,
            log_dir: None,
            listen_ip: None,
            dht_bootstrap: Vec::new(),
            verbose: false,
            lsd: false,
            netns: None,
            encryption: None,
        }
    }
}

/// Payload bytes a peer moved, as libtorrent counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transferred {
    /// Payload bytes sent to other peers.
    pub uploaded: u64,
    /// Payload bytes received from other peers.
    pub downloaded: u64,
}

/// A running libtorrent peer on `127.0.0.1:port` (or its [`LtOptions::listen_ip`]), killed on
/// drop.
#[derive(Debug)]
pub struct LibtorrentPeer {
    proc: Proc,
    port: u16,
    ip: Ipv4Addr,
}

impl LibtorrentPeer {
    /// Seeds `torrent` from `dir`; returns once libtorrent verified every piece and listens.
    pub fn seed(torrent: &Path, dir: &Path, port: u16) -> Result<Self> {
        Self::seed_with(torrent, dir, port, &LtOptions::default())
    }

    /// [`LibtorrentPeer::seed`] with options.
    pub fn seed_with(torrent: &Path, dir: &Path, port: u16, opts: &LtOptions) -> Result<Self> {
        let mut peer = Self::spawn("seed", torrent, dir, port, opts)?;
        let (mut listening, mut seeding) = (false, false);
        peer.proc
            .wait_for_line(Stream::Stdout, START_TIMEOUT, |line| {
                listening |= line.starts_with("listening ");
                seeding |= line == "seeding";
                listening && seeding
            })
            .context("libtorrent seeder did not verify its data and listen")?;
        Ok(peer)
    }

    /// Leeches `torrent` into `dir`; returns once libtorrent listens. See [`Self::wait_done`].
    pub fn leech(torrent: &Path, dir: &Path, port: u16) -> Result<Self> {
        Self::leech_with(torrent, dir, port, &LtOptions::default())
    }

    /// [`LibtorrentPeer::leech`] with options.
    pub fn leech_with(torrent: &Path, dir: &Path, port: u16, opts: &LtOptions) -> Result<Self> {
        let mut peer = Self::spawn("leech", torrent, dir, port, opts)?;
        peer.proc
            .wait_for_line(Stream::Stdout, START_TIMEOUT, |l| {
                l.starts_with("listening ")
            })
            .context("libtorrent leecher did not listen")?;
        Ok(peer)
    }

    /// Leeches the torrent of a `magnet` link into `dir`, the metadata fetched from peers
    /// (found through the DHT with [`LtOptions::dht_bootstrap`]); returns once libtorrent
    /// listens. See [`Self::wait_metadata`] and [`Self::wait_done`].
    pub fn leech_magnet(magnet: &str, dir: &Path, port: u16, opts: &LtOptions) -> Result<Self> {
        let mut peer = Self::spawn("leech", OsStr::new(magnet), dir, port, opts)?;
        peer.proc
            .wait_for_line(Stream::Stdout, START_TIMEOUT, |l| {
                l.starts_with("listening ")
            })
            .context("libtorrent leecher did not listen")?;
        Ok(peer)
    }

    fn spawn(
        mode: &str,
        torrent: impl AsRef<OsStr>,
        dir: &Path,
        port: u16,
        opts: &LtOptions,
    ) -> Result<Self> {
        let python = located(Program::Libtorrent)?;
        std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let mut cmd = match &opts.netns {
            Some(ns) => crate::netns::in_ns(ns, &python),
            None => Command::new(python),
        };
        cmd.arg(SCRIPT)
            .arg(mode)
            .arg(torrent)
            .arg(dir)
            .args(["--port", &port.to_string()])
            .args(["--timeout", &opts.timeout.as_secs_f64().to_string()]);
        for peer in &opts.connect {
            cmd.args(["--connect", &peer.to_string()]);
        }
        if opts.stay {
            cmd.arg("--stay");
        }
        let ip = opts.listen_ip.unwrap_or(Ipv4Addr::LOCALHOST);
        cmd.args(["--listen-ip", &ip.to_string()]);
        for node in &opts.dht_bootstrap {
            cmd.args(["--dht-bootstrap", &node.to_string()]);
        }
        if opts.verbose {
            cmd.arg("--verbose");
        }
        if opts.lsd {
            cmd.arg("--lsd");
        }
        match opts.encryption {
            Some(true) => cmd.args(["--encryption", "forced"]),
            Some(false) => cmd.args(["--encryption", "disabled"]),
            None => &mut cmd,
        };
        let log_dir = opts.log_dir.clone().unwrap_or_else(|| default_log_dir(dir));
        let proc = Proc::spawn(cmd, &format!("libtorrent-{mode}-{port}"), &log_dir)?;
        Ok(LibtorrentPeer { proc, port, ip })
    }

    /// Waits at most `timeout` for a magnet leecher to have the torrent's metadata.
    pub fn wait_metadata(&mut self, timeout: Duration) -> Result<()> {
        self.proc
            .wait_for_line(Stream::Stdout, timeout, |l| l == "metadata")
            .context("libtorrent did not get the metadata")?;
        Ok(())
    }

    /// Waits at most `timeout` for a leecher to complete; returns libtorrent's seconds taken.
    pub fn wait_done(&mut self, timeout: Duration) -> Result<f64> {
        let line = self
            .proc
            .wait_for_line(Stream::Stdout, timeout, |l| l.starts_with("done "))
            .context("libtorrent leecher did not complete")?;
        let secs = line.trim_start_matches("done ");
        secs.parse()
            .with_context(|| format!("bad done line {line:?}"))
    }

    /// Makes the peer re-announce to its trackers now (SIGUSR1).
    pub fn reannounce(&self) -> Result<()> {
        self.proc.signal(Signal::SIGUSR1)
    }

    /// Stops the peer (SIGTERM) and returns the payload bytes it moved.
    pub fn stop(mut self) -> Result<Transferred> {
        self.proc.terminate(STOP_GRACE)?;
        let out = self.proc.output(Stream::Stdout);
        let Some(line) = out.lines().rev().find(|l| l.starts_with("stats ")) else {
            bail!("no stats line\n{}", self.proc.describe());
        };
        parse_stats(line)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`, or its [`LtOptions::listen_ip`] and port.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(self.ip), self.port)
    }

    /// The underlying process (logs, signals, waits).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// What libtorrent's `torrent_info` reads from a .torrent file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibtorrentInfo {
    /// The v1 info-hash.
    pub info_hash: InfoHash,
    /// The torrent's name.
    pub name: String,
    /// Number of pieces.
    pub pieces: u64,
    /// Piece length in bytes.
    pub piece_length: u64,
    /// Sum of the file lengths.
    pub total_size: u64,
    /// Number of files (BEP 47 padding files included).
    pub files: u64,
}

/// libtorrent's reading of a .torrent file; fails if libtorrent refuses it.
pub fn libtorrent_info(torrent: &Path) -> Result<LibtorrentInfo> {
    let mut cmd = Command::new(located(Program::Libtorrent)?);
    cmd.arg(SCRIPT).arg("info").arg(torrent);
    let out = run_to_string(cmd)?;
    let field = |key: &str| -> Result<&str> {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .with_context(|| format!("no {key} in:\n{out}"))
    };
    let number = |key: &str| -> Result<u64> {
        let v = field(key)?;
        v.parse().with_context(|| format!("bad {key} {v:?}"))
    };
    Ok(LibtorrentInfo {
        info_hash: hash_after(&out, "info_hash ")?,
        name: field("name")?.to_owned(),
        pieces: number("pieces")?,
        piece_length: number("piece_length")?,
        total_size: number("total_size")?,
        files: number("files")?,
    })
}

/// libtorrent's info-hash of a .torrent file (`torrent_info(path).info_hashes().v1`).
pub fn libtorrent_info_hash(torrent: &Path) -> Result<InfoHash> {
    Ok(libtorrent_info(torrent)?.info_hash)
}

fn parse_stats(line: &str) -> Result<Transferred> {
    let field = |name: &str| -> Result<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .with_context(|| format!("no {name} in {line:?}"))?
            .parse()
            .with_context(|| format!("bad {name} in {line:?}"))
    };
    Ok(Transferred {
        uploaded: field("uploaded=")?,
        downloaded: field("downloaded=")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_line_parses() {
        let t = parse_stats("stats uploaded=12 downloaded=3456").unwrap();
        assert_eq!(
            t,
            Transferred {
                uploaded: 12,
                downloaded: 3456
            }
        );
        assert!(parse_stats("stats uploaded=x downloaded=1").is_err());
        assert!(parse_stats("stats").is_err());
    }

    #[test]
    fn the_driver_script_ships_with_the_package() {
        assert!(Path::new(SCRIPT).is_file(), "{SCRIPT}");
    }
}
