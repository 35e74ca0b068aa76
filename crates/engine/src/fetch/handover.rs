//! A live connection passing from the fetch to the torrent: what we sent it, what it told us,
//! and how the torrent replays that ([`Handover::replay`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use metainfo::PeerId;
use wire::extension::MAX_EXTENSIONS;
use wire::{ExtendedHandshake, Message, Reserved};

use crate::torrent::PeerError;

/// HAVE indexes, folded into a bitset in wire order (high bit of byte 0 is piece 0) that grows
/// to the highest index seen, at most `MAX_PIECES` bits (512 KiB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HaveSet {
    bytes: Vec<u8>,
}

impl HaveSet {
    /// Adds `i`; the caller checked it is below the piece bound.
    fn insert(&mut self, i: u32) {
        let byte = (i / 8) as usize;
        if self.bytes.len() <= byte {
            self.bytes.resize(byte + 1, 0);
        }
        if let Some(b) = self.bytes.get_mut(byte) {
            *b |= 0x80 >> (i % 8);
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes.iter().enumerate().flat_map(|(n, b)| {
            (0..8u32)
                .filter(move |bit| b & (0x80 >> bit) != 0)
                .map(move |bit| n as u32 * 8 + bit)
        })
    }

    fn is_empty(&self) -> bool {
        self.bytes.iter().all(|b| *b == 0)
    }
}

/// What a peer said about its pieces: its bitfields (OR-ed; all of one length), HAVE ALL,
/// HAVE NONE, and HAVEs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerPieces {
    bitfield: Option<Vec<u8>>,
    all: bool,
    none: bool,
    haves: HaveSet,
}

impl PeerPieces {
    /// A BITFIELD; `bound` is the most pieces the torrent can have.
    pub fn bitfield(&mut self, bytes: &[u8], bound: u32) -> Result<(), PeerError> {
        if bytes.len() > (bound as usize).div_ceil(8) {
            return Err(PeerError::Protocol(format!(
                "BITFIELD of {} bytes, more than any torrent of this metadata",
                bytes.len()
            )));
        }
        match &mut self.bitfield {
            None => self.bitfield = Some(bytes.to_vec()),
            Some(old) if old.len() == bytes.len() => {
                old.iter_mut().zip(bytes).for_each(|(a, b)| *a |= b);
            }
            Some(old) => {
                return Err(PeerError::Protocol(format!(
                    "BITFIELDs of {} and {} bytes",
                    old.len(),
                    bytes.len()
                )));
            }
        }
        Ok(())
    }

    /// HAVE `i`; `bound` is the most pieces the torrent can have.
    pub fn have(&mut self, i: u32, bound: u32) -> Result<(), PeerError> {
        if i >= bound {
            return Err(PeerError::Protocol(format!("HAVE {i} out of range")));
        }
        self.haves.insert(i);
        Ok(())
    }

    pub fn have_all(&mut self) {
        self.all = true;
    }

    pub fn have_none(&mut self) {
        self.none = true;
    }

    /// The messages that tell a torrent of `piece_count` pieces the same, as the peer would
    /// have sent them: HAVE NONE, BITFIELD, HAVE ALL, then the HAVEs as one more BITFIELD (or
    /// the first HAVE out of range, which the torrent refuses).
    fn replay(&self, piece_count: u32, out: &mut Vec<Message>) {
        if self.none {
            out.push(Message::HaveNone);
        }
        if let Some(b) = &self.bitfield {
            out.push(Message::Bitfield(b.clone().into()));
        }
        if self.all {
            out.push(Message::HaveAll);
        }
        if self.haves.is_empty() {
            return;
        }
        if let Some(i) = self.haves.iter().find(|&i| i >= piece_count) {
            out.push(Message::Have(i));
            return;
        }
        // Every index is below `piece_count`: the set, padded to the torrent's bitfield
        // length, is that bitfield (spare bits zero).
        let mut bytes = self.haves.bytes.clone();
        bytes.resize((piece_count as usize).div_ceil(8), 0);
        out.push(Message::Bitfield(bytes.into()));
    }
}

/// What a peer told the fetch, recorded for the torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Told {
    /// Its extension handshakes, merged (a later one updates the names it lists).
    pub handshake: Option<ExtendedHandshake>,
    pub pieces: PeerPieces,
    /// It chokes us (the last CHOKE or UNCHOKE).
    pub choking: bool,
    /// It is interested in us.
    pub interested: bool,
    /// When we last accepted a PEX message from it, and early ones since.
    pub pex_heard: Option<Instant>,
    pub pex_early: u32,
    /// The DHT port of its last PORT message, and how many changes it announced.
    pub dht_port: Option<u16>,
    pub dht_ports_seen: u32,
}

impl Default for Told {
    fn default() -> Self {
        Told {
            handshake: None,
            pieces: PeerPieces::default(),
            choking: true,
            interested: false,
            pex_heard: None,
            pex_early: 0,
            dht_port: None,
            dht_ports_seen: 0,
        }
    }
}

impl Told {
    /// Folds in an extension handshake the way the torrent applies one: names update one by
    /// one (at most [`MAX_EXTENSIONS`]), `reqq` is the latest, `p` and the size the latest
    /// given, `upload_only` sticks.
    pub fn handshake(&mut self, hs: ExtendedHandshake) {
        let Some(old) = &mut self.handshake else {
            self.handshake = Some(hs);
            return;
        };
        for (name, id) in hs.m {
            if let Some(e) = old.m.iter_mut().find(|(n, _)| *n == name) {
                e.1 = id;
            } else if old.m.len() < MAX_EXTENSIONS {
                old.m.push((name, id));
            }
        }
        old.reqq = hs.reqq;
        old.p = hs.p.or(old.p);
        old.v = hs.v.or(old.v.take());
        old.yourip = hs.yourip.or(old.yourip);
        old.metadata_size = hs.metadata_size.or(old.metadata_size);
        if hs.upload_only == Some(true) {
            old.upload_only = Some(true);
        }
    }
}

/// A live connection leaving a [`MetadataFetch`](super::MetadataFetch) for a
/// [`Torrent`](crate::Torrent) ([`Torrent::adopt_peer`](crate::Torrent::adopt_peer)): who the
/// peer is, the bytes queued for it and not yet taken, and what it told us.
#[derive(Debug)]
pub struct Handover {
    pub(crate) addr: SocketAddr,
    pub(crate) reserved: Reserved,
    pub(crate) id: PeerId,
    pub(crate) outgoing: bool,
    pub(crate) told: Told,
    pub(crate) last_recv: Instant,
    pub(crate) last_sent: Instant,
    /// Queued for the peer and not yet taken by its writer: it goes out first.
    pub(crate) unsent: BytesMut,
    /// The port our PORT message told it, if we sent one.
    pub(crate) port_sent: Option<u16>,
    pub(crate) invalid: u32,
    /// Its `ut_metadata` requests not answered yet (the torrent serves them).
    pub(crate) metadata_requests: VecDeque<u32>,
}

impl Handover {
    /// The peer's address (where it listens if `outgoing`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The peer's id from its handshake.
    pub fn peer_id(&self) -> PeerId {
        self.id
    }

    /// Whether we dialed it.
    pub fn outgoing(&self) -> bool {
        self.outgoing
    }

    /// The reserved bits of its handshake.
    pub fn reserved(&self) -> Reserved {
        self.reserved
    }

    /// What the peer told the fetch, as messages for a torrent of `piece_count` pieces, in the
    /// order that leaves the torrent's state as if they had just arrived: its extension
    /// handshake, its pieces, INTERESTED, UNCHOKE.
    pub(crate) fn replay(&self, piece_count: u32) -> Vec<Message> {
        let mut out = Vec::new();
        if let Some(hs) = &self.told.handshake {
            out.push(hs.to_message());
        }
        self.told.pieces.replay(piece_count, &mut out);
        if self.told.interested {
            out.push(Message::Interested);
        }
        if !self.told.choking {
            out.push(Message::Unchoke);
        }
        out
    }
}
