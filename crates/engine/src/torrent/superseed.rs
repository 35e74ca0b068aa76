//! Super-seeding (BEP 16): an initial seeder hands out each piece once and lets the leechers
//! trade it among themselves.
//!
//! A super-seeding torrent tells a new peer it has nothing (HAVE NONE, or no bitfield), then
//! reveals pieces one HAVE at a time. Each peer has a *window* of revealed pieces. A piece leaves
//! the peer's window (and a new one is revealed in its place) when we have sent the peer all of
//! it, or when the peer or another peer is seen to have it. "Sent all of it" is counted from the
//! blocks we upload, not from the peer's HAVE: a client need not send HAVE for a piece it
//! believes we have (libtorrent and ours do send it, for super-seeders).
//!
//! BEP 16's strict rule -- show a peer nothing new until its last piece is seen at another peer
//! -- is not used: in the 1 + 16 swarm benchmark releasing on send did as well, within the
//! run-to-run spread (BENCHMARKS.md, "Figures that were in code comments"), and the strict rule
//! stalls peers that cannot reach each other. What spreads the pieces is the choker handing the
//! upload slot on after each piece ([`crate::choker::Choker::rotate`]), so that every leecher in
//! turn holds pieces nobody else has.
//!
//! The window is [`MIN_WINDOW`] pieces, or more when our upload to the peer is fast: as many
//! pieces as [`WINDOW_TIME`] of its measured rate, up to [`MAX_WINDOW`]. A lone fast leecher
//! therefore sees the pieces revealed well ahead of its requests and is not slowed down, while a
//! seeder whose upload is shared by many leechers reveals two at a time to each.
//!
//! Which piece: the next one that nobody has had yet in a random order of extents (the
//! picker's extent affinity: at most 16 consecutive pieces, taken in order); once each piece has been
//! handed out, the one the fewest peers have or are being given (ties: handed out fewest times),
//! from a bounded scan starting at a random place.

use crate::FixedMap;
use std::time::{Duration, Instant};

use metainfo::{Bitfield, Geometry, PieceIndex};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::peer::PeerKey;
use crate::rate::Rate;

/// Pieces revealed to a peer and not yet released, at least.
pub const MIN_WINDOW: usize = 2;
/// Pieces revealed to a peer and not yet released, at most.
pub const MAX_WINDOW: usize = 1024;
/// The window covers this much of our upload rate to the peer.
pub const WINDOW_TIME: Duration = Duration::from_secs(1);
/// Pieces the after-the-first-round search looks at before it settles for the best so far.
const SCAN_BUDGET: usize = 4096;
/// Window of the per-peer upload rate estimate.
const RATE_WINDOW: Duration = Duration::from_secs(2);

/// A revealed piece in a peer's window.
#[derive(Debug, Clone)]
struct Slot {
    /// Blocks of it handed to the peer's writer.
    blocks_sent: u32,
}

/// Super-seeding state of one peer.
#[derive(Debug, Clone)]
struct SsPeer {
    /// Pieces we told the peer we have.
    told: Bitfield,
    window: FixedMap<PieceIndex, Slot>,
    /// Pieces of the window whose last block went to the writer since the last `uploaded`.
    just_sent: Vec<PieceIndex>,
    up: Rate,
}

/// Super-seeding state of one torrent.
#[derive(Debug, Clone)]
pub(super) struct SuperSeed {
    geometry: Geometry,
    /// Times each piece was revealed to a peer.
    handed: Vec<u32>,
    /// Never-handed pieces in the order they are revealed (built at the first reveal).
    order: Vec<u32>,
    cursor: usize,
    /// Peers whose window holds each piece.
    holders: FixedMap<PieceIndex, Vec<PeerKey>>,
    peers: FixedMap<PeerKey, SsPeer>,
}

impl SuperSeed {
    pub(super) fn new(geometry: Geometry) -> Self {
        SuperSeed {
            geometry,
            handed: Vec::new(),
            order: Vec::new(),
            cursor: 0,
            holders: FixedMap::default(),
            peers: FixedMap::default(),
        }
    }

    pub(super) fn add_peer(&mut self, key: PeerKey, now: Instant) {
        self.peers.insert(
            key,
            SsPeer {
                told: Bitfield::new(self.geometry.piece_count()),
                window: FixedMap::default(),
                just_sent: Vec::new(),
                up: Rate::new(now, RATE_WINDOW),
            },
        );
    }

    pub(super) fn remove_peer(&mut self, key: PeerKey) {
        if let Some(p) = self.peers.remove(&key) {
            for piece in p.window.into_keys() {
                self.drop_holder(piece, key);
            }
        }
    }

    /// Is `piece` in `key`'s window?
    pub(super) fn in_window(&self, key: PeerKey, piece: PieceIndex) -> bool {
        self.peers
            .get(&key)
            .is_some_and(|p| p.window.contains_key(&piece))
    }

    /// Did we tell `key` that we have `piece`?
    pub(super) fn told(&self, key: PeerKey, piece: PieceIndex) -> bool {
        self.peers.get(&key).is_some_and(|p| p.told.has(piece))
    }

    /// The writer of `key` takes a block of `piece`.
    pub(super) fn block_sent(&mut self, key: PeerKey, piece: PieceIndex) {
        if let Some(p) = self.peers.get_mut(&key)
            && let Some(s) = p.window.get_mut(&piece)
        {
            s.blocks_sent = s.blocks_sent.saturating_add(1);
            if s.blocks_sent == self.geometry.block_count(piece) {
                p.just_sent.push(piece);
            }
        }
    }

    /// `bytes` of payload went to `key` at `now`. Returns the pieces of its window we have now
    /// sent in full.
    pub(super) fn uploaded(&mut self, key: PeerKey, bytes: u64, now: Instant) -> Vec<PieceIndex> {
        let Some(p) = self.peers.get_mut(&key) else {
            return Vec::new();
        };
        p.up.add(now, bytes);
        let mut done = std::mem::take(&mut p.just_sent);
        done.retain(|piece| p.window.contains_key(piece));
        done
    }

    /// Peers (other than `except`) whose window holds `piece`.
    pub(super) fn holders_of(&self, piece: PieceIndex, except: PeerKey) -> Vec<PeerKey> {
        self.holders
            .get(&piece)
            .map(|v| v.iter().copied().filter(|&k| k != except).collect())
            .unwrap_or_default()
    }

    /// Takes `piece` out of `key`'s window. Returns whether it was there.
    pub(super) fn release(&mut self, key: PeerKey, piece: PieceIndex) -> bool {
        let Some(p) = self.peers.get_mut(&key) else {
            return false;
        };
        if p.window.remove(&piece).is_none() {
            return false;
        }
        self.drop_holder(piece, key);
        true
    }

    /// Pieces to reveal to `key`, whose pieces are `has`, now (already recorded as told and in
    /// its window); the caller sends a HAVE for each. `availability` is how many connected
    /// peers have a piece.
    pub(super) fn top_up(
        &mut self,
        key: PeerKey,
        has: &Bitfield,
        now: Instant,
        availability: impl Fn(PieceIndex) -> u32,
        rng: &mut impl Rng,
    ) -> Vec<PieceIndex> {
        let Some(p) = self.peers.get(&key) else {
            return Vec::new();
        };
        let target = window_target(p.up.rate_at(now), self.geometry.nominal_piece_len());
        let mut revealed = Vec::new();
        while self
            .peers
            .get(&key)
            .is_some_and(|p| p.window.len() < target)
        {
            let Some(piece) = self.pick(key, has, &availability, rng) else {
                break;
            };
            if let Some(p) = self.peers.get_mut(&key) {
                p.told.set(piece);
                p.window.insert(piece, Slot { blocks_sent: 0 });
            }
            if let Some(h) = self.handed.get_mut(piece.idx()) {
                *h = h.saturating_add(1);
            }
            self.holders.entry(piece).or_default().push(key);
            revealed.push(piece);
        }
        revealed
    }

    fn pick(
        &mut self,
        key: PeerKey,
        has: &Bitfield,
        availability: &impl Fn(PieceIndex) -> u32,
        rng: &mut impl Rng,
    ) -> Option<PieceIndex> {
        if self.handed.is_empty() {
            let n = self.geometry.piece_count();
            self.handed = vec![0; n as usize];
            // Extents of consecutive pieces in a random order, each in order: pieces spread as
            // well, and a leecher gets runs that its disk writes as one.
            let per = crate::picker::extent_pieces(&self.geometry);
            let mut extents: Vec<u32> = (0..n.div_ceil(per)).collect();
            extents.shuffle(rng);
            self.order = extents
                .into_iter()
                .flat_map(|e| e * per..(e * per + per).min(n))
                .collect();
        }
        // First round: a piece nobody has had.
        while let Some(&i) = self.order.get(self.cursor) {
            self.cursor += 1;
            let Some(piece) = self.geometry.piece(i) else {
                continue;
            };
            let fresh = self.handed.get(i as usize) == Some(&0) && availability(piece) == 0;
            if fresh && !has.has(piece) {
                return Some(piece);
            }
        }
        let told = &self.peers.get(&key)?.told;
        let wanted = |piece: PieceIndex| !has.has(piece) && !told.has(piece);
        let score = |piece: PieceIndex| {
            let holding = self.holders.get(&piece).map_or(0, Vec::len) as u32;
            (
                availability(piece).saturating_add(holding),
                self.handed.get(piece.idx()).copied().unwrap_or(0),
            )
        };
        let n = self.geometry.piece_count();
        if n == 0 {
            return None;
        }
        let start = rng.gen_range(0..n);
        let mut best: Option<((u32, u32), PieceIndex)> = None;
        for (looked, off) in (0..n).enumerate() {
            if looked >= SCAN_BUDGET && best.is_some() {
                break;
            }
            let Some(piece) = self.geometry.piece((start + off) % n) else {
                continue;
            };
            if !wanted(piece) {
                continue;
            }
            let s = score(piece);
            if best.is_none_or(|(b, _)| s < b) {
                best = Some((s, piece));
                if s == (0, 0) {
                    break;
                }
            }
        }
        best.map(|(_, piece)| piece)
    }

    fn drop_holder(&mut self, piece: PieceIndex, key: PeerKey) {
        if let Some(v) = self.holders.get_mut(&piece) {
            v.retain(|&k| k != key);
            if v.is_empty() {
                self.holders.remove(&piece);
            }
        }
    }
}

/// The window for a peer we upload to at `rate` bytes/s, in pieces of `piece_len` bytes.
fn window_target(rate: f64, piece_len: u32) -> usize {
    let pieces = rate * WINDOW_TIME.as_secs_f64() / f64::from(piece_len.max(1));
    // `as` saturates a huge or NaN value; the clamp handles the rest.
    (pieces.ceil() as usize).clamp(MIN_WINDOW, MAX_WINDOW)
}

impl super::Torrent {
    /// Reveals pieces to `key` until its window is full (super-seeding only).
    pub(super) fn reveal(&mut self, key: PeerKey, now: Instant) {
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.is_seed() {
            return;
        }
        let picker = &self.picker;
        let pieces = ss.top_up(
            key,
            &peer.bitfield,
            now,
            |p| picker.availability(p),
            &mut self.rng,
        );
        for p in &pieces {
            peer.send(&wire::Message::Have(p.get()));
        }
        if !pieces.is_empty() {
            self.wake(key);
        }
    }

    /// `key` has `pieces` now (a HAVE, or its bitfield): they leave every window they are in
    /// (the peer has them, or can get them from it), and the windows that shrank are refilled.
    pub(super) fn super_seed_spread(&mut self, key: PeerKey, pieces: &[PieceIndex], now: Instant) {
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        let mut touched = vec![key];
        for &p in pieces {
            for other in ss.holders_of(p, key) {
                ss.release(other, p);
                if !touched.contains(&other) {
                    touched.push(other);
                }
            }
            if ss.in_window(key, p) {
                ss.release(key, p);
            }
        }
        for k in touched {
            self.reveal(k, now);
        }
    }

    /// `bytes` of payload went to `key`: pieces of its window now sent in full leave it, and the
    /// window is refilled (it also grows with the rate). A piece handed out moves the upload
    /// slot on to the next peer waiting.
    pub(super) fn super_seed_uploaded(&mut self, key: PeerKey, bytes: u64, now: Instant) {
        let Some(ss) = self.super_seed.as_mut() else {
            return;
        };
        let done = ss.uploaded(key, bytes, now);
        for &p in &done {
            ss.release(key, p);
        }
        if !done.is_empty() {
            self.choker.rotate(key);
            self.apply_choker();
        }
        self.reveal(key, now);
    }

    /// Is this a super-seeding torrent that has not told `key` it has `piece`?
    pub(super) fn hidden_from(&self, key: PeerKey, piece: PieceIndex) -> bool {
        self.super_seed
            .as_ref()
            .is_some_and(|ss| !ss.told(key, piece))
    }

    /// Is super-seeding on?
    pub fn is_super_seeding(&self) -> bool {
        self.super_seed.is_some()
    }
}
