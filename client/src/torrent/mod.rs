//! One torrent in the shell: the engine behind a lock, its connections, its timer, and the
//! hand-off of complete pieces to its disk task.
//!
//! [`TorrentShared`] is closed: the engine is reached only through
//! [`with_engine`](TorrentShared::with_engine), which collects the engine's events under the
//! lock and acts on them after releasing it, and through [`status`](TorrentShared::status), a
//! read-only snapshot for displays. The timer task sleeps until the engine's next deadline, or
//! until an engine call moved that deadline earlier.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::BytesMut;
use engine::{Event, PeerError, PeerKey, PieceOutcome, Stats, Upload};
use metainfo::InfoHash;
use parking_lot::Mutex;
use storage::Storage;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wire::Message;

use crate::dht::DhtHandle;
use crate::disk::{Disk, DiskConfig, Done, Job};
use crate::net::encryption::CryptoMemory;
use crate::peer::timer::{self, TimerAt};
use crate::peer::{Driver, Link, Links, PeerInfo, PeerSink, Transfer};

/// What a torrent is made of; see [`TorrentShared::start`].
#[derive(Debug)]
pub struct Parts {
    /// The torrent's name (for displays and hooks).
    pub name: String,
    /// Its info-hash.
    pub info_hash: InfoHash,
    /// Where its data lives (the file, or the top directory).
    pub data_path: PathBuf,
    /// The engine, with what is already on disk.
    pub engine: engine::Torrent,
    /// The data.
    pub storage: Arc<Storage>,
    /// How its disk task hashes and saves.
    pub disk: DiskConfig,
    /// Where peers learned by peer exchange go.
    pub peers_found: PeerSink,
    /// The session's DHT node, told about nodes peers name in PORT messages.
    pub dht: Option<DhtHandle>,
    /// How the session's dialer reaches peers; peer exchange marks some as preferring
    /// encryption.
    pub crypto: Arc<CryptoMemory>,
    /// Cancelled to stop the torrent.
    pub cancel: CancellationToken,
}

/// The engine and when the timer task will next call it.
struct Cell {
    engine: engine::Torrent,
    /// The deadline the timer task sleeps until (`None`: none).
    timer_at: TimerAt,
}

/// The shared state of one torrent.
pub struct TorrentShared {
    name: String,
    info_hash: InfoHash,
    total_len: u64,
    data_path: PathBuf,
    started: Instant,
    left_at_start: u64,
    engine: Mutex<Cell>,
    storage: Arc<Storage>,
    links: Links,
    disk: Disk,
    /// Wakes the timer task when an engine call moved the next deadline earlier.
    timer: Notify,
    done: watch::Sender<bool>,
    error: Mutex<Option<String>>,
    cancel: CancellationToken,
    peers_found: PeerSink,
    dht: Option<DhtHandle>,
    crypto: Arc<CryptoMemory>,
}

impl std::fmt::Debug for TorrentShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentShared")
            .field("name", &self.name)
            .field("info_hash", &self.info_hash)
            .finish_non_exhaustive()
    }
}

impl TorrentShared {
    /// Builds the torrent and starts its timer and disk tasks on `tasks`.
    pub fn start(parts: Parts, tasks: &TaskTracker) -> Arc<TorrentShared> {
        let mut parts = parts;
        // The disk task reads which pieces are on their way from atomics kept from this.
        parts.engine.follow_in_progress();
        let stats = parts.engine.stats();
        let total_len = parts.engine.geometry().total_len();
        let complete = parts.engine.is_complete();
        let t = Arc::new_cyclic(|me: &Weak<TorrentShared>| {
            let (report, fail) = (me.clone(), me.clone());
            let disk = Disk::start(
                parts.disk,
                move |done| {
                    if let Some(t) = report.upgrade() {
                        t.report(done);
                    }
                },
                move |msg| {
                    if let Some(t) = fail.upgrade() {
                        t.fail(msg);
                    }
                },
                parts.cancel.clone(),
                tasks,
            );
            TorrentShared {
                name: parts.name,
                info_hash: parts.info_hash,
                total_len,
                data_path: parts.data_path,
                started: Instant::now(),
                left_at_start: stats.left,
                engine: Mutex::new(Cell {
                    engine: parts.engine,
                    timer_at: TimerAt::default(),
                }),
                storage: parts.storage,
                links: Links::default(),
                disk,
                timer: Notify::new(),
                done: watch::channel(complete).0,
                error: Mutex::new(None),
                cancel: parts.cancel,
                peers_found: parts.peers_found,
                dht: parts.dht,
                crypto: parts.crypto,
            }
        });
        tasks.spawn(t.clone().run_timer());
        t
    }

    /// The torrent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Total bytes.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// Where the data lives (the file, or the top directory).
    pub fn data_path(&self) -> &Path {
        &self.data_path
    }

    /// When the torrent started in this process.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// Bytes that were missing when it started.
    pub fn left_at_start(&self) -> u64 {
        self.left_at_start
    }

    /// Counters for displays: a read-only snapshot.
    pub fn status(&self) -> Stats {
        self.peek(engine::Torrent::stats)
    }

    /// A read-only look at the engine (no event can come of it).
    fn peek<R>(&self, f: impl FnOnce(&engine::Torrent) -> R) -> R {
        f(&self.engine.lock().engine)
    }

    /// Live connections.
    pub fn connections(&self) -> usize {
        self.links.len()
    }

    /// True once every piece is verified and written.
    pub fn is_done(&self) -> bool {
        *self.done.borrow()
    }

    /// The fatal error that stopped the torrent, if any.
    pub fn error(&self) -> Option<String> {
        self.error.lock().clone()
    }

    /// Cancelled when the torrent stops (a stop, or a fatal error).
    pub fn stopped(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Stops the torrent with an error the user will see.
    pub fn fail(&self, msg: String) {
        let mut err = self.error.lock();
        if err.is_none() {
            // The command prints the error itself (one `error:` line); this is for -v logs.
            tracing::info!(torrent = %self.name, error = %msg, "torrent stopped");
            *err = Some(msg);
        }
        self.cancel.cancel();
    }

    /// Runs `f` on the engine under its lock, then acts on the events it produced (after
    /// releasing the lock); wakes the timer task if `f` moved the next deadline earlier.
    pub fn with_engine<R>(&self, f: impl FnOnce(&mut engine::Torrent, Instant) -> R) -> R {
        let mut events = Vec::new();
        let (r, earlier) = {
            let mut cell = self.engine.lock();
            let now = Instant::now();
            let r = f(&mut cell.engine, now);
            let in_progress = self.disk.in_progress();
            cell.engine
                .drain_in_progress(|p, on| in_progress.set(p, on));
            while let Some(ev) = cell.engine.poll_event() {
                events.push(ev);
            }
            let next = cell.engine.poll_timeout();
            (r, cell.timer_at.moved_earlier(next))
        };
        if earlier {
            self.timer.notify_one();
        }
        for ev in events {
            self.act(ev);
        }
        r
    }

    fn act(&self, ev: Event) {
        match ev {
            Event::Wake(k) => self.links.wake(k),
            Event::Disconnect(k, why) => self.links.close(k, &why),
            Event::PieceReady { piece, data } => {
                if self.disk.send(Job { piece, data }).is_err() && !self.cancel.is_cancelled() {
                    self.fail("the disk task stopped or fell behind".into());
                }
            }
            // The disk task keeps its own account of what resume data may claim.
            Event::PieceDone(_) => {}
            Event::Peers(addrs) => {
                // A full channel drops the batch: peer exchange repeats itself.
                let _ = self.peers_found.try_send(addrs);
            }
            Event::PrefersEncryption(addrs) => self.crypto.prefer_encrypted(&addrs),
            Event::DhtNode(addr) => {
                if let Some(d) = &self.dht {
                    d.add_node(addr);
                }
            }
            Event::Completed => {
                // Every piece is verified and written (to the page cache). Like libtorrent,
                // Transmission and aria2 we do not wait for the disk: no fsync here, and no
                // resume data either, as resume data is only ever saved after an fsync (a run
                // that finds none, or a stale one, checks the data instead).
                self.done.send_replace(true);
            }
        }
    }

    /// Takes on a connection from the metadata fetch (see `session::magnet`): the engine
    /// adopts the peer with what it said so far, and the link is registered.
    pub fn adopt(&self, h: engine::Handover) -> Result<(PeerKey, Link), PeerError> {
        let addr = h.addr();
        let key = self.with_engine(|e, now| e.adopt_peer(h, now))?;
        let link = Link::new(addr, self.cancel.child_token());
        self.links.insert(key, link.clone());
        Ok((key, link))
    }

    /// Tells the engine how pieces came out of the disk task and gives their buffers back.
    fn report(&self, done: Vec<Done>) {
        for (piece, outcome, _) in &done {
            if *outcome == PieceOutcome::HashFailed {
                tracing::info!(
                    piece = piece.get(),
                    "piece failed its hash check; fetching it again"
                );
            }
        }
        self.with_engine(|e, now| {
            for (piece, outcome, buf) in done {
                e.piece_written(piece, outcome, now);
                if let Some(buf) = buf {
                    e.recycle(buf);
                }
            }
        });
    }

    /// Calls the engine's timers when they are due; ends when the torrent stops.
    async fn run_timer(self: Arc<Self>) {
        timer::run(
            &self.cancel,
            &self.timer,
            || {
                let mut cell = self.engine.lock();
                let at = cell.engine.poll_timeout();
                cell.timer_at.sleeping_until(at)
            },
            || self.with_engine(|e, now| e.handle_timeout(now)),
        )
        .await;
    }
}

impl Driver for TorrentShared {
    fn admit(&self, peer: &PeerInfo) -> Result<(PeerKey, Link), PeerError> {
        let key = self.with_engine(|e, now| {
            if peer.outgoing {
                e.add_peer_outgoing(peer.addr, peer.reserved, peer.peer_id, now)
            } else {
                e.add_peer(peer.addr, peer.reserved, peer.peer_id, now)
            }
        })?;
        let link = Link::new(peer.addr, self.cancel.child_token());
        self.links.insert(key, link.clone());
        Ok((key, link))
    }

    fn handle(&self, key: PeerKey, batch: &mut Vec<Message>) -> Result<(), PeerError> {
        self.with_engine(|e, now| {
            for m in batch.drain(..) {
                e.handle_message(key, m, now)?;
            }
            Ok(())
        })
    }

    fn take(&self, key: PeerKey, uploads: &mut Vec<Upload>) -> Result<Option<BytesMut>, PeerError> {
        self.with_engine(|e, now| {
            let out = e.take_outgoing(key, now)?;
            uploads.clear();
            while uploads.len() < uploads.capacity() {
                match e.next_upload(key) {
                    Some(u) => uploads.push(u),
                    None => break,
                }
            }
            Ok(out)
        })
    }

    fn storage(&self) -> Option<Arc<Storage>> {
        Some(self.storage.clone())
    }

    fn uploaded(&self, key: PeerKey, bytes: u64) {
        self.with_engine(|e, now| e.on_uploaded(key, bytes, now));
    }

    fn remove(&self, key: PeerKey) {
        self.links.remove(key);
        self.with_engine(|e, _| e.remove_peer(key));
    }

    fn accepts(&self, ip: IpAddr) -> bool {
        self.peek(|e| !e.is_banned(ip) && e.has_room())
    }

    fn connected(&self) -> Vec<SocketAddr> {
        self.peek(|e| e.peer_addrs().collect())
    }

    fn transfer(&self) -> Transfer {
        let s = self.status();
        Transfer {
            uploaded: s.uploaded,
            downloaded: s.downloaded,
            left: s.left,
        }
    }

    fn done(&self) -> watch::Receiver<bool> {
        self.done.subscribe()
    }

    fn hand_over(&self, _key: PeerKey) -> Option<(Arc<dyn Driver>, PeerKey, Link)> {
        // A torrent keeps its connections to the end.
        None
    }
}

/// What a torrent's display reads (progress.rs knows nothing else of it).
impl crate::progress::Progress for TorrentShared {
    fn name(&self) -> &str {
        &self.name
    }

    fn total_len(&self) -> u64 {
        self.total_len
    }

    fn stats(&self) -> Stats {
        self.status()
    }

    fn stopped(&self) -> CancellationToken {
        self.cancel.clone()
    }
}
