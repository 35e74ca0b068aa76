//! Complete pieces waiting a moment to be hashed together: SHA-1 of several pieces at once
//! (`sha1-lanes`) costs less per piece than one at a time (16 at once on AVX-512, two
//! interleaved on SHA-NI; the rates measured are in BENCHMARKS.md), so pieces that complete
//! within a few milliseconds of each other share one disk job.

use std::time::{Duration, Instant};

use engine::PieceData;
use metainfo::PieceIndex;

/// The longest a piece waits for others before its batch is hashed.
pub const MAX_WAIT: Duration = Duration::from_millis(3);

/// Pieces hashed together in one disk job: 16 where AVX-512 is the faster path for 16 (they
/// fit beside the write-behind's two groups under the engine's `max_checking` of 24), else two
/// where the CPU has SHA-NI, else one (no waiting).
pub fn batch_size() -> usize {
    match sha1_lanes::avx512_from() {
        Some(_) => 16,
        _ if sha1_lanes::best_lanes() >= 2 => 2,
        _ => 1,
    }
}

/// The pieces waiting, at most one batch.
#[derive(Debug)]
pub struct HashQueue {
    batch: usize,
    waiting: Vec<(PieceIndex, PieceData)>,
    /// When the first piece waiting was queued.
    since: Option<Instant>,
}

impl HashQueue {
    /// An empty queue handing out batches of `batch` pieces (at least one).
    pub fn new(batch: usize) -> Self {
        let batch = batch.max(1);
        HashQueue {
            batch,
            waiting: Vec::with_capacity(batch),
            since: None,
        }
    }

    /// Queues a piece at `now`; returns the batch once it is full.
    pub fn push(
        &mut self,
        piece: PieceIndex,
        data: PieceData,
        now: Instant,
    ) -> Option<Vec<(PieceIndex, PieceData)>> {
        self.since.get_or_insert(now);
        self.waiting.push((piece, data));
        (self.waiting.len() >= self.batch).then(|| self.take())
    }

    /// When the pieces waiting must go, full batch or not: [`MAX_WAIT`] after the first.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|t| t + MAX_WAIT)
    }

    /// Every piece waiting.
    pub fn take(&mut self) -> Vec<(PieceIndex, PieceData)> {
        self.since = None;
        std::mem::replace(&mut self.waiting, Vec::with_capacity(self.batch))
    }
}

/// Which of `pieces` match their SHA-1 in `want`: pieces of length `full` are hashed together,
/// the rest one at a time.
pub fn verify(pieces: &[&[u8]], want: &[Option<&[u8; 20]>], full: usize) -> Vec<bool> {
    use sha1::{Digest, Sha1};
    let mut ok = vec![false; pieces.len()];
    let together: Vec<usize> = (0..pieces.len())
        .filter(|&i| pieces[i].len() == full)
        .collect();
    for group in together.chunks(sha1_lanes::MAX_LANES) {
        let parts: Vec<&[u8]> = group.iter().map(|&i| pieces[i]).collect();
        let digests = if parts.len() == 1 {
            vec![Sha1::digest(parts[0]).into()]
        } else {
            sha1_lanes::digest_all(&parts)
        };
        for (&i, d) in group.iter().zip(digests) {
            ok[i] = want[i].is_some_and(|w| *w == d);
        }
    }
    for i in (0..pieces.len()).filter(|&i| pieces[i].len() != full) {
        ok[i] = want[i].is_some_and(|w| w[..] == Sha1::digest(pieces[i])[..]);
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};

    #[test]
    fn verify_finds_exactly_the_matching_pieces() {
        let pieces: Vec<Vec<u8>> = (0..11u8)
            .map(|i| vec![i; if i == 10 { 100 } else { 4096 }])
            .collect();
        let mut want: Vec<[u8; 20]> = pieces.iter().map(|p| Sha1::digest(p).into()).collect();
        want[3][0] ^= 1; // piece 3 is corrupt
        want[10][19] ^= 1; // and the short last one
        let refs: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        let mut wants: Vec<Option<&[u8; 20]>> = want.iter().map(Some).collect();
        wants[5] = None; // no hash known: never a match
        let ok = verify(&refs, &wants, 4096);
        let bad: Vec<usize> = (0..11).filter(|&i| !ok[i]).collect();
        assert_eq!(bad, vec![3, 5, 10]);
        // One piece alone, and none.
        assert_eq!(verify(&refs[..1], &wants[..1], 4096), vec![true]);
        assert!(verify(&[], &[], 4096).is_empty());
    }

    #[test]
    fn queue_hands_out_full_batches_and_the_rest_on_take() {
        let g = metainfo::Geometry::new(10 * 16384, 16384).unwrap();
        let piece = |i| g.piece(i).unwrap();
        let data = || PieceData::from(vec![0u8; 16384]);
        let t0 = Instant::now();
        let mut q = HashQueue::new(3);
        assert_eq!(q.deadline(), None);
        assert!(q.push(piece(0), data(), t0).is_none());
        assert!(q.push(piece(1), data(), t0 + MAX_WAIT).is_none());
        assert_eq!(q.deadline(), Some(t0 + MAX_WAIT), "set by the first piece");
        let batch = q.push(piece(2), data(), t0).unwrap();
        assert_eq!(q.deadline(), None);
        assert_eq!(
            batch.iter().map(|(p, _)| p.get()).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert!(q.push(piece(3), data(), t0).is_none());
        assert_eq!(q.take().len(), 1);
        assert!(q.take().is_empty());
    }
}
