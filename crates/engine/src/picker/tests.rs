//! One test per picking rule, plus a whole-download simulation on 16,384 pieces.

use std::collections::{HashMap, HashSet};

use metainfo::{BLOCK_SIZE, Bitfield, BlockRef, Geometry, PieceIndex};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{BlockReceived, Picker, PickerConfig};

/// `pieces` pieces of `blocks` full blocks each.
fn geometry(pieces: u32, blocks: u32) -> Geometry {
    let len = u64::from(blocks * BLOCK_SIZE);
    Geometry::new(u64::from(pieces) * len, len).unwrap()
}

fn piece(g: &Geometry, i: u32) -> PieceIndex {
    g.piece(i).unwrap()
}

/// A bitfield with exactly the pieces `ones`.
fn bits(g: &Geometry, ones: impl IntoIterator<Item = u32>) -> Bitfield {
    let mut b = Bitfield::new(g.piece_count());
    for i in ones {
        b.set(piece(g, i));
    }
    b
}

fn config(random_first: u32, max_partial: usize) -> PickerConfig {
    PickerConfig {
        random_first,
        max_partial,
    }
}

fn nothing_outstanding(_: BlockRef) -> bool {
    false
}

/// Picks up to `max` blocks for `peer` with no outstanding requests.
fn pick(p: &mut Picker, peer: &Bitfield, max: usize, rng: &mut StdRng) -> Vec<BlockRef> {
    let mut out = Vec::new();
    p.pick(peer, &nothing_outstanding, max, rng, &mut out);
    p.check();
    out
}

fn pieces_of(blocks: &[BlockRef]) -> Vec<u32> {
    let mut v: Vec<u32> = blocks.iter().map(|b| b.piece().get()).collect();
    v.dedup();
    v
}

#[test]
fn rarest_piece_first() {
    let g = geometry(8, 1);
    let mut p = Picker::new(g, Bitfield::new(8), config(0, 32));
    let seed = Bitfield::full(8);
    p.peer_bitfield(&seed);
    p.peer_bitfield(&bits(&g, (0..8).filter(|&i| i != 5)));
    let mut rng = StdRng::seed_from_u64(1);
    assert_eq!(pieces_of(&pick(&mut p, &seed, 1, &mut rng)), vec![5]);
    // The rest are at 2 until a HAVE makes piece 3 the commonest: it comes last.
    p.peer_bitfield(&Bitfield::new(8));
    p.peer_have(piece(&g, 3), &bits(&g, [3]));
    let next = pick(&mut p, &seed, 7, &mut rng);
    assert_eq!(next.len(), 7);
    assert_eq!(
        next.last().unwrap().piece().get(),
        3,
        "the commonest piece comes last"
    );
}

#[test]
fn equally_rare_pieces_are_picked_at_random() {
    let g = geometry(16, 1);
    let seed = Bitfield::full(16);
    let mut seen = HashMap::new();
    for s in 0..200 {
        let mut p = Picker::new(g, Bitfield::new(16), config(0, 32));
        p.peer_bitfield(&seed);
        p.peer_bitfield(&bits(&g, (0..16).filter(|&i| i != 2 && i != 6 && i != 13)));
        let mut rng = StdRng::seed_from_u64(s);
        let first = pick(&mut p, &seed, 1, &mut rng)[0].piece().get();
        *seen.entry(first).or_insert(0) += 1;
    }
    let mut keys: Vec<_> = seen.keys().copied().collect();
    keys.sort_unstable();
    assert_eq!(keys, vec![2, 6, 13], "only the rarest pieces");
    assert!(
        seen.values().all(|&n| n >= 30),
        "each tie wins sometimes: {seen:?}"
    );
}

#[test]
fn equally_rare_pieces_of_a_started_extent_come_next_in_order() {
    // 64 pieces of 256 KiB: extents of 16. One seed; the first pick is random, then the picker
    // walks the rest of that extent in order before it starts another one.
    let g = geometry(64, 16);
    assert_eq!(super::extent_pieces(&g), 16);
    let seed = Bitfield::full(64);
    for s in 0..20 {
        let mut p = Picker::new(g, Bitfield::new(64), config(0, 64));
        p.peer_bitfield(&seed);
        let mut rng = StdRng::seed_from_u64(s);
        let first = pieces_of(&pick(&mut p, &seed, 16, &mut rng))[0];
        let extent = first / 16 * 16;
        let next = pieces_of(&pick(&mut p, &seed, 15 * 16, &mut rng));
        let want: Vec<u32> = (extent..extent + 16).filter(|&i| i != first).collect();
        assert_eq!(next, want, "seed {s}: the rest of the extent, in order");
    }
}

#[test]
fn extent_affinity_is_for_seeds_and_a_lone_peer_not_for_trading_leechers() {
    let g = geometry(64, 16);
    // A peer with every piece but the last: not a seed.
    let leecher = bits(&g, 0..63);
    let in_order = |peers: usize, s: u64| {
        let mut p = Picker::new(g, Bitfield::new(64), config(0, 64));
        p.peer_bitfield(&leecher);
        p.set_peer_count(peers);
        let mut rng = StdRng::seed_from_u64(s);
        let first = pieces_of(&pick(&mut p, &leecher, 16, &mut rng))[0];
        let next = pieces_of(&pick(&mut p, &leecher, 3 * 16, &mut rng));
        let extent = first / 16 * 16;
        let want: Vec<u32> = (extent..extent + 16)
            .filter(|&i| i != first && i != 63)
            .take(3)
            .collect();
        next == want
    };
    assert!((0..20).all(|s| in_order(1, s)), "our only peer: in order");
    assert!(
        (0..20).filter(|&s| in_order(5, s)).count() < 5,
        "one of several leechers: at random"
    );
}

#[test]
fn a_rarer_piece_beats_the_extent_in_progress() {
    let g = geometry(64, 16);
    let seed = Bitfield::full(64);
    let mut p = Picker::new(g, Bitfield::new(64), config(0, 64));
    p.peer_bitfield(&seed);
    let mut rng = StdRng::seed_from_u64(3);
    let first = pieces_of(&pick(&mut p, &seed, 16, &mut rng))[0];
    // A second peer has every piece but one far from the extent: that piece is now rarer.
    let lone = (first + 32) % 64;
    p.peer_bitfield(&bits(&g, (0..64).filter(|&i| i != lone)));
    assert_eq!(pieces_of(&pick(&mut p, &seed, 16, &mut rng)), vec![lone]);
}

#[test]
fn random_pieces_until_we_have_random_first() {
    let g = geometry(64, 1);
    let evens = bits(&g, (0..64).step_by(2));
    let mut seen = HashSet::new();
    for s in 0..100 {
        let mut p = Picker::new(g, Bitfield::new(64), config(4, 32));
        p.peer_bitfield(&Bitfield::full(64));
        p.peer_bitfield(&bits(&g, 1..64)); // piece 0 is the rarest
        p.peer_bitfield(&evens);
        let mut rng = StdRng::seed_from_u64(s);
        let first = pick(&mut p, &evens, 1, &mut rng)[0].piece().get();
        assert_eq!(first % 2, 0, "only pieces the peer has");
        seen.insert(first);
    }
    assert!(seen.len() >= 15, "spread over many pieces: {seen:?}");

    // With 4 pieces in hand, rarest-first takes over.
    let mut p = Picker::new(g, bits(&g, [10, 20, 30, 40]), config(4, 32));
    p.peer_bitfield(&Bitfield::full(64));
    p.peer_bitfield(&bits(&g, 1..64));
    let mut rng = StdRng::seed_from_u64(7);
    assert_eq!(pieces_of(&pick(&mut p, &evens, 1, &mut rng)), vec![0]);
}

#[test]
fn partial_pieces_are_continued_before_new_ones() {
    let g = geometry(32, 4);
    let seed = Bitfield::full(32);
    let mut p = Picker::new(g, Bitfield::new(32), config(0, 32));
    p.peer_bitfield(&seed);
    let mut rng = StdRng::seed_from_u64(2);
    let first = pick(&mut p, &seed, 2, &mut rng);
    let started = pieces_of(&first);
    assert_eq!(started.len(), 1);
    // Every piece is equally rare: the next blocks finish the started piece.
    let second = pick(&mut p, &seed, 2, &mut rng);
    assert_eq!(pieces_of(&second), started);
    assert_eq!(p.partial_count(), 1);
    // Of two partial pieces, the one with fewer free blocks goes first.
    let other = pick(&mut p, &seed, 1, &mut rng);
    assert_ne!(pieces_of(&other), started);
    p.request_dropped(first[0]); // the started piece has one free block, the other three
    assert_eq!(pick(&mut p, &seed, 1, &mut rng), vec![first[0]]);
}

#[test]
fn partial_cap_limits_new_pieces_for_peers_fed_from_partials() {
    let g = geometry(8, 4);
    let a = Bitfield::full(8);
    let b = bits(&g, [7]);
    let mut p = Picker::new(g, Bitfield::new(8), config(0, 1));
    p.peer_bitfield(&a);
    p.peer_bitfield(&b);
    let mut rng = StdRng::seed_from_u64(3);
    let x = pick(&mut p, &a, 2, &mut rng);
    assert_eq!(x.len(), 2);
    assert_ne!(x[0].piece().get(), 7, "7 is the commonest");
    // B cannot be fed from A's piece: it may start one piece even at the cap.
    let y = pick(&mut p, &b, 10, &mut rng);
    assert_eq!(pieces_of(&y), vec![7]);
    assert_eq!(y.len(), 4);
    // A gets the rest of its piece but no new piece: two are in progress, the cap is one.
    let more = pick(&mut p, &a, 10, &mut rng);
    assert_eq!(more.len(), 2);
    assert_eq!(pieces_of(&more), pieces_of(&x));
    // Nothing left in progress for A: it may start exactly one new piece.
    let fresh = pick(&mut p, &a, 10, &mut rng);
    assert_eq!(fresh.len(), 4);
    assert_eq!(pieces_of(&fresh).len(), 1);
    assert_eq!(p.partial_count(), 3);
}

#[test]
fn pieces_we_have_and_blocks_received_are_never_picked() {
    let g = geometry(8, 2);
    let mut p = Picker::new(g, bits(&g, [0, 1, 2, 3]), config(0, 32));
    let seed = Bitfield::full(8);
    p.peer_bitfield(&seed);
    let mut rng = StdRng::seed_from_u64(4);
    let got = pick(&mut p, &seed, 3, &mut rng);
    assert!(got.iter().all(|b| b.piece().get() >= 4));
    // A block whose request was dropped arrives anyway: it is kept and not asked for again.
    p.request_dropped(got[0]);
    assert_eq!(
        p.block_received(got[0]),
        BlockReceived::Fresh {
            piece_complete: false
        }
    );
    p.check();
    let rest = pick(&mut p, &seed, 100, &mut rng);
    assert_eq!(rest.len(), 8 - 3);
    assert!(
        rest.iter()
            .all(|b| b.piece().get() >= 4 && !got.contains(b))
    );
    assert_eq!(p.block_received(got[0]), BlockReceived::Duplicate);
}

#[test]
fn blocks_the_peer_has_outstanding_are_skipped() {
    let g = geometry(1, 4);
    let mut p = Picker::new(g, Bitfield::new(1), config(0, 32));
    let seed = Bitfield::full(1);
    p.peer_bitfield(&seed);
    p.peer_bitfield(&seed);
    let mut rng = StdRng::seed_from_u64(5);
    let a: Vec<BlockRef> = pick(&mut p, &seed, 4, &mut rng);
    // Block 1 timed out: the picker frees it, but A's request is still open on the wire.
    p.request_dropped(a[1]);
    let a_open: HashSet<BlockRef> = a.iter().copied().collect();
    let mut out = Vec::new();
    p.pick(&seed, &|b| a_open.contains(&b), 4, &mut rng, &mut out);
    assert!(out.is_empty(), "A must not be asked for block 1 twice");
    // Another peer gets it.
    assert_eq!(pick(&mut p, &seed, 4, &mut rng), vec![a[1]]);
}

#[test]
fn end_game_only_when_every_block_is_requested() {
    let g = geometry(2, 2);
    let seed = Bitfield::full(2);
    let mut p = Picker::new(g, Bitfield::new(2), config(0, 32));
    for _ in 0..3 {
        p.peer_bitfield(&seed);
    }
    let mut rng = StdRng::seed_from_u64(6);
    let a = pick(&mut p, &seed, 3, &mut rng);
    assert!(!p.in_endgame());
    // One block is still free: B gets it, not a busy one.
    let b = pick(&mut p, &seed, 3, &mut rng);
    assert_eq!(b.len(), 1);
    assert!(!a.contains(&b[0]));
    assert!(p.in_endgame());
    // B has a block outstanding: no busy block for it.
    let mut out = Vec::new();
    p.pick(&seed, &|x| x == b[0], 3, &mut rng, &mut out);
    assert!(out.is_empty());
    // Peers with nothing outstanding get exactly one busy block each, fewest requesters first:
    // four such peers get the four blocks, each now fetched twice.
    let mut busy = Vec::new();
    for _ in 0..4 {
        let got = pick(&mut p, &seed, 3, &mut rng);
        assert_eq!(got.len(), 1);
        assert!(
            !busy.contains(&got[0]),
            "{:?} handed out twice before the others",
            got[0]
        );
        busy.push(got[0]);
    }
    assert!(busy.iter().all(|x| a.contains(x) || b.contains(x)));
    let c = busy;
    // The first copy counts, the second is a duplicate; dropping the loser's request is a no-op.
    assert!(matches!(
        p.block_received(c[0]),
        BlockReceived::Fresh { .. }
    ));
    assert_eq!(p.block_received(c[0]), BlockReceived::Duplicate);
    p.request_dropped(c[0]);
    p.check();
}

#[test]
fn failed_piece_is_downloaded_again() {
    let g = geometry(2, 2);
    let seed = Bitfield::full(2);
    let mut p = Picker::new(g, Bitfield::new(2), config(0, 32));
    p.peer_bitfield(&seed);
    let mut rng = StdRng::seed_from_u64(7);
    let got = pick(&mut p, &seed, 2, &mut rng);
    assert_eq!(pieces_of(&got).len(), 1);
    assert_eq!(
        p.block_received(got[0]),
        BlockReceived::Fresh {
            piece_complete: false
        }
    );
    assert_eq!(
        p.block_received(got[1]),
        BlockReceived::Fresh {
            piece_complete: true
        }
    );
    p.piece_failed(got[0].piece());
    p.check();
    let again = pick(&mut p, &seed, 4, &mut rng);
    assert_eq!(again.len(), 4, "the failed piece's blocks are free again");
    assert!(got.iter().all(|b| again.contains(b)));
    assert!(p.in_endgame());
}

#[test]
fn short_last_piece_and_short_last_block() {
    // Pieces of 32 KiB; the last is 16,384 + 100 bytes: a full block and a 100-byte block.
    let g = Geometry::new(2 * 32768 + 16384 + 100, 32768).unwrap();
    let mut p = Picker::new(g, Bitfield::new(3), config(0, 32));
    let seed = Bitfield::full(3);
    p.peer_bitfield(&seed);
    let mut rng = StdRng::seed_from_u64(8);
    let all = pick(&mut p, &seed, 100, &mut rng);
    assert_eq!(all.len(), 6);
    let last: Vec<u32> = all
        .iter()
        .filter(|b| b.piece().get() == 2)
        .map(|b| b.len())
        .collect();
    assert_eq!(last, vec![BLOCK_SIZE, 100]);
    for b in &all {
        if let BlockReceived::Fresh {
            piece_complete: true,
        } = p.block_received(*b)
        {
            p.piece_verified(b.piece());
        }
    }
    assert!(p.is_complete());
    assert_eq!(p.bytes_left(), 0);
    assert!(!p.in_endgame());
    assert!(pick(&mut p, &seed, 10, &mut rng).is_empty());
}

#[test]
fn dropped_requests_free_blocks_and_empty_pieces() {
    let g = geometry(4, 4);
    let seed = Bitfield::full(4);
    let mut p = Picker::new(g, Bitfield::new(4), config(0, 32));
    p.peer_bitfield(&seed);
    let mut rng = StdRng::seed_from_u64(9);
    let got = pick(&mut p, &seed, 2, &mut rng);
    assert_eq!(p.partial_count(), 1);
    p.request_dropped(got[0]);
    assert_eq!(p.partial_count(), 1, "one block still requested");
    p.request_dropped(got[1]);
    assert_eq!(
        p.partial_count(),
        0,
        "nothing requested or received: not in progress"
    );
    p.check();
    assert_eq!(pick(&mut p, &seed, 16, &mut rng).len(), 16);
}

#[test]
fn availability_and_interest() {
    let g = geometry(100, 1);
    let mut p = Picker::new(g, bits(&g, 0..50), config(4, 32));
    let lower = bits(&g, 0..50);
    let upper = bits(&g, 40..100);
    let one = bits(&g, [70]);
    assert!(!p.is_interesting(&lower), "nothing we lack");
    assert!(p.is_interesting(&upper), "more pieces than we have");
    assert!(p.is_interesting(&one), "found by the scan");
    assert!(!p.is_interesting(&Bitfield::new(100)));
    assert!(p.wants(piece(&g, 70)) && !p.wants(piece(&g, 3)));
    p.peer_bitfield(&upper);
    p.peer_bitfield(&Bitfield::new(100));
    p.peer_have(piece(&g, 70), &one);
    assert_eq!(p.availability(piece(&g, 70)), 2);
    p.peer_gone(&upper);
    assert_eq!(p.availability(piece(&g, 70)), 1);
    assert_eq!(p.availability(piece(&g, 71)), 0);
    p.check();
    assert_eq!(p.bytes_left(), 50 * u64::from(BLOCK_SIZE));
    for i in 50..100 {
        p.piece_verified(piece(&g, i));
    }
    assert!(p.is_complete());
    assert!(!p.is_interesting(&upper));
}

#[test]
fn peer_whose_pieces_were_never_reported_is_still_fed() {
    // The caller forgot the peer's BITFIELD: its pieces have availability 0.
    let g = geometry(1000, 1);
    let mut p = Picker::new(g, Bitfield::new(1000), config(0, 32));
    p.peer_bitfield(&bits(&g, 0..500));
    let late = bits(&g, [900, 901]);
    let mut rng = StdRng::seed_from_u64(10);
    let got = pick(&mut p, &late, 5, &mut rng);
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|b| b.piece().get() >= 900));
}

/// A whole download of 16,384 pieces (two blocks each, short last piece) from five peers with
/// different bitfields: every block is requested exactly once until end-game, and the download
/// completes.
#[test]
fn whole_download_of_16384_pieces_requests_each_block_once() {
    let pieces = 16_384u32;
    let g = Geometry::new(u64::from(pieces - 1) * 32768 + 20_000, 32768).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut p = Picker::new(g, Bitfield::new(pieces), config(4, 64));
    let mut peers: Vec<Bitfield> = vec![Bitfield::full(pieces)];
    for k in 0..4u32 {
        peers.push(bits(
            &g,
            (0..pieces).filter(|i| (i * 7 + k) % 5 < 2 + k % 2),
        ));
    }
    for bf in &peers {
        p.peer_bitfield(bf);
    }
    let mut queues: Vec<Vec<BlockRef>> = vec![Vec::new(); peers.len()];
    let mut requests: HashMap<BlockRef, u32> = HashMap::new();
    let mut busy_requests = 0;
    let mut rounds = 0;
    while !p.is_complete() {
        rounds += 1;
        assert!(rounds < 1_000_000, "no progress");
        for (k, bf) in peers.iter().enumerate() {
            let open: HashSet<BlockRef> = queues[k].iter().copied().collect();
            let room = 48usize.saturating_sub(open.len());
            let endgame = p.in_endgame();
            let mut out = Vec::new();
            p.pick(bf, &|b| open.contains(&b), room, &mut rng, &mut out);
            for b in &out {
                assert!(!open.contains(b), "{b:?} already outstanding on peer {k}");
                if endgame {
                    busy_requests += 1;
                } else {
                    *requests.entry(*b).or_insert(0) += 1;
                }
            }
            queues[k].extend(out);
            // The peer delivers its oldest few requests (peers deliver at different speeds).
            let n = queues[k].len().min(1 + k * 3);
            for b in queues[k].drain(..n).collect::<Vec<_>>() {
                if let BlockReceived::Fresh {
                    piece_complete: true,
                } = p.block_received(b)
                {
                    p.piece_verified(b.piece());
                }
            }
        }
        if rounds % 4096 == 0 {
            p.check();
        }
    }
    p.check();
    let total_blocks: u64 = g.pieces().map(|x| u64::from(g.block_count(x))).sum();
    assert_eq!(total_blocks, 32_768);
    assert!(
        requests.values().all(|&n| n == 1),
        "a block requested twice outside end-game"
    );
    assert_eq!(
        requests.len() as u64,
        total_blocks,
        "each block once before end-game"
    );
    assert!(
        busy_requests > 0,
        "the slow seed's last blocks were fetched again in end-game"
    );
    assert_eq!(p.bytes_left(), 0);
    assert_eq!(p.partial_count(), 0);
    let short = requests.keys().filter(|b| b.len() != BLOCK_SIZE).count();
    assert_eq!(short, 1, "the short last block was requested");
}

#[test]
fn rarest_first_holds_when_the_rarest_pieces_are_ones_the_peer_lacks() {
    // 600 pieces only A has fill the rarest bucket (more than the scan budget); the peer T
    // has none of them, so the search falls back to T's bitfield and must still find T's
    // rarest pieces, 900..950.
    let g = geometry(1000, 1);
    let t = bits(&g, 600..1000);
    let mut seen = HashSet::new();
    for s in 0..20 {
        let mut p = Picker::new(g, Bitfield::new(1000), config(0, 32));
        p.peer_bitfield(&Bitfield::full(1000));
        p.peer_bitfield(&t);
        p.peer_bitfield(&bits(&g, (600..1000).filter(|i| !(900..950).contains(i))));
        let mut rng = StdRng::seed_from_u64(s);
        let got = pick(&mut p, &t, 3, &mut rng);
        assert_eq!(got.len(), 3);
        for b in got {
            assert!((900..950).contains(&b.piece().get()), "{b:?}");
            seen.insert(b.piece().get());
        }
    }
    assert!(seen.len() >= 10, "ties spread: {seen:?}");
}

#[test]
fn bitfield_walk_visits_candidates_in_order() {
    let g = geometry(130, 1);
    let peer = bits(&g, [3, 63, 64, 65, 100, 129]);
    let skip = bits(&g, [65]);
    let none = Bitfield::new(130);
    let mut v = Vec::new();
    super::for_each_one(&peer, &skip, &none, |i| {
        v.push(i);
        i < 100
    });
    assert_eq!(v, vec![3, 63, 64, 100], "stops when told");
}

#[test]
fn random_first_draw_is_uniform_over_clustered_pieces() {
    // Two clusters of ten pieces far apart: a "random start, next piece" draw would pick the
    // first piece of a cluster most of the time.
    assert_uniform_over_two_clusters(
        |g, peer| {
            let mut p = Picker::new(*g, Bitfield::new(1000), config(4, 32));
            p.peer_bitfield(peer);
            p
        },
        |_| {},
    );
}

/// Draws one new piece 400 times (seeds 0..400) from a fresh picker made by `make` for a peer
/// with two clusters of ten pieces far apart (0..10, 500..510) of 1,000, checks each picker
/// after its draw with `after`, and asserts every piece was drawn and none far more often than
/// the ~20 a uniform draw gives (a "random start, next piece" draw would favour the first
/// piece of a cluster).
fn assert_uniform_over_two_clusters(
    make: impl Fn(&Geometry, &Bitfield) -> Picker,
    after: impl Fn(&Picker),
) {
    let g = geometry(1000, 1);
    let peer = bits(&g, (0..10).chain(500..510));
    let mut counts: HashMap<u32, u32> = HashMap::new();
    for s in 0..400 {
        let mut p = make(&g, &peer);
        let mut rng = StdRng::seed_from_u64(s);
        *counts
            .entry(pick(&mut p, &peer, 1, &mut rng)[0].piece().get())
            .or_insert(0) += 1;
        after(&p);
    }
    assert_eq!(counts.len(), 20, "every piece drawn: {counts:?}");
    assert!(
        counts.values().all(|&n| n <= 45),
        "expected ~20 each: {counts:?}"
    );
}

/// Receives every block of `blocks` and verifies each piece they complete.
fn deliver(p: &mut Picker, blocks: &[BlockRef]) {
    for b in blocks {
        if let BlockReceived::Fresh {
            piece_complete: true,
        } = p.block_received(*b)
        {
            p.piece_verified(b.piece());
        }
    }
    p.check();
}

#[test]
fn while_only_seeds_are_known_no_per_piece_availability_is_kept() {
    let n = 16_384u32;
    let g = geometry(n, 1);
    let mut p = Picker::new(g, Bitfield::new(n), config(0, 64));
    let seed = Bitfield::full(n);
    for _ in 0..3 {
        p.peer_bitfield(&seed);
    }
    // HAVE NONE: a peer with no piece to count.
    p.peer_bitfield(&Bitfield::new(n));
    let mut rng = StdRng::seed_from_u64(12);
    let got = pick(&mut p, &seed, 8, &mut rng);
    assert_eq!(got.len(), 8);
    deliver(&mut p, &got);
    assert_eq!(p.have().count(), 8);
    assert!(!p.availability.is_built());
    assert_eq!(p.availability.per_piece_bytes(), 0);
    assert_eq!(p.availability.seeds(), 3);
    assert!((0..n).all(|i| p.availability(piece(&g, i)) == 3));

    // The first peer that is not a seed builds it; the pieces we got stay out of the order
    // (`check`), and the counts are those of the four peers.
    let leecher = bits(&g, (0..n).step_by(3));
    p.peer_bitfield(&leecher);
    assert!(p.availability.is_built());
    assert!(p.availability.per_piece_bytes() >= 10 * n as usize);
    p.check();
    for i in 0..n {
        let want = 3 + u32::from(leecher.get(i));
        assert_eq!(p.availability(piece(&g, i)), want, "piece {i}");
    }
    // Rarest first from then on: only pieces the leecher lacks, also within the extent the
    // seed was being fed from.
    let next = pick(&mut p, &seed, 40, &mut rng);
    assert_eq!(next.len(), 40);
    assert!(
        next.iter().all(|b| b.piece().get() % 3 != 0),
        "a piece the leecher has was picked: {:?}",
        pieces_of(&next)
    );
    // Once built it stays, even with only seeds left.
    p.peer_gone(&leecher);
    assert!(p.availability.is_built());
    assert!((0..n).all(|i| p.availability(piece(&g, i)) == 3));
    p.check();
}

#[test]
fn with_only_seeds_known_new_pieces_are_drawn_uniformly() {
    // Every piece is as rare as any other: the rarest-first draw over two clusters of ten
    // pieces far apart must not favour the first piece of a cluster.
    assert_uniform_over_two_clusters(
        |g, _| {
            let mut p = Picker::new(*g, Bitfield::new(1000), config(0, 32));
            p.peer_bitfield(&Bitfield::full(1000));
            p.set_peer_count(2);
            p
        },
        |p| assert!(!p.availability.is_built()),
    );
}

#[test]
fn a_peer_that_completes_its_bitfield_moves_to_the_seed_counter() {
    let g = geometry(8, 1);
    let mut p = Picker::new(g, Bitfield::new(8), config(0, 32));
    let other = bits(&g, [1, 2]);
    let mut l = bits(&g, (0..8).filter(|&i| i != 3 && i != 5));
    p.peer_bitfield(&Bitfield::full(8));
    p.peer_bitfield(&other);
    p.peer_bitfield(&l);
    l.set(piece(&g, 3));
    p.peer_have(piece(&g, 3), &l);
    assert_eq!(p.availability.seeds(), 1);
    assert_eq!(p.availability(piece(&g, 3)), 2);
    assert_eq!(p.availability(piece(&g, 5)), 1);
    // Its last piece: it is a seed now, and only `other` is left in the per-piece counts.
    l.set(piece(&g, 5));
    p.peer_have(piece(&g, 5), &l);
    assert!(l.is_full());
    assert_eq!(p.availability.seeds(), 2);
    for i in 0..8 {
        let want = 2 + u32::from(other.get(i));
        assert_eq!(p.availability(piece(&g, i)), want, "piece {i}");
    }
    let mut zero = p.availability.bucket(0).to_vec();
    zero.sort_unstable();
    assert_eq!(zero, vec![0, 3, 4, 5, 6, 7]);
    p.check();
    // It leaves as a seed: back to what the seed and `other` give.
    p.peer_gone(&l);
    assert_eq!(p.availability.seeds(), 1);
    for i in 0..8 {
        let want = 1 + u32::from(other.get(i));
        assert_eq!(p.availability(piece(&g, i)), want, "piece {i}");
    }
    p.check();

    // A HAVE ALL after a partial BITFIELD (one batch of new pieces) does the same.
    let mut m = bits(&g, [0, 6]);
    p.peer_bitfield(&m);
    let added: Vec<PieceIndex> = (0..8)
        .filter(|&i| !m.get(i))
        .map(|i| piece(&g, i))
        .collect();
    for &q in &added {
        m.set(q);
    }
    p.peer_haves(&added, &m);
    assert_eq!(p.availability.seeds(), 2);
    p.peer_gone(&m);
    for i in 0..8 {
        let want = 1 + u32::from(other.get(i));
        assert_eq!(p.availability(piece(&g, i)), want, "piece {i}");
    }
    p.check();
}

#[test]
fn have_none_then_have_all_counts_a_seed_without_per_piece_state() {
    let g = geometry(64, 1);
    let mut p = Picker::new(g, Bitfield::new(64), config(0, 32));
    p.peer_bitfield(&Bitfield::full(64));
    let mut late = Bitfield::new(64);
    p.peer_bitfield(&late);
    let added: Vec<PieceIndex> = g.pieces().collect();
    for &q in &added {
        late.set(q);
    }
    p.peer_haves(&added, &late);
    assert_eq!(p.availability.seeds(), 2);
    assert!(
        !p.availability.is_built(),
        "no piece was counted one by one"
    );
    assert_eq!(p.availability.per_piece_bytes(), 0);
    assert!(g.pieces().all(|q| p.availability(q) == 2));
    p.peer_gone(&late);
    assert!(g.pieces().all(|q| p.availability(q) == 1));
    p.check();
}

#[test]
fn rarest_first_with_a_seed_prefers_pieces_only_the_seed_has() {
    let g = geometry(16, 1);
    let seed = Bitfield::full(16);
    let mut seen = HashSet::new();
    for s in 0..40 {
        let mut p = Picker::new(g, Bitfield::new(16), config(0, 32));
        let mut leecher = bits(&g, (0..16).filter(|&i| i != 4 && i != 11));
        p.peer_bitfield(&seed);
        p.peer_bitfield(&leecher);
        p.set_peer_count(2);
        let mut rng = StdRng::seed_from_u64(s);
        let first = pieces_of(&pick(&mut p, &seed, 1, &mut rng));
        assert!(first == [4] || first == [11], "seed {s}: {first:?}");
        seen.insert(first[0]);
        // The leecher gets piece 4: piece 11 is then the only one nobody but the seed has.
        let mut p = Picker::new(g, Bitfield::new(16), config(0, 32));
        p.peer_bitfield(&seed);
        p.peer_bitfield(&leecher);
        p.set_peer_count(2);
        leecher.set(piece(&g, 4));
        p.peer_have(piece(&g, 4), &leecher);
        assert_eq!(pieces_of(&pick(&mut p, &seed, 1, &mut rng)), vec![11]);
    }
    assert_eq!(seen.len(), 2, "ties at random: {seen:?}");
}

#[test]
fn availability_matches_the_live_peers_through_random_events() {
    for s in 0..64u64 {
        let mut rng = StdRng::seed_from_u64(s);
        // Few pieces, so that full bitfields and peers completing by HAVEs are common.
        let n = rng.gen_range(1..=24u32);
        let g = geometry(n, 1);
        let mut p = Picker::new(g, Bitfield::new(n), config(0, 32));
        let mut live: Vec<Bitfield> = Vec::new();
        // Whether a piece was ever counted for a peer that was not a seed at the time.
        let mut counted = false;
        for step in 0..300 {
            match rng.gen_range(0..12) {
                0..=2 => {
                    let density = [1.0, 0.0, 0.9, 0.3][rng.gen_range(0..4)];
                    let ones: Vec<u32> = (0..n).filter(|_| rng.gen_bool(density)).collect();
                    let bf = bits(&g, ones);
                    counted |= !bf.is_full() && !bf.is_none();
                    p.peer_bitfield(&bf);
                    live.push(bf);
                }
                3..=5 if !live.is_empty() => {
                    let k = rng.gen_range(0..live.len());
                    let missing: Vec<u32> = (0..n).filter(|&i| !live[k].get(i)).collect();
                    if !missing.is_empty() {
                        let q = piece(&g, missing[rng.gen_range(0..missing.len())]);
                        live[k].set(q);
                        counted |= !live[k].is_full();
                        p.peer_have(q, &live[k]);
                    }
                }
                6 if !live.is_empty() => {
                    // A later BITFIELD, or HAVE ALL (every missing piece).
                    let k = rng.gen_range(0..live.len());
                    let all = rng.gen_bool(0.5);
                    let added: Vec<PieceIndex> = (0..n)
                        .filter(|&i| !live[k].get(i) && (all || rng.gen_bool(0.5)))
                        .map(|i| piece(&g, i))
                        .collect();
                    for &q in &added {
                        live[k].set(q);
                    }
                    counted |= !added.is_empty() && !live[k].is_full();
                    p.peer_haves(&added, &live[k]);
                }
                7..=8 if !live.is_empty() => {
                    let bf = live.swap_remove(rng.gen_range(0..live.len()));
                    p.peer_gone(&bf);
                }
                9..=10 if !live.is_empty() => {
                    // A piece for a live peer: the rarest of its candidates (nothing is in
                    // progress, every piece being one block we receive at once).
                    let k = rng.gen_range(0..live.len());
                    let bf = live[k].clone();
                    let min = (0..n)
                        .filter(|&i| bf.get(i) && !p.have().get(i))
                        .map(|i| p.availability(piece(&g, i)))
                        .min();
                    let got = pick(&mut p, &bf, 1, &mut rng);
                    let avail = got.first().map(|b| p.availability(b.piece()));
                    assert_eq!(avail, min, "run {s} step {step}: not the rarest");
                    deliver(&mut p, &got);
                }
                _ => p.piece_verified(piece(&g, rng.gen_range(0..n))),
            }
            for i in 0..n {
                let want = live.iter().filter(|bf| bf.get(i)).count() as u32;
                let got = p.availability(piece(&g, i));
                assert_eq!(got, want, "run {s} step {step} piece {i}");
            }
            let seeds = live.iter().filter(|bf| bf.is_full()).count();
            assert_eq!(
                p.availability.seeds() as usize,
                seeds,
                "run {s} step {step}"
            );
            assert_eq!(p.availability.is_built(), counted, "run {s} step {step}");
            p.check();
        }
    }
}

#[test]
fn followed_started_changes_come_out_in_order_and_only_when_followed() {
    let g = geometry(8, 1);
    let seed = bits(&g, 0..8);
    let mut rng = StdRng::seed_from_u64(3);
    let mut p = Picker::new(g, Bitfield::new(8), config(0, 16));
    // Not followed: nothing is kept.
    let first = pick(&mut p, &seed, 1, &mut rng);
    let mut changes = Vec::new();
    p.drain_started(|i, on| changes.push((i, on)));
    assert!(changes.is_empty());
    p.follow_started();
    let second = pick(&mut p, &seed, 1, &mut rng);
    let (a, b) = (first[0].piece(), second[0].piece());
    assert_eq!(
        p.block_received(second[0]),
        BlockReceived::Fresh {
            piece_complete: true
        }
    );
    p.piece_verified(b);
    p.drain_started(|i, on| changes.push((i, on)));
    assert_eq!(changes, vec![(b.get(), true), (b.get(), false)]);
    // Drained: a second call hands out nothing; piece `a` is still started.
    p.drain_started(|i, on| changes.push((i, on)));
    assert_eq!(changes.len(), 2);
    assert!(p.is_started(a) && !p.is_started(b));
}
