//! Shared by the DHT scenarios (`dht_swarm.rs`, `dht_interop.rs`): a network of in-process
//! DHT nodes ([`client::dht::DhtHandle`]) on real UDP sockets, and `swarm` command lines that
//! join it.
//!
//! The DHT keeps one routing-table entry per IP address, so every node and every process gets
//! its own loopback address: scenario `block` uses 127.0.`block`.0/24, nodes from .10 up,
//! processes below .10. Each scenario picks its own block, so scenarios running at once never
//! learn of each other's nodes.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use client::dht::{DhtConfig, DhtHandle};
use metainfo::InfoHash;
use tests::bins;
use tests::process::{Proc, Stream};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

/// The host part of the first node's address.
const FIRST_NODE_HOST: u8 = 10;
/// How many of the first nodes a new node bootstraps from.
const BOOTSTRAP_FROM: usize = 3;
/// One lookup to its end (on loopback it takes milliseconds).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Between two lookups while waiting for a peer to be announced.
const LOOKUP_PAUSE: Duration = Duration::from_millis(250);
/// Between two readings of the routing tables.
const POLL: Duration = Duration::from_millis(100);
/// Our processes' logging unless the test's environment sets `RUST_LOG`.
const LOG_FILTER: &str = "info,client=debug";

/// `127.0.block.host`.
pub fn ip(block: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, block, host)
}

/// The whole-test time limit: every wait gets what is left of it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    /// A limit `total` from now, started after the workspace's binaries are built (that first
    /// build can take minutes and is not part of any scenario).
    pub fn start(total: Duration) -> Result<Self> {
        bins::swarm()?;
        Ok(Deadline(Instant::now() + total))
    }

    /// Time left (zero once passed).
    pub fn left(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// In-process DHT nodes on `127.0.block.10`, `.11`, ..., all stopped on drop.
#[derive(Debug)]
pub struct DhtNet {
    rt: Runtime,
    stop: CancellationToken,
    nodes: Vec<DhtHandle>,
}

impl DhtNet {
    /// Starts `count` nodes: the first alone, every other one bootstrapping from the first
    /// three. Returns once every node but the first finished its bootstrap with a non-empty
    /// table (fails if one did not by `deadline`).
    pub fn start(block: u8, count: usize, deadline: Deadline) -> Result<DhtNet> {
        let hosts = usize::from(u8::MAX - FIRST_NODE_HOST);
        ensure!(
            (1..=hosts).contains(&count),
            "{count} nodes do not fit in a /24"
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let stop = CancellationToken::new();
        let tasks = tokio_util::task::TaskTracker::new();
        let mut nodes: Vec<DhtHandle> = Vec::with_capacity(count);
        for i in 0..count {
            let host = FIRST_NODE_HOST + u8::try_from(i)?;
            let config = DhtConfig {
                bind: SocketAddr::from((ip(block, host), 0)),
                bootstrap: nodes
                    .iter()
                    .take(BOOTSTRAP_FROM)
                    .map(|n| n.local.to_string())
                    .collect(),
                state_file: None,
            };
            let node = rt
                .block_on(DhtHandle::start(config, stop.clone(), &tasks))
                .with_context(|| format!("DHT node {i} on {}", ip(block, host)))?;
            nodes.push(node);
        }
        let net = DhtNet { rt, stop, nodes };
        for (i, node) in net.nodes.iter().enumerate().skip(1) {
            let done = net.rt.block_on(node.wait_bootstrapped(deadline.left()));
            ensure!(done, "DHT node {i} ({}) did not bootstrap", node.local);
        }
        Ok(net)
    }

    /// The node count.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// `HOST:PORT` of node `i`, for `--bootstrap`.
    pub fn addr(&self, i: usize) -> String {
        self.nodes
            .get(i % self.nodes.len())
            .map(|n| n.local.to_string())
            .unwrap_or_default()
    }

    /// Every node's routing-table size now.
    pub fn routing_sizes(&self) -> Vec<usize> {
        self.rt.block_on(async {
            let mut sizes = Vec::with_capacity(self.nodes.len());
            for n in &self.nodes {
                sizes.push(n.routing_nodes().await);
            }
            sizes
        })
    }

    /// Waits until every node's routing table holds more than `min` nodes; returns the sizes
    /// (fails with them at `deadline`).
    pub fn wait_routing_above(&self, min: usize, deadline: Deadline) -> Result<Vec<usize>> {
        loop {
            let sizes = self.routing_sizes();
            if sizes.iter().all(|&s| s > min) {
                return Ok(sizes);
            }
            if deadline.left().is_zero() {
                bail!("routing tables not all above {min} nodes: {sizes:?}");
            }
            std::thread::sleep(POLL);
        }
    }

    /// One `get_peers` lookup for `info_hash` from node `from`, to its end: the peers found.
    pub fn lookup(&self, from: usize, info_hash: InfoHash) -> Vec<SocketAddr> {
        let Some(node) = self.nodes.get(from % self.nodes.len()) else {
            return Vec::new();
        };
        self.rt.block_on(async {
            let mut found = Vec::new();
            let mut rx = node.lookup(info_hash, None).await;
            let collect = async {
                while let Some(batch) = rx.recv().await {
                    found.extend(batch);
                }
            };
            let _ = tokio::time::timeout(LOOKUP_TIMEOUT, collect).await;
            found.sort();
            found.dedup();
            found
        })
    }

    /// Looks `info_hash` up from one node after another until a lookup finds `peer`; returns
    /// the time it took and the number of lookups (fails at `deadline`).
    pub fn wait_for_peer(
        &self,
        info_hash: InfoHash,
        peer: SocketAddr,
        deadline: Deadline,
    ) -> Result<(Duration, usize)> {
        let started = Instant::now();
        let mut lookups = 0;
        loop {
            let found = self.lookup(lookups, info_hash);
            lookups += 1;
            if found.contains(&peer) {
                return Ok((started.elapsed(), lookups));
            }
            if deadline.left().is_zero() {
                bail!(
                    "{lookups} DHT lookups for {info_hash} did not find {peer} in {:?} (the last found {found:?})",
                    started.elapsed()
                );
            }
            std::thread::sleep(LOOKUP_PAUSE);
        }
    }
}

impl Drop for DhtNet {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `swarm ARGS` in the DHT (`SWARM_NO_DHT=0`), its routing table kept in `state_dir`, logging
/// at info (client at debug) unless the environment sets `RUST_LOG`.
pub fn swarm(args: &[&str], state_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(bins::swarm()?);
    cmd.args(args)
        .env("SWARM_NO_DHT", "0")
        .env("SWARM_STATE_DIR", state_dir);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", LOG_FILTER);
    }
    Ok(cmd)
}

/// `swarm seed FILE --torrent FILE.torrent --no-tracker --listen LISTEN --bootstrap NODE`.
pub fn seed_command(file: &Path, listen: SocketAddr, node: &str, state: &Path) -> Result<Command> {
    let torrent = file.with_extension("torrent");
    swarm(
        &[
            "seed",
            path_str(file)?,
            "--torrent",
            path_str(&torrent)?,
            "--no-tracker",
            "--listen",
            &listen.to_string(),
            "--bootstrap",
            node,
        ],
        state,
    )
}

/// Runs a `swarm seed` of one torrent (logs in `log_dir`) and reads what it prints.
pub fn start_seed(
    cmd: Command,
    name: &str,
    log_dir: &Path,
    deadline: Deadline,
) -> Result<(Proc, Seeding)> {
    let mut proc = Proc::spawn(cmd, name, log_dir)?;
    let s = seeding(&mut proc, deadline)?;
    Ok((proc, s))
}

/// What `swarm seed` prints about one torrent and its DHT node.
#[derive(Debug, Clone)]
pub struct Seeding {
    /// The torrent's info-hash.
    pub info_hash: InfoHash,
    /// Its magnet link.
    pub magnet: String,
    /// The port it accepts peers on (the one announced to the DHT).
    pub port: u16,
    /// The UDP address of its DHT node.
    pub dht: SocketAddr,
}

/// Reads a `swarm seed` of one torrent's `info-hash:`, `magnet:`, `listening on port` and
/// `dht: node on udp` lines (fails if one is missing by `deadline`).
fn seeding(proc: &mut Proc, deadline: Deadline) -> Result<Seeding> {
    let value = |line: &str, label: &str| -> Option<String> {
        Some(line.trim_start().strip_prefix(label)?.trim().to_owned())
    };
    let line = proc.wait_for_line(Stream::Stdout, deadline.left(), |l| {
        value(l, "info-hash:").is_some()
    })?;
    let hex = value(&line, "info-hash:").unwrap_or_default();
    let info_hash = InfoHash::from_hex(&hex).with_context(|| format!("info-hash {hex:?}"))?;
    let line = proc.wait_for_line(Stream::Stdout, deadline.left(), |l| {
        value(l, "magnet:").is_some()
    })?;
    let magnet = value(&line, "magnet:").unwrap_or_default();
    let line = proc.wait_for_line(Stream::Stdout, deadline.left(), |l| {
        l.starts_with("listening on port ")
    })?;
    let port = tests::client::listening_port(&line).with_context(|| format!("{line:?}"))?;
    let line = proc.wait_for_line(Stream::Stdout, deadline.left(), |l| {
        l.starts_with("dht: node on udp ")
    })?;
    let dht = line
        .trim_start_matches("dht: node on udp ")
        .parse()
        .with_context(|| format!("{line:?}"))?;
    Ok(Seeding {
        info_hash,
        magnet,
        port,
        dht,
    })
}

/// A scratch directory for one scenario; kept (and named on stderr) when the environment sets
/// `SWARM_KEEP_TEST_DIRS`, to read the processes' logs afterwards.
pub fn scratch(prefix: &str) -> Result<tempfile::TempDir> {
    let mut dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
    if std::env::var_os("SWARM_KEEP_TEST_DIRS").is_some() {
        dir.disable_cleanup(true);
        eprintln!("keeping {}", dir.path().display());
    }
    Ok(dir)
}

/// `path` as UTF-8, for a command-line argument.
pub fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
