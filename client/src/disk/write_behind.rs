//! Write-behind for direct writes: verified pieces wait briefly for their neighbours so that a
//! group of consecutive pieces (1 MiB) goes to the disk as one vectored write.
//!
//! Why: a direct write of 256 KiB is one request to the device, and on a virtual disk each
//! request costs an exit to the hypervisor and an interrupt: 1 MiB requests cost a fraction of
//! the CPU of 256 KiB ones (`dd oflag=direct` figures in BENCHMARKS.md). The picker's extent affinity makes a download from few peers arrive in runs
//! of consecutive pieces, so a group usually completes within milliseconds.
//!
//! Rules, all in [`WriteBehind::add`]: pieces are grouped by `index / group`; a piece is held
//! only while every other piece of its group is either held already or still on its way (being
//! downloaded or verified). The group is written as soon as all of it is held, or as soon as one
//! of its pieces is not coming (we have it, nobody is fetching it, or it failed its check).
//! Holding is bounded in count (`cap` pieces: the oldest piece's group is written when it is
//! exceeded) and in time ([`WriteBehind::expired`], at [`WriteBehind::deadline`]). A held piece is not yet
//! ours: the engine learns of it only once it is written, so nothing is announced or served from
//! a piece still in memory, and a crash loses at most the held pieces, which no resume data
//! claims.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use engine::PieceData;

/// Bytes written together: a group is this many bytes of pieces (at least one piece).
pub const GROUP_BYTES: u32 = 1 << 20;

/// How long a verified piece may wait for its group.
pub const MAX_HOLD: Duration = Duration::from_millis(250);

/// Consecutive pieces to write in one go: `pieces[k]` is piece `first + k`.
#[derive(Debug)]
pub struct Run {
    /// Index of the first piece.
    pub first: u32,
    /// The pieces' bytes, in order.
    pub pieces: Vec<PieceData>,
}

/// Verified pieces waiting for their group (see the module documentation).
#[derive(Debug)]
pub struct WriteBehind {
    group: u32,
    piece_count: u32,
    cap: usize,
    held: BTreeMap<u32, (PieceData, Instant)>,
}

impl WriteBehind {
    /// Groups of [`GROUP_BYTES`] for pieces of `piece_len` bytes, `piece_count` pieces; at
    /// most two groups' worth of pieces held at once (one completing while the next fills).
    pub fn new(piece_len: u32, piece_count: u32) -> Self {
        let group = (GROUP_BYTES / piece_len.max(1)).max(1);
        WriteBehind {
            group,
            piece_count,
            cap: 2 * group as usize,
            held: BTreeMap::new(),
        }
    }

    /// Pieces per group.
    pub fn group_len(&self) -> u32 {
        self.group
    }

    /// The pieces of the group of piece `p`.
    pub fn group_of(&self, p: u32) -> std::ops::Range<u32> {
        let first = p / self.group * self.group;
        first..first.saturating_add(self.group).min(self.piece_count)
    }

    /// Pieces held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// When the oldest held piece has waited `max_age`: the next call to
    /// [`expired`](Self::expired) worth making.
    pub fn deadline(&self, max_age: Duration) -> Option<Instant> {
        self.held
            .values()
            .map(|(_, at)| *at)
            .min()
            .map(|t| t + max_age)
    }

    /// Takes verified piece `p`; returns the runs to write now (possibly including `p`).
    /// `coming(q)` says whether piece `q` of the same group, not held, is still on its way.
    pub fn add(
        &mut self,
        p: u32,
        data: PieceData,
        now: Instant,
        coming: impl Fn(u32) -> bool,
    ) -> Vec<Run> {
        self.held.insert(p, (data, now));
        let members = self.group_of(p);
        let complete = members.clone().all(|q| self.held.contains_key(&q));
        let stuck = members
            .clone()
            .any(|q| !self.held.contains_key(&q) && !coming(q));
        let mut runs = Vec::new();
        if complete || stuck {
            runs.extend(self.take_group(p));
        }
        while self.held.len() > self.cap {
            let Some(oldest) = self.oldest() else { break };
            runs.extend(self.take_group(oldest));
        }
        runs
    }

    /// The runs of every group with a piece held longer than `max_age` at `now`.
    pub fn expired(&mut self, now: Instant, max_age: Duration) -> Vec<Run> {
        let old: Vec<u32> = self
            .held
            .iter()
            .filter(|(_, (_, at))| now.saturating_duration_since(*at) >= max_age)
            .map(|(&p, _)| p)
            .collect();
        let mut runs = Vec::new();
        for p in old {
            if self.held.contains_key(&p) {
                runs.extend(self.take_group(p));
            }
        }
        runs
    }

    /// Every held piece, as runs (at shutdown).
    pub fn drain(&mut self) -> Vec<Run> {
        let held = std::mem::take(&mut self.held);
        runs_of(held.into_iter().map(|(p, (d, _))| (p, d)))
    }

    fn oldest(&self) -> Option<u32> {
        self.held
            .iter()
            .min_by_key(|(_, (_, at))| *at)
            .map(|(&p, _)| p)
    }

    /// Takes the held pieces of `p`'s group out, as runs of consecutive pieces.
    fn take_group(&mut self, p: u32) -> Vec<Run> {
        let members = self.group_of(p);
        let taken: Vec<(u32, PieceData)> = members
            .filter_map(|q| self.held.remove(&q).map(|(d, _)| (q, d)))
            .collect();
        runs_of(taken.into_iter())
    }
}

/// Splits pieces in ascending order into runs of consecutive indexes.
fn runs_of(pieces: impl Iterator<Item = (u32, PieceData)>) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    for (p, d) in pieces {
        match runs.last_mut() {
            Some(r) if r.first + r.pieces.len() as u32 == p => r.pieces.push(d),
            _ => runs.push(Run {
                first: p,
                pieces: vec![d],
            }),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u32 = 256 * 1024;

    fn piece(tag: u8) -> PieceData {
        PieceData::from(vec![tag; 16])
    }

    fn shape(runs: &[Run]) -> Vec<(u32, usize)> {
        runs.iter().map(|r| (r.first, r.pieces.len())).collect()
    }

    #[test]
    fn a_group_is_written_once_all_of_it_is_in_and_in_order() {
        let mut w = WriteBehind::new(K, 100);
        assert_eq!(w.group_len(), 4);
        let t = Instant::now();
        // Pieces 4..8 arrive out of order while the others are still coming.
        assert!(w.add(6, piece(6), t, |_| true).is_empty());
        assert!(w.add(4, piece(4), t, |_| true).is_empty());
        assert!(w.add(5, piece(5), t, |_| true).is_empty());
        let runs = w.add(7, piece(7), t, |_| true);
        assert_eq!(shape(&runs), vec![(4, 4)]);
        let tags: Vec<u8> = runs[0].pieces.iter().map(|d| d[0]).collect();
        assert_eq!(tags, vec![4, 5, 6, 7]);
        assert_eq!(w.held(), 0);
    }

    #[test]
    fn a_piece_whose_neighbours_are_not_coming_is_written_at_once() {
        let mut w = WriteBehind::new(K, 100);
        let t = Instant::now();
        // Piece 9 is coming, 10 and 11 are not (we have them, or nobody fetches them).
        assert_eq!(shape(&w.add(8, piece(8), t, |q| q == 9)), vec![(8, 1)]);
        // Held pieces of the group go with it, as consecutive runs.
        assert!(w.add(12, piece(12), t, |_| true).is_empty());
        assert!(w.add(14, piece(14), t, |_| true).is_empty());
        assert_eq!(
            shape(&w.add(15, piece(15), t, |q| q != 13)),
            vec![(12, 1), (14, 2)]
        );
    }

    #[test]
    fn the_last_short_group_and_one_piece_groups() {
        // 10 pieces: the last group is 8..10.
        let mut w = WriteBehind::new(K, 10);
        let t = Instant::now();
        assert!(w.add(9, piece(9), t, |_| true).is_empty());
        assert_eq!(shape(&w.add(8, piece(8), t, |_| true)), vec![(8, 2)]);
        // Pieces of 1 MiB and more: every piece is its own group.
        let mut w = WriteBehind::new(4 << 20, 10);
        assert_eq!(shape(&w.add(3, piece(3), t, |_| true)), vec![(3, 1)]);
    }

    #[test]
    fn holding_is_bounded_in_count_and_time() {
        let mut w = WriteBehind::new(K, 100);
        let t = Instant::now();
        let later = t + Duration::from_millis(10);
        assert!(w.add(0, piece(0), t, |_| true).is_empty());
        assert!(w.add(1, piece(1), t, |_| true).is_empty());
        for p in [4, 8, 12, 16, 20, 24] {
            assert!(w.add(p, piece(p as u8), later, |_| true).is_empty());
        }
        // A ninth held piece is over the cap of two groups (8): the oldest group goes.
        assert_eq!(shape(&w.add(28, piece(28), later, |_| true)), vec![(0, 2)]);
        assert_eq!(w.held(), 7);
        // Time: nothing yet, then every group with a piece held too long.
        assert_eq!(w.deadline(MAX_HOLD), Some(later + MAX_HOLD));
        assert!(w.expired(later, MAX_HOLD).is_empty());
        let runs = w.expired(later + MAX_HOLD, MAX_HOLD);
        assert_eq!(runs.len(), 7);
        assert!(runs.iter().all(|r| r.pieces.len() == 1));
        assert_eq!(w.held(), 0);
        assert_eq!(w.deadline(MAX_HOLD), None);
        assert!(w.drain().is_empty());
    }
}
