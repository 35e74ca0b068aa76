//! Peer connections after their handshake: one connection loop ([`connection`]) for every
//! peer, whatever it is for -- fetching a magnet link's metadata or trading pieces -- and
//! whatever carries it (any [`crate::net::transport::PeerStream`]).
//!
//! The loop drives a [`Driver`]: the state machine the peer's messages go to and its outgoing
//! bytes come from. A torrent (`engine::Torrent`) is one driver, a magnet link's metadata fetch
//! (`engine::MetadataFetch`) another; when the metadata is complete the fetch hands each live
//! connection over to the torrent ([`Driver::hand_over`]) and the same connection goes on.

pub mod connection;
pub mod timer;
mod upload;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::BytesMut;
use engine::{PeerError, PeerKey, Upload};
use metainfo::PeerId;
use parking_lot::Mutex;
use storage::Storage;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use wire::{Message, Reserved};

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// A socket error or EOF.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Bad framing.
    #[error("wire: {0}")]
    Wire(#[from] wire::WireError),
    /// The driver refused the peer or its messages.
    #[error("{0}")]
    Peer(#[from] PeerError),
    /// Reading blocks to upload failed.
    #[error("storage: {0}")]
    Storage(String),
}

/// Who a connection is with, as the handshake told.
#[derive(Debug, Clone, Copy)]
pub struct PeerInfo {
    /// Its address (where it listens when `outgoing`).
    pub addr: SocketAddr,
    /// Its reserved bits.
    pub reserved: Reserved,
    /// Its peer id.
    pub peer_id: PeerId,
    /// We dialed it.
    pub outgoing: bool,
}

/// The state machine behind a connection. Every method is called without holding anything
/// across an `.await`; each may lock the driver's state briefly.
pub trait Driver: Send + Sync + 'static {
    /// Admits a peer past its handshake: its key, and the link the driver reaches the
    /// connection by (registered before this returns).
    fn admit(&self, peer: &PeerInfo) -> Result<(PeerKey, Link), PeerError>;
    /// The messages of one read, in order (the batch is drained). An error drops the peer.
    fn handle(&self, key: PeerKey, batch: &mut Vec<Message>) -> Result<(), PeerError>;
    /// The bytes queued for the peer, and in `uploads` (cleared first, filled up to its
    /// capacity) the blocks to send it now.
    fn take(&self, key: PeerKey, uploads: &mut Vec<Upload>) -> Result<Option<BytesMut>, PeerError>;
    /// Where uploads are read from.
    fn storage(&self) -> Option<Arc<Storage>>;
    /// `bytes` of block payload went out to the peer.
    fn uploaded(&self, key: PeerKey, bytes: u64);
    /// The connection ended.
    fn remove(&self, key: PeerKey);
    /// Would a peer at `ip` be admitted now (not banned, room left)? Asked before our
    /// handshake answers an incoming connection.
    fn accepts(&self, ip: std::net::IpAddr) -> bool;
    /// Addresses of the live connections.
    fn connected(&self) -> Vec<SocketAddr>;
    /// Bytes moved and left, for trackers.
    fn transfer(&self) -> Transfer;
    /// Becomes true when every piece is verified and written (never while fetching metadata).
    fn done(&self) -> tokio::sync::watch::Receiver<bool>;
    /// After [`Link::hand_over`]: the driver that takes the connection on, with its key and
    /// link; the peer has left this driver. `None`: nobody takes it (the connection ends).
    fn hand_over(&self, key: PeerKey) -> Option<(Arc<dyn Driver>, PeerKey, Link)>;
}

impl std::fmt::Debug for dyn Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Driver")
    }
}

/// Bytes moved and left, as trackers want them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfer {
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Payload bytes received.
    pub downloaded: u64,
    /// Bytes still missing (1 while the size is unknown: a magnet link's metadata).
    pub left: u64,
}

/// Where peers learned from the swarm itself (peer exchange) go to be dialed: the sending end
/// of a swarm's bounded candidate channel (a full channel drops the batch).
pub type PeerSink = tokio::sync::mpsc::Sender<Vec<SocketAddr>>;

/// How a driver reaches one connection task: wake its writer, end it, or ask it to move to
/// another driver. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Link(Arc<LinkInner>);

#[derive(Debug)]
struct LinkInner {
    addr: SocketAddr,
    notify: Notify,
    cancel: CancellationToken,
    hand_over: AtomicBool,
}

impl Link {
    /// A link to the connection with `addr`, ended when `cancel` (or its parent) is.
    pub fn new(addr: SocketAddr, cancel: CancellationToken) -> Self {
        Link(Arc::new(LinkInner {
            addr,
            notify: Notify::new(),
            cancel,
            hand_over: AtomicBool::new(false),
        }))
    }

    /// The peer's address.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// Output is queued: wake the writer.
    pub fn wake(&self) {
        self.0.notify.notify_one();
    }

    /// End the connection.
    pub fn close(&self) {
        self.0.cancel.cancel();
    }

    /// Move the connection to the driver [`Driver::hand_over`] names, once its writer is
    /// between writes.
    pub fn hand_over(&self) {
        self.0.hand_over.store(true, Ordering::Release);
        self.0.notify.notify_one();
    }

    fn hand_over_requested(&self) -> bool {
        self.0.hand_over.load(Ordering::Acquire)
    }

    async fn woken(&self) {
        self.0.notify.notified().await;
    }

    fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.0.cancel.cancelled()
    }
}

/// The live connections of one driver, by key.
#[derive(Debug, Default)]
pub struct Links(Mutex<HashMap<PeerKey, Link>>);

impl Links {
    /// Registers a connection.
    pub fn insert(&self, key: PeerKey, link: Link) {
        self.0.lock().insert(key, link);
    }

    /// Forgets a connection.
    pub fn remove(&self, key: PeerKey) {
        self.0.lock().remove(&key);
    }

    /// Wakes a connection's writer.
    pub fn wake(&self, key: PeerKey) {
        if let Some(l) = self.0.lock().get(&key) {
            l.wake();
        }
    }

    /// Ends a connection.
    pub fn close(&self, key: PeerKey, why: &PeerError) {
        if let Some(l) = self.0.lock().get(&key) {
            tracing::debug!(peer = %l.addr(), reason = %why, "disconnecting");
            l.close();
        }
    }

    /// Asks every connection to move to the next driver.
    pub fn hand_over_all(&self) {
        for l in self.0.lock().values() {
            l.hand_over();
        }
    }

    /// Connections now.
    pub fn len(&self) -> usize {
        self.0.lock().len()
    }

    /// No connection.
    pub fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }
}
