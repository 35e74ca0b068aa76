//! Deadlines on a virtual clock: `poll_timeout` names the instant each timer is due, and a
//! shell that sleeps exactly until it (`t = poll_timeout(); handle_timeout(t)`) sees every
//! timer fire on time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metainfo::{Bitfield, Geometry, PeerId};
use wire::{Decoder, Message, Reserved};

use super::{Config, Event, PeerError, Torrent};
use crate::peer::PeerKey;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// 64 pieces of 32 KiB: 128 blocks, more than a new peer's pipeline asks for.
fn geometry() -> Geometry {
    Geometry::new(64 * 32_768, 32_768).unwrap()
}

fn fast() -> Reserved {
    let mut r = Reserved::default();
    r.set_fast(true);
    r
}

/// A torrent holding every piece (`full`) or none, made at `t0`.
fn torrent(g: Geometry, full: bool, config: Config, t0: Instant) -> Torrent {
    let have = if full {
        Bitfield::full(g.piece_count())
    } else {
        Bitfield::new(g.piece_count())
    };
    Torrent::new(g, have, config, 1, t0)
}

/// Peer `n` (a Fast peer on 10.0.0.n) connects at `now`; its opening messages are taken.
fn connect(t: &mut Torrent, n: u8, now: Instant) -> PeerKey {
    let addr = SocketAddr::from(([10, 0, 0, n], 6881));
    let k = t.add_peer(addr, fast(), PeerId([n; 20]), now).unwrap();
    sent(t, k, now);
    k
}

/// Everything queued for `k`, taken at `now`.
fn sent(t: &mut Torrent, k: PeerKey, now: Instant) -> Vec<Message> {
    let mut buf = t.take_outgoing(k, now).unwrap().unwrap_or_default();
    let dec = Decoder::default();
    let mut out = Vec::new();
    while let Some(m) = dec.decode(&mut buf).unwrap() {
        out.push(m);
    }
    out
}

/// One wake of the driver: when, what each peer was sent, and the events.
struct Wake {
    at: Instant,
    sent: Vec<(PeerKey, Vec<Message>)>,
    events: Vec<Event>,
}

/// The shell's timer loop on a virtual clock: sleep until `poll_timeout`, run the timers
/// there, take what they queued; until the next deadline is past `until`. Peers are not
/// removed on `Disconnect` (the shell may be slow to do it). Fails on a deadline that does not
/// move forward (a shell sleeping until it would spin).
fn drive(t: &mut Torrent, keys: &[PeerKey], until: Instant) -> Vec<Wake> {
    let mut log: Vec<Wake> = Vec::new();
    while let Some(at) = t.poll_timeout().filter(|&at| at <= until) {
        if let Some(last) = log.last() {
            assert!(at > last.at, "deadline {at:?} repeats or goes back");
        }
        t.handle_timeout(at);
        let sent = keys.iter().map(|&k| (k, sent(t, k, at))).collect();
        let events = std::iter::from_fn(|| t.poll_event()).collect();
        log.push(Wake { at, sent, events });
    }
    log
}

/// Instants (as offsets from `t0`) of the wakes where `k` was sent a message matching `f`.
fn when_sent(log: &[Wake], t0: Instant, k: PeerKey, f: impl Fn(&Message) -> bool) -> Vec<Duration> {
    log.iter()
        .filter(|w| w.sent.iter().any(|(kk, m)| *kk == k && m.iter().any(&f)))
        .map(|w| w.at - t0)
        .collect()
}

#[test]
fn one_idle_peer_reports_exactly_its_earliest_deadline() {
    let t0 = Instant::now();
    // Defaults: keep-alive at 90 s, idle at 120 s; the first choking round (10 s) comes first.
    let mut t = torrent(geometry(), true, Config::default(), t0);
    connect(&mut t, 2, t0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(10)));
    // Each timer in turn the earliest.
    let keepalive = Config {
        keepalive_interval: secs(3),
        ..Config::default()
    };
    let mut t = torrent(geometry(), true, keepalive.clone(), t0);
    connect(&mut t, 2, t0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(3)));
    let idle = Config {
        idle_timeout: secs(2),
        ..keepalive
    };
    let mut t = torrent(geometry(), true, idle, t0);
    connect(&mut t, 2, t0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(2)));
}

#[test]
fn keepalive_and_idle_drop_fire_exactly_when_due_on_poll_timeout_alone() {
    let t0 = Instant::now();
    let config = Config::default();
    let (ka, idle) = (config.keepalive_interval, config.idle_timeout);
    let mut t = torrent(geometry(), true, config, t0);
    let k = connect(&mut t, 2, t0);
    let log = drive(&mut t, &[k], t0 + secs(200));
    // The peer sends nothing: one keep-alive after 90 s of our silence, then the drop at 120 s
    // (reported once, although the peer stays until the shell removes it).
    let keepalives = when_sent(&log, t0, k, |m| *m == Message::KeepAlive);
    assert_eq!(keepalives, vec![ka]);
    let idles: Vec<Duration> = log
        .iter()
        .filter(|w| {
            w.events
                .iter()
                .any(|e| matches!(e, Event::Disconnect(kk, PeerError::Idle) if *kk == k))
        })
        .map(|w| w.at - t0)
        .collect();
    assert_eq!(idles, vec![idle]);
    // Nothing else woke the torrent but the choking rounds every 10 s: no one-second sweep.
    let others: Vec<Duration> = log
        .iter()
        .map(|w| w.at - t0)
        .filter(|d| d.as_secs() % 10 != 0 || d.subsec_nanos() != 0)
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(log.len(), 20);
}

#[test]
fn idle_peer_is_dropped_at_idle_timeout_not_before() {
    let t0 = Instant::now();
    let config = Config::default();
    let idle = config.idle_timeout;
    let mut t = torrent(geometry(), true, config, t0);
    let k = connect(&mut t, 2, t0);
    // Heard from at 50 s: the idle deadline moves to 170 s.
    t.handle_message(k, Message::KeepAlive, t0 + secs(50))
        .unwrap();
    let dropped = |t: &mut Torrent| {
        std::iter::from_fn(|| t.poll_event())
            .any(|e| matches!(e, Event::Disconnect(kk, PeerError::Idle) if kk == k))
    };
    let due = t0 + secs(50) + idle;
    t.handle_timeout(due - Duration::from_millis(1));
    assert!(!dropped(&mut t));
    assert!(t.poll_timeout().is_some_and(|at| at <= due));
    t.handle_timeout(due);
    assert!(dropped(&mut t));
    // Reported once, and sent no keep-alive either, while the shell takes its time to drop it.
    assert!(t.poll_timeout().is_some_and(|at| at > due), "would spin");
    sent(&mut t, k, due); // the keep-alive of 170 s - 1 ms
    let log = drive(&mut t, &[k], due + secs(100));
    assert!(log.iter().all(|w| w.events.is_empty()));
    assert!(when_sent(&log, t0, k, |m| *m == Message::KeepAlive).is_empty());
    // Heard from again, it is timed again: its keep-alive, 90 s after our last send, is
    // overdue, so due at once.
    let back = due + secs(100);
    t.handle_message(k, Message::KeepAlive, back).unwrap();
    assert!(t.poll_timeout().is_some_and(|at| at <= back));
    t.handle_timeout(back);
    assert!(sent(&mut t, k, back).contains(&Message::KeepAlive));
}

#[test]
fn choking_rounds_every_10_s_and_rotation_every_30_s_on_poll_timeout_alone() {
    let t0 = Instant::now();
    let mut t = torrent(geometry(), true, Config::default(), t0);
    // Six interested leechers for four regular and one optimistic slot: one waits.
    let keys: Vec<PeerKey> = (2..8).map(|n| connect(&mut t, n, t0)).collect();
    for &k in &keys {
        t.handle_message(k, Message::Interested, t0).unwrap();
    }
    let unchoked_at_start: Vec<PeerKey> = keys
        .iter()
        .copied()
        .filter(|&k| sent(&mut t, k, t0).contains(&Message::Unchoke))
        .collect();
    assert_eq!(unchoked_at_start.len(), 5);
    let log = drive(&mut t, &keys, t0 + secs(65));
    let wakes: Vec<u64> = log.iter().map(|w| (w.at - t0).as_secs()).collect();
    assert!(log.iter().all(|w| (w.at - t0).subsec_nanos() == 0));
    assert_eq!(wakes, [10, 20, 30, 40, 50, 60]);
    // Seeding ranks by what we sent (nothing): the regular slots stay; the optimistic slot
    // moves to the waiting peer at 30 s and back at 60 s, each move a CHOKE and an UNCHOKE.
    let moves: Vec<u64> = log
        .iter()
        .filter(|w| w.sent.iter().any(|(_, m)| !m.is_empty()))
        .map(|w| (w.at - t0).as_secs())
        .collect();
    assert_eq!(moves, [30, 60]);
    for at in [30, 60] {
        let w = &log[wakes.iter().position(|&s| s == at).unwrap()];
        let count = |msg: Message| w.sent.iter().filter(|(_, m)| m.contains(&msg)).count();
        assert_eq!((count(Message::Choke), count(Message::Unchoke)), (1, 1));
    }
}

#[test]
fn requests_sent_between_wakes_bring_the_deadline_forward() {
    let t0 = Instant::now();
    let config = Config {
        request_timeout: secs(4),
        ..Config::default()
    };
    let mut t = torrent(geometry(), false, config, t0);
    let k = connect(&mut t, 2, t0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(10)));
    // At 3 s the peer unchokes us and we request: the request timeout (7 s) comes first.
    t.handle_message(k, Message::HaveAll, t0 + secs(3)).unwrap();
    t.handle_message(k, Message::Unchoke, t0 + secs(3)).unwrap();
    let asked = sent(&mut t, k, t0 + secs(3))
        .iter()
        .filter(|m| matches!(m, Message::Request(_)))
        .count();
    assert!(asked > 0);
    assert_eq!(t.poll_timeout(), Some(t0 + secs(7)));
    let log = drive(&mut t, &[k], t0 + secs(7));
    assert_eq!(log.len(), 1);
    let cancels = log[0].sent[0]
        .1
        .iter()
        .filter(|m| matches!(m, Message::Cancel(_)))
        .count();
    assert_eq!(cancels, asked, "all requests cancelled at the timeout");
}

#[test]
fn an_end_game_peer_that_loses_its_request_is_refilled_within_the_retry() {
    // 4 pieces of two blocks: A takes all 8, B (unchoking later) gets one block A also
    // fetches. A's copy arrives first and B's request is cancelled: B has nothing outstanding
    // and no input fills it again; the retry timer must.
    let g = Geometry::new(4 * 32_768, 32_768).unwrap();
    let t0 = Instant::now();
    let mut t = torrent(g, false, Config::default(), t0);
    let (a, b) = (connect(&mut t, 2, t0), connect(&mut t, 3, t0));
    for k in [a, b] {
        t.handle_message(k, Message::HaveAll, t0).unwrap();
    }
    t.handle_message(a, Message::Unchoke, t0).unwrap();
    t.handle_message(b, Message::Unchoke, t0).unwrap();
    let requests = |msgs: &[Message]| -> Vec<wire::BlockSpec> {
        msgs.iter()
            .filter_map(|m| match m {
                Message::Request(s) => Some(*s),
                _ => None,
            })
            .collect()
    };
    assert_eq!(requests(&sent(&mut t, a, t0)).len(), 8);
    let [dup] = requests(&sent(&mut t, b, t0))[..] else {
        panic!("B got no end-game block")
    };
    let at = t0 + Duration::from_millis(100);
    let piece = Message::Piece {
        piece: dup.piece,
        begin: dup.begin,
        data: vec![0; dup.len as usize].into(),
    };
    t.handle_message(a, piece, at).unwrap();
    assert!(sent(&mut t, b, at).contains(&Message::Cancel(dup)));
    let log = drive(&mut t, &[a, b], at + super::timers::REFILL_RETRY);
    let refilled = log
        .iter()
        .find(|w| {
            w.sent
                .iter()
                .any(|(k, m)| *k == b && !requests(m).is_empty())
        })
        .expect("B was never asked to request again");
    assert!(refilled.at <= at + super::timers::REFILL_RETRY);
}
