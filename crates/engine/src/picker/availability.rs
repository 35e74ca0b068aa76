//! Per-piece availability, with the missing pieces kept sorted by it.
//!
//! Seeds are counted apart, as libtorrent does: a peer whose bitfield is full (it has every
//! piece) only adds one to [`Availability::seeds`], and the availability of a piece is that
//! counter plus the number of other peers that have it. A seed connecting or leaving is then
//! O(1) rather than one update per piece. The rule is "counted as a seed iff its bitfield is
//! full": a peer counted piece by piece that completes its bitfield through HAVEs moves to the
//! seed counter (its per-piece contributions are taken back, one pass over the pieces, once).
//!
//! The per-piece state of the other peers is built lazily: until the first peer that is not a
//! seed reports a piece, every piece is equally available (every known peer is a seed) and
//! nothing is allocated, so downloading from seeds costs O(1) memory here instead of 10 bytes a
//! piece. Once built it stays. It starts with every missing piece at count 0, the state it
//! would have had if it had been kept from the start (seeds never touch it).
//!
//! The missing pieces live in one vector ordered by that per-piece count, split into buckets
//! (bucket `a` holds the pieces that `a` connected peers other than the seeds have). A change of
//! one in a piece's count moves it across one bucket boundary with a single swap, so HAVE and
//! BITFIELD cost O(1) per piece, and the rarest pieces are always at the front for the picker to
//! try first. (libtorrent's piece picker keeps a similar priority-bucketed vector.)

use metainfo::{Bitfield, PieceIndex};

/// Position of a piece that is no longer in the order (we have it).
const GONE: u32 = u32::MAX;

/// How many peers have each piece: seeds counted apart, the other peers piece by piece, and
/// the missing pieces ordered by the per-piece count.
#[derive(Debug, Clone)]
pub(super) struct Availability {
    /// Pieces in the torrent.
    pieces: u32,
    /// Peers counted as seeds: their bitfield is full, so they have every piece.
    seeds: u32,
    /// Counts of the peers that are not seeds, and the order; `None` until the first of their
    /// pieces is counted.
    counts: Option<Counts>,
}

/// The per-piece part of [`Availability`]: counts of the peers that are not seeds, and the
/// missing pieces sorted by them.
#[derive(Debug, Clone)]
struct Counts {
    /// Peers other than seeds known to have each piece (every piece, including the ones we
    /// have). Two bytes a piece: a count stops at `u16::MAX`, far above any peer limit (each
    /// peer counts once).
    count: Vec<u16>,
    /// Missing pieces, sorted by `count` (order within a bucket is arbitrary).
    order: Vec<u32>,
    /// Index of each piece in `order`, or [`GONE`].
    pos: Vec<u32>,
    /// `bounds[a]` is the index in `order` where bucket `a` starts; the last entry is
    /// `order.len()`, so bucket `a` is `order[bounds[a]..bounds[a + 1]]`.
    bounds: Vec<u32>,
}

impl Availability {
    /// A torrent of `pieces` pieces that no peer has yet (nothing allocated).
    pub(super) fn new(pieces: u32) -> Self {
        Availability {
            pieces,
            seeds: 0,
            counts: None,
        }
    }

    /// Whether a peer with bitfield `bf` is counted as a seed: it has every piece.
    pub(super) fn is_seed(&self, bf: &Bitfield) -> bool {
        bf.len() == self.pieces && bf.is_full()
    }

    /// Peers counted as seeds.
    pub(super) fn seeds(&self) -> u32 {
        self.seeds
    }

    /// Whether the per-piece state exists (some peer that is not a seed reported a piece).
    /// While it does not, every piece has availability [`Availability::seeds`].
    pub(super) fn is_built(&self) -> bool {
        self.counts.is_some()
    }

    /// Peers known to have piece `p`.
    pub(super) fn get(&self, p: PieceIndex) -> u32 {
        if p.get() >= self.pieces {
            return 0;
        }
        let counted = self.counts.as_ref().map_or(0, |c| c.get(p.get()));
        self.seeds.saturating_add(counted)
    }

    /// A peer's bitfield `bf`, when it connects: a seed counts once, any other peer once for
    /// each of its pieces. `have` is our own bitfield (the missing pieces are the order).
    pub(super) fn add_peer(&mut self, bf: &Bitfield, have: &Bitfield) {
        if self.is_seed(bf) {
            self.seeds = self.seeds.saturating_add(1);
            return;
        }
        for i in bf.iter_ones() {
            self.increment(i, have);
        }
    }

    /// A peer's new pieces `added` (not in its bitfield before), `after` its bitfield with
    /// them. If that completes it, it becomes a seed: the pieces it had before (every piece but
    /// `added`) were counted one by one and are taken back, and it counts once as a seed.
    pub(super) fn add_pieces(&mut self, added: &[PieceIndex], after: &Bitfield, have: &Bitfield) {
        if added.is_empty() {
            return;
        }
        if !self.is_seed(after) {
            for p in added {
                self.increment(p.get(), have);
            }
            return;
        }
        let mut before = after.clone();
        for &p in added {
            before.unset(p);
        }
        for i in before.iter_ones() {
            self.decrement(i);
        }
        self.seeds = self.seeds.saturating_add(1);
    }

    /// A peer left with bitfield `bf`: a seed leaves the seed counter, any other peer takes
    /// one off each of its pieces.
    pub(super) fn remove_peer(&mut self, bf: &Bitfield) {
        if self.is_seed(bf) {
            self.seeds = self.seeds.saturating_sub(1);
            return;
        }
        for i in bf.iter_ones() {
            self.decrement(i);
        }
    }

    /// Number of buckets (highest per-piece count ever seen among missing pieces, plus one);
    /// 0 while the per-piece state is not built.
    pub(super) fn buckets(&self) -> usize {
        self.counts.as_ref().map_or(0, Counts::buckets)
    }

    /// The missing pieces that `a` peers other than the seeds have, in arbitrary order (their
    /// availability is `seeds + a`). Empty while the per-piece state is not built.
    pub(super) fn bucket(&self, a: usize) -> &[u32] {
        self.counts.as_ref().map_or(&[], |c| c.bucket(a))
    }

    /// One more peer that is not a seed has piece `i`; the first such piece builds the
    /// per-piece state, with the pieces in `have` left out of the order.
    pub(super) fn increment(&mut self, i: u32, have: &Bitfield) {
        if i >= self.pieces {
            return;
        }
        let pieces = self.pieces;
        self.counts
            .get_or_insert_with(|| Counts::new(pieces, have))
            .increment(i);
    }

    /// One peer that is not a seed fewer has piece `i` (a count already at zero stays there).
    pub(super) fn decrement(&mut self, i: u32) {
        if let Some(c) = &mut self.counts {
            c.decrement(i);
        }
    }

    /// We have piece `p`: it leaves the order for good (its count is still kept). The `have`
    /// given to later calls must include it (that is what leaves it out if the order is built
    /// later).
    pub(super) fn remove(&mut self, p: PieceIndex) {
        if let Some(c) = &mut self.counts {
            c.remove(p.get());
        }
    }

    /// Heap bytes held by the per-piece state (tests only).
    #[cfg(test)]
    pub(super) fn per_piece_bytes(&self) -> usize {
        use std::mem::size_of;
        self.counts.as_ref().map_or(0, |c| {
            c.count.capacity() * size_of::<u16>()
                + (c.order.capacity() + c.pos.capacity() + c.bounds.capacity()) * size_of::<u32>()
        })
    }

    /// Panics unless every invariant holds, `have` being our bitfield (tests only): once built,
    /// one count and one position per piece, buckets that match the counts, and exactly the
    /// pieces missing from `have` in the order.
    #[cfg(test)]
    pub(super) fn check(&self, have: &Bitfield) {
        assert_eq!(have.len(), self.pieces);
        let Some(c) = &self.counts else {
            assert_eq!(self.buckets(), 0);
            assert!(self.bucket(0).is_empty());
            return;
        };
        assert_eq!(c.count.len(), self.pieces as usize);
        assert_eq!(c.pos.len(), self.pieces as usize);
        assert_eq!(*c.bounds.last().unwrap() as usize, c.order.len());
        assert!(c.bounds.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(c.bounds[0], 0);
        for a in 0..c.buckets() {
            for &p in c.bucket(a) {
                assert_eq!(c.count[p as usize] as usize, a, "piece {p} in bucket {a}");
            }
        }
        for (at, &p) in c.order.iter().enumerate() {
            assert_eq!(c.pos[p as usize] as usize, at);
        }
        for i in 0..self.pieces {
            assert_eq!(
                c.position(i).is_some(),
                !have.get(i),
                "piece {i} in the order"
            );
        }
    }
}

impl Counts {
    /// Every piece at count 0; the pieces in `have` are left out of the order.
    fn new(pieces: u32, have: &Bitfield) -> Self {
        let order: Vec<u32> = (0..pieces).filter(|&i| !have.get(i)).collect();
        let mut pos = vec![GONE; pieces as usize];
        for (at, &p) in order.iter().enumerate() {
            if let Some(slot) = pos.get_mut(p as usize) {
                *slot = at as u32;
            }
        }
        Counts {
            count: vec![0; pieces as usize],
            bounds: vec![0, order.len() as u32],
            order,
            pos,
        }
    }

    /// Count of piece `i`.
    fn get(&self, i: u32) -> u32 {
        self.count.get(i as usize).copied().map_or(0, u32::from)
    }

    /// Number of buckets.
    fn buckets(&self) -> usize {
        self.bounds.len() - 1
    }

    /// The missing pieces whose count is `a`.
    fn bucket(&self, a: usize) -> &[u32] {
        match (self.bounds.get(a), self.bounds.get(a + 1)) {
            (Some(&lo), Some(&hi)) => self.order.get(lo as usize..hi as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// One more peer has piece `i`.
    fn increment(&mut self, i: u32) {
        let Some(c) = self.count.get_mut(i as usize) else {
            return;
        };
        if *c == u16::MAX {
            return;
        }
        let a = *c as usize;
        *c += 1;
        if self.position(i).is_none() {
            return;
        }
        // Bucket a + 1 must exist: bounds[a + 1] (its start) and bounds[a + 2] (its end).
        while self.bounds.len() < a + 3 {
            self.bounds.push(self.order.len() as u32);
        }
        // Swap to the last slot of bucket a, then move the boundary down over it.
        let last = self.bounds[a + 1] - 1;
        self.swap_to(i, last);
        self.bounds[a + 1] -= 1;
    }

    /// One peer fewer has piece `i` (a count already at zero stays there).
    fn decrement(&mut self, i: u32) {
        let Some(c) = self.count.get_mut(i as usize) else {
            return;
        };
        if *c == 0 {
            return;
        }
        let a = *c as usize;
        *c -= 1;
        if self.position(i).is_none() {
            return;
        }
        // Swap to the first slot of bucket a, then move the boundary up past it.
        let first = self.bounds[a];
        self.swap_to(i, first);
        self.bounds[a] += 1;
    }

    /// Piece `i` leaves the order for good (its count is still kept).
    fn remove(&mut self, i: u32) {
        if self.position(i).is_none() {
            return;
        }
        // Carry the piece up through the buckets to the top one, then off the end.
        let top = self.buckets() - 1;
        for b in self.get(i) as usize..top {
            let last = self.bounds[b + 1] - 1;
            self.swap_to(i, last);
            self.bounds[b + 1] -= 1;
        }
        let end = self.order.len() as u32 - 1;
        self.swap_to(i, end);
        self.order.pop();
        if let Some(slot) = self.pos.get_mut(i as usize) {
            *slot = GONE;
        }
        if let Some(last) = self.bounds.last_mut() {
            *last = self.order.len() as u32;
        }
    }

    /// Index of piece `i` in the order, unless we have it.
    fn position(&self, i: u32) -> Option<u32> {
        self.pos.get(i as usize).copied().filter(|&at| at != GONE)
    }

    /// Swaps piece `i` with whatever is at `to` in the order.
    fn swap_to(&mut self, i: u32, to: u32) {
        let Some(from) = self.position(i) else {
            return;
        };
        self.order.swap(from as usize, to as usize);
        for at in [from, to] {
            if let Some(&q) = self.order.get(at as usize)
                && let Some(slot) = self.pos.get_mut(q as usize)
            {
                *slot = at;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::Geometry;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn buckets_follow_counts_through_random_changes() {
        let g = Geometry::new(200 * 16384, 16384).unwrap();
        let mut have = Bitfield::new(g.piece_count());
        have.set(g.piece(7).unwrap());
        let mut a = Availability::new(200);
        a.check(&have);
        a.increment(3, &have);
        a.check(&have);
        assert!(a.bucket(0).iter().all(|&p| p != 7));
        let mut rng = StdRng::seed_from_u64(9);
        let mut model = vec![0u32; 200];
        model[3] = 1;
        let mut gone = [false; 200];
        gone[7] = true;
        for _ in 0..20_000 {
            let i = rng.gen_range(0..200u32);
            let p = g.piece(i).unwrap();
            match rng.gen_range(0..100) {
                0..=54 => {
                    a.increment(i, &have);
                    model[i as usize] += 1;
                }
                55..=98 => {
                    a.decrement(i);
                    model[i as usize] = model[i as usize].saturating_sub(1);
                }
                _ => {
                    have.set(p);
                    a.remove(p);
                    gone[i as usize] = true;
                }
            }
            assert_eq!(a.get(p), model[i as usize]);
        }
        a.check(&have);
        for i in 0..200u32 {
            let listed = (0..a.buckets()).any(|b| a.bucket(b).contains(&i));
            assert_eq!(listed, !gone[i as usize], "piece {i}");
        }
    }

    #[test]
    fn a_count_stops_at_its_ceiling_and_stays_consistent() {
        let g = Geometry::new(2 * 16384, 16384).unwrap();
        let have = Bitfield::new(2);
        let mut a = Availability::new(2);
        let p = g.piece(0).unwrap();
        for _ in 0..u32::from(u16::MAX) + 3 {
            a.increment(0, &have);
        }
        assert_eq!(a.get(p), u32::from(u16::MAX));
        a.decrement(0);
        assert_eq!(a.get(p), u32::from(u16::MAX) - 1);
        a.check(&have);
        assert_eq!(a.bucket(0), &[1]);
    }

    #[test]
    fn rarest_bucket_comes_first() {
        let g = Geometry::new(4 * 16384, 16384).unwrap();
        let mut have = Bitfield::new(4);
        let mut a = Availability::new(4);
        for i in [0, 0, 0, 1, 1, 2, 2, 2, 3] {
            a.increment(i, &have);
        }
        a.check(&have);
        assert_eq!(a.bucket(0), &[] as &[u32]);
        assert_eq!(a.bucket(1), &[3]);
        let mut two = a.bucket(2).to_vec();
        two.sort_unstable();
        assert_eq!(two, vec![1]);
        let mut three = a.bucket(3).to_vec();
        three.sort_unstable();
        assert_eq!(three, vec![0, 2]);
        have.set(g.piece(3).unwrap());
        a.remove(g.piece(3).unwrap());
        a.check(&have);
        assert!(a.bucket(1).is_empty());
        assert_eq!(
            a.get(g.piece(3).unwrap()),
            1,
            "the count outlives the removal"
        );
    }

    #[test]
    fn built_late_the_order_holds_exactly_the_missing_pieces() {
        // Pieces we got while only seeds were known never enter the order built later.
        let g = Geometry::new(10 * 16384, 16384).unwrap();
        let mut have = Bitfield::new(10);
        let mut a = Availability::new(10);
        a.add_peer(&Bitfield::full(10), &have);
        for i in [2, 5] {
            have.set(g.piece(i).unwrap());
            a.remove(g.piece(i).unwrap());
        }
        assert!(!a.is_built());
        let mut leecher = Bitfield::new(10);
        for i in [1, 2] {
            leecher.set(g.piece(i).unwrap());
        }
        a.add_peer(&leecher, &have);
        assert!(a.is_built());
        a.check(&have);
        let mut zero = a.bucket(0).to_vec();
        zero.sort_unstable();
        assert_eq!(zero, vec![0, 3, 4, 6, 7, 8, 9]);
        assert_eq!(a.bucket(1), &[1]);
        assert_eq!(
            a.get(g.piece(2).unwrap()),
            2,
            "counted, though not in the order"
        );
        assert_eq!(a.get(g.piece(0).unwrap()), 1);
    }
}
