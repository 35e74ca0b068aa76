//! Per-piece availability, with the missing pieces kept sorted by it.
//!
//! The missing pieces live in one vector ordered by availability, split into buckets (bucket `a`
//! holds the pieces that `a` connected peers have). A change of one in a piece's availability
//! moves it across one bucket boundary with a single swap, so HAVE and BITFIELD cost O(1) per
//! piece, and the rarest pieces are always at the front for the picker to try first.
//! (libtorrent's piece picker keeps a similar priority-bucketed vector.)

use metainfo::{Bitfield, PieceIndex};

/// Position of a piece that is no longer in the order (we have it).
const GONE: u32 = u32::MAX;

/// How many peers have each piece, and the missing pieces ordered by that count.
#[derive(Debug, Clone)]
pub(super) struct Availability {
    /// Peers known to have each piece (every piece, including the ones we have). Two bytes a
    /// piece: a count stops at `u16::MAX`, far above any peer limit (each peer counts once).
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
    /// Every piece at availability 0; the pieces in `have` are left out of the order.
    pub(super) fn new(have: &Bitfield) -> Self {
        let n = have.len();
        let order: Vec<u32> = (0..n).filter(|&i| !have.get(i)).collect();
        let mut pos = vec![GONE; n as usize];
        for (at, &p) in order.iter().enumerate() {
            if let Some(slot) = pos.get_mut(p as usize) {
                *slot = at as u32;
            }
        }
        Availability {
            count: vec![0; n as usize],
            bounds: vec![0, order.len() as u32],
            order,
            pos,
        }
    }

    /// Peers known to have piece `p`.
    pub(super) fn get(&self, p: PieceIndex) -> u32 {
        self.count.get(p.idx()).copied().map_or(0, u32::from)
    }

    /// Number of buckets (highest availability ever seen among missing pieces, plus one).
    pub(super) fn buckets(&self) -> usize {
        self.bounds.len() - 1
    }

    /// The missing pieces whose availability is `a`, in arbitrary order.
    pub(super) fn bucket(&self, a: usize) -> &[u32] {
        match (self.bounds.get(a), self.bounds.get(a + 1)) {
            (Some(&lo), Some(&hi)) => self.order.get(lo as usize..hi as usize).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// One more peer has piece `p`.
    pub(super) fn increment(&mut self, p: PieceIndex) {
        let Some(c) = self.count.get_mut(p.idx()) else {
            return;
        };
        if *c == u16::MAX {
            return;
        }
        let a = *c as usize;
        *c += 1;
        if self.position(p).is_none() {
            return;
        }
        // Bucket a + 1 must exist: bounds[a + 1] (its start) and bounds[a + 2] (its end).
        while self.bounds.len() < a + 3 {
            self.bounds.push(self.order.len() as u32);
        }
        // Swap to the last slot of bucket a, then move the boundary down over it.
        let last = self.bounds[a + 1] - 1;
        self.swap_to(p, last);
        self.bounds[a + 1] -= 1;
    }

    /// One peer fewer has piece `p` (a count already at zero stays there).
    pub(super) fn decrement(&mut self, p: PieceIndex) {
        let Some(c) = self.count.get_mut(p.idx()) else {
            return;
        };
        if *c == 0 {
            return;
        }
        let a = *c as usize;
        *c -= 1;
        if self.position(p).is_none() {
            return;
        }
        // Swap to the first slot of bucket a, then move the boundary up past it.
        let first = self.bounds[a];
        self.swap_to(p, first);
        self.bounds[a] += 1;
    }

    /// We have piece `p`: it leaves the order for good (its count is still kept).
    pub(super) fn remove(&mut self, p: PieceIndex) {
        if self.position(p).is_none() {
            return;
        }
        // Carry the piece up through the buckets to the top one, then off the end.
        let top = self.buckets() - 1;
        for b in self.get(p) as usize..top {
            let last = self.bounds[b + 1] - 1;
            self.swap_to(p, last);
            self.bounds[b + 1] -= 1;
        }
        let end = self.order.len() as u32 - 1;
        self.swap_to(p, end);
        self.order.pop();
        if let Some(slot) = self.pos.get_mut(p.idx()) {
            *slot = GONE;
        }
        if let Some(last) = self.bounds.last_mut() {
            *last = self.order.len() as u32;
        }
    }

    fn position(&self, p: PieceIndex) -> Option<u32> {
        self.pos.get(p.idx()).copied().filter(|&at| at != GONE)
    }

    /// Swaps piece `p` with whatever is at `to` in the order.
    fn swap_to(&mut self, p: PieceIndex, to: u32) {
        let Some(from) = self.position(p) else {
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

    /// Panics unless every invariant holds (tests only).
    #[cfg(test)]
    pub(super) fn check(&self) {
        assert_eq!(*self.bounds.last().unwrap() as usize, self.order.len());
        assert!(self.bounds.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(self.bounds[0], 0);
        for a in 0..self.buckets() {
            for &p in self.bucket(a) {
                assert_eq!(
                    self.count[p as usize] as usize, a,
                    "piece {p} in bucket {a}"
                );
            }
        }
        for (at, &p) in self.order.iter().enumerate() {
            assert_eq!(self.pos[p as usize] as usize, at);
        }
        let listed = self.pos.iter().filter(|&&at| at != GONE).count();
        assert_eq!(listed, self.order.len());
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
        let mut a = Availability::new(&have);
        a.check();
        assert!(a.bucket(0).iter().all(|&p| p != 7));
        let mut rng = StdRng::seed_from_u64(9);
        let mut model = vec![0u32; 200];
        let mut gone = [false; 200];
        gone[7] = true;
        for _ in 0..20_000 {
            let i = rng.gen_range(0..200u32);
            let p = g.piece(i).unwrap();
            match rng.gen_range(0..100) {
                0..=54 => {
                    a.increment(p);
                    model[i as usize] += 1;
                }
                55..=98 => {
                    a.decrement(p);
                    model[i as usize] = model[i as usize].saturating_sub(1);
                }
                _ => {
                    a.remove(p);
                    gone[i as usize] = true;
                }
            }
            assert_eq!(a.get(p), model[i as usize]);
        }
        a.check();
        for i in 0..200u32 {
            let listed = (0..a.buckets()).any(|b| a.bucket(b).contains(&i));
            assert_eq!(listed, !gone[i as usize], "piece {i}");
        }
    }

    #[test]
    fn a_count_stops_at_its_ceiling_and_stays_consistent() {
        let g = Geometry::new(2 * 16384, 16384).unwrap();
        let mut a = Availability::new(&Bitfield::new(2));
        let p = g.piece(0).unwrap();
        for _ in 0..u32::from(u16::MAX) + 3 {
            a.increment(p);
        }
        assert_eq!(a.get(p), u32::from(u16::MAX));
        a.decrement(p);
        assert_eq!(a.get(p), u32::from(u16::MAX) - 1);
        a.check();
        assert_eq!(a.bucket(0), &[1]);
    }

    #[test]
    fn rarest_bucket_comes_first() {
        let g = Geometry::new(4 * 16384, 16384).unwrap();
        let mut a = Availability::new(&Bitfield::new(4));
        for i in [0, 0, 0, 1, 1, 2, 2, 2, 3] {
            a.increment(g.piece(i).unwrap());
        }
        a.check();
        assert_eq!(a.bucket(0), &[] as &[u32]);
        assert_eq!(a.bucket(1), &[3]);
        let mut two = a.bucket(2).to_vec();
        two.sort_unstable();
        assert_eq!(two, vec![1]);
        let mut three = a.bucket(3).to_vec();
        three.sort_unstable();
        assert_eq!(three, vec![0, 2]);
        a.remove(g.piece(3).unwrap());
        a.check();
        assert!(a.bucket(1).is_empty());
        assert_eq!(
            a.get(g.piece(3).unwrap()),
            1,
            "the count outlives the removal"
        );
    }
}
