//! One process's node in the BitTorrent network: our peer id, the listening sockets, the
//! torrents, incoming and outgoing handshakes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use metainfo::{InfoHash, PeerId};
use parking_lot::{Mutex, RwLock};
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use wire::{Handshake, Reserved};

use crate::dht::{DhtConfig, DhtHandle};
use crate::limit::Limiter;
use crate::torrent::TorrentShared;

/// Our client prefix in peer ids (Azureus style `-XXvvvv-`).
pub const PEER_ID_PREFIX: &[u8; 8] = b"-SW0100-";
/// Handshakes allowed in progress at once; more connections are closed at once.
const MAX_HANDSHAKES: usize = 128;
/// Handshakes in progress from one address, so one host cannot take every slot.
const MAX_HANDSHAKES_PER_IP: u32 = 8;
/// File handles kept open across all torrents.
const MAX_OPEN_FILES: usize = 512;
/// Time allowed for a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of a session.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Addresses to listen on; empty = the default port on every interface.
    pub listen: Vec<SocketAddr>,
    /// Upload cap in bytes/s for the whole process.
    pub upload_limit: Option<u64>,
    /// Download cap in bytes/s for the whole process.
    pub download_limit: Option<u64>,
    /// Peers to dial out to per torrent.
    pub max_outgoing: usize,
    /// Engine settings used for every torrent.
    pub engine: engine::Config,
    /// The DHT node to run (`None`: no DHT).
    pub dht: Option<DhtSettings>,
}

/// What the DHT node of a session should do.
#[derive(Debug, Clone)]
pub struct DhtSettings {
    /// UDP port (`None`: the same port as the TCP listener).
    pub port: Option<u16>,
    /// `host:port` names to bootstrap from.
    pub bootstrap: Vec<String>,
    /// Where the routing table is saved between runs.
    pub state_file: Option<std::path::PathBuf>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            listen: Vec::new(),
            upload_limit: None,
            download_limit: None,
            max_outgoing: 50,
            engine: engine::Config::default(),
            dht: None,
        }
    }
}

/// The default listening port, and how many after it are tried when it is taken.
pub const DEFAULT_PORT: u16 = 6881;
const PORT_TRIES: u16 = 10;

/// A running node. Torrents are added with [`Session::add`].
#[derive(Debug)]
pub struct Session {
    /// Our peer id.
    pub peer_id: PeerId,
    /// Settings.
    pub config: SessionConfig,
    /// The port peers reach us on.
    pub port: u16,
    /// Every address we listen on.
    pub local: Vec<SocketAddr>,
    /// The process-wide upload cap.
    pub upload_limit: Limiter,
    /// The process-wide download cap.
    pub download_limit: Limiter,
    /// Open file handles shared by every torrent's storage (bounded).
    pub files: storage::HandlePool,
    /// Torrents by info-hash.
    torrents: RwLock<HashMap<InfoHash, Arc<TorrentShared>>>,
    handshakes: Arc<Semaphore>,
    /// Handshakes in progress per address (entries only while a slot is held: at most
    /// `MAX_HANDSHAKES` of them).
    handshakes_per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
    /// Cancelled to stop everything.
    pub shutdown: CancellationToken,
    /// The DHT node, if running.
    pub dht: Option<DhtHandle>,
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

impl Session {
    /// Binds the listening sockets and starts accepting.
    pub async fn start(
        config: SessionConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Session>, BindError> {
        let listeners = if config.listen.is_empty() {
            bind_defaults().await?
        } else {
            let mut v = Vec::new();
            for a in &config.listen {
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
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(PEER_ID_PREFIX);
        let mut rng = rand::thread_rng();
        const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for b in &mut id[8..] {
            *b = ALNUM[rng.gen_range(0..ALNUM.len())];
        }
        let mut config = config;
        config.engine.listen_port = Some(port);
        config.engine.peer_id = Some(PeerId(id));
        let dht = match &config.dht {
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
                match DhtHandle::start(dc, shutdown.clone()).await {
                    Ok(h) => Some(h),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot start the DHT; going on without it");
                        None
                    }
                }
            }
            None => None,
        };
        let session = Arc::new(Session {
            peer_id: PeerId(id),
            upload_limit: Limiter::new(config.upload_limit),
            download_limit: Limiter::new(config.download_limit),
            config,
            port,
            local,
            files: storage::HandlePool::new(MAX_OPEN_FILES),
            torrents: RwLock::new(HashMap::new()),
            handshakes: Arc::new(Semaphore::new(MAX_HANDSHAKES)),
            handshakes_per_ip: Arc::new(Mutex::new(HashMap::new())),
            shutdown,
            dht,
        });
        for l in listeners {
            tokio::spawn(session.clone().accept_loop(l));
        }
        tracing::info!(port, peer_id = %String::from_utf8_lossy(&id), "listening");
        Ok(session)
    }

    /// Registers a torrent so incoming handshakes for it are answered.
    pub fn insert(&self, t: Arc<TorrentShared>) {
        self.torrents.write().insert(t.info_hash, t);
    }

    /// Forgets a torrent.
    pub fn remove(&self, ih: &InfoHash) {
        self.torrents.write().remove(ih);
    }

    /// Is `a` one of our own listening addresses (so dialing it would reach ourselves)?
    pub fn is_own_addr(&self, a: SocketAddr) -> bool {
        a.port() == self.port
            && (a.ip().is_loopback()
                || a.ip().is_unspecified()
                || self.local.iter().any(|l| l.ip() == a.ip()))
    }

    /// The reserved bytes we send: extension protocol, Fast, and DHT when it runs.
    pub fn reserved(&self) -> Reserved {
        let mut r = Reserved::default();
        r.set_extension_protocol(true);
        r.set_fast(true);
        r.set_dht(self.dht.is_some());
        r
    }

    /// A slot for one incoming handshake, if the global and per-address caps allow it.
    fn handshake_slot(&self, ip: IpAddr) -> Option<HandshakeSlot> {
        let permit = self.handshakes.clone().try_acquire_owned().ok()?;
        {
            let mut per_ip = self.handshakes_per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= MAX_HANDSHAKES_PER_IP {
                return None;
            }
            *n += 1;
        }
        Some(HandshakeSlot {
            _permit: permit,
            per_ip: self.handshakes_per_ip.clone(),
            ip,
        })
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                r = listener.accept() => r,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let Some(permit) = self.handshake_slot(addr.ip().to_canonical()) else {
                        tracing::debug!(peer = %addr, "too many handshakes in progress; closing");
                        continue;
                    };
                    let me = self.clone();
                    tokio::spawn(async move {
                        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                        if let Err(e) = me.incoming(stream, addr, permit).await {
                            tracing::debug!(peer = %addr, error = %e, "incoming handshake failed");
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

    async fn incoming(
        self: Arc<Self>,
        mut stream: TcpStream,
        addr: SocketAddr,
        permit: HandshakeSlot,
    ) -> Result<(), crate::connection::ConnError> {
        stream.set_nodelay(true)?;
        let mut buf = [0u8; wire::HANDSHAKE_LEN];
        let prefix = wire::HANDSHAKE_PREFIX_LEN;
        let timed =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut buf[..prefix])).await;
        timed.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let (reserved, ih) = Handshake::parse_prefix(&buf[..prefix])
            .map_err(|e| engine::PeerError::Protocol(e.to_string()))?
            .ok_or_else(|| engine::PeerError::Protocol("short handshake".into()))?;
        let Some(t) = self.torrents.read().get(&ih).cloned() else {
            return Err(engine::PeerError::Refused("unknown info-hash").into());
        };
        {
            let e = t.engine.lock();
            if e.is_banned(addr.ip()) || !e.has_room() {
                return Err(engine::PeerError::Refused("banned or full").into());
            }
        }
        let ours = Handshake {
            reserved: self.reserved(),
            info_hash: ih,
            peer_id: self.peer_id,
        };
        stream.write_all(&ours.encode()).await?;
        let timed =
            tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_exact(&mut buf[prefix..])).await;
        timed.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let peer_id = Handshake::parse_peer_id(&buf)
            .ok_or_else(|| engine::PeerError::Protocol("short handshake".into()))?;
        if peer_id == self.peer_id {
            return Err(engine::PeerError::Refused("connected to ourselves").into());
        }
        drop(permit);
        crate::connection::run(t, self.clone(), stream, addr, reserved, peer_id, false).await;
        Ok(())
    }

    /// Dials `addr` for torrent `t` and runs the connection; true if it got past the handshake
    /// and lasted [`crate::peers::USEFUL_CONNECTION`].
    pub async fn dial(self: &Arc<Self>, t: &Arc<TorrentShared>, addr: SocketAddr) -> bool {
        let connect = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
            let mut s = TcpStream::connect(addr).await?;
            s.set_nodelay(true)?;
            let ours = Handshake {
                reserved: self.reserved(),
                info_hash: t.info_hash,
                peer_id: self.peer_id,
            };
            let (reserved, pid) = crate::connection::handshake_out(&mut s, &ours).await?;
            Ok::<_, crate::connection::ConnError>((s, reserved, pid))
        });
        let r = tokio::select! {
            r = connect => r,
            _ = t.cancel.cancelled() => {
                t.dialing.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                return false;
            }
        };
        t.dialing.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        match r {
            Ok(Ok((stream, reserved, pid))) if pid != self.peer_id => {
                crate::connection::run(t.clone(), self.clone(), stream, addr, reserved, pid, true)
                    .await
                    .is_some_and(|lasted| lasted >= crate::peers::USEFUL_CONNECTION)
            }
            Ok(Ok(_)) => {
                tracing::debug!(peer = %addr, "dialed ourselves");
                false
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %addr, error = %e, "dial failed");
                false
            }
            Err(_) => {
                tracing::debug!(peer = %addr, "dial timed out");
                false
            }
        }
    }
}

/// One incoming handshake in progress; dropping it frees the slot.
#[derive(Debug)]
struct HandshakeSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    per_ip: Arc<Mutex<HashMap<IpAddr, u32>>>,
    ip: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut per_ip = self.per_ip.lock();
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}
