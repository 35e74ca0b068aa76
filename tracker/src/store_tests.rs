//! Store behaviour on virtual time.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use metainfo::InfoHash;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tracker_proto::Event;

use super::*;

fn ih(b: u8) -> InfoHash {
    InfoHash([b; 20])
}

fn v4(i: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 6881))
}

fn v6(i: u128) -> SocketAddr {
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(0x2001_0db8 << 96 | i),
        6881,
        0,
        0,
    ))
}

fn ann(h: InfoHash, addr: SocketAddr, seeder: bool, event: Event) -> Announce {
    Announce {
        info_hash: h,
        addr,
        seeder,
        event,
        numwant: 50,
    }
}

struct Bed {
    store: Store,
    rng: SmallRng,
}

impl Bed {
    fn new(limits: Limits) -> Bed {
        Bed {
            store: Store::new(limits),
            rng: SmallRng::seed_from_u64(7),
        }
    }

    /// An announce that must be accepted.
    fn put(&mut self, a: Announce, now: u64) {
        self.go(a, now).0.unwrap();
    }

    fn go(&mut self, a: Announce, now: u64) -> (Result<Announced, Refused>, PeerList) {
        let mut out = PeerList::default();
        let r = self.store.announce(&a, now, &mut self.rng, &mut out);
        (r, out)
    }
}

#[test]
fn own_address_is_never_returned() {
    let mut b = Bed::new(Limits::default());
    for i in 0..10 {
        b.put(ann(ih(1), v4(i), false, Event::Started), 0);
    }
    for round in 0..50 {
        let me = v4(round % 10);
        let (_, out) = b.go(ann(ih(1), me, false, Event::None), 1);
        assert_eq!(out.v4.len(), 9);
        assert!(out.v4.iter().all(|p| SocketAddr::V4(*p) != me));
    }
}

#[test]
fn numwant_caps_the_answer() {
    let mut b = Bed::new(Limits::default());
    for i in 0..300 {
        b.put(ann(ih(1), v4(i), false, Event::Started), 0);
    }
    let mut a = ann(ih(1), v4(1000), false, Event::None);
    a.numwant = 17;
    assert_eq!(b.go(a, 0).1.v4.len(), 17);
    a.numwant = 0;
    assert!(b.go(a, 0).1.v4.is_empty());
    let (r, _) = b.go(a, 0);
    assert_eq!(r.unwrap().incomplete, 301);
}

#[test]
fn families_are_kept_apart() {
    let mut b = Bed::new(Limits::default());
    b.put(ann(ih(1), v4(1), true, Event::Started), 0);
    b.put(ann(ih(1), v6(1), true, Event::Started), 0);
    let (r, out) = b.go(ann(ih(1), v6(2), false, Event::Started), 0);
    assert_eq!(out.v4, vec![]);
    assert_eq!(out.v6.len(), 1);
    let r = r.unwrap();
    assert_eq!((r.complete, r.incomplete), (2, 1));
    let (_, out) = b.go(ann(ih(1), v4(2), false, Event::Started), 0);
    assert_eq!((out.v4.len(), out.v6.len()), (1, 0));
    let c = b.store.counts();
    assert_eq!((c.peers4, c.peers6, c.seeders, c.swarms), (2, 2, 2, 1));
}

#[test]
fn stopped_removes_and_empty_swarms_are_dropped() {
    let mut b = Bed::new(Limits::default());
    b.put(ann(ih(1), v4(1), false, Event::Started), 0);
    b.put(ann(ih(1), v6(1), false, Event::Started), 0);
    let (r, _) = b.go(ann(ih(1), v4(1), false, Event::Stopped), 0);
    assert_eq!(r.unwrap().incomplete, 1);
    assert_eq!(b.store.counts().swarms, 1);
    let (r, _) = b.go(ann(ih(1), v6(1), false, Event::Stopped), 0);
    assert!(!r.unwrap().listed);
    assert_eq!(b.store.counts(), Counts::default());
    // A stopped announce for an unknown torrent creates nothing.
    b.put(ann(ih(2), v4(1), false, Event::Stopped), 0);
    assert_eq!(b.store.counts().swarms, 0);
}

#[test]
fn completed_is_counted_once_per_transition() {
    let mut b = Bed::new(Limits::default());
    b.put(ann(ih(1), v4(1), false, Event::Started), 0);
    b.put(ann(ih(1), v4(1), true, Event::Completed), 10);
    // A repeated completed from a known seeder is not a second download.
    b.put(ann(ih(1), v4(1), true, Event::Completed), 20);
    // A plain seeder announce is not a download.
    b.put(ann(ih(1), v4(2), true, Event::Started), 20);
    // A completed from a peer the tracker had not seen counts.
    b.put(ann(ih(1), v4(3), true, Event::Completed), 20);
    let s = b.store.scrape(&ih(1));
    assert_eq!((s.complete, s.incomplete, s.downloaded), (3, 0, 2));
    assert_eq!(b.store.scrape(&ih(9)), ScrapeStats::default());
}

#[test]
fn seeders_are_sent_leechers_only() {
    let mut b = Bed::new(Limits::default());
    for i in 0..20 {
        b.put(ann(ih(1), v4(i), i % 2 == 0, Event::Started), 0);
    }
    let (_, out) = b.go(ann(ih(1), v4(100), true, Event::None), 0);
    assert_eq!(out.v4.len(), 10);
    let (_, out) = b.go(ann(ih(1), v4(101), false, Event::None), 0);
    assert_eq!(out.v4.len(), 21);
}

#[test]
fn peers_expire_after_the_expiry_and_refresh_keeps_them() {
    let limits = Limits {
        peer_expiry_secs: 2700,
        ..Limits::default()
    };
    let mut b = Bed::new(limits);
    b.put(ann(ih(1), v4(1), false, Event::Started), 1000);
    b.put(ann(ih(1), v4(2), true, Event::Started), 1000);
    b.put(ann(ih(2), v4(3), false, Event::Started), 1000);
    // v4(1) re-announces later; the others go quiet.
    b.put(ann(ih(1), v4(1), false, Event::None), 2800);
    assert_eq!(b.store.sweep(1000 + 2700 - TICK_SECS - 1), Swept::default());
    let swept = b.store.sweep(1000 + 2700 + TICK_SECS);
    assert_eq!(
        swept,
        Swept {
            peers: 2,
            swarms: 1
        }
    );
    let c = b.store.counts();
    assert_eq!((c.swarms, c.peers4, c.seeders), (1, 1, 0));
    let swept = b.store.sweep(2800 + 2700 + TICK_SECS);
    assert_eq!(
        swept,
        Swept {
            peers: 1,
            swarms: 1
        }
    );
    assert_eq!(b.store.counts(), Counts::default());
}

#[test]
fn expiry_survives_tick_wraparound() {
    let mut b = Bed::new(Limits::default());
    let day = 24 * 3600;
    let mut now = 0;
    b.put(ann(ih(1), v4(1), false, Event::Started), now);
    // Sweep every 60 s for 10 days while the peer re-announces every 30 minutes.
    while now < 10 * day {
        now += 60;
        if now % 1800 == 0 {
            b.put(ann(ih(1), v4(1), false, Event::None), now);
        }
        assert_eq!(b.store.sweep(now).peers, 0, "dropped at {now}");
    }
    now += 2700 + 2 * TICK_SECS;
    assert_eq!(b.store.sweep(now).peers, 1);
}

#[test]
fn swarm_cap_refuses_new_torrents() {
    let limits = Limits {
        max_swarms: 1,
        ..Limits::default()
    };
    let mut b = Bed::new(limits);
    assert!(
        b.go(ann(ih(0x00), v4(1), false, Event::Started), 0)
            .0
            .is_ok()
    );
    assert_eq!(
        b.go(ann(ih(0x11), v4(1), false, Event::Started), 0).0,
        Err(Refused::TooManySwarms)
    );
    // Known torrents still work.
    assert!(
        b.go(ann(ih(0x00), v4(2), false, Event::Started), 0)
            .0
            .is_ok()
    );
    assert_eq!(b.store.counts().swarms, 1);
}

#[test]
fn peer_caps_keep_newcomers_out_but_answer_them() {
    let limits = Limits {
        max_peers_per_swarm: 3,
        ..Limits::default()
    };
    let mut b = Bed::new(limits);
    for i in 0..3 {
        assert!(
            b.go(ann(ih(1), v4(i), false, Event::Started), 0)
                .0
                .unwrap()
                .listed
        );
    }
    let (r, out) = b.go(ann(ih(1), v6(1), false, Event::Started), 0);
    assert!(!r.unwrap().listed);
    assert!(out.v6.is_empty());
    let (r, out) = b.go(ann(ih(1), v4(9), false, Event::Started), 0);
    assert!(!r.unwrap().listed);
    assert_eq!(out.v4.len(), 3);
    // Known peers are still refreshed at the cap.
    assert!(
        b.go(ann(ih(1), v4(0), true, Event::None), 0)
            .0
            .unwrap()
            .listed
    );
    assert_eq!(b.store.scrape(&ih(1)).complete, 1);

    let limits = Limits {
        max_peers: 1,
        ..Limits::default()
    };
    let mut b = Bed::new(limits);
    assert!(
        b.go(ann(ih(1), v4(1), false, Event::Started), 0)
            .0
            .unwrap()
            .listed
    );
    // Another swarm in another shard: the cap is global.
    let (r, _) = b.go(ann(ih(0x12), v4(2), false, Event::Started), 0);
    assert!(!r.unwrap().listed);
    assert_eq!(b.store.counts().peers4, 1);
    assert_eq!(
        b.store.counts().swarms,
        1,
        "the refused peer's empty swarm is dropped"
    );
}

#[test]
fn counts_stay_exact_under_random_traffic() {
    let mut b = Bed::new(Limits::default());
    let mut rng = SmallRng::seed_from_u64(42);
    let events = [
        Event::None,
        Event::Started,
        Event::Completed,
        Event::Stopped,
        Event::Paused,
    ];
    for t in 0..20_000u64 {
        let h = ih(rng.gen_range(0..8));
        let addr = if rng.gen_bool(0.8) {
            v4(rng.gen_range(0..40))
        } else {
            v6(rng.gen_range(0..40))
        };
        let e = events[rng.gen_range(0..events.len())];
        b.put(ann(h, addr, rng.gen_bool(0.3), e), t / 10);
        if t % 1000 == 0 {
            b.store.sweep(t / 10);
        }
    }
    let c = b.store.counts();
    let (mut seeders, mut peers) = (0, 0);
    for i in 0..8 {
        let s = b.store.scrape(&ih(i));
        seeders += s.complete as usize;
        peers += (s.complete + s.incomplete) as usize;
    }
    assert_eq!(c.seeders, seeders);
    assert_eq!(c.peers4 + c.peers6, peers);
    assert!(c.swarms <= 8);
}
