//! One process's node in the BitTorrent network: our peer id, the listening sockets, the
//! swarms by info-hash (for incoming handshakes), the DHT node, local service discovery
//! (one LSD service for all torrents), the rate limits, and every
//! task it spawns (tracked, and awaited at [`Session::stop`]).
//!
//! Adding a torrent is [`add`]; a magnet link is resolved by [`magnet`]. A swarm's peers come
//! from `discovery`, its connections run in `peer`, its engine in `torrent`.

pub mod add;
pub mod magnet;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use metainfo::{InfoHash, PeerId};
use parking_lot::RwLock;
use rand::Rng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::Reserved;

use crate::dht::{DhtConfig, DhtHandle};
use crate::discovery::announce::{self, Identity, Trackers};
use crate::discovery::lsd::Lsd;
use crate::discovery::{DialContext, Discovery, Inbox, OwnAddrs, dht_lookup};
use crate::net::encryption::CryptoMemory;
use crate::net::handshake::{self, HandshakeError, HandshakeSlots, Ours, Slot};
use crate::net::limit::Limits;
use crate::net::transport;
use crate::peer::{Driver, connection};
use crate::settings::Settings;

/// Our client prefix in peer ids (Azureus style `-XXvvvv-`).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-SW0100-";
/// File handles kept open across all torrents.
const MAX_OPEN_FILES: usize = 512;
/// The default listening port, and how many after it are tried when it is taken.
pub const DEFAULT_PORT: u16 = 6881;
const PORT_TRIES: u16 = 10;

/// A running node. Torrents are added with [`Session::add`](add).
#[derive(Debug)]
pub struct Session {
    peer_id: PeerId,
    settings: Settings,
    port: u16,
    local: Vec<SocketAddr>,
    limits: Arc<Limits>,
    files: storage::HandlePool,
    /// What answers for each info-hash: a torrent, or a magnet link's metadata fetch.
    swarms: RwLock<HashMap<InfoHash, Arc<dyn Driver>>>,
    /// The same swarms by HASH('req2', info-hash), for incoming MSE/PE handshakes (one lookup
    /// per connection, not one hash per torrent); kept with `swarms`.
    req2: RwLock<HashMap<[u8; 20], InfoHash>>,
    /// Which peers were reached encrypted or not, for every swarm's dialer.
    crypto_memory: Arc<CryptoMemory>,
    slots: HandshakeSlots,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    dht: Option<DhtHandle>,
    lsd: Option<Lsd>,
    /// HTTP and UDP tracker clients (UDP connection ids are shared by every swarm).
    trackers: Trackers,
}

/// A listening address that could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {err}")]
pub struct BindError {
    addr: SocketAddr,
    err: std::io::Error,
}

async fn bind_defaults() -> Result<Vec<TcpListener>, BindError> {
    let mut last = None;
    for port in DEFAULT_PORT..DEFAULT_PORT + PORT_TRIES {
        match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).await {
            // A dual-stack socket serves IPv4 too (as mapped addresses).
            Ok(l) => return Ok(vec![l]),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                last = Some(BindError {
                    addr: (Ipv6Addr::UNSPECIFIED, port).into(),
                    err: e,
                });
                continue;
            }
            Err(_) => {}
        }
        match TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await {
            Ok(l) => return Ok(vec![l]),
            Err(e) => {
                last = Some(BindError {
                    addr: (Ipv4Addr::UNSPECIFIED, port).into(),
                    err: e,
                })
            }
        }
    }
    Err(last.unwrap_or_else(|| BindError {
        addr: (Ipv4Addr::UNSPECIFIED, DEFAULT_PORT).into(),
        err: std::io::ErrorKind::AddrInUse.into(),
    }))
}

/// A fresh peer id: our prefix, then random letters and digits.
fn new_peer_id() -> PeerId {
    const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = [0u8; 20];
    id[..8].copy_from_slice(PEER_ID_PREFIX);
    let mut rng = rand::thread_rng();
    for b in &mut id[8..] {
        *b = ALNUM[rng.gen_range(0..ALNUM.len())];
    }
    PeerId(id)
}

impl Session {
    /// Binds the listening sockets, starts the DHT node (if asked) and starts accepting.
    pub async fn start(
        settings: Settings,
        shutdown: CancellationToken,
    ) -> Result<Arc<Session>, BindError> {
        let listeners = if settings.listen.is_empty() {
            bind_defaults().await?
        } else {
            let mut v = Vec::new();
            for a in &settings.listen {
                v.push(
                    TcpListener::bind(a)
                        .await
                        .map_err(|err| BindError { addr: *a, err })?,
                );
            }
            v
        };
        let local: Vec<SocketAddr> = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let port = local.first().map_or(0, |a| a.port());
        let peer_id = new_peer_id();
        let tasks = TaskTracker::new();
        let dht = match &settings.dht {
            Some(d) => {
                // Bind where we accept peers: tests give each node its own 127.x address.
                let ip = local
                    .iter()
                    .map(|a| a.ip())
                    .find(|ip| ip.is_ipv4() && !ip.is_unspecified())
                    .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                let dc = DhtConfig {
                    bind: SocketAddr::new(ip, d.port.unwrap_or(port)),
                    bootstrap: d.bootstrap.clone(),
                    state_file: d.state_file.clone(),
                };
                match DhtHandle::start(dc, shutdown.clone(), &tasks).await {
                    Ok(h) => Some(h),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the DHT; going on without it");
                        None
                    }
                }
            }
            None => None,
        };
        let lsd = if settings.lsd {
            Lsd::start(&local, port, shutdown.clone(), &tasks)
        } else {
            None
        };
        let trackers = Trackers::new(settings.udp_trackers);
        let session = Arc::new(Session {
            trackers,
            peer_id,
            limits: Arc::new(Limits::new(settings.upload_limit, settings.download_limit)),
            settings,
            port,
            local,
            files: storage::HandlePool::new(MAX_OPEN_FILES),
            swarms: RwLock::new(HashMap::new()),
            req2: RwLock::new(HashMap::new()),
            crypto_memory: Arc::default(),
            slots: HandshakeSlots::default(),
            shutdown,
            tasks,
            dht,
            lsd,
        });
        for l in listeners {
            session.tasks.spawn(session.clone().accept_loop(l));
        }
        tracing::info!(port, peer_id = %String::from_utf8_lossy(&peer_id.0), "listening");
        Ok(session)
    }

    /// Stops everything: tells every task, then waits for them, at most `grace` (stopped
    /// announces, the disk tasks' last writes and resume saves, the DHT table). False if the
    /// grace period ran out first.
    pub async fn stop(&self, grace: Duration) -> bool {
        self.shutdown.cancel();
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }

    /// Runs `task` until it ends; [`stop`](Self::stop) waits for it.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Our peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The port peers reach us on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The DHT node, if one runs.
    pub fn dht(&self) -> Option<&DhtHandle> {
        self.dht.as_ref()
    }

    /// How the dialer last reached each peer, shared by every swarm.
    pub(crate) fn crypto_memory(&self) -> &Arc<CryptoMemory> {
        &self.crypto_memory
    }

    /// Is local service discovery running?
    pub fn lsd_running(&self) -> bool {
        self.lsd.is_some()
    }

    /// The settings the session runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Our handshake: extension protocol, Fast, and DHT when it runs.
    fn ours(&self) -> Ours {
        let mut reserved = Reserved::default();
        reserved.set_extension_protocol(true);
        reserved.set_fast(true);
        reserved.set_dht(self.dht.is_some());
        Ours {
            reserved,
            peer_id: self.peer_id,
        }
    }

    /// Our own addresses, never dialed.
    fn own_addrs(&self) -> OwnAddrs {
        OwnAddrs {
            port: self.port,
            local: self.local.clone(),
        }
    }

    /// Keeps a swarm's driver sender until the swarm stops (its tasks watch it to the end).
    fn keep_until(&self, tx: watch::Sender<Arc<dyn Driver>>, cancel: CancellationToken) {
        self.tasks.spawn(async move {
            cancel.cancelled().await;
            drop(tx);
        });
    }

    /// Makes `driver` answer incoming handshakes for `ih`.
    fn register(&self, ih: InfoHash, driver: Arc<dyn Driver>) {
        self.swarms.write().insert(ih, driver);
        self.req2.write().insert(mse::req2(&ih.0), ih);
    }

    /// Stops local service discovery for `ih` (a magnet link's torrent that turned out private).
    fn leave_lsd(&self, ih: InfoHash) {
        if let Some(lsd) = &self.lsd {
            lsd.leave(ih);
        }
    }

    /// Starts a swarm's discovery, announcer, DHT lookups and LSD for whatever `driver` holds now
    /// (and later); they stop with `cancel`.
    fn start_swarm(
        &self,
        info_hash: InfoHash,
        (discovery, inbox): (Discovery, Inbox),
        tiers: Vec<Vec<String>>,
        private: bool,
        driver: watch::Receiver<Arc<dyn Driver>>,
        cancel: &CancellationToken,
    ) -> Discovery {
        let ctx = DialContext {
            info_hash,
            ours: self.ours(),
            limits: self.limits.clone(),
            own: self.own_addrs(),
            max_outgoing: self.settings.max_outgoing,
            encryption: self.settings.encryption,
            crypto_memory: self.crypto_memory.clone(),
            cancel: cancel.clone(),
        };
        discovery.run(inbox, ctx, driver.clone(), &self.tasks);
        let me = Identity {
            info_hash,
            peer_id: self.peer_id,
            port: self.port,
            encryption: self.settings.encryption,
        };
        self.tasks.spawn(announce::run(
            self.trackers.clone(),
            tiers,
            me,
            driver.clone(),
            discovery.clone(),
            cancel.clone(),
        ));
        // BEP 27: a private torrent's peers come from its trackers only.
        if let (Some(dht), false) = (&self.dht, private) {
            self.tasks.spawn(dht_lookup::run(
                dht.clone(),
                info_hash,
                self.port,
                driver,
                discovery.clone(),
                cancel.clone(),
            ));
        }
        if let (Some(lsd), false) = (&self.lsd, private) {
            self.tasks.spawn(
                lsd.clone()
                    .join(info_hash, discovery.clone(), cancel.clone()),
            );
        }
        discovery
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let Some(slot) = self.slots.take(addr.ip().to_canonical()) else {
                        tracing::debug!(peer = %addr, "too many handshakes in progress; closing");
                        continue;
                    };
                    let me = self.clone();
                    self.tasks.spawn(async move {
                        tokio::select! {
                            _ = me.shutdown.cancelled() => {}
                            () = me.clone().incoming(stream, addr, slot) => {}
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Answers one incoming connection and runs it.
    async fn incoming(self: Arc<Self>, stream: TcpStream, addr: SocketAddr, slot: Slot) {
        let stream = match transport::accepted_tcp(stream) {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(peer = %addr, error = %e, "incoming connection lost");
                return;
            }
        };
        let mut driver = None;
        let lookup = |h: &[u8; 20]| self.req2.read().get(h).map(|ih| ih.0);
        let peer =
            handshake::incoming(stream, addr, self.settings.encryption, &lookup, |ih, ip| {
                let d = self
                    .swarms
                    .read()
                    .get(ih)
                    .cloned()
                    .ok_or(HandshakeError::Refused("unknown info-hash"))?;
                if !d.accepts(ip) {
                    return Err(HandshakeError::Refused("banned or full"));
                }
                driver = Some(d);
                Ok(self.ours())
            })
            .await;
        drop(slot);
        match (peer, driver) {
            (Ok(peer), Some(d)) => {
                connection::run(d, peer, self.limits.clone()).await;
            }
            (Err(e), _) => {
                tracing::debug!(peer = %addr, error = %e, "incoming handshake failed");
            }
            (Ok(_), None) => {}
        }
    }
}
