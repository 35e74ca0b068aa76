//! The piece picker: which blocks to request from which peer.
//!
//! It tracks, for one torrent, the pieces we have, how many connected peers have each piece, and
//! the block-by-block state of the pieces in progress; given a peer's bitfield it hands out
//! blocks to request and marks them requested. The rules follow what libtorrent's piece picker
//! and Transmission's wishlist do:
//!
//! 1. Pieces in progress come first: a peer is fed from the partial pieces it has (rarest of
//!    them first, then the one with the fewest free blocks) before any new piece is started.
//!    This finishes partial pieces first at equal rarity, and keeps few pieces open.
//! 2. A new piece is the rarest one the peer has (fewest connected peers have it), with ties
//!    broken at random. Until we have [`PickerConfig::random_first`] pieces the new piece is
//!    drawn at random from the ones the peer has instead (the first one at or after a random
//!    position), so a fresh swarm does not all chase the same rare piece and we quickly hold
//!    something to trade.
//!    For a peer that has every piece (a seed), or our only peer (a super-seeder reveals
//!    extents in order), among equally rare pieces one in the same
//!    [`EXTENT_BYTES`] extent as a piece started lately comes first, lowest index first
//!    (libtorrent's "piece extent affinity"): a download from seeds then proceeds in runs of
//!    consecutive pieces that the disk writes as one, while rarity still decides every pick.
//!    Not for pieces traded among leechers: there it made the leechers' picks alike, and a
//!    super-seeder gave out more copies of the file in the engine's swarm simulation, often
//!    past that test's bound (BENCHMARKS.md, "Figures that were in code comments").
//! 3. [`PickerConfig::max_partial`] caps the pieces being downloaded. At the cap a peer is fed
//!    only from pieces in progress; a peer that none of them can feed may still start one new
//!    piece per call (a hard cap would leave it idle while its pieces wait for slow peers).
//! 4. Never a piece we have, never a block already received, never a block the peer already
//!    has outstanding (the caller's `peer_outstanding`).
//! 5. End-game begins only when no block is free: every missing block is requested or received.
//!    Then a peer with nothing outstanding may get ONE block that another peer is already
//!    fetching (the one with the fewest requesters), as libtorrent does; the caller sends CANCEL
//!    to the other requesters when a copy arrives.
//! 6. A piece that fails its hash check becomes entirely free again.
//!
//! Cost: [`Picker::pick`] looks at the pieces in progress (a short list) and only searches for a
//! new piece when those cannot feed the peer. That search walks the availability buckets from the
//! rarest up and stops at the first piece the peer can give; if it has not found one after
//! [`SCAN_BUDGET`] entries it falls back to a pass over the peer's bitfield in 64-bit words,
//! skipping words with nothing to offer (O(pieces / 64) words plus one availability lookup per
//! piece the peer could give). Availability updates are O(1) per piece, and O(1) for a seed
//! (a full bitfield or HAVE ALL): seeds are counted apart, and a peer that completes its
//! bitfield by HAVEs moves to that counter in one pass over the pieces, once. While every known
//! peer is a seed, no per-piece availability is kept at all (every piece is as rare as any
//! other) and the rarest-first search is a uniform draw over the peer's candidates.

mod availability;
mod partial;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use metainfo::{Bitfield, BlockRef, Geometry, PieceIndex};
use rand::Rng;

use availability::Availability;
use partial::{Block, Partial};

/// Entries of the availability order the rarest-first search looks at before it falls back to
/// a pass over the peer's bitfield.
pub const SCAN_BUDGET: usize = 256;

/// Size of the extents whose pieces are preferred together at equal rarity (4 MiB; see
/// [`extent_pieces`]).
pub const EXTENT_BYTES: u64 = 4 << 20;

/// Pieces per extent: [`EXTENT_BYTES`] of them, but at most 16 (with small pieces a larger run
/// would make every peer fetch the same pieces in the same order) and at least one.
pub fn extent_pieces(geometry: &Geometry) -> u32 {
    (EXTENT_BYTES / u64::from(geometry.nominal_piece_len()).max(1)).clamp(1, 16) as u32
}

/// How many lately started extents are remembered.
const RECENT_EXTENTS: usize = 4;

/// Tunables of the [`Picker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickerConfig {
    /// Until we have this many pieces, new pieces are picked at random (4).
    pub random_first: u32,
    /// Pieces being downloaded above which no new piece is started for a peer that pieces in
    /// progress can feed (a fair value is `max(16, 2 * peers)`; [`Picker::set_max_partial`]
    /// updates it as peers come and go).
    pub max_partial: usize,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            random_first: 4,
            max_partial: 32,
        }
    }
}

/// What [`Picker::block_received`] made of an incoming block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockReceived {
    /// The first copy of a block of a piece in progress (requested, or freed after its request
    /// was dropped); `piece_complete` when every block of the piece is now in, ready to hash.
    Fresh {
        /// Every block of the piece has arrived.
        piece_complete: bool,
    },
    /// We already had this block (end-game duplicate, or a piece already verified).
    Duplicate,
    /// A block of a piece nobody is downloading: nobody asked for it.
    NotRequested,
}

/// Piece and block selection for one torrent.
#[derive(Debug, Clone)]
pub struct Picker {
    geometry: Geometry,
    config: PickerConfig,
    /// Verified pieces.
    have: Bitfield,
    /// Bytes in verified pieces.
    have_bytes: u64,
    /// Pieces in the partial list (downloading, or complete and awaiting the hash check).
    started: Bitfield,
    availability: Availability,
    /// Pieces in progress; `partials[..open]` are the ones with free blocks, so `pick` only
    /// looks at those.
    partials: Vec<Partial>,
    /// How many of `partials` (a prefix) have free blocks.
    open: usize,
    /// Pieces in progress that are not yet fully received (what the partial cap counts).
    downloading: usize,
    /// Index in `partials` of each piece in progress (one entry per partial piece rather than
    /// a slot for every piece of the torrent).
    slot: HashMap<PieceIndex, u32>,
    /// Free blocks over all missing pieces (a piece not started counts all its blocks).
    free_blocks: u64,
    /// Reused by `pick` to order the partial pieces: (availability, free blocks, piece).
    scratch: Vec<(u32, u32, PieceIndex)>,
    /// Pieces per extent (at least 1), and the extents new pieces were started in lately,
    /// newest last.
    extent_pieces: u32,
    recent_extents: Vec<u32>,
    /// Connected peers, as last told.
    peer_count: usize,
    /// Changes to `started` not yet taken by [`Picker::drain_started`], while someone follows
    /// them (`None`: nobody does, nothing is kept). Drained after every engine call, so it holds
    /// at most the pieces one call starts or finishes.
    started_log: Option<Vec<(u32, bool)>>,
}

impl Picker {
    /// A picker for a torrent of `geometry` of which we already have `have` (verified pieces;
    /// a bitfield of the wrong length counts as empty).
    pub fn new(geometry: Geometry, have: Bitfield, config: PickerConfig) -> Self {
        let n = geometry.piece_count();
        let have = if have.len() == n {
            have
        } else {
            Bitfield::new(n)
        };
        let mut have_bytes = 0;
        let mut free_blocks = 0;
        for p in geometry.pieces() {
            if have.has(p) {
                have_bytes += u64::from(geometry.piece_len(p));
            } else {
                free_blocks += u64::from(geometry.block_count(p));
            }
        }
        Picker {
            availability: Availability::new(n),
            started: Bitfield::new(n),
            started_log: None,
            slot: HashMap::new(),
            partials: Vec::new(),
            open: 0,
            downloading: 0,
            geometry,
            config,
            have,
            have_bytes,
            free_blocks,
            scratch: Vec::new(),
            extent_pieces: extent_pieces(&geometry),
            recent_extents: Vec::with_capacity(RECENT_EXTENTS),
            peer_count: 0,
        }
    }

    /// The torrent's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// True when every piece is verified.
    pub fn is_complete(&self) -> bool {
        self.have.is_full()
    }

    /// Bytes in pieces not yet verified.
    pub fn bytes_left(&self) -> u64 {
        self.geometry.total_len() - self.have_bytes
    }

    /// True while we lack piece `p` (the O(1) interest test for a HAVE of `p`).
    pub fn wants(&self, p: PieceIndex) -> bool {
        !self.have.has(p)
    }

    /// Peers known to have piece `p`.
    pub fn availability(&self, p: PieceIndex) -> u32 {
        self.availability.get(p)
    }

    /// Pieces in progress (including complete ones awaiting their hash check).
    pub fn partial_count(&self) -> usize {
        self.partials.len()
    }

    /// Changes the cap on pieces being downloaded (e.g. as the number of peers changes).
    pub fn set_max_partial(&mut self, max_partial: usize) {
        self.config.max_partial = max_partial;
    }

    /// How many peers are connected (extent affinity applies to every peer when there is at
    /// most one: nobody to trade pieces with).
    pub fn set_peer_count(&mut self, peers: usize) {
        self.peer_count = peers;
    }

    /// A new peer's bitfield `bf` (its BITFIELD, or HAVE ALL / HAVE NONE as a full or empty
    /// one). A full one counts the peer as a seed (O(1)); any other adds the peer to each of its
    /// pieces. Report each peer's bitfield once, then its new pieces with [`Picker::peer_have`]
    /// or [`Picker::peer_haves`], and the bitfield it has when it leaves to
    /// [`Picker::peer_gone`].
    pub fn peer_bitfield(&mut self, bf: &Bitfield) {
        self.availability.add_peer(bf, &self.have);
    }

    /// A peer's HAVE of piece `p`, which was not in its bitfield; `after` is its bitfield with
    /// `p` now set. If that completes it, the peer becomes a seed (see [`Picker::peer_haves`]).
    pub fn peer_have(&mut self, p: PieceIndex, after: &Bitfield) {
        self.peer_haves(&[p], after);
    }

    /// A peer's new pieces `added` (none of them in its bitfield before, e.g. the pieces a
    /// later BITFIELD or HAVE ALL adds); `after` is its bitfield with them set. Each piece
    /// gains a peer, unless `after` is full: then the peer's counts for the pieces it had
    /// before are taken back and it is counted as a seed from now on (one pass over the
    /// pieces), so that a peer counts as a seed exactly when its bitfield is full.
    pub fn peer_haves(&mut self, added: &[PieceIndex], after: &Bitfield) {
        self.availability.add_pieces(added, after, &self.have);
    }

    /// A peer left: remove the contribution of its final bitfield `bf` (O(1) for a seed).
    pub fn peer_gone(&mut self, bf: &Bitfield) {
        self.availability.remove_peer(bf);
    }

    /// True if `peer` has a piece we lack. O(1) when it has more pieces than we do, otherwise
    /// one pass over the bitfields in 64-bit words that stops at the first such piece.
    pub fn is_interesting(&self, peer: &Bitfield) -> bool {
        if self.is_complete() || peer.is_none() {
            return false;
        }
        if peer.len() == self.have.len() && peer.count() > self.have.count() {
            return true;
        }
        candidate_words(peer, &self.have, &self.have)
            .next()
            .is_some()
    }

    /// True in end-game: no block is free, every missing block is requested or received.
    pub fn in_endgame(&self) -> bool {
        self.free_blocks == 0 && !self.is_complete()
    }

    /// Appends to `out` up to `max` blocks to request from a peer with bitfield `peer`, and
    /// marks them requested. `peer_outstanding` says whether the peer already has a block
    /// requested; in end-game it also decides whether the peer may take a busy block (only when
    /// it has none of the blocks in progress outstanding).
    pub fn pick(
        &mut self,
        peer: &Bitfield,
        peer_outstanding: &dyn Fn(BlockRef) -> bool,
        max: usize,
        rng: &mut impl Rng,
        out: &mut Vec<BlockRef>,
    ) {
        if max == 0 || self.is_complete() {
            return;
        }
        let start = out.len();
        self.pick_from_partials(peer, peer_outstanding, max, out);
        self.pick_new_pieces(peer, peer_outstanding, max, start, rng, out);
        if out.len() == start && self.free_blocks == 0 {
            self.pick_busy(peer, peer_outstanding, out);
        }
    }

    /// Feeds the peer from the pieces in progress that have free blocks.
    fn pick_from_partials(
        &mut self,
        peer: &Bitfield,
        peer_outstanding: &dyn Fn(BlockRef) -> bool,
        max: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let start = out.len();
        let mut order = std::mem::take(&mut self.scratch);
        order.clear();
        for pp in self.partials.get(..self.open).unwrap_or(&[]) {
            if peer.has(pp.piece) {
                order.push((self.availability.get(pp.piece), pp.free(), pp.piece));
            }
        }
        order.sort_unstable();
        for &(_, _, p) in &order {
            let room = max - (out.len() - start);
            if room == 0 {
                break;
            }
            // Taking blocks moves partials around: look the piece up again each time.
            if let Some(i) = self.slot_of(p) {
                self.take_from(i, room, peer_outstanding, out);
            }
        }
        self.scratch = order;
    }

    /// Starts new pieces while the peer has room, within the partial cap.
    fn pick_new_pieces(
        &mut self,
        peer: &Bitfield,
        peer_outstanding: &dyn Fn(BlockRef) -> bool,
        max: usize,
        start: usize,
        rng: &mut impl Rng,
        out: &mut Vec<BlockRef>,
    ) {
        while out.len() - start < max {
            if self.downloading >= self.config.max_partial && out.len() > start {
                break;
            }
            let Some(p) = self.find_new_piece(peer, rng) else {
                break;
            };
            let i = self.start_piece(p);
            let room = max - (out.len() - start);
            if self.take_from(i, room, peer_outstanding, out) == 0 {
                // Every block of it is outstanding on this peer already (the caller kept
                // requests we were told were dropped): leave the piece alone.
                if let Some(i) = self.slot_of(p) {
                    self.unstart(i);
                }
                break;
            }
        }
    }

    /// Requests up to `room` free blocks of partial `i` the peer does not have outstanding.
    fn take_from(
        &mut self,
        i: usize,
        room: usize,
        peer_outstanding: &dyn Fn(BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) -> usize {
        let geometry = self.geometry;
        let Some(pp) = self.partials.get_mut(i) else {
            return 0;
        };
        let piece = pp.piece;
        let taken = pp.take_free(room, |n| match geometry.block_at(piece, n) {
            Some(b) if !peer_outstanding(b) => {
                out.push(b);
                true
            }
            _ => false,
        });
        self.free_blocks = self.free_blocks.saturating_sub(taken as u64);
        self.settle(i);
        taken
    }

    /// End-game: one block another peer is fetching, if the peer has nothing in progress
    /// outstanding. Prefers the block with the fewest requesters, then the rarest piece.
    fn pick_busy(
        &mut self,
        peer: &Bitfield,
        peer_outstanding: &dyn Fn(BlockRef) -> bool,
        out: &mut Vec<BlockRef>,
    ) {
        let mut best: Option<((u16, u32), usize, u32)> = None;
        for (i, pp) in self.partials.iter().enumerate() {
            if pp.requested() == 0 || !peer.has(pp.piece) {
                continue;
            }
            let avail = self.availability.get(pp.piece);
            for (n, requesters) in pp.busy_blocks() {
                let Some(b) = self.geometry.block_at(pp.piece, n) else {
                    continue;
                };
                if peer_outstanding(b) {
                    return;
                }
                let key = (requesters, avail);
                if best.is_none_or(|(k, _, _)| key < k) {
                    best = Some((key, i, n));
                }
            }
        }
        let Some((_, i, n)) = best else {
            return;
        };
        if let Some(pp) = self.partials.get_mut(i) {
            pp.request(n);
            if let Some(b) = self.geometry.block_at(pp.piece, n) {
                tracing::trace!(piece = b.piece().get(), begin = b.begin(), "end-game block");
                out.push(b);
            }
        }
    }

    /// A new piece for the peer: at random while we have few pieces, else the rarest; from a
    /// seed (or our only peer), one in a lately started extent if it is as rare as any.
    fn find_new_piece(&mut self, peer: &Bitfield, rng: &mut impl Rng) -> Option<PieceIndex> {
        let i = if self.have.count() < self.config.random_first {
            self.random_candidate(peer, rng)?
        } else {
            let rarest = self.rarest_candidate(peer, rng)?;
            let a = self
                .geometry
                .piece(rarest)
                .map_or(0, |p| self.availability.get(p));
            if peer.is_full() || self.peer_count <= 1 {
                self.extent_candidate(peer, a).unwrap_or(rarest)
            } else {
                rarest
            }
        };
        let extent = i / self.extent_pieces;
        if !self.recent_extents.contains(&extent) {
            if self.recent_extents.len() == RECENT_EXTENTS {
                self.recent_extents.remove(0);
            }
            self.recent_extents.push(extent);
        }
        let p = self.geometry.piece(i);
        tracing::trace!(piece = i, "starting piece");
        p
    }

    /// The lowest piece of the newest lately started extent that the peer has, we neither have
    /// nor are downloading, and no more peers have than `rarest`.
    fn extent_candidate(&self, peer: &Bitfield, rarest: u32) -> Option<u32> {
        let n = self.geometry.piece_count();
        self.recent_extents.iter().rev().find_map(|&e| {
            let first = e.saturating_mul(self.extent_pieces);
            let end = first.saturating_add(self.extent_pieces).min(n);
            (first..end).find(|&i| {
                peer.get(i)
                    && !self.have.get(i)
                    && !self.started.get(i)
                    && self
                        .geometry
                        .piece(i)
                        .is_some_and(|p| self.availability.get(p) <= rarest)
            })
        })
    }

    /// A uniformly random piece the peer has that we neither have nor are downloading: count the
    /// candidates a word at a time (popcount), draw one, and walk to it.
    fn random_candidate(&self, peer: &Bitfield, rng: &mut impl Rng) -> Option<u32> {
        let words = || candidate_words(peer, &self.have, &self.started);
        let count: u32 = words().map(|(_, w)| w.count_ones()).sum();
        if count == 0 {
            return None;
        }
        let mut skip = rng.gen_range(0..count);
        for (at, mut w) in words() {
            let ones = w.count_ones();
            if skip >= ones {
                skip -= ones;
                continue;
            }
            for _ in 0..skip {
                w &= w - 1; // clear the lowest set bit
            }
            // Wire order: the lowest set bit is the highest-numbered piece of the word, so
            // counting from the low end walks the word backwards; any fixed order is uniform.
            return Some(at + 63 - w.trailing_zeros());
        }
        None
    }

    /// The rarest piece the peer has that we neither have nor are downloading; ties at random.
    fn rarest_candidate(&self, peer: &Bitfield, rng: &mut impl Rng) -> Option<u32> {
        if !self.availability.is_built() {
            // Every known peer is a seed: all pieces are equally rare.
            return self.random_candidate(peer, rng);
        }
        let mut budget = SCAN_BUDGET;
        // Bucket `a` holds the pieces that `a` peers besides the seeds have. With no seed,
        // bucket 0 holds pieces no known peer has: it is left to the fallback, which also covers
        // a peer whose pieces were never reported. With seeds, bucket 0 holds the pieces only
        // the seeds have, the rarest ones: the walk starts there.
        let first = usize::from(self.availability.seeds() == 0);
        'buckets: for a in first..self.availability.buckets() {
            let bucket = self.availability.bucket(a);
            if bucket.is_empty() {
                continue;
            }
            // Start at a random place in the bucket so equally rare pieces are tried in turn.
            let from = rng.gen_range(0..bucket.len());
            for k in 0..bucket.len() {
                if budget == 0 {
                    break 'buckets;
                }
                budget -= 1;
                let Some(&i) = bucket.get((from + k) % bucket.len()) else {
                    continue;
                };
                if peer.get(i) && !self.started.get(i) {
                    return Some(i);
                }
            }
        }
        self.rarest_by_scan(peer, rng)
    }

    /// Rarest-first over the peer's bitfield: two passes (the minimum availability and how many
    /// candidates share it, then a random one of those).
    fn rarest_by_scan(&self, peer: &Bitfield, rng: &mut impl Rng) -> Option<u32> {
        let avail = |i: u32| {
            self.geometry
                .piece(i)
                .map_or(0, |p| self.availability.get(p))
        };
        let mut min = u32::MAX;
        let mut ties = 0u32;
        for_each_one(peer, &self.have, &self.started, |i| {
            let a = avail(i);
            if a < min {
                min = a;
                ties = 1;
            } else if a == min {
                ties += 1;
            }
            true
        });
        if ties == 0 {
            return None;
        }
        let mut skip = rng.gen_range(0..ties);
        let mut pick = None;
        for_each_one(peer, &self.have, &self.started, |i| {
            if avail(i) == min {
                if skip == 0 {
                    pick = Some(i);
                    return false;
                }
                skip -= 1;
            }
            true
        });
        pick
    }

    /// Puts piece `p` in the partial list, all blocks free; returns its index there.
    fn start_piece(&mut self, p: PieceIndex) -> usize {
        let i = self.partials.len();
        self.partials
            .push(Partial::new(p, self.geometry.block_count(p)));
        self.slot.insert(p, i as u32);
        self.started.set(p);
        if let Some(log) = &mut self.started_log {
            log.push((p.get(), true));
        }
        self.downloading += 1;
        self.settle(i)
    }

    /// Takes partial `i` out of the list (its blocks are then implicitly free).
    fn unstart(&mut self, mut i: usize) {
        if i >= self.partials.len() {
            return;
        }
        if i < self.open {
            self.open -= 1;
            self.swap_partials(i, self.open);
            i = self.open;
        }
        self.swap_partials(i, self.partials.len() - 1);
        let Some(gone) = self.partials.pop() else {
            return;
        };
        self.slot.remove(&gone.piece);
        if !gone.is_full() {
            self.downloading -= 1;
        }
        self.started.unset(gone.piece);
        if let Some(log) = &mut self.started_log {
            log.push((gone.piece.get(), false));
        }
    }

    /// Moves partial `i` into the region its free-block count belongs to; returns its new index.
    fn settle(&mut self, i: usize) -> usize {
        let Some(pp) = self.partials.get(i) else {
            return i;
        };
        if pp.free() > 0 && i >= self.open {
            self.swap_partials(i, self.open);
            self.open += 1;
            self.open - 1
        } else if pp.free() == 0 && i < self.open {
            self.open -= 1;
            self.swap_partials(i, self.open);
            self.open
        } else {
            i
        }
    }

    /// Swaps two entries of the partial list, keeping `slot` in step.
    fn swap_partials(&mut self, i: usize, j: usize) {
        if i == j || i >= self.partials.len() || j >= self.partials.len() {
            return;
        }
        self.partials.swap(i, j);
        for at in [i, j] {
            if let Some(pp) = self.partials.get(at)
                && let Some(s) = self.slot.get_mut(&pp.piece)
            {
                *s = at as u32;
            }
        }
    }

    /// The index in `partials` of piece `p`, if it is in progress.
    fn slot_of(&self, p: PieceIndex) -> Option<usize> {
        self.slot.get(&p).map(|&s| s as usize)
    }

    /// A block arrived: records it and says whether it was new and completed its piece.
    pub fn block_received(&mut self, b: BlockRef) -> BlockReceived {
        if self.have.has(b.piece()) {
            return BlockReceived::Duplicate;
        }
        let Some(i) = self.slot_of(b.piece()) else {
            return BlockReceived::NotRequested;
        };
        let Some(pp) = self.partials.get_mut(i) else {
            return BlockReceived::NotRequested;
        };
        match pp.receive(b.index_in_piece()) {
            None => BlockReceived::NotRequested,
            Some(Block::Received) => BlockReceived::Duplicate,
            Some(before) => {
                let piece_complete = pp.is_full();
                if piece_complete {
                    self.downloading -= 1;
                }
                if before == Block::Free {
                    self.free_blocks = self.free_blocks.saturating_sub(1);
                    self.settle(i);
                }
                BlockReceived::Fresh { piece_complete }
            }
        }
    }

    /// A request for `b` is gone (choke, reject, timeout, peer left, or CANCEL sent): the block
    /// is free again unless another peer still has it requested or it has arrived.
    pub fn request_dropped(&mut self, b: BlockRef) {
        let Some(i) = self.slot_of(b.piece()) else {
            return;
        };
        let Some(pp) = self.partials.get_mut(i) else {
            return;
        };
        let freed = pp.drop_request(b.index_in_piece());
        let idle = pp.requested() == 0 && pp.received() == 0;
        if freed {
            self.free_blocks += 1;
        }
        let i = self.settle(i);
        if idle {
            self.unstart(i);
        }
    }

    /// Keeps the changes to which pieces are started (see [`Picker::is_started`]) for
    /// [`Picker::drain_started`] from now on.
    pub fn follow_started(&mut self) {
        self.started_log.get_or_insert_with(Vec::new);
    }

    /// Hands `f` each change to which pieces are started since the last call, in order:
    /// `(piece, started)`. Nothing unless [`Picker::follow_started`] was called.
    pub fn drain_started(&mut self, mut f: impl FnMut(u32, bool)) {
        if let Some(log) = &mut self.started_log {
            for (p, on) in log.drain(..) {
                f(p, on);
            }
        }
    }

    /// Whether piece `p` is being downloaded, or is complete and awaiting its hash check or
    /// its write.
    pub fn is_started(&self, p: PieceIndex) -> bool {
        self.started.has(p)
    }

    /// Piece `p` passed its hash check and is stored: we have it.
    pub fn piece_verified(&mut self, p: PieceIndex) {
        if !self.have.set(p) {
            return;
        }
        self.have_bytes += u64::from(self.geometry.piece_len(p));
        let free = match self.slot_of(p) {
            Some(i) => {
                let free = self.partials.get(i).map_or(0, Partial::free);
                self.unstart(i);
                free
            }
            None => self.geometry.block_count(p),
        };
        self.free_blocks = self.free_blocks.saturating_sub(u64::from(free));
        self.availability.remove(p);
    }

    /// Piece `p` failed its hash check: all its blocks are free to download again.
    pub fn piece_failed(&mut self, p: PieceIndex) {
        let Some(i) = self.slot_of(p) else {
            return;
        };
        if let Some(pp) = self.partials.get(i) {
            self.free_blocks += u64::from(pp.len() - pp.free());
        }
        self.unstart(i);
    }
}

#[cfg(test)]
impl Picker {
    /// Panics unless the counters and indexes agree with the per-piece state (tests only).
    fn check(&self) {
        let mut free = 0u64;
        for p in self.geometry.pieces() {
            if self.have.has(p) {
                assert!(self.slot_of(p).is_none());
                continue;
            }
            match self.slot_of(p) {
                Some(i) => {
                    let pp = &self.partials[i];
                    assert_eq!(pp.piece, p);
                    assert!(self.started.has(p));
                    assert_eq!(pp.free() + pp.requested() + pp.received(), pp.len());
                    free += u64::from(pp.free());
                }
                None => {
                    assert!(!self.started.has(p));
                    free += u64::from(self.geometry.block_count(p));
                }
            }
        }
        assert_eq!(free, self.free_blocks);
        assert_eq!(self.started.count() as usize, self.partials.len());
        assert_eq!(self.slot.len(), self.partials.len());
        for (i, pp) in self.partials.iter().enumerate() {
            assert_eq!(pp.free() > 0, i < self.open, "partition at {i}");
        }
        let downloading = self.partials.iter().filter(|pp| !pp.is_full()).count();
        assert_eq!(downloading, self.downloading);
        self.availability.check(&self.have);
    }
}

/// The 64-bit words of `peer & !a & !b`, each with the number of its first piece, skipping
/// words that are zero.
fn candidate_words<'x>(
    peer: &'x Bitfield,
    a: &'x Bitfield,
    b: &'x Bitfield,
) -> impl Iterator<Item = (u32, u64)> + 'x {
    let (p, a, b) = (peer.as_bytes(), a.as_bytes(), b.as_bytes());
    let n = p.len().min(a.len()).min(b.len());
    let (p, a, b) = (&p[..n], &a[..n], &b[..n]);
    p.chunks(8)
        .zip(a.chunks(8))
        .zip(b.chunks(8))
        .enumerate()
        .map(|(w, ((pw, aw), bw))| (w as u32 * 64, word(pw) & !word(aw) & !word(bw)))
        .filter(|&(_, bits)| bits != 0)
}

/// Calls `f` with each piece set in `peer` and clear in both `a` and `b`, ascending, until `f`
/// returns false.
fn for_each_one(peer: &Bitfield, a: &Bitfield, b: &Bitfield, mut f: impl FnMut(u32) -> bool) {
    for (at, mut bits) in candidate_words(peer, a, b) {
        while bits != 0 {
            // Wire order: piece `at + k` is bit `63 - k`.
            let k = bits.leading_zeros();
            if !f(at + k) {
                return;
            }
            bits &= !(1u64 << (63 - k));
        }
    }
}

/// Up to 8 bytes as a big-endian word, zero-padded on the right (wire bit order).
fn word(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    let len = bytes.len().min(8);
    buf[..len].copy_from_slice(&bytes[..len]);
    u64::from_be_bytes(buf)
}
