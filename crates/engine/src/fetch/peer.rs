//! What the fetch knows about one connected peer: the metadata exchange with it, and what it
//! told us that the torrent will need ([`Told`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use metainfo::PeerId;
use wire::{Message, Reserved};

use super::handover::{Handover, Told};

/// A set of metadata piece numbers (< 512, as 8 MiB of metadata has).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct PieceSet([u64; 8]);

impl PieceSet {
    fn word(piece: u32) -> (usize, u64) {
        ((piece / 64) as usize, 1u64 << (piece % 64))
    }

    /// Adds `piece` (ignored past 511).
    pub fn insert(&mut self, piece: u32) {
        let (w, bit) = Self::word(piece);
        if let Some(x) = self.0.get_mut(w) {
            *x |= bit;
        }
    }

    /// Removes `piece`; true if it was in.
    pub fn remove(&mut self, piece: u32) -> bool {
        let (w, bit) = Self::word(piece);
        match self.0.get_mut(w) {
            Some(x) if *x & bit != 0 => {
                *x &= !bit;
                true
            }
            _ => false,
        }
    }

    pub fn contains(&self, piece: u32) -> bool {
        let (w, bit) = Self::word(piece);
        self.0.get(w).is_some_and(|x| x & bit != 0)
    }

    pub fn clear(&mut self) {
        self.0 = [0; 8];
    }

    /// Every piece.
    pub fn full() -> PieceSet {
        PieceSet([u64::MAX; 8])
    }

    /// The pieces in both.
    pub fn and(&self, other: &PieceSet) -> PieceSet {
        let mut out = *self;
        out.0.iter_mut().zip(other.0).for_each(|(a, b)| *a &= b);
        out
    }
}

/// One peer of the fetch.
#[derive(Debug)]
pub(super) struct FetchPeer {
    pub addr: SocketAddr,
    pub id: PeerId,
    pub reserved: Reserved,
    /// We dialed it.
    pub outgoing: bool,
    /// Encoded messages waiting to be written.
    pub out: BytesMut,
    /// A `Wake` for this peer is queued and not yet acted on.
    pub wake_pending: bool,
    pub last_recv: Instant,
    pub last_sent: Instant,
    /// Malformed or pointless messages received.
    pub invalid: u32,
    /// A disconnect is pending: no more requests, no timers.
    pub doomed: bool,
    /// The id it receives `ut_metadata` under (from its `m`).
    pub ut_metadata: Option<u8>,
    /// The metadata size it announced.
    pub size: Option<u32>,
    /// Our requests it holds now (at most [`super::REQUEST_WINDOW`]).
    pub in_flight: usize,
    /// Pieces we asked of it and it has not answered (timed-out ones included: a late answer
    /// is welcome).
    pub asked: PieceSet,
    /// Pieces it rejected or let time out: not asked of it again until it sends a piece.
    pub refused: PieceSet,
    /// Rejects in a row.
    pub rejects: u32,
    /// Rounds of timed-out requests in a row.
    pub stalls: u32,
    /// Bad copies it contributed to.
    pub strikes: u32,
    /// Its `ut_metadata` requests to answer (at most `MAX_METADATA_REQUESTS`).
    pub requests: VecDeque<u32>,
    /// The port our PORT message told it.
    pub port_sent: Option<u16>,
    /// What it told us, for the torrent.
    pub told: Told,
}

impl FetchPeer {
    pub fn new(
        addr: SocketAddr,
        reserved: Reserved,
        id: PeerId,
        outgoing: bool,
        now: Instant,
    ) -> FetchPeer {
        FetchPeer {
            addr,
            id,
            reserved,
            outgoing,
            out: BytesMut::new(),
            wake_pending: false,
            last_recv: now,
            last_sent: now,
            invalid: 0,
            doomed: false,
            ut_metadata: None,
            size: None,
            in_flight: 0,
            asked: PieceSet::default(),
            refused: PieceSet::default(),
            rejects: 0,
            stalls: 0,
            strikes: 0,
            requests: VecDeque::new(),
            port_sent: None,
            told: Told::default(),
        }
    }

    /// Can we ask it for pieces of metadata of `size` bytes? (No disconnect pending, it
    /// takes `ut_metadata`, it announced that size.)
    pub fn can_serve(&self, size: u32) -> bool {
        !self.doomed && self.ut_metadata.is_some() && self.size == Some(size)
    }

    /// Encodes `msg` into the outgoing buffer.
    pub fn send(&mut self, msg: &Message) {
        msg.encode(&mut self.out);
    }

    /// Everything the torrent needs to carry on with this connection.
    pub fn into_handover(self) -> Handover {
        Handover {
            addr: self.addr,
            reserved: self.reserved,
            id: self.id,
            outgoing: self.outgoing,
            told: self.told,
            last_recv: self.last_recv,
            last_sent: self.last_sent,
            unsent: self.out,
            port_sent: self.port_sent,
            invalid: self.invalid,
            metadata_requests: self.requests,
        }
    }
}
