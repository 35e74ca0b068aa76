//! What the torrent state machine knows about one connected peer.

use std::collections::{HashSet, VecDeque};

use crate::FixedSet;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use metainfo::{Bitfield, BlockRef, PeerId, PieceIndex};
use wire::Message;

use crate::pipeline::{MAX_TARGET, Pipeline};

/// Most dropped requests remembered as possibly still answered (see [`Peer::unanswered`]).
const MAX_UNANSWERED: u32 = 4 * MAX_TARGET as u32;

/// Identifies a peer connection within one [`Torrent`](crate::Torrent); never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub(crate) u64);

impl PeerKey {
    /// The raw number, for logs.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Whether a new connection to a peer id we are already connected to replaces the old one
/// (`existing`: whether we dialed it, its address; `new`: the same and the peer id), given our
/// own peer id. Otherwise the new one is refused.
///
/// Two peers that dial each other at once both see two connections: both keep the one opened
/// by the side with the smaller peer id, so one survives, not zero. A peer that dials us again
/// from the same address has given up the connection it had (closed, or dead on its side and
/// not yet noticed on ours: a magnet leecher closes its metadata connection and dials again at
/// once); refusing would leave it with nothing until its retry, so the old one goes instead.
pub(crate) fn replaces(
    ours: Option<PeerId>,
    existing: (bool, SocketAddr),
    new: (bool, SocketAddr, PeerId),
) -> bool {
    let (old_outgoing, old_addr) = existing;
    let (outgoing, addr, id) = new;
    let crossed = old_outgoing != outgoing && ours.is_some_and(|ours| (ours < id) == outgoing);
    let redial = !old_outgoing && !outgoing && old_addr.ip() == addr.ip();
    crossed || redial
}

/// A block a peer asked us for, validated against the torrent's geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    /// The piece.
    pub piece: PieceIndex,
    /// Offset within the piece.
    pub begin: u32,
    /// Length (at most 16 KiB).
    pub len: u32,
}

/// Per-peer protocol state.
#[derive(Debug)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    pub id: Option<PeerId>,
    pub fast: bool,
    pub extended: bool,
    /// Any message after the handshake seen (a BITFIELD is only allowed before that).
    pub got_first: bool,
    pub bitfield: Bitfield,
    /// Pieces the peer has that we lack: the peer is interesting while this is non-zero.
    pub interesting: u32,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub am_choking: bool,
    pub am_interested: bool,
    /// Our requests to the peer.
    pub outstanding: FixedSet<BlockRef>,
    /// When the oldest unanswered stretch of requests began (reset by every block that arrives).
    pub waiting_since: Option<Instant>,
    /// No block arrived in time: keep at most one request outstanding until one does.
    pub snubbed: bool,
    pub pipeline: Pipeline,
    /// The peer's `reqq` from its extension handshake.
    pub reqq: Option<u32>,
    /// The peer's requests to us, oldest first (capped at our advertised `reqq`).
    pub incoming: VecDeque<Upload>,
    /// Encoded messages waiting to be written.
    pub out: BytesMut,
    /// A `Wake` for this peer is queued and not yet acted on.
    pub wake_pending: bool,
    pub last_recv: Instant,
    pub last_sent: Instant,
    /// A `Disconnect(Idle)` went out for it and nothing was received since: it is not timed
    /// again (no keep-alive, no second event) while the shell drops it.
    pub idle_reported: bool,
    /// Malformed or pointless messages received.
    pub invalid: u32,
    pub downloaded: u64,
    pub uploaded: u64,
    /// The peer told us it will not download (seed, or BEP 21 upload-only).
    pub upload_only: bool,
    /// Our requests we dropped (at its choke) or cancelled that the peer may still answer with
    /// a PIECE or (Fast) a REJECT: such answers are expected, not violations. Capped.
    pub unanswered: u32,
    /// We dialed this peer (its address is where it listens).
    pub outgoing: bool,
    /// The peer set the DHT bit (BEP 5) in its handshake.
    pub dht: bool,
    /// Its listening port from its extension handshake `p`.
    pub listen_port: Option<u16>,
    /// The extended message id the peer receives `ut_metadata` under (from its `m`).
    pub ut_metadata: Option<u8>,
    /// The extended message id the peer receives `ut_pex` under (from its `m`).
    pub ut_pex: Option<u8>,
    /// Metadata pieces the peer asked for and we have not answered yet (capped).
    pub metadata_requests: VecDeque<u32>,
    /// Addresses our PEX messages told the peer are connected (capped).
    pub pex_told: HashSet<SocketAddr>,
    /// When our next PEX message to the peer is due (set once it advertises `ut_pex`).
    pub pex_due: Option<Instant>,
    /// When we last accepted a PEX message from the peer.
    pub pex_heard: Option<Instant>,
    /// PEX messages from the peer that came too soon after the last one.
    pub pex_early: u32,
    /// DHT ports the peer announced with PORT messages (the last one, and how many changes).
    pub dht_port: Option<u16>,
    pub dht_ports_seen: u32,
}

impl Peer {
    pub fn new(addr: SocketAddr, pieces: u32, now: Instant) -> Self {
        Peer {
            addr,
            id: None,
            fast: false,
            extended: false,
            got_first: false,
            bitfield: Bitfield::new(pieces),
            interesting: 0,
            peer_choking: true,
            peer_interested: false,
            am_choking: true,
            am_interested: false,
            outstanding: FixedSet::default(),
            waiting_since: None,
            snubbed: false,
            pipeline: Pipeline::new(now),
            reqq: None,
            incoming: VecDeque::new(),
            out: BytesMut::new(),
            wake_pending: false,
            last_recv: now,
            last_sent: now,
            idle_reported: false,
            invalid: 0,
            downloaded: 0,
            uploaded: 0,
            upload_only: false,
            unanswered: 0,
            outgoing: false,
            dht: false,
            listen_port: None,
            ut_metadata: None,
            ut_pex: None,
            metadata_requests: VecDeque::new(),
            pex_told: HashSet::new(),
            pex_due: None,
            pex_heard: None,
            pex_early: 0,
            dht_port: None,
            dht_ports_seen: 0,
        }
    }

    /// `n` of our requests were dropped or cancelled; the peer may still answer them.
    pub fn dropped_requests(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.unanswered = self.unanswered.saturating_add(n).min(MAX_UNANSWERED);
    }

    /// A PIECE or REJECT for none of our outstanding requests arrived: true if it can be the
    /// answer to a dropped one.
    pub fn late_answer(&mut self) -> bool {
        let expected = self.unanswered > 0;
        self.unanswered = self.unanswered.saturating_sub(1);
        expected
    }

    /// Encodes `msg` into the outgoing buffer.
    pub fn send(&mut self, msg: &Message) {
        msg.encode(&mut self.out);
    }

    /// Where the peer accepts connections: the address we dialed, or its IP with the port from
    /// its extension handshake; `None` for an incoming peer that gave no port.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        if self.outgoing {
            return Some(self.addr);
        }
        let port = self.listen_port.filter(|&p| p != 0)?;
        Some(SocketAddr::new(self.addr.ip(), port))
    }

    /// Is the peer a seed (has every piece)?
    pub fn is_seed(&self) -> bool {
        self.bitfield.is_full()
    }
}
