//! The per-torrent state machine: peers, interest, requests, choking, piece assembly, bans.
//!
//! The shell feeds it what happened (`add_peer`, `handle_message`, `handle_timeout`,
//! `piece_written`, `on_uploaded`) with the current time, and drains what it wants done:
//! bytes to write to each peer (`take_outgoing`), blocks to upload (`next_upload`), and
//! [`Event`]s (`poll_event`): wake a peer's writer, hash-and-write a piece, drop a peer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use metainfo::{BLOCK_SIZE, Bitfield, BlockRef, Geometry, PeerId, PieceIndex};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use wire::{BlockSpec, ExtendedHandshake, Message, Reserved};

use crate::choker::{Choker, ChokerConfig, Decision};
use crate::peer::{Peer, PeerKey, Upload};
use crate::picker::{BlockReceived, Picker, PickerConfig};

/// Tunables of one torrent; `Default` gives the values of PROTOCOL.md.
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
    /// Pieces handed to the shell for hashing and writing and not yet reported back; at the
    /// cap no new requests are sent (backpressure from a slow disk bounds memory).
    pub max_checking: usize,
    /// Client name and version for the extension handshake `v`.
    pub client_version: String,
    /// Our listening port, for the extension handshake `p`.
    pub listen_port: Option<u16>,
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
            max_checking: 16,
            client_version: concat!("swarm ", env!("CARGO_PKG_VERSION")).to_owned(),
            listen_port: None,
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
}

/// What a downloaded piece turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A piece was verified and written.
    PieceDone(PieceIndex),
    /// Every piece is verified and written.
    Completed,
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
    data: Vec<u8>,
    contributors: Vec<IpAddr>,
}

const MAX_TRACKED_IPS: usize = 65_536;

/// One torrent's protocol state. See the module docs.
pub struct Torrent {
    geometry: Geometry,
    config: Config,
    picker: Picker,
    choker: Choker<PeerKey>,
    peers: HashMap<PeerKey, Peer>,
    next_key: u64,
    pieces: HashMap<PieceIndex, PieceBuf>,
    /// Contributors of pieces handed out for verification.
    checking: HashMap<PieceIndex, Vec<IpAddr>>,
    events: VecDeque<Event>,
    strikes: HashMap<IpAddr, u32>,
    banned: HashSet<IpAddr>,
    rng: SmallRng,
    stats: Stats,
    scratch: Vec<BlockRef>,
    completed_sent: bool,
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
            peers: HashMap::new(),
            next_key: 0,
            pieces: HashMap::new(),
            checking: HashMap::new(),
            events: VecDeque::new(),
            strikes: HashMap::new(),
            banned: HashSet::new(),
            rng: SmallRng::seed_from_u64(seed),
            stats: Stats::default(),
            scratch: Vec::new(),
            completed_sent: complete,
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
    pub fn add_peer(
        &mut self,
        addr: SocketAddr,
        reserved: Reserved,
        id: PeerId,
        now: Instant,
    ) -> Result<PeerKey, PeerError> {
        if self.banned.contains(&addr.ip()) {
            return Err(PeerError::Refused("banned address"));
        }
        if !self.has_room() {
            return Err(PeerError::Refused("too many peers"));
        }
        if self.peers.values().any(|p| p.id == Some(id)) {
            return Err(PeerError::Refused("already connected to this peer id"));
        }
        let key = PeerKey(self.next_key);
        self.next_key += 1;
        let mut peer = Peer::new(addr, self.geometry.piece_count(), now);
        peer.id = Some(id);
        peer.fast = reserved.fast();
        peer.extended = reserved.extension_protocol();
        let have = self.picker.have();
        if peer.fast && have.is_full() {
            peer.send(&Message::HaveAll);
        } else if peer.fast && have.is_none() {
            peer.send(&Message::HaveNone);
        } else if !have.is_none() {
            peer.send(&Message::Bitfield(have.as_bytes().to_vec().into()));
        }
        if peer.extended {
            let hs = ExtendedHandshake {
                v: Some(self.config.client_version.clone()),
                reqq: Some(self.config.reqq),
                p: self.config.listen_port,
                upload_only: self.is_complete().then_some(true),
                ..ExtendedHandshake::default()
            };
            peer.send(&Message::Extended {
                id: 0,
                payload: hs.encode().into(),
            });
        }
        self.peers.insert(key, peer);
        self.picker.set_max_partial((2 * self.peers.len()).max(16));
        self.choker.add_peer(key, now);
        self.wake(key);
        tracing::debug!(peer = %addr, key = key.0, "peer added");
        Ok(key)
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
        self.choker.remove_peer(key);
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
            Message::KeepAlive
            | Message::Port(_)
            | Message::Suggest(_)
            | Message::AllowedFast(_) => Ok(()),
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
                    self.picker.peer_have(p);
                    if !self.picker.have().has(p) {
                        peer.interesting += 1;
                    }
                    self.update_interest(key, now);
                    self.fill_requests(key, now);
                    self.check_both_seeds(key);
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
            Message::Extended { id, payload } => {
                if id != 0 {
                    // No extension messages are registered yet; ignore what we did not ask for.
                    return Ok(());
                }
                match ExtendedHandshake::decode(&payload) {
                    Ok(hs) => {
                        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                        peer.reqq = hs.reqq;
                        if hs.upload_only == Some(true) {
                            peer.upload_only = true;
                        }
                        self.check_both_seeds(key);
                        Ok(())
                    }
                    Err(_) => self.violation(key, "bad extension handshake"),
                }
            }
        }
    }

    fn set_bitfield(&mut self, key: PeerKey, bf: Bitfield, now: Instant) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        let have = self.picker.have();
        peer.interesting = bf.iter_ones().filter(|&i| !have.get(i)).count() as u32;
        self.picker.peer_bitfield(&bf);
        peer.bitfield = bf;
        self.update_interest(key, now);
        self.check_both_seeds(key);
        Ok(())
    }

    /// A BITFIELD or HAVE ALL/NONE after the opening message, taken as HAVEs for the pieces it
    /// adds (a peer never loses pieces). aria2 sends one mid-connection in place of a batch of
    /// HAVEs (and HAVE ALL once it completes); libtorrent accepts them too.
    fn add_pieces(&mut self, key: PeerKey, bf: &Bitfield, now: Instant) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        let mut added = false;
        for i in bf.iter_ones() {
            let Some(p) = self.geometry.piece(i) else {
                continue;
            };
            if peer.bitfield.set(p) {
                added = true;
                self.picker.peer_have(p);
                if !self.picker.have().has(p) {
                    peer.interesting += 1;
                }
            }
        }
        if added {
            self.update_interest(key, now);
            self.fill_requests(key, now);
            self.check_both_seeds(key);
        }
        Ok(())
    }

    fn check_both_seeds(&mut self, key: PeerKey) {
        if !self.is_complete() {
            return;
        }
        if let Some(p) = self.peers.get(&key) {
            if p.is_seed() || (p.upload_only && !p.peer_interested) {
                self.events
                    .push_back(Event::Disconnect(key, PeerError::BothSeeds));
            }
        }
    }

    fn on_request(&mut self, key: PeerKey, spec: BlockSpec) -> Result<(), PeerError> {
        let reqq = self.config.reqq as usize;
        let Some((piece, begin, len)) = self
            .geometry
            .range_in_piece(spec.piece, spec.begin, spec.len)
        else {
            if spec.len > BLOCK_SIZE && self.geometry.piece(spec.piece).is_some() {
                return self.refuse_request(key, spec, "REQUEST over 16 KiB");
            }
            return Err(PeerError::Protocol(format!(
                "REQUEST out of range: piece {} begin {} len {}",
                spec.piece, spec.begin, spec.len
            )));
        };
        if len > BLOCK_SIZE {
            return self.refuse_request(key, spec, "REQUEST over 16 KiB");
        }
        if !self.picker.have().has(piece) {
            return self.refuse_request(key, spec, "REQUEST for a piece we do not have");
        }
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if peer.am_choking {
            // BEP 6: reject; without Fast the request is simply dropped.
            if peer.fast {
                peer.send(&Message::Reject(spec));
                self.wake(key);
            }
            return Ok(());
        }
        if peer.incoming.len() >= reqq {
            return self.refuse_request(key, spec, "request queue full");
        }
        peer.incoming.push_back(Upload { piece, begin, len });
        self.wake(key);
        Ok(())
    }

    /// Ignores (or with Fast rejects) a request we will not serve; counts it as invalid.
    fn refuse_request(
        &mut self,
        key: PeerKey,
        spec: BlockSpec,
        what: &str,
    ) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if peer.fast {
            peer.send(&Message::Reject(spec));
            self.wake(key);
        }
        self.violation(key, what)
    }

    fn on_block(
        &mut self,
        key: PeerKey,
        piece: u32,
        begin: u32,
        data: &[u8],
        now: Instant,
    ) -> Result<(), PeerError> {
        let Some(b) = self.geometry.block(piece, begin, data.len() as u32) else {
            return self.violation(key, "PIECE that is not one of our blocks");
        };
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        let len = u64::from(b.len());
        peer.downloaded += len;
        self.stats.downloaded += len;
        let requested = peer.outstanding.remove(&b);
        let expected = requested || peer.late_answer();
        if requested {
            peer.pipeline.on_block(now, b.len());
            peer.snubbed = false;
            peer.waiting_since = (!peer.outstanding.is_empty()).then_some(now);
        }
        let ip = peer.addr.ip();
        self.choker.on_received(key, len, now);
        match self.picker.block_received(b) {
            BlockReceived::Duplicate => {}
            BlockReceived::NotRequested => {
                // Never asked for (or only by a request we dropped since: then it is no fault).
                if expected {
                    return Ok(());
                }
                return self.violation(key, "PIECE we did not request");
            }
            BlockReceived::Fresh { piece_complete } => {
                self.store_block(b, data, ip);
                if self.picker.in_endgame() {
                    self.cancel_elsewhere(key, b);
                }
                if piece_complete {
                    if let Some(buf) = self.pieces.remove(&b.piece()) {
                        self.checking.insert(b.piece(), buf.contributors);
                        self.events.push_back(Event::PieceReady {
                            piece: b.piece(),
                            data: buf.data,
                        });
                    }
                }
            }
        }
        self.fill_requests(key, now);
        Ok(())
    }

    fn store_block(&mut self, b: BlockRef, data: &[u8], from: IpAddr) {
        let plen = self.geometry.piece_len(b.piece()) as usize;
        let buf = self.pieces.entry(b.piece()).or_insert_with(|| PieceBuf {
            data: vec![0; plen],
            contributors: Vec::new(),
        });
        let start = b.begin() as usize;
        if let Some(dst) = buf.data.get_mut(start..start + data.len()) {
            dst.copy_from_slice(data);
        }
        if !buf.contributors.contains(&from) {
            buf.contributors.push(from);
        }
    }

    /// End-game: `b` arrived from `from`; cancel it at every other peer that has it outstanding.
    fn cancel_elsewhere(&mut self, from: PeerKey, b: BlockRef) {
        let spec = BlockSpec {
            piece: b.piece().get(),
            begin: b.begin(),
            len: b.len(),
        };
        let mut woken = Vec::new();
        for (k, p) in self.peers.iter_mut() {
            if *k != from && p.outstanding.remove(&b) {
                p.dropped_requests(1);
                p.send(&Message::Cancel(spec));
                woken.push(*k);
            }
        }
        for k in woken {
            self.picker.request_dropped(b);
            self.wake(k);
        }
    }

    /// The shell verified (or failed to verify or write) a piece handed out by `PieceReady`.
    pub fn piece_written(&mut self, piece: PieceIndex, outcome: PieceOutcome, now: Instant) {
        let contributors = self.checking.remove(&piece).unwrap_or_default();
        if self.checking.len() + 1 == self.config.max_checking {
            // Below the cap again: peers starved by backpressure may request more.
            self.refill_all();
        }
        match outcome {
            PieceOutcome::Written => {
                self.picker.piece_verified(piece);
                self.events.push_back(Event::PieceDone(piece));
                let have = Message::Have(piece.get());
                let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
                for k in &keys {
                    let Some(p) = self.peers.get_mut(k) else {
                        continue;
                    };
                    if p.bitfield.has(piece) {
                        p.interesting = p.interesting.saturating_sub(1);
                    } else {
                        p.send(&have);
                        self.wake(*k);
                    }
                    self.update_interest(*k, now);
                }
                if self.picker.is_complete() && !self.completed_sent {
                    self.completed_sent = true;
                    self.choker.set_seeding(true);
                    self.events.push_back(Event::Completed);
                    for k in keys {
                        self.check_both_seeds(k);
                    }
                }
            }
            PieceOutcome::HashFailed => {
                self.stats.wasted += u64::from(self.geometry.piece_len(piece));
                self.picker.piece_failed(piece);
                tracing::debug!(
                    piece = piece.get(),
                    contributors = contributors.len(),
                    "hash failed"
                );
                let sole = contributors.len() == 1;
                for ip in contributors {
                    let n = self.strikes.entry(ip).or_insert(0);
                    *n += 1;
                    if sole || *n >= self.config.ban_strikes {
                        self.ban(ip);
                    }
                }
                if self.strikes.len() > MAX_TRACKED_IPS {
                    self.strikes.retain(|_, n| *n > 1);
                }
                self.refill_all();
            }
            PieceOutcome::WriteFailed => {
                self.picker.piece_failed(piece);
            }
        }
    }

    fn ban(&mut self, ip: IpAddr) {
        if self.banned.len() < MAX_TRACKED_IPS {
            self.banned.insert(ip);
        }
        tracing::info!(%ip, "peer banned after hash failures");
        for (k, p) in &self.peers {
            if p.addr.ip() == ip {
                self.events
                    .push_back(Event::Disconnect(*k, PeerError::Banned));
            }
        }
    }

    /// Sends INTERESTED / NOT INTERESTED when our interest in `key` changes.
    fn update_interest(&mut self, key: PeerKey, now: Instant) {
        let complete = self.picker.is_complete();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let want = !complete && p.interesting > 0;
        if want != p.am_interested {
            p.am_interested = want;
            p.send(if want {
                &Message::Interested
            } else {
                &Message::NotInterested
            });
            self.choker.set_we_interested(key, want, now);
            self.wake(key);
        }
    }

    /// Tops up the requests outstanding at `key` to its pipeline target.
    fn fill_requests(&mut self, key: PeerKey, now: Instant) {
        if self.checking.len() >= self.config.max_checking {
            return;
        }
        let Torrent {
            peers,
            picker,
            rng,
            scratch,
            ..
        } = self;
        let Some(p) = peers.get_mut(&key) else { return };
        if p.peer_choking || !p.am_interested {
            return;
        }
        let target = if p.snubbed {
            1
        } else {
            p.pipeline.target(p.reqq)
        };
        let have = p.outstanding.len();
        if have >= target {
            return;
        }
        scratch.clear();
        let outstanding = &p.outstanding;
        picker.pick(
            &p.bitfield,
            &|b| outstanding.contains(&b),
            target - have,
            rng,
            scratch,
        );
        if scratch.is_empty() {
            return;
        }
        for b in scratch.iter() {
            p.outstanding.insert(*b);
            p.send(&Message::Request(BlockSpec {
                piece: b.piece().get(),
                begin: b.begin(),
                len: b.len(),
            }));
        }
        if p.waiting_since.is_none() {
            p.waiting_since = Some(now);
        }
        self.wake(key);
    }

    fn refill_all(&mut self) {
        let Some(now) = self.peers.values().map(|p| p.last_recv).max() else {
            return;
        };
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.peer_choking && p.am_interested)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.fill_requests(k, now);
        }
    }

    /// Sends the choker's decisions.
    fn apply_choker(&mut self) {
        while let Some((key, d)) = self.choker.poll_decision() {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            match d {
                Decision::Unchoke => {
                    if p.am_choking {
                        p.am_choking = false;
                        p.send(&Message::Unchoke);
                    }
                }
                Decision::Choke => {
                    if !p.am_choking {
                        p.am_choking = true;
                        p.send(&Message::Choke);
                        let dropped: Vec<Upload> = p.incoming.drain(..).collect();
                        if p.fast {
                            for u in dropped {
                                p.send(&Message::Reject(BlockSpec {
                                    piece: u.piece.get(),
                                    begin: u.begin,
                                    len: u.len,
                                }));
                            }
                        }
                    }
                }
            }
            self.wake(key);
        }
    }

    /// Timers: choking rounds, keep-alives, idle peers, snubbed peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.choker.poll_timeout() {
            self.choker.handle_timeout(now, &mut self.rng);
            self.apply_choker();
        }
        let mut gone = Vec::new();
        let mut snubbed = Vec::new();
        let mut keepalive = Vec::new();
        for (k, p) in &self.peers {
            if now.saturating_duration_since(p.last_recv) > self.config.idle_timeout {
                gone.push(*k);
            } else if now.saturating_duration_since(p.last_sent) > self.config.keepalive_interval {
                keepalive.push(*k);
            }
            if p.waiting_since
                .is_some_and(|t| now.saturating_duration_since(t) > self.config.request_timeout)
            {
                snubbed.push(*k);
            }
        }
        for k in gone {
            self.events.push_back(Event::Disconnect(k, PeerError::Idle));
        }
        for k in keepalive {
            if let Some(p) = self.peers.get_mut(&k) {
                p.send(&Message::KeepAlive);
                p.last_sent = now;
                self.wake(k);
            }
        }
        for k in snubbed {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            tracing::debug!(peer = %p.addr, outstanding = p.outstanding.len(), "peer snubbed us; re-requesting elsewhere");
            p.snubbed = true;
            p.waiting_since = None;
            let dropped: Vec<BlockRef> = p.outstanding.drain().collect();
            p.dropped_requests(dropped.len());
            for b in &dropped {
                p.send(&Message::Cancel(BlockSpec {
                    piece: b.piece().get(),
                    begin: b.begin(),
                    len: b.len(),
                }));
            }
            for b in dropped {
                self.picker.request_dropped(b);
            }
            self.wake(k);
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill_requests(k, now);
        }
    }

    /// When `handle_timeout` should next run.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        self.choker.poll_timeout().min(now + Duration::from_secs(1))
    }

    /// Takes the bytes queued for `key` (and marks it as having sent them at `now`).
    pub fn take_outgoing(
        &mut self,
        key: PeerKey,
        now: Instant,
    ) -> Result<Option<BytesMut>, PeerError> {
        let max = self.config.max_outgoing;
        let p = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        p.wake_pending = false;
        if p.out.is_empty() {
            return Ok(None);
        }
        if p.out.len() > max {
            return Err(PeerError::Stuck);
        }
        p.last_sent = now;
        Ok(Some(p.out.split()))
    }

    /// The next block `key` asked for that we should send now, if any.
    pub fn next_upload(&mut self, key: PeerKey) -> Option<Upload> {
        let p = self.peers.get_mut(&key)?;
        if p.am_choking {
            p.incoming.clear();
            return None;
        }
        p.incoming.pop_front()
    }

    /// `bytes` of payload were sent to `key`.
    pub fn on_uploaded(&mut self, key: PeerKey, bytes: u64, now: Instant) {
        self.stats.uploaded += bytes;
        self.choker.on_sent(key, bytes);
        if let Some(p) = self.peers.get_mut(&key) {
            p.uploaded += bytes;
            p.last_sent = now;
        }
    }

    /// The next thing the shell must do.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn wake(&mut self, key: PeerKey) {
        if let Some(p) = self.peers.get_mut(&key) {
            if !p.wake_pending {
                p.wake_pending = true;
                self.events.push_back(Event::Wake(key));
            }
        }
    }
}
