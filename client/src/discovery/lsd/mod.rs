//! Local Service Discovery (BEP 14): peers on the same network found by multicast. One
//! service per session: every public torrent is announced on 239.192.152.143:6771 and
//! [ff15::efc0:988f]:6771 at its start and every 5 minutes (never twice a minute), and an
//! announce heard for one of our torrents gives its swarm's discovery a candidate (the
//! sender's address, the announced port) through the usual bounded channel.
//!
//! The decisions live in [`state::LsdState`] (sans-IO: schedule, rate limits, our-cookie
//! filter) and [`message`] (the datagram); this module is the task around them: the sockets
//! ([`socket`]), the clock, and which swarm a peer goes to. Private torrents are never
//! [`join`](Lsd::join)ed, so they are neither announced nor given LSD peers.

pub mod message;
mod socket;
pub mod state;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metainfo::InfoHash;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::socket::Sockets;
use self::state::LsdState;
use super::Discovery;

/// Receive buffer: larger than any datagram we read, so an oversize one shows as such.
const RECV_BUF: usize = 2048;
/// After a receive error, the socket is not read again for this long (no busy loop).
const ERROR_PAUSE: Duration = Duration::from_millis(100);

/// A session's LSD service; cheap to clone.
#[derive(Debug, Clone)]
pub struct Lsd {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    /// A torrent was added: its first announce is due.
    wake: Notify,
}

#[derive(Debug)]
struct Inner {
    state: LsdState,
    /// Where the peers of each torrent announced go.
    swarms: HashMap<InfoHash, Discovery>,
}

impl Lsd {
    /// Opens the sockets and starts the service's task (it ends with `shutdown`). `None`, with
    /// one warning line, when the sockets cannot be opened; `None` quietly when no interface
    /// carries an address we accept peers on (`local`, e.g. loopback only).
    pub fn start(
        local: &[SocketAddr],
        port: u16,
        shutdown: CancellationToken,
        tasks: &TaskTracker,
    ) -> Option<Lsd> {
        // `local` holds the listeners' bound addresses: an unspecified one is every address.
        let sockets = match Sockets::open(local) {
            Ok(Some(s)) => s,
            Ok(None) => {
                tracing::debug!("LSD: no multicast interface carries our addresses; off");
                return None;
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot start local service discovery (udp port {}); going on without it",
                    socket::PORT
                );
                return None;
            }
        };
        let lsd = Lsd {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    state: LsdState::new(rand::random::<u32>() | 1, port),
                    swarms: HashMap::new(),
                }),
                wake: Notify::new(),
            }),
        };
        tasks.spawn(run(lsd.shared.clone(), sockets, shutdown));
        Some(lsd)
    }

    /// Announces `info_hash` and sends the peers heard for it to `discovery` until `cancel`.
    /// Only for public torrents.
    pub async fn join(self, info_hash: InfoHash, discovery: Discovery, cancel: CancellationToken) {
        {
            let mut inner = self.shared.inner.lock();
            inner.state.add(info_hash, Instant::now());
            inner.swarms.insert(info_hash, discovery);
        }
        self.shared.wake.notify_one();
        cancel.cancelled().await;
        self.leave(info_hash);
    }

    /// Stops announcing `info_hash` and taking peers for it (a magnet link's torrent turned
    /// out private; its swarm stopped).
    pub fn leave(&self, info_hash: InfoHash) {
        let mut inner = self.shared.inner.lock();
        inner.state.remove(info_hash, Instant::now());
        inner.swarms.remove(&info_hash);
    }
}

/// The service's task: sends what is due, reads datagrams, sleeps until the next deadline.
async fn run(shared: Arc<Shared>, mut sockets: Sockets, shutdown: CancellationToken) {
    let mut buf4 = vec![0u8; RECV_BUF];
    let mut buf6 = vec![0u8; RECV_BUF];
    let mut warned = false;
    loop {
        let now = Instant::now();
        let mut first = true;
        loop {
            // The datagrams are made under the lock, sent after it.
            let batch = {
                let mut inner = shared.inner.lock();
                inner.state.poll_transmit(now).map(|hashes| {
                    let v4 = inner.state.datagram(message::HOST_V4, &hashes);
                    let v6 = inner.state.datagram(message::HOST_V6, &hashes);
                    (hashes, v4, v6)
                })
            };
            let Some((hashes, v4, v6)) = batch else { break };
            if first {
                sockets.refresh();
                first = false;
            }
            let sent = sockets.send(&v4, &v6).await;
            tracing::debug!(torrents = hashes.len(), sent, "LSD: announced");
            if sent == 0 && !warned {
                warned = true;
                tracing::warn!("local service discovery: announces cannot be sent (no route?)");
            }
        }
        let next = shared.inner.lock().state.poll_timeout();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            () = shared.wake.notified() => {}
            () = sleep_until(next) => {}
            r = recv(sockets.v4.as_ref().map(|g| &g.socket), &mut buf4) => {
                on_datagram(&shared, r, &buf4).await;
            }
            r = recv(sockets.v6.as_ref().map(|g| &g.socket), &mut buf6) => {
                on_datagram(&shared, r, &buf6).await;
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// One datagram from `socket`; never ready without a socket.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Hands the peers a datagram gives to their swarms.
async fn on_datagram(shared: &Shared, r: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
    let (n, from) = match r {
        Ok(x) => x,
        Err(e) => {
            tracing::debug!(error = %e, "LSD: receive failed");
            tokio::time::sleep(ERROR_PAUSE).await;
            return;
        }
    };
    let ip = from.ip().to_canonical();
    let data = buf.get(..n).unwrap_or_default();
    let mut inner = shared.inner.lock();
    let found = match inner.state.handle_datagram(ip, data, Instant::now()) {
        Ok(f) => f,
        Err(why) => {
            tracing::trace!(peer = %from, %why, "LSD: datagram dropped");
            return;
        }
    };
    if !dialable(ip) {
        tracing::debug!(peer = %from, "LSD: announce from an address we cannot dial");
        return;
    }
    let peer = SocketAddr::new(ip, found.port);
    for ih in &found.info_hashes {
        if let Some(d) = inner.swarms.get(ih) {
            tracing::debug!(%peer, info_hash = %ih, "LSD: peer");
            d.add(vec![peer]);
        }
    }
}

/// A link-local IPv6 sender needs its interface to be dialed, which the candidate list does
/// not keep: such announces are dropped (a sender with a routable address is used).
fn dialable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !a.is_unspecified() && !a.is_multicast() && !a.is_broadcast(),
        IpAddr::V6(a) => !a.is_unspecified() && !a.is_multicast() && !a.is_unicast_link_local(),
    }
}
