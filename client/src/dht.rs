//! The DHT node of a process: one UDP socket driving the sans-IO [`dht::Dht`], bootstrap by
//! name, the routing table saved between runs. What a swarm does with it (lookups that feed
//! its candidates) lives in `discovery::dht_lookup`.
//!
//! One task owns the socket and the state machine; everything else talks to it through a
//! bounded command channel ([`DhtHandle`]). Peers found by a lookup come back on a bounded
//! channel per lookup, closed when the lookup ends.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dht::{Dht, DhtEvent, LookupId, NodeId, NodeInfo};
use metainfo::InfoHash;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::net::resolve;

/// The bootstrap nodes used when none are given (every resolved address is tried).
pub const DEFAULT_BOOTSTRAP: [&str; 3] = [
    "dht.libtorrent.org:25401",
    "dht.transmissionbt.com:6881",
    "router.bittorrent.com:6881",
];
/// Commands waiting for the DHT task.
const COMMAND_QUEUE: usize = 256;
/// Batches of peers waiting per lookup; more are dropped (the lookup goes on).
const PEER_BATCHES: usize = 64;
/// Largest datagram read.
const MAX_DATAGRAM: usize = 8 * 1024;
/// Most nodes saved and reloaded.
const MAX_SAVED_NODES: usize = 256;
/// How often the routing table is saved while running.
const SAVE_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// First bytes of the saved-table file.
const STATE_MAGIC: &[u8; 8] = b"swdht01\n";

/// How to run the DHT node.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    /// The UDP address to bind (IPv4).
    pub bind: SocketAddr,
    /// `host:port` names to bootstrap from.
    pub bootstrap: Vec<String>,
    /// Where the routing table is saved between runs (`None`: not saved).
    pub state_file: Option<PathBuf>,
}

/// Where the routing table is kept: `$SWARM_STATE_DIR`, else `$XDG_STATE_HOME/swarm`, else
/// `~/.local/state/swarm`, as `dht.dat`.
pub fn default_state_file() -> Option<PathBuf> {
    let dir = std::env::var_os("SWARM_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|d| PathBuf::from(d).join("swarm")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/swarm"))
        })?;
    Some(dir.join("dht.dat"))
}

enum Command {
    Lookup {
        info_hash: InfoHash,
        announce_port: Option<u16>,
        peers: mpsc::Sender<Vec<SocketAddr>>,
    },
    Ping(SocketAddr),
    Bootstrap(Vec<SocketAddr>),
    Nodes(tokio::sync::oneshot::Sender<usize>),
}

/// A running DHT node; cheap to clone.
#[derive(Debug, Clone)]
pub struct DhtHandle {
    commands: mpsc::Sender<Command>,
    /// The UDP address we answer on.
    pub local: SocketAddr,
    bootstrapped: watch::Receiver<bool>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Lookup { .. } => "Lookup",
            Command::Ping(_) => "Ping",
            Command::Bootstrap(_) => "Bootstrap",
            Command::Nodes(_) => "Nodes",
        })
    }
}

impl DhtHandle {
    /// Binds the socket, loads the saved table and starts the node; bootstrap names are
    /// resolved in the background.
    /// The node's task and its bootstrap run on `tasks` and end with `shutdown` (the table is
    /// saved last).
    pub async fn start(
        config: DhtConfig,
        shutdown: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> std::io::Result<Self> {
        let socket = match UdpSocket::bind(config.bind).await {
            Ok(s) => s,
            Err(e) if config.bind.port() != 0 => {
                tracing::warn!(addr = %config.bind, error = %e, "DHT port taken; using another");
                UdpSocket::bind(SocketAddr::new(config.bind.ip(), 0)).await?
            }
            Err(e) => return Err(e),
        };
        let local = socket.local_addr()?;
        let saved = config
            .state_file
            .as_deref()
            .and_then(|p| match load_state(p) {
                Ok(s) => Some(s),
                Err(e) => {
                    if p.exists() {
                        tracing::warn!(file = %p.display(), error = %e, "ignoring saved DHT table");
                    }
                    None
                }
            });
        let now = Instant::now();
        let mut rng = rand::thread_rng();
        let id = saved
            .as_ref()
            .map_or_else(|| NodeId::random(&mut rng), |s| s.id);
        let mut node = Dht::new(id, dht::Config::default(), &mut rng, now);
        if let Some(s) = &saved {
            for n in &s.nodes {
                node.ping_addr(std::net::SocketAddr::V4(n.addr), now);
            }
            let first: Vec<SocketAddr> = s
                .nodes
                .iter()
                .take(8)
                .map(|n| SocketAddr::V4(n.addr))
                .collect();
            if !first.is_empty() {
                node.bootstrap(&first, now);
            }
            tracing::info!(nodes = s.nodes.len(), "loaded the saved DHT table");
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let (boot_tx, boot_rx) = watch::channel(false);
        let task = Task {
            socket,
            node,
            lookups: HashMap::new(),
            bootstrapped: boot_tx,
            state_file: config.state_file,
        };
        tasks.spawn(task.run(rx, shutdown.clone()));
        let commands = tx.clone();
        let names = config.bootstrap;
        tasks.spawn(async move {
            let addrs = tokio::select! {
                a = resolve_all(&names) => a,
                _ = shutdown.cancelled() => return,
            };
            if addrs.is_empty() && !names.is_empty() {
                // Offline, or no name service: one line for the whole process.
                tracing::warn!(
                    "DHT: no bootstrap node could be resolved (offline?); peers come from trackers and peers until one is reached"
                );
            }
            let _ = commands.send(Command::Bootstrap(addrs)).await;
        });
        tracing::info!(addr = %local, id = %hex_id(&id), "DHT node started");
        Ok(DhtHandle {
            commands: tx,
            local,
            bootstrapped: boot_rx,
        })
    }

    /// Starts a lookup for `info_hash` (announcing `announce_port` to the closest nodes when
    /// given); the receiver yields batches of peers and closes when the lookup ends.
    pub async fn lookup(
        &self,
        info_hash: InfoHash,
        announce_port: Option<u16>,
    ) -> mpsc::Receiver<Vec<SocketAddr>> {
        let (tx, rx) = mpsc::channel(PEER_BATCHES);
        let _ = self
            .commands
            .send(Command::Lookup {
                info_hash,
                announce_port,
                peers: tx,
            })
            .await;
        rx
    }

    /// Pings a node learned elsewhere (a peer's PORT message); dropped when the queue is full.
    pub fn add_node(&self, addr: SocketAddr) {
        let _ = self.commands.try_send(Command::Ping(addr));
    }

    /// Nodes in the routing table now.
    pub async fn routing_nodes(&self) -> usize {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.commands.send(Command::Nodes(tx)).await.is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }

    /// Waits until the first bootstrap ended with a non-empty table, or `timeout`.
    pub async fn wait_bootstrapped(&self, timeout: Duration) -> bool {
        let mut rx = self.bootstrapped.clone();
        tokio::time::timeout(timeout, rx.wait_for(|b| *b))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

struct Task {
    socket: UdpSocket,
    node: Dht,
    lookups: HashMap<LookupId, mpsc::Sender<Vec<SocketAddr>>>,
    bootstrapped: watch::Sender<bool>,
    state_file: Option<PathBuf>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        let mut next_save = tokio::time::Instant::now() + SAVE_INTERVAL;
        loop {
            let deadline = self
                .node
                .poll_timeout()
                .map_or(Duration::from_secs(1), |d| {
                    d.saturating_duration_since(Instant::now())
                });
            tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
                        if let Some(pkt) = buf.get(..n) {
                            self.node.handle_packet(from, pkt, Instant::now());
                        }
                    }
                    // ICMP errors from earlier sends surface here on Linux; nothing to do.
                    Err(e) => tracing::trace!(error = %e, "DHT receive error"),
                },
                c = commands.recv() => match c {
                    Some(c) => self.command(c),
                    None => break,
                },
                _ = tokio::time::sleep(deadline) => self.node.handle_timeout(Instant::now()),
                _ = tokio::time::sleep_until(next_save) => {
                    next_save = tokio::time::Instant::now() + SAVE_INTERVAL;
                    self.save().await;
                }
            }
            self.flush().await;
        }
        self.save().await;
    }

    fn command(&mut self, c: Command) {
        let now = Instant::now();
        match c {
            Command::Lookup {
                info_hash,
                announce_port,
                peers,
            } => {
                let r = match announce_port {
                    Some(p) => self.node.announce(info_hash, Some(p), now),
                    None => self.node.get_peers(info_hash, now),
                };
                match r {
                    // Dropping `peers` on error closes the caller's receiver at once.
                    Ok(id) => {
                        self.lookups.insert(id, peers);
                    }
                    Err(e) => tracing::debug!(error = %e, "DHT lookup not started"),
                }
            }
            Command::Ping(a) => self.node.ping_addr(a, now),
            Command::Bootstrap(addrs) => self.node.bootstrap(&addrs, now),
            Command::Nodes(tx) => {
                let _ = tx.send(self.node.routing_nodes());
            }
        }
    }

    /// Sends what the node queued and routes its events.
    async fn flush(&mut self) {
        while let Some((to, bytes)) = self.node.poll_transmit() {
            if let Err(e) = self.socket.send_to(&bytes, to).await {
                tracing::trace!(to = %to, error = %e, "DHT send failed");
            }
        }
        while let Some(ev) = self.node.poll_event() {
            match ev {
                DhtEvent::Peers { lookup, peers, .. } => {
                    if let Some(tx) = self.lookups.get(&lookup) {
                        let peers = peers.into_iter().map(SocketAddr::V4).collect();
                        let _ = tx.try_send(peers);
                    }
                }
                DhtEvent::LookupDone { lookup, stats, .. } => {
                    tracing::debug!(
                        queries = stats.queries,
                        responses = stats.responses,
                        announced = stats.announced,
                        "DHT lookup done"
                    );
                    self.lookups.remove(&lookup);
                }
                DhtEvent::Bootstrapped { nodes } => {
                    tracing::info!(nodes, "DHT bootstrapped");
                    self.bootstrapped.send_replace(true);
                }
            }
        }
        // Receivers that went away (their torrent stopped) free their slot.
        self.lookups.retain(|_, tx| !tx.is_closed());
    }

    /// Saves the routing table, off the async threads (the write is fsynced).
    async fn save(&self) {
        let Some(path) = self.state_file.clone() else {
            return;
        };
        let mut nodes = self.node.nodes(Instant::now());
        if nodes.is_empty() {
            return;
        }
        nodes.truncate(MAX_SAVED_NODES);
        let id = self.node.id();
        let r = tokio::task::spawn_blocking(move || {
            save_state(&path, id, &nodes).map_err(|e| (path, e.to_string()))
        })
        .await;
        if let Ok(Err((path, e))) = r {
            tracing::warn!(file = %path.display(), error = %e, "could not save the DHT table");
        }
    }
}

fn hex_id(id: &NodeId) -> String {
    id.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Resolves `host:port` names to IPv4 socket addresses (the DHT speaks IPv4), every address
/// of every name.
pub async fn resolve_all(names: &[String]) -> Vec<SocketAddr> {
    let mut all = resolve(names).await;
    all.retain(SocketAddr::is_ipv4);
    all
}

/// A saved routing table: our id and the nodes we knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedTable {
    /// Our node id (kept across runs).
    pub id: NodeId,
    /// Nodes, closest to us first.
    pub nodes: Vec<NodeInfo>,
}

/// Why a saved table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not a table we wrote.
    #[error("not a saved DHT table")]
    Format,
}

/// Parses a saved table: magic, 20-byte id, then 26-byte compact nodes (at most 256).
pub fn parse_state(bytes: &[u8]) -> Result<SavedTable, StateError> {
    let rest = bytes.strip_prefix(STATE_MAGIC).ok_or(StateError::Format)?;
    let (id, nodes) = rest.split_at_checked(20).ok_or(StateError::Format)?;
    let id = NodeId::from_slice(id).ok_or(StateError::Format)?;
    if nodes.len() > MAX_SAVED_NODES * dht::COMPACT_NODE_LEN
        || nodes.len() % dht::COMPACT_NODE_LEN != 0
    {
        return Err(StateError::Format);
    }
    let nodes = nodes
        .chunks_exact(dht::COMPACT_NODE_LEN)
        .filter_map(|c| {
            let (nid, addr) = c.split_at(20);
            let [a, b, c2, d, p0, p1] = <[u8; 6]>::try_from(addr).ok()?;
            Some(NodeInfo {
                id: NodeId::from_slice(nid)?,
                addr: std::net::SocketAddrV4::new(
                    Ipv4Addr::new(a, b, c2, d),
                    u16::from_be_bytes([p0, p1]),
                ),
            })
        })
        .collect();
    Ok(SavedTable { id, nodes })
}

/// The bytes [`parse_state`] reads.
pub fn encode_state(id: NodeId, nodes: &[NodeInfo]) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + nodes.len() * dht::COMPACT_NODE_LEN);
    out.extend_from_slice(STATE_MAGIC);
    out.extend_from_slice(id.as_bytes());
    for n in nodes.iter().take(MAX_SAVED_NODES) {
        out.extend_from_slice(n.id.as_bytes());
        out.extend_from_slice(&n.addr.ip().octets());
        out.extend_from_slice(&n.addr.port().to_be_bytes());
    }
    out
}

fn load_state(path: &Path) -> Result<SavedTable, StateError> {
    let max = (STATE_MAGIC.len() + 20 + MAX_SAVED_NODES * dht::COMPACT_NODE_LEN) as u64;
    if std::fs::metadata(path)?.len() > max {
        return Err(StateError::Format);
    }
    parse_state(&std::fs::read(path)?)
}

/// Writes the table atomically (`storage::write_atomic`).
fn save_state(path: &Path, id: NodeId, nodes: &[NodeInfo]) -> storage::Result<()> {
    storage::write_atomic(path, &encode_state(id, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_util::task::TaskTracker;

    #[test]
    fn state_round_trip_and_garbage() {
        let id = NodeId([7; 20]);
        let nodes = vec![
            NodeInfo {
                id: NodeId([1; 20]),
                addr: "127.0.0.2:6881".parse().unwrap(),
            },
            NodeInfo {
                id: NodeId([2; 20]),
                addr: "10.1.2.3:1".parse().unwrap(),
            },
        ];
        let bytes = encode_state(id, &nodes);
        assert_eq!(parse_state(&bytes).unwrap(), SavedTable { id, nodes });
        assert!(parse_state(b"").is_err());
        assert!(parse_state(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_state(b"swdht01\nshort").is_err());
        let mut big = bytes.clone();
        big.extend(std::iter::repeat_n(0u8, 300 * dht::COMPACT_NODE_LEN));
        assert!(parse_state(&big).is_err());
    }

    #[tokio::test]
    async fn garbage_datagrams_do_not_stop_the_node() {
        let stop = CancellationToken::new();
        let cfg = DhtConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap: vec![],
            state_file: None,
        };
        let node = DhtHandle::start(cfg, stop.clone(), &TaskTracker::new())
            .await
            .unwrap();
        let sock = UdpSocket::bind("127.0.0.9:0").await.unwrap();
        let mut junk: Vec<Vec<u8>> = vec![
            vec![],
            b"d".to_vec(),
            b"de".to_vec(),
            b"i-0e".to_vec(),
            b"d1:ad2:id20:01234567890123456789e1:q4:ping1:t2:aa1:y1:qe".to_vec(),
            b"d1:q4:ping1:t2:aa1:y1:qe".to_vec(),
            b"d1:rd2:id3:abce1:t2:zz1:y1:re".to_vec(),
            b"d1:eli201e5:Errore1:t2:aa1:y1:ee".to_vec(),
            vec![b'l'; 8192],
            vec![0xff; 1500],
        ];
        junk.push(
            format!("d1:ad2:id20:01234567890123456789e1:q4:ping1:t{}:", 100_000).into_bytes(),
        );
        // A bounded burst: 2,000 datagrams of every kind.
        for i in 0..2_000 {
            let _ = sock.send_to(&junk[i % junk.len()], node.local).await;
        }
        // The node still answers a well-formed ping from another address.
        let probe = UdpSocket::bind("127.0.0.10:0").await.unwrap();
        let ping = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pp1:y1:qe";
        let mut buf = [0u8; 1500];
        let mut answered = false;
        for _ in 0..20 {
            probe.send_to(ping, node.local).await.unwrap();
            if let Ok(Ok((n, _))) =
                tokio::time::timeout(Duration::from_millis(250), probe.recv_from(&mut buf)).await
            {
                let reply = dht::message::Message::decode(&buf[..n]).unwrap();
                assert_eq!(reply.tid, b"pp".to_vec());
                answered = true;
                break;
            }
        }
        assert!(answered, "no reply to a ping after the garbage");
        // Two senders: the burst (one of its datagrams is a well-formed ping) and the probe.
        assert_eq!(node.routing_nodes().await, 2);
        stop.cancel();
    }

    #[tokio::test]
    async fn two_nodes_find_an_announced_peer_over_udp() {
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let cfg = |ip: [u8; 4], boot: Vec<String>| DhtConfig {
            bind: SocketAddr::from((ip, 0)),
            bootstrap: boot,
            state_file: None,
        };
        let a = DhtHandle::start(cfg([127, 0, 0, 1], vec![]), stop.clone(), &tasks)
            .await
            .unwrap();
        let b = DhtHandle::start(
            cfg([127, 0, 0, 2], vec![a.local.to_string()]),
            stop.clone(),
            &tasks,
        )
        .await
        .unwrap();
        assert!(b.wait_bootstrapped(Duration::from_secs(10)).await);
        let c = DhtHandle::start(
            cfg([127, 0, 0, 3], vec![a.local.to_string()]),
            stop.clone(),
            &tasks,
        )
        .await
        .unwrap();
        assert!(c.wait_bootstrapped(Duration::from_secs(10)).await);
        let ih = InfoHash([9; 20]);
        // b announces port 4242; its lookup ends once the closest nodes were told.
        let mut rx = b.lookup(ih, Some(4242)).await;
        while rx.recv().await.is_some() {}
        let mut rx = c.lookup(ih, None).await;
        let mut got = Vec::new();
        while let Some(batch) = rx.recv().await {
            got.extend(batch);
        }
        assert!(
            got.contains(&"127.0.0.2:4242".parse().unwrap()),
            "peers found: {got:?}"
        );
        stop.cancel();
    }
}
