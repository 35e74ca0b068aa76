//! The block-by-block state of one piece in progress.

use metainfo::PieceIndex;

/// What we know about one block of a piece in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Block {
    /// Nobody has it requested and it has not arrived.
    Free,
    /// Requested from this many peers (more than one only in end-game), not yet arrived.
    Requested(u16),
    /// Arrived (the piece may still fail its hash check).
    Received,
}

/// A piece with at least one block requested or received.
#[derive(Debug, Clone)]
pub(super) struct Partial {
    pub(super) piece: PieceIndex,
    blocks: Vec<Block>,
    free: u32,
    requested: u32,
    received: u32,
    /// No block before this index is [`Block::Free`] (a hint that keeps picking O(1) per block).
    first_free: u32,
}

impl Partial {
    /// A piece of `count` blocks, all free.
    pub(super) fn new(piece: PieceIndex, count: u32) -> Self {
        Partial {
            piece,
            blocks: vec![Block::Free; count as usize],
            free: count,
            requested: 0,
            received: 0,
            first_free: 0,
        }
    }

    /// Blocks in the piece.
    pub(super) fn len(&self) -> u32 {
        self.blocks.len() as u32
    }

    /// Blocks nobody has requested.
    pub(super) fn free(&self) -> u32 {
        self.free
    }

    /// Blocks requested and not yet arrived.
    pub(super) fn requested(&self) -> u32 {
        self.requested
    }

    /// Blocks arrived.
    pub(super) fn received(&self) -> u32 {
        self.received
    }

    /// True once every block has arrived (the piece awaits its hash check).
    pub(super) fn is_full(&self) -> bool {
        self.received == self.len()
    }

    /// The state of block `n`.
    pub(super) fn get(&self, n: u32) -> Option<Block> {
        self.blocks.get(n as usize).copied()
    }

    /// Requests up to `room` free blocks in order, each one `take(n)` accepts (it declines
    /// blocks the peer already has outstanding); returns how many were taken.
    pub(super) fn take_free(&mut self, room: usize, mut take: impl FnMut(u32) -> bool) -> usize {
        let mut taken = 0;
        let mut declined = None;
        let mut n = self.first_free;
        while n < self.len() && taken < room && self.free > 0 {
            if self.get(n) == Some(Block::Free) {
                if take(n) {
                    self.request(n);
                    taken += 1;
                } else {
                    declined.get_or_insert(n);
                }
            }
            n += 1;
        }
        self.first_free = declined.unwrap_or(n);
        taken
    }

    /// Indices of blocks requested and not yet arrived.
    pub(super) fn busy_blocks(&self) -> impl Iterator<Item = (u32, u16)> + '_ {
        self.blocks.iter().enumerate().filter_map(|(i, b)| match b {
            Block::Requested(n) => Some((i as u32, *n)),
            _ => None,
        })
    }

    /// One more peer asked for block `n`; returns true if it was free.
    pub(super) fn request(&mut self, n: u32) -> bool {
        let Some(b) = self.blocks.get_mut(n as usize) else {
            return false;
        };
        match *b {
            Block::Free => {
                *b = Block::Requested(1);
                self.free -= 1;
                self.requested += 1;
                true
            }
            Block::Requested(c) => {
                *b = Block::Requested(c.saturating_add(1));
                false
            }
            Block::Received => false,
        }
    }

    /// One request for block `n` is gone; returns true if the block became free.
    pub(super) fn drop_request(&mut self, n: u32) -> bool {
        let Some(b) = self.blocks.get_mut(n as usize) else {
            return false;
        };
        match *b {
            Block::Requested(c) if c > 1 => {
                *b = Block::Requested(c - 1);
                false
            }
            Block::Requested(_) => {
                *b = Block::Free;
                self.requested -= 1;
                self.free += 1;
                self.first_free = self.first_free.min(n);
                true
            }
            Block::Free | Block::Received => false,
        }
    }

    /// Block `n` arrived; returns its state before, or `None` if there is no such block.
    pub(super) fn receive(&mut self, n: u32) -> Option<Block> {
        let b = self.blocks.get_mut(n as usize)?;
        let before = *b;
        match before {
            Block::Free => self.free -= 1,
            Block::Requested(_) => self.requested -= 1,
            Block::Received => return Some(before),
        }
        *b = Block::Received;
        self.received += 1;
        Some(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::Geometry;

    #[test]
    fn counters_follow_block_states() {
        let g = Geometry::new(4 * 16384, 4 * 16384).unwrap();
        let mut p = Partial::new(g.piece(0).unwrap(), 4);
        assert!(p.request(0));
        assert!(!p.request(0), "second request of a busy block");
        assert_eq!((p.free(), p.requested(), p.received()), (3, 1, 0));
        assert!(!p.drop_request(0), "one requester left");
        assert!(p.drop_request(0));
        assert_eq!((p.free(), p.requested()), (4, 0));
        // Take two, declining block 0: blocks 1 and 2 are taken.
        assert_eq!(p.take_free(2, |n| n != 0), 2);
        assert_eq!(p.busy_blocks().collect::<Vec<_>>(), vec![(1, 1), (2, 1)]);
        assert_eq!(
            p.take_free(9, |_| true),
            2,
            "0 was declined, not skipped for good"
        );
        assert_eq!(p.free(), 0);
        for n in 0..4 {
            p.drop_request(n);
        }
        assert_eq!(p.take_free(1, |_| true), 1);
        assert_eq!(p.busy_blocks().collect::<Vec<_>>(), vec![(0, 1)]);
        p.drop_request(0);
        p.drop_request(1);
        p.drop_request(2);
        assert_eq!(p.receive(3), Some(Block::Free));
        assert_eq!(p.receive(3), Some(Block::Received));
        assert_eq!(p.receive(9), None);
        p.request(2);
        assert_eq!(p.busy_blocks().collect::<Vec<_>>(), vec![(2, 1)]);
        assert_eq!(p.receive(2), Some(Block::Requested(1)));
        p.receive(0);
        p.receive(1);
        assert!(p.is_full());
        assert_eq!((p.free(), p.requested(), p.received()), (0, 0, 4));
    }
}
