//! The per-torrent state machine: peers, interest, requests, choking, piece assembly, bans.
//!
//! The shell feeds it what happened (`add_peer`, `handle_message`, `handle_timeout`,
//! `piece_written`, `on_uploaded`) with the current time, and drains what it wants done:
//! bytes to write to each peer (`take_outgoing`), blocks to upload (`next_upload`), and
//! [`Event`]s (`poll_event`): wake a peer's writer, hash-and-write a piece, drop a peer, dial
//! peers heard of by peer exchange, ping a peer's DHT node.
//!
//! Extensions: BEP 10 handshake and message routing (extension.rs), serving metadata (BEP 9,
//! metadata.rs), peer exchange (BEP 11, pex.rs), PORT (BEP 5); super-seeding (BEP 16,
//! superseed.rs). A connection that fetched the metadata for a magnet link
//! ([`crate::fetch`]) joins with `adopt_peer` (adopt.rs) instead of `add_peer`.

mod adopt;
mod download;
#[cfg(test)]
mod duplicate_tests;
mod extension;
mod metadata;
mod pex;
mod superseed;
#[cfg(test)]
mod timer_tests;
mod timers;
mod upload;

pub use extension::MAX_DHT_PORTS;
pub use metadata::MAX_METADATA_REQUESTS;
pub(crate) use pex::candidates as pex_candidates;
pub use pex::{MAX_PEX_EARLY, MAX_PEX_TOLD, PEX_FIRST_DELAY, PEX_INTERVAL, PEX_MIN_GAP};
pub use superseed::MIN_WINDOW as SUPER_SEED_MIN_WINDOW;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use metainfo::{Bitfield, BlockRef, Geometry, PeerId, PieceIndex, StoredBytes};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use wire::{Message, Reserved};

use crate::FixedMap;
use crate::buffer::PieceData;
use crate::choker::{Choker, ChokerConfig};
use crate::peer::{Peer, PeerKey};
use crate::picker::{Picker, PickerConfig};

/// Tunables of one torrent. `Default` gives the values the client runs with and this project's
/// benchmarks and interop tests are measured with; each field says what it bounds.
#[derive(Debug, Clone)]
pub struct Config {
    /// Choking slots and intervals.
    pub choker: ChokerConfig,
    /// Piece picking.
    pub picker: PickerConfig,
    /// Most peers connected to this torrent at once.
    pub max_peers: usize,
    /// Requests we accept queued from one peer (advertised as `reqq`); past it we reject or drop.
    pub reqq: u32,
    /// With requests outstanding and no block for this long, the peer is snubbed and its
    /// requests go to other peers.
    pub request_timeout: Duration,
    /// Send a keep-alive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// Drop a peer after this long without receiving anything.
    pub idle_timeout: Duration,
    /// Hash failures a peer may contribute to before it is banned.
    pub ban_strikes: u32,
    /// Malformed or pointless messages tolerated before disconnecting.
    pub max_invalid: u32,
    /// Bytes of unwritten outgoing messages tolerated before the peer is dropped as stuck.
    pub max_outgoing: usize,
    /// Pieces handed to the shell for hashing and writing and not yet reported back (24); at the
    /// cap no new requests are sent, and from half of it on the blocks in flight count against
    /// the same budget (backpressure from a slow disk bounds memory).
    pub max_checking: usize,
    /// Client name and version for the extension handshake `v`.
    pub client_version: String,
    /// Our listening port, for the extension handshake `p`.
    pub listen_port: Option<u16>,
    /// Our peer id: with it, a duplicate connection (the peer and we dialed each other at
    /// once) is settled the same way on both sides instead of both being refused.
    pub peer_id: Option<PeerId>,
    /// A private torrent (BEP 27): no peer exchange and no DHT (no PORT sent or heard).
    pub private: bool,
    /// Our DHT node's UDP port: sent in a PORT message to peers that set the DHT bit.
    pub dht_port: Option<u16>,
    /// Super-seed (BEP 16) when the torrent is complete from the start: reveal pieces to each
    /// peer a few at a time so that each goes out about once (see `superseed.rs`).
    pub super_seed: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            choker: ChokerConfig::default(),
            picker: PickerConfig::default(),
            max_peers: 200,
            reqq: 2000,
            request_timeout: Duration::from_secs(10),
            keepalive_interval: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(120),
            ban_strikes: 5,
            max_invalid: 64,
            max_outgoing: 4 << 20,
            max_checking: 24,
            client_version: metainfo::CLIENT_VERSION.to_owned(),
            listen_port: None,
            peer_id: None,
            private: false,
            dht_port: None,
            super_seed: false,
        }
    }
}

/// Why the engine wants a peer gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// The peer broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer sent corrupt data too often, or a whole corrupt piece.
    #[error("banned after hash failures")]
    Banned,
    /// Nothing received for too long.
    #[error("idle for too long")]
    Idle,
    /// Its outgoing queue grew past the cap: it does not read.
    #[error("not reading what we send")]
    Stuck,
    /// Both sides are seeds.
    #[error("both sides are seeds")]
    BothSeeds,
    /// Too many peers, a banned address, or a duplicate connection.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// The engine no longer knows this peer.
    #[error("unknown peer")]
    Unknown,
    /// While fetching metadata: the peer cannot or will not give it (no `ut_metadata`, a size
    /// out of bounds or other than the one agreed, rejects or stalls every request).
    #[error("no metadata from this peer: {0}")]
    NoMetadata(&'static str),
}

/// What a downloaded piece turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceOutcome {
    /// The hash matched and the piece is on disk.
    Written,
    /// The hash did not match: fetch it again, blame its contributors.
    HashFailed,
    /// The hash matched but writing failed: the piece is not ours (the shell reports the error).
    WriteFailed,
}

/// Something the shell must act on.
#[derive(Debug)]
pub enum Event {
    /// The peer has outgoing bytes or uploads queued: wake its writer.
    Wake(PeerKey),
    /// Drop this connection.
    Disconnect(PeerKey, PeerError),
    /// Every block of a piece is here: verify its hash, write it, then call `piece_written`.
    PieceReady {
        /// Which piece.
        piece: PieceIndex,
        /// Its bytes (aligned for direct I/O: see [`PieceData`]).
        data: PieceData,
    },
    /// A piece was verified and written.
    PieceDone(PieceIndex),
    /// Every piece is verified and written.
    Completed,
    /// Peers learned by peer exchange (BEP 11), worth dialing: at most 50 IPv4 and 50 IPv6
    /// addresses, none with port 0 or an unspecified IP.
    Peers(Vec<SocketAddr>),
    /// Of the peers about to be named by [`Event::Peers`], those peer exchange flags as preferring
    /// encrypted connections (BEP 11 flag 0x01, MSE/PE): dial them encrypted first.
    PrefersEncryption(Vec<SocketAddr>),
    /// A peer runs a DHT node here (its IP, the port from its PORT message, BEP 5): worth
    /// pinging and adding to the routing table.
    DhtNode(SocketAddr),
}

/// Counters for progress displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Payload bytes received (including wasted duplicates).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Bytes received in pieces that failed their hash.
    pub wasted: u64,
    /// Pieces we have.
    pub have: u32,
    /// Pieces in the torrent.
    pub pieces: u32,
    /// Bytes still missing.
    pub left: u64,
    /// Connected peers.
    pub peers: usize,
    /// Peers that unchoke us.
    pub unchoking_us: usize,
    /// Peers we unchoke.
    pub unchoked_by_us: usize,
    /// Seeds among the peers.
    pub seeds: usize,
}

struct PieceBuf {
    data: PieceData,
    contributors: Vec<IpAddr>,
}

const MAX_TRACKED_IPS: usize = 65_536;
/// Bytes of piece buffers kept for reuse after the shell gives them back
/// ([`Torrent::recycle`]), at most: enough for every buffer a download at full speed has in use
/// at once with 256 KiB pieces (a full request pipeline spans ~16 pieces, plus those being
/// checked and written), so that in steady state no piece buffer is allocated, zeroed or
/// faulted in again. The pool only holds buffers that were in use at the same moment, so it
/// never raises the peak; it is emptied when the download completes.
pub const SPARE_BYTES: usize = 12 << 20;
/// Piece buffers kept for reuse whatever their size (for torrents of pieces larger than
/// [`SPARE_BYTES`] / this).
pub const SPARE_MIN_BUFFERS: usize = 2;

/// One torrent's protocol state. See the module docs.
pub struct Torrent {
    geometry: Geometry,
    config: Config,
    picker: Picker,
    choker: Choker<PeerKey>,
    peers: FixedMap<PeerKey, Peer>,
    next_key: u64,
    pieces: FixedMap<PieceIndex, PieceBuf>,
    /// Contributors of pieces handed out for verification.
    checking: FixedMap<PieceIndex, Vec<IpAddr>>,
    events: VecDeque<Event>,
    strikes: HashMap<IpAddr, u32>,
    banned: HashSet<IpAddr>,
    rng: SmallRng,
    stats: Stats,
    scratch: Vec<BlockRef>,
    completed_sent: bool,
    /// The raw bencoded info dictionary, served to peers over `ut_metadata` (BEP 9).
    metadata: Option<StoredBytes>,
    /// Super-seeding state, when on.
    super_seed: Option<superseed::SuperSeed>,
    /// Piece buffers given back by the shell, reused for new pieces.
    spare: Vec<PieceData>,
    /// No later than the earliest per-peer deadline (keep-alive, idle, request timeout, PEX):
    /// lowered when one is set, recomputed by `handle_timeout` (see timers.rs).
    timer_due: Option<Instant>,
    /// When a request fill that left a peer short is retried, if one did.
    refill_at: Option<Instant>,
}

impl std::fmt::Debug for Torrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Torrent")
            .field("geometry", &self.geometry)
            .field("peers", &self.peers.len())
            .field("have", &self.picker.have())
            .finish_non_exhaustive()
    }
}

impl Torrent {
    /// A torrent with `have` already verified on disk.
    pub fn new(
        geometry: Geometry,
        have: Bitfield,
        config: Config,
        seed: u64,
        now: Instant,
    ) -> Self {
        let complete = have.is_full();
        let mut choker = Choker::new(config.choker.clone(), now);
        choker.set_seeding(complete);
        let picker = Picker::new(geometry, have, config.picker.clone());
        Torrent {
            geometry,
            picker,
            choker,
            peers: FixedMap::default(),
            next_key: 0,
            pieces: FixedMap::default(),
            checking: FixedMap::default(),
            events: VecDeque::new(),
            strikes: HashMap::new(),
            banned: HashSet::new(),
            rng: SmallRng::seed_from_u64(seed),
            stats: Stats::default(),
            scratch: Vec::new(),
            completed_sent: complete,
            metadata: None,
            super_seed: (config.super_seed && complete && geometry.piece_count() > 0)
                .then(|| superseed::SuperSeed::new(geometry)),
            spare: Vec::new(),
            timer_due: None,
            refill_at: None,
            config,
        }
    }

    /// The torrent's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Pieces verified and on disk.
    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// Whether piece `p` is on its way: being downloaded, or handed out to be verified and
    /// written (and so not yet had).
    pub fn piece_in_progress(&self, p: PieceIndex) -> bool {
        self.picker.is_started(p) && !self.picker.have().has(p)
    }

    /// Keeps the changes to which pieces are in progress for
    /// [`drain_in_progress`](Self::drain_in_progress) from now on: a shell that mirrors them
    /// (for a disk thread that must not take the engine's lock) calls this before any peer.
    pub fn follow_in_progress(&mut self) {
        self.picker.follow_started();
    }

    /// Hands `f` each change to which pieces are on their way (being downloaded, or handed out
    /// to be checked and written) since the last call, in order: `(piece, on its way)`.
    /// A piece stops being on its way when it is written (or fails and is dropped).
    pub fn drain_in_progress(&mut self, f: impl FnMut(u32, bool)) {
        self.picker.drain_started(f);
    }

    /// True when every piece is verified and on disk.
    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }

    /// Is this address banned?
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.banned.contains(&ip)
    }

    /// Is there room for one more peer?
    pub fn has_room(&self) -> bool {
        self.peers.len() < self.config.max_peers
    }

    /// Is `key` a peer the engine still knows?
    pub fn is_connected(&self, key: PeerKey) -> bool {
        self.peers.contains_key(&key)
    }

    /// Addresses of connected peers.
    pub fn peer_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.peers.values().map(|p| p.addr)
    }

    /// Counters for displays.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats;
        s.have = self.picker.have().count();
        s.pieces = self.geometry.piece_count();
        s.left = self.picker.bytes_left();
        s.peers = self.peers.len();
        s.unchoking_us = self.peers.values().filter(|p| !p.peer_choking).count();
        s.unchoked_by_us = self.peers.values().filter(|p| !p.am_choking).count();
        s.seeds = self.peers.values().filter(|p| p.is_seed()).count();
        s
    }

    /// Payload rate (bytes/s) we measure from each peer, for displays.
    pub fn peer_rates(&self) -> impl Iterator<Item = (SocketAddr, f64)> + '_ {
        self.peers.values().map(|p| (p.addr, p.pipeline.rate()))
    }

    /// A connection to `addr` finished its handshake: admit it, queue our opening messages.
    /// The peer connected to us; for a peer we dialed use [`Torrent::add_peer_outgoing`].
    pub fn add_peer(
        &mut self,
        addr: SocketAddr,
        reserved: Reserved,
        id: PeerId,
        now: Instant,
    ) -> Result<PeerKey, PeerError> {
        self.admit(addr, reserved, id, false, now)
    }

    /// [`Torrent::add_peer`] for a connection we dialed: `addr` is where the peer listens (told
    /// to others by peer exchange, flagged reachable).
    pub fn add_peer_outgoing(
        &mut self,
        addr: SocketAddr,
        reserved: Reserved,
        id: PeerId,
        now: Instant,
    ) -> Result<PeerKey, PeerError> {
        self.admit(addr, reserved, id, true, now)
    }

    fn admit(
        &mut self,
        addr: SocketAddr,
        reserved: Reserved,
        id: PeerId,
        outgoing: bool,
        now: Instant,
    ) -> Result<PeerKey, PeerError> {
        self.check_admission(addr, id, outgoing)?;
        let mut peer = self.new_peer(addr, reserved, id, outgoing, now);
        let have = self.picker.have();
        if self.super_seed.is_some() {
            // BEP 16: we claim nothing; pieces are revealed by HAVE below.
            if peer.fast {
                peer.send(&Message::HaveNone);
            }
        } else if peer.fast && have.is_full() {
            peer.send(&Message::HaveAll);
        } else if peer.fast && have.is_none() {
            peer.send(&Message::HaveNone);
        } else if !have.is_none() {
            peer.send(&Message::Bitfield(have.as_bytes().to_vec().into()));
        }
        if peer.extended {
            peer.send(&self.our_handshake().to_message());
        }
        if let Some(port) = self.port_for(&peer) {
            peer.send(&Message::Port(port));
        }
        let key = self.insert_peer(peer, now);
        tracing::debug!(peer = %addr, key = key.0, outgoing, "peer added");
        Ok(key)
    }

    /// The checks every new connection passes, whether it starts here ([`Torrent::add_peer`])
    /// or is adopted ([`Torrent::adopt_peer`]): not banned, room left, and no other
    /// connection to the same peer id -- unless the new one is the one both sides keep
    /// ([`crate::peer::replaces`]), and then the old one is dropped here.
    fn check_admission(
        &mut self,
        addr: SocketAddr,
        id: PeerId,
        outgoing: bool,
    ) -> Result<(), PeerError> {
        if self.banned.contains(&addr.ip()) {
            return Err(PeerError::Refused("banned address"));
        }
        if !self.has_room() {
            return Err(PeerError::Refused("too many peers"));
        }
        if let Some((&old, existing)) = self.peers.iter().find(|(_, p)| p.id == Some(id)) {
            let keep_new = crate::peer::replaces(
                self.config.peer_id,
                (existing.outgoing, existing.addr),
                (outgoing, addr, id),
            );
            if !keep_new {
                return Err(PeerError::Refused("already connected to this peer id"));
            }
            self.remove_peer(old);
            self.events.push_back(Event::Disconnect(
                old,
                PeerError::Refused("replaced by the connection both sides keep"),
            ));
        }
        Ok(())
    }

    /// A peer record for a connection whose handshake is done, nothing sent yet.
    fn new_peer(
        &self,
        addr: SocketAddr,
        reserved: Reserved,
        id: PeerId,
        outgoing: bool,
        now: Instant,
    ) -> Peer {
        let mut peer = Peer::new(addr, self.geometry.piece_count(), now);
        peer.id = Some(id);
        peer.fast = reserved.fast();
        peer.extended = reserved.extension_protocol();
        peer.dht = reserved.dht();
        peer.outgoing = outgoing;
        peer
    }

    /// Our DHT port, if `peer` should get a PORT message (both sides do DHT, not private).
    fn port_for(&self, peer: &Peer) -> Option<u16> {
        self.config
            .dht_port
            .filter(|_| peer.dht && !self.config.private)
    }

    /// Registers an admitted peer under a fresh key (picker, choker, super-seeding) and wakes
    /// its writer for whatever it has queued.
    fn insert_peer(&mut self, peer: Peer, now: Instant) -> PeerKey {
        let key = PeerKey(self.next_key);
        self.next_key += 1;
        self.peers.insert(key, peer);
        self.picker.set_max_partial((2 * self.peers.len()).max(16));
        self.picker.set_peer_count(self.peers.len());
        self.choker.add_peer(key, now);
        self.note_timers(key);
        if let Some(ss) = &mut self.super_seed {
            ss.add_peer(key, now);
            self.reveal(key, now);
        }
        self.wake(key);
        key
    }

    /// The connection is gone: forget the peer and free its requests.
    pub fn remove_peer(&mut self, key: PeerKey) {
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        for b in &peer.outstanding {
            self.picker.request_dropped(*b);
        }
        self.picker.peer_gone(&peer.bitfield);
        self.picker.set_max_partial((2 * self.peers.len()).max(16));
        self.picker.set_peer_count(self.peers.len());
        self.choker.remove_peer(key);
        if let Some(ss) = &mut self.super_seed {
            ss.remove_peer(key);
        }
        self.apply_choker();
        if !peer.outstanding.is_empty() {
            self.refill_all();
        }
        tracing::debug!(peer = %peer.addr, key = key.0, "peer removed");
    }

    /// One message from `key`. An error means: disconnect it.
    pub fn handle_message(
        &mut self,
        key: PeerKey,
        msg: Message,
        now: Instant,
    ) -> Result<(), PeerError> {
        let first = {
            let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
            peer.last_recv = now;
            // Heard from again: timed afresh (a keep-alive may be due before the new idle
            // deadline).
            peer.idle_reported = false;
            // The bitfield must open the conversation; an extension handshake, a keep-alive or a
            // PORT before it is tolerated, as libtorrent and others send them in either order.
            let opening = matches!(
                msg,
                Message::KeepAlive | Message::Port(_) | Message::Extended { id: 0, .. }
            );
            if opening {
                !peer.got_first
            } else {
                !std::mem::replace(&mut peer.got_first, true)
            }
        };
        let r = self.dispatch(key, msg, first, now);
        // The message may have started a timer of this peer (requests sent, PEX scheduled,
        // keep-alives again after an idle report); other peers' timers are noted where set.
        self.note_timers(key);
        if let Err(e) = &r {
            tracing::debug!(key = key.0, error = %e, "peer error");
        }
        r
    }

    fn violation(&mut self, key: PeerKey, what: &str) -> Result<(), PeerError> {
        let max = self.config.max_invalid;
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        peer.invalid += 1;
        tracing::trace!(peer = %peer.addr, what, count = peer.invalid, "invalid message");
        if peer.invalid > max {
            return Err(PeerError::Protocol(format!(
                "too many invalid messages (last: {what})"
            )));
        }
        Ok(())
    }

    fn dispatch(
        &mut self,
        key: PeerKey,
        msg: Message,
        first: bool,
        now: Instant,
    ) -> Result<(), PeerError> {
        match msg {
            Message::KeepAlive | Message::Suggest(_) | Message::AllowedFast(_) => Ok(()),
            Message::Port(port) => self.on_port(key, port),
            Message::Unknown { .. } => self.violation(key, "unknown message id"),
            Message::Choke => {
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                peer.peer_choking = true;
                peer.pipeline.on_choked();
                // Without the Fast extension a choke discards our requests; with it the peer should
                // reject them, but we re-request elsewhere at once either way.
                let dropped: Vec<BlockRef> = peer.outstanding.drain().collect();
                peer.dropped_requests(dropped.len());
                peer.waiting_since = None;
                for b in dropped {
                    self.picker.request_dropped(b);
                }
                self.refill_all();
                Ok(())
            }
            Message::Unchoke => {
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                peer.peer_choking = false;
                self.fill_requests(key, now);
                Ok(())
            }
            Message::Interested => {
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                peer.peer_interested = true;
                self.choker.set_peer_interested(key, true, now);
                self.apply_choker();
                Ok(())
            }
            Message::NotInterested => {
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                peer.peer_interested = false;
                peer.incoming.clear();
                self.choker.set_peer_interested(key, false, now);
                self.apply_choker();
                self.check_both_seeds(key);
                Ok(())
            }
            Message::Have(i) => {
                let Some(p) = self.geometry.piece(i) else {
                    return Err(PeerError::Protocol(format!("HAVE {i} out of range")));
                };
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                if peer.bitfield.set(p) {
                    self.picker.peer_have(p, &peer.bitfield);
                    if !self.picker.have().has(p) {
                        peer.interesting += 1;
                    }
                    self.update_interest(key, now);
                    self.fill_requests(key, now);
                    self.check_both_seeds(key);
                    self.super_seed_spread(key, &[p], now);
                }
                Ok(())
            }
            Message::Bitfield(bytes) => {
                let bf = Bitfield::from_bytes(&bytes, self.geometry.piece_count())
                    .map_err(|e| PeerError::Protocol(e.to_string()))?;
                if first {
                    self.set_bitfield(key, bf, now)
                } else {
                    self.add_pieces(key, &bf, now)
                }
            }
            Message::HaveAll | Message::HaveNone => {
                let fast = self.peers.get(&key).is_some_and(|p| p.fast);
                if !fast {
                    return Err(PeerError::Protocol("HAVE ALL/NONE without Fast".into()));
                }
                let n = self.geometry.piece_count();
                let bf = if matches!(msg, Message::HaveAll) {
                    Bitfield::full(n)
                } else {
                    Bitfield::new(n)
                };
                if first {
                    self.set_bitfield(key, bf, now)
                } else {
                    self.add_pieces(key, &bf, now)
                }
            }
            Message::Request(spec) => self.on_request(key, spec),
            Message::Cancel(spec) => {
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                peer.incoming.retain(|u| {
                    !(u.piece.get() == spec.piece && u.begin == spec.begin && u.len == spec.len)
                });
                Ok(())
            }
            Message::Reject(spec) => {
                let Some(b) = self.geometry.block(spec.piece, spec.begin, spec.len) else {
                    return self.violation(key, "REJECT of a block we never request");
                };
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                if peer.outstanding.remove(&b) {
                    self.picker.request_dropped(b);
                    if peer.outstanding.is_empty() {
                        peer.waiting_since = None;
                    }
                    self.refill_all();
                    Ok(())
                } else if peer.late_answer() {
                    // It answers a request we dropped at its choke or cancelled.
                    Ok(())
                } else {
                    self.violation(key, "REJECT of a block not requested")
                }
            }
            Message::Piece { piece, begin, data } => self.on_block(key, piece, begin, &data, now),
            Message::Extended { id, payload } => self.on_extended(key, id, payload, now),
        }
    }

    fn set_bitfield(&mut self, key: PeerKey, bf: Bitfield, now: Instant) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        let have = self.picker.have();
        peer.interesting = bf.iter_ones().filter(|&i| !have.get(i)).count() as u32;
        // This is the peer's opening message, so its bitfield is still the empty one it was
        // made with; take it back anyway so a replaced bitfield is never counted twice.
        self.picker.peer_gone(&peer.bitfield);
        self.picker.peer_bitfield(&bf);
        let pieces: Vec<PieceIndex> = if self.super_seed.is_some() {
            bf.iter_ones()
                .filter_map(|i| self.geometry.piece(i))
                .collect()
        } else {
            Vec::new()
        };
        peer.bitfield = bf;
        self.super_seed_spread(key, &pieces, now);
        self.update_interest(key, now);
        self.check_both_seeds(key);
        Ok(())
    }

    /// A BITFIELD or HAVE ALL/NONE after the opening message, taken as HAVEs for the pieces it
    /// adds (a peer never loses pieces). aria2 sends one mid-connection in place of a batch of
    /// HAVEs (and HAVE ALL once it completes); libtorrent accepts them too.
    fn add_pieces(&mut self, key: PeerKey, bf: &Bitfield, now: Instant) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        let mut added = Vec::new();
        for i in bf.iter_ones() {
            let Some(p) = self.geometry.piece(i) else {
                continue;
            };
            if peer.bitfield.set(p) {
                added.push(p);
                if !self.picker.have().has(p) {
                    peer.interesting += 1;
                }
            }
        }
        if !added.is_empty() {
            // All at once: a HAVE ALL that completes the peer counts it as a seed without
            // first counting each piece it adds.
            self.picker.peer_haves(&added, &peer.bitfield);
            self.update_interest(key, now);
            self.fill_requests(key, now);
            self.check_both_seeds(key);
            self.super_seed_spread(key, &added, now);
        }
        Ok(())
    }

    fn check_both_seeds(&mut self, key: PeerKey) {
        if !self.is_complete() {
            return;
        }
        if let Some(p) = self.peers.get(&key)
            && (p.is_seed() || (p.upload_only && !p.peer_interested))
        {
            self.events
                .push_back(Event::Disconnect(key, PeerError::BothSeeds));
        }
    }

    /// The next thing the shell must do.
    #[must_use = "an event dropped is work the shell never does"]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn wake(&mut self, key: PeerKey) {
        if let Some(p) = self.peers.get_mut(&key)
            && !p.wake_pending
        {
            p.wake_pending = true;
            self.events.push_back(Event::Wake(key));
        }
    }
}
