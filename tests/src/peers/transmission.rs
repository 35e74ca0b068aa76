//! A Transmission daemon on 127.0.0.1 driven through `transmission-remote`, and
//! `transmission-show`.
//!
//! Transmission 3.00 refuses 127.x peers learned from a tracker or PEX: as a leecher on loopback
//! it only gets data when the seeder dials it. It accepts incoming loopback peers and seeds.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use metainfo::InfoHash;

use super::{hash_after, located, run_to_string};
use crate::ports::{free_port, loopback, wait_listening};
use crate::process::Proc;
use crate::programs::Program;

/// How long the daemon may take to answer RPC after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often [`Transmission::wait_complete`] asks for progress.
const POLL: Duration = Duration::from_millis(200);

/// A running `transmission-daemon`, killed on drop.
#[derive(Debug)]
pub struct Transmission {
    proc: Proc,
    remote: PathBuf,
    peer_port: u16,
    rpc_port: u16,
}

impl Transmission {
    /// Starts a daemon with its config in `root/config` (logs in `root`), peer and RPC ports
    /// chosen free, DHT/LPD/PEX/uTP/port-forwarding off, plaintext allowed, no RPC auth.
    pub fn start(root: &Path) -> Result<Self> {
        let daemon = located(Program::TransmissionDaemon)?;
        let remote = located(Program::TransmissionRemote)?;
        let config = root.join("config");
        let downloads = root.join("downloads");
        for dir in [&config, &downloads] {
            std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
        }
        let (peer_port, rpc_port) = (free_port()?, free_port()?);
        let settings = settings_json(peer_port, rpc_port, &downloads)?;
        std::fs::write(config.join("settings.json"), settings).context("write settings.json")?;
        let mut cmd = Command::new(daemon);
        cmd.arg("--foreground").arg("--config-dir").arg(&config);
        let proc = Proc::spawn(cmd, &format!("transmission-{peer_port}"), root)?;
        let daemon = Transmission {
            proc,
            remote,
            peer_port,
            rpc_port,
        };
        wait_listening(rpc_port, START_TIMEOUT).context("transmission RPC did not come up")?;
        Ok(daemon)
    }

    /// Runs `transmission-remote 127.0.0.1:<rpc> <args>` and returns its stdout.
    pub fn remote(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.remote);
        cmd.arg(format!("127.0.0.1:{}", self.rpc_port)).args(args);
        run_to_string(cmd)
    }

    /// Adds `torrent`, downloading into (or seeding from) `dir`, and starts it.
    pub fn add(&self, torrent: &Path, dir: &Path) -> Result<()> {
        let (Some(torrent), Some(dir)) = (torrent.to_str(), dir.to_str()) else {
            bail!(
                "paths must be UTF-8: {} {}",
                torrent.display(),
                dir.display()
            );
        };
        let out = self.remote(&["--add", torrent, "--download-dir", dir])?;
        if !out.contains("success") {
            bail!("transmission refused {torrent}: {out}");
        }
        Ok(())
    }

    /// The torrent's completion in percent, as `transmission-remote -t HASH -i` reports it.
    pub fn percent_done(&self, hash: &InfoHash) -> Result<f64> {
        let info = self.remote(&["-t", &hash.to_hex(), "-i"])?;
        let value = info
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("Percent Done:"))
            .with_context(|| format!("no Percent Done in:\n{info}"))?;
        value
            .trim()
            .trim_end_matches('%')
            .parse()
            .with_context(|| format!("bad Percent Done {value:?}"))
    }

    /// Waits at most `timeout` until the torrent is complete.
    pub fn wait_complete(&self, hash: &InfoHash, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = 0.0;
        for _ in 0..=timeout.as_millis() / POLL.as_millis() {
            last = self.percent_done(hash)?;
            if last >= 100.0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(POLL);
        }
        bail!(
            "transmission at {last}% after {timeout:?}\n{}",
            self.proc.describe()
        )
    }

    /// The BitTorrent port it listens on.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// `127.0.0.1:peer_port`.
    pub fn addr(&self) -> SocketAddr {
        loopback(self.peer_port)
    }

    /// The RPC port `transmission-remote` talks to.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// The underlying process (logs, signals, waits).
    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// The daemon's settings: loopback only, nothing but trackers and direct peers.
fn settings_json(peer_port: u16, rpc_port: u16, downloads: &Path) -> Result<String> {
    let Some(downloads) = downloads.to_str() else {
        bail!("download dir must be UTF-8: {}", downloads.display());
    };
    let downloads = downloads.replace('\\', "\\\\").replace('"', "\\\"");
    Ok(format!(
        r#"{{
    "bind-address-ipv4": "127.0.0.1",
    "bind-address-ipv6": "::1",
    "blocklist-enabled": false,
    "dht-enabled": false,
    "download-dir": "{downloads}",
    "encryption": 0,
    "incomplete-dir-enabled": false,
    "lpd-enabled": false,
    "message-level": 1,
    "peer-port": {peer_port},
    "peer-port-random-on-start": false,
    "pex-enabled": false,
    "port-forwarding-enabled": false,
    "ratio-limit-enabled": false,
    "rpc-authentication-required": false,
    "rpc-bind-address": "127.0.0.1",
    "rpc-host-whitelist-enabled": false,
    "rpc-port": {rpc_port},
    "rpc-whitelist-enabled": false,
    "start-added-torrents": true,
    "utp-enabled": false,
    "watch-dir-enabled": false
}}
"#
    ))
}

/// Transmission's info-hash of a .torrent file (`transmission-show`).
///
/// Transmission re-encodes the info dictionary before hashing, so for a torrent whose info keys
/// are unsorted (or otherwise not canonical) this differs from the BEP 3 hash.
pub fn transmission_show(torrent: &Path) -> Result<InfoHash> {
    let mut cmd = Command::new(located(Program::TransmissionShow)?);
    cmd.arg(torrent);
    let out = run_to_string(cmd)?;
    // Transmission 3 prints "Hash:", Transmission 4 "Hash v1:".
    hash_after(&out, "Hash:").or_else(|_| hash_after(&out, "Hash v1:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_the_ports_and_escape_the_directory() {
        let json = settings_json(1, 2, Path::new("a\"b")).unwrap();
        assert!(json.contains("\"peer-port\": 1,"));
        assert!(json.contains("\"rpc-port\": 2,"));
        assert!(json.contains(r#""download-dir": "a\"b","#));
    }
}
