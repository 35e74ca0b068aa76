//! Fetching a torrent's info dictionary from peers (BEP 9, `ut_metadata`) before the torrent
//! exists, as a magnet link needs: the requesting half of what `torrent/metadata.rs` serves.
//!
//! [`MetadataFetch`] is shaped like [`Torrent`](crate::Torrent) so that one shell connection
//! loop drives either: `add_peer` once a handshake is done, `handle_message` for every frame,
//! `take_outgoing` when the peer's writer is woken, `handle_timeout` at `poll_timeout`,
//! `poll_event`, `remove_peer` when the connection ends. Once every metadata piece is in and
//! the SHA-1 of the whole matches the info-hash ([`FetchEvent::Complete`]), the shell builds
//! the torrent and moves each live connection over: [`MetadataFetch::take_peer`] gives a
//! [`Handover`] that [`Torrent::adopt_peer`](crate::Torrent::adopt_peer) takes, so the peer
//! that gave us the metadata serves the download on the same connection.
//!
//! Requests: pieces of 16 KiB, at most [`REQUEST_WINDOW`] in flight per peer, each missing
//! piece asked of one peer at a time; a reject, or no answer within
//! [`METADATA_REQUEST_TIMEOUT`], frees the piece for another peer. The first credible size
//! (1 byte to 8 MiB) announced wins; it stands while a connected peer announces it.
//!
//! It is not a download: it knows no piece of the torrent, uploads nothing and answers every
//! metadata request with a reject. What else the peer says (its pieces, choking, interest, its
//! extension handshake) is only recorded for the handover. Like the rest of the engine it opens
//! no socket and reads no clock: time comes in as `now`, randomness as a seed.
//!
//! Bounds: the metadata buffer is the agreed size (at most 8 MiB, allocated when the first
//! piece arrives); per peer, a few counters, two 512-bit piece sets, at most
//! [`MAX_METADATA_REQUESTS`](crate::torrent::MAX_METADATA_REQUESTS) queued requests from it, and
//! what it told us of its pieces (at most 512 KiB of bitfield and 512 KiB of HAVEs, less once
//! a size is agreed: an info dictionary of `n` bytes describes fewer than `n / 20` pieces);
//! events at most a handful per peer (one wake and one disconnect pending at a time).

mod assembly;
mod handover;
mod messages;
mod peer;
#[cfg(test)]
mod tests;
mod timers;

pub use handover::Handover;

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use metainfo::{InfoHash, PeerId};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use wire::extension::{UT_METADATA, UT_METADATA_ID, UT_PEX, UT_PEX_ID};
use wire::{ExtendedHandshake, Message, MetadataMsg, Reserved};

use crate::FixedMap;
use crate::peer::PeerKey;
use crate::torrent::{Config, PeerError};
use assembly::{Assembly, Slot};
use peer::{FetchPeer, PieceSet};

/// Metadata requests in flight to one peer (peers queue only a handful: libtorrent and ours
/// drop the excess).
pub const REQUEST_WINDOW: usize = 4;
/// A metadata request unanswered for this long goes to another peer.
pub const METADATA_REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Rejects in a row (no piece in between) after which a peer is dropped.
pub const MAX_REJECTS: u32 = 4;
/// Rounds of timed-out requests in a row (no piece in between) after which a peer is dropped.
pub const MAX_STALLS: u32 = 2;
/// Copies failing the info-hash a peer may contribute to before it is dropped; a peer that
/// sent every piece of a bad copy is dropped (and its address refused) at once.
pub const MAX_STRIKES: u32 = 2;
/// Addresses refused for having sent a whole bad copy, at most; more are not remembered.
pub const MAX_BANNED: usize = 1_024;

/// Something the shell must act on.
#[derive(Debug)]
pub enum FetchEvent {
    /// The peer has outgoing bytes: wake its writer (which calls `take_outgoing`).
    Wake(PeerKey),
    /// Drop this connection (then call `remove_peer`).
    Disconnect(PeerKey, PeerError),
    /// The metadata is in and matches the info-hash: see [`MetadataFetch::metadata`].
    Complete,
    /// Peers learned by peer exchange (BEP 11), worth dialing: at most 50 IPv4 and 50 IPv6
    /// addresses, none with port 0 or an unspecified IP.
    Peers(Vec<SocketAddr>),
    /// Of the peers about to be named by [`FetchEvent::Peers`], those peer exchange flags as preferring
    /// encrypted connections (BEP 11 flag 0x01, MSE/PE): dial them encrypted first.
    PrefersEncryption(Vec<SocketAddr>),
    /// A peer runs a DHT node here (its IP, the port from its PORT message, BEP 5).
    DhtNode(SocketAddr),
}

/// Progress for displays.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStatus {
    /// Connected peers.
    pub peers: usize,
    /// Size of the info dictionary, once a peer announced a credible one.
    pub metadata_size: Option<u32>,
    /// Metadata pieces received (of the copy being assembled).
    pub pieces_received: u32,
    /// Metadata pieces in all (0 while the size is unknown).
    pub pieces: u32,
    /// The metadata is in and verified.
    pub complete: bool,
}

/// The state of one torrent before its info dictionary is known. See the module docs.
pub struct MetadataFetch {
    info_hash: InfoHash,
    config: Config,
    peers: FixedMap<PeerKey, FetchPeer>,
    next_key: u64,
    /// The copy being assembled, once a size is agreed.
    assembly: Option<Assembly>,
    /// The verified info dictionary.
    metadata: Option<Bytes>,
    events: VecDeque<FetchEvent>,
    /// Addresses that sent a whole copy failing the info-hash (at most [`MAX_BANNED`]).
    banned: HashSet<IpAddr>,
    rng: SmallRng,
    /// The latest `now` seen, for work started by calls that take no time (`remove_peer`).
    clock: Instant,
}

impl std::fmt::Debug for MetadataFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataFetch")
            .field("info_hash", &self.info_hash)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl MetadataFetch {
    /// A fetch of the info dictionary whose SHA-1 is `info_hash`. From `config` it uses our
    /// identity (`client_version`, `listen_port`, `dht_port`, `peer_id`, `reqq`, `private`)
    /// and the peer limits (`max_peers`, `keepalive_interval`, `idle_timeout`, `max_invalid`,
    /// `max_outgoing`).
    pub fn new(info_hash: InfoHash, config: &Config, seed: u64, now: Instant) -> Self {
        MetadataFetch {
            info_hash,
            config: config.clone(),
            peers: FixedMap::default(),
            next_key: 0,
            assembly: None,
            metadata: None,
            events: VecDeque::new(),
            banned: HashSet::new(),
            rng: SmallRng::seed_from_u64(seed),
            clock: now,
        }
    }

    /// The info-hash being fetched.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The verified info dictionary, once [`FetchEvent::Complete`] was emitted.
    pub fn metadata(&self) -> Option<Bytes> {
        self.metadata.clone()
    }

    /// True once the metadata is in and verified.
    pub fn is_complete(&self) -> bool {
        self.metadata.is_some()
    }

    /// Connected peers (including those with a disconnect pending).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Is `key` a peer the fetch still knows?
    pub fn is_connected(&self, key: PeerKey) -> bool {
        self.peers.contains_key(&key)
    }

    /// Keys and addresses of the connected peers, for handing them all over.
    pub fn peers(&self) -> impl Iterator<Item = (PeerKey, SocketAddr)> + '_ {
        self.peers.iter().map(|(k, p)| (*k, p.addr))
    }

    /// Was this address refused for sending a whole bad copy?
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        self.banned.contains(&ip)
    }

    /// Progress for displays.
    pub fn status(&self) -> FetchStatus {
        let (metadata_size, pieces_received, pieces) = match (&self.metadata, &self.assembly) {
            (Some(m), _) => {
                let size = u32::try_from(m.len()).unwrap_or(u32::MAX);
                let n = wire::metadata::metadata_piece_count(size);
                (Some(size), n, n)
            }
            (None, Some(a)) => (Some(a.size()), a.received(), a.count()),
            (None, None) => (None, 0, 0),
        };
        FetchStatus {
            peers: self.peers.len(),
            metadata_size,
            pieces_received,
            pieces,
            complete: self.metadata.is_some(),
        }
    }

    /// A connection to `addr` finished its handshake (`outgoing`: we dialed it): admit it and
    /// queue our opening (HAVE NONE if it has the Fast bit, our extension handshake, PORT).
    /// Refused when full, from a refused address, for a duplicate peer id (the rule of
    /// [`Torrent::add_peer`](crate::Torrent::add_peer)), or without the extension protocol.
    pub fn add_peer(
        &mut self,
        addr: SocketAddr,
        reserved: Reserved,
        id: PeerId,
        outgoing: bool,
        now: Instant,
    ) -> Result<PeerKey, PeerError> {
        self.observe(now);
        if self.banned.contains(&addr.ip()) {
            return Err(PeerError::Refused("banned address"));
        }
        if !reserved.extension_protocol() {
            return Err(PeerError::Refused(
                "no extension protocol: it cannot send metadata",
            ));
        }
        if self.peers.len() >= self.config.max_peers {
            return Err(PeerError::Refused("too many peers"));
        }
        if let Some((&old, existing)) = self.peers.iter().find(|(_, p)| p.id == id) {
            let keep_new = crate::peer::replaces(
                self.config.peer_id,
                (existing.outgoing, existing.addr),
                (outgoing, addr, id),
            );
            if !keep_new {
                return Err(PeerError::Refused("already connected to this peer id"));
            }
            self.remove_peer(old);
            self.events.push_back(FetchEvent::Disconnect(
                old,
                PeerError::Refused("replaced by the connection both sides keep"),
            ));
        }
        let mut peer = FetchPeer::new(addr, reserved, id, outgoing, now);
        if reserved.fast() {
            // BEP 6: the first message after the handshake says what we have.
            peer.send(&Message::HaveNone);
        }
        peer.send(&self.our_handshake().to_message());
        if let Some(port) = self
            .config
            .dht_port
            .filter(|_| reserved.dht() && !self.config.private)
        {
            peer.send(&Message::Port(port));
            peer.port_sent = Some(port);
        }
        let key = PeerKey(self.next_key);
        self.next_key += 1;
        self.peers.insert(key, peer);
        self.wake(key);
        tracing::debug!(peer = %addr, key = key.0, outgoing, "metadata peer added");
        Ok(key)
    }

    /// The extension handshake we send: `ut_metadata` (and `ut_pex` unless private) under the
    /// ids the torrent uses too, so they stay valid after the handover; no `metadata_size`.
    fn our_handshake(&self) -> ExtendedHandshake {
        let mut m = vec![(UT_METADATA.to_owned(), UT_METADATA_ID)];
        if !self.config.private {
            m.push((UT_PEX.to_owned(), UT_PEX_ID));
        }
        ExtendedHandshake {
            m,
            v: Some(self.config.client_version.clone()),
            reqq: Some(self.config.reqq),
            p: self.config.listen_port,
            ..ExtendedHandshake::default()
        }
    }

    /// The connection is gone: forget the peer; its requests go to other peers.
    pub fn remove_peer(&mut self, key: PeerKey) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        self.release_requests(key);
        self.after_loss();
        tracing::debug!(peer = %p.addr, key = key.0, "metadata peer removed");
    }

    /// Removes a live peer from the fetch and returns what the torrent needs to adopt its
    /// connection ([`Torrent::adopt_peer`](crate::Torrent::adopt_peer)); `None` if unknown or
    /// about to be disconnected.
    pub fn take_peer(&mut self, key: PeerKey) -> Option<Handover> {
        if self.peers.get(&key)?.doomed {
            return None;
        }
        let p = self.peers.remove(&key)?;
        self.release_requests(key);
        self.after_loss();
        tracing::debug!(peer = %p.addr, key = key.0, "metadata peer handed over");
        Some(p.into_handover())
    }

    /// Takes the bytes queued for `key` (and marks it as having sent them at `now`); its
    /// metadata requests are answered here, with rejects. An error means: disconnect it.
    #[must_use = "the bytes must be written to the peer"]
    pub fn take_outgoing(
        &mut self,
        key: PeerKey,
        now: Instant,
    ) -> Result<Option<BytesMut>, PeerError> {
        self.observe(now);
        let max = self.config.max_outgoing;
        let p = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        p.wake_pending = false;
        match p.ut_metadata {
            Some(id) => {
                while let Some(piece) = p.requests.pop_front() {
                    p.send(&MetadataMsg::Reject { piece }.to_message(id));
                }
            }
            None => p.requests.clear(),
        }
        if p.out.is_empty() {
            return Ok(None);
        }
        if p.out.len() > max {
            return Err(PeerError::Stuck);
        }
        p.last_sent = now;
        Ok(Some(p.out.split()))
    }

    /// The next thing the shell must do.
    #[must_use = "events must be acted on"]
    pub fn poll_event(&mut self) -> Option<FetchEvent> {
        self.events.pop_front()
    }

    fn observe(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
    }

    fn wake(&mut self, key: PeerKey) {
        if let Some(p) = self.peers.get_mut(&key)
            && !p.wake_pending
        {
            p.wake_pending = true;
            self.events.push_back(FetchEvent::Wake(key));
        }
    }

    /// Counts a malformed or pointless message; an error past `max_invalid`.
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

    /// Marks `key` for disconnection (one [`FetchEvent::Disconnect`]); its requests go to
    /// other peers at once. The caller then calls [`Self::after_loss`].
    fn doom(&mut self, key: PeerKey, why: PeerError) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if p.doomed {
            return;
        }
        p.doomed = true;
        tracing::debug!(peer = %p.addr, key = key.0, error = %why, "metadata peer dropped");
        self.release_requests(key);
        self.events.push_back(FetchEvent::Disconnect(key, why));
    }

    /// `key` is failing with `why` (returned to the shell, which disconnects it): stop using
    /// it now, and give its requests to other peers.
    fn fail(&mut self, key: PeerKey, why: PeerError) -> Result<(), PeerError> {
        if let Some(p) = self.peers.get_mut(&key) {
            p.doomed = true;
        }
        self.release_requests(key);
        self.after_loss();
        Err(why)
    }

    /// The pieces `key` was asked for and has not sent become free for other peers.
    fn release_requests(&mut self, key: PeerKey) {
        if let Some(a) = &mut self.assembly {
            a.release_all(key);
        }
        if let Some(p) = self.peers.get_mut(&key) {
            p.in_flight = 0;
        }
    }

    /// A peer left or was dropped: forget the agreed size if no peer announces it any more
    /// (so a liar that came first cannot lock out the honest size), and hand out the pieces
    /// it had.
    fn after_loss(&mut self) {
        if let Some(a) = &self.assembly {
            let size = a.size();
            let vouched = self
                .peers
                .values()
                .any(|p| !p.doomed && p.size == Some(size));
            if !vouched {
                tracing::debug!(size, "no peer announces the agreed metadata size any more");
                self.assembly = None;
            }
        }
        self.refill_all(self.clock);
    }

    /// The size agreed on: the verified metadata's, or the copy being assembled's.
    fn agreed_size(&self) -> Option<u32> {
        match (&self.metadata, &self.assembly) {
            (Some(m), _) => u32::try_from(m.len()).ok(),
            (None, Some(a)) => Some(a.size()),
            (None, None) => None,
        }
    }

    /// Most pieces the torrent can have: an info dictionary of `n` bytes holds 20 bytes of
    /// hash per piece and more, so fewer than `n / 20`; without a size, the metainfo cap.
    fn piece_bound(&self) -> u32 {
        let cap = u32::try_from(metainfo::geometry::MAX_PIECES).unwrap_or(u32::MAX);
        self.agreed_size().map_or(cap, |n| (n / 20).min(cap))
    }

    /// Tops up the requests outstanding at `key` to [`REQUEST_WINDOW`]: missing pieces that
    /// no other peer is asked for and this one has not refused; and when it has nothing in
    /// flight, also those it refused that every other peer able to serve refused too (it is
    /// their last hope: asked again, it sends them, or rejects and stalls its way to a drop).
    fn fill(&mut self, key: PeerKey, now: Instant) {
        let size = match (&self.metadata, &self.assembly) {
            (None, Some(a)) => a.size(),
            _ => return,
        };
        let mut last_hope = PieceSet::full();
        for (k, q) in &self.peers {
            if *k != key && q.can_serve(size) {
                last_hope = last_hope.and(&q.refused);
            }
        }
        let MetadataFetch {
            peers,
            assembly,
            rng,
            ..
        } = self;
        let (Some(a), Some(p)) = (assembly, peers.get_mut(&key)) else {
            return;
        };
        let Some(id) = p.ut_metadata.filter(|_| p.can_serve(size)) else {
            return;
        };
        let n = a.count();
        let start = rand::Rng::gen_range(rng, 0..n.max(1));
        let mut sent = false;
        for last_resort in [false, true] {
            if last_resort && p.in_flight > 0 {
                break;
            }
            for i in 0..n {
                if p.in_flight >= REQUEST_WINDOW {
                    break;
                }
                let piece = (start + i) % n;
                if !matches!(a.slot(piece), Some(Slot::Missing)) {
                    continue;
                }
                let wanted = if last_resort {
                    p.refused.contains(piece) && last_hope.contains(piece)
                } else {
                    !p.refused.contains(piece) && !p.asked.contains(piece)
                };
                if !wanted {
                    continue;
                }
                a.set(piece, Slot::Requested { by: key, at: now });
                p.in_flight += 1;
                p.asked.insert(piece);
                p.refused.remove(piece);
                p.send(&MetadataMsg::Request { piece }.to_message(id));
                sent = true;
                tracing::trace!(peer = %p.addr, piece, last_resort, "metadata piece requested");
            }
        }
        if sent {
            self.wake(key);
        }
    }

    /// [`Self::fill`] for every peer.
    fn refill_all(&mut self, now: Instant) {
        if self.metadata.is_some() || self.assembly.is_none() {
            return;
        }
        let mut keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.doomed && p.in_flight < REQUEST_WINDOW)
            .map(|(k, _)| *k)
            .collect();
        keys.sort_unstable();
        for k in keys {
            self.fill(k, now);
        }
    }
}
