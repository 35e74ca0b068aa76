use super::*;
use std::net::SocketAddrV4;

fn id_with_prefix(first: u8, last: u8) -> NodeId {
    let mut b = [0u8; 20];
    b[0] = first;
    b[19] = last;
    NodeId(b)
}

fn node(id: NodeId, ip: u32) -> NodeInfo {
    NodeInfo {
        id,
        addr: SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + ip), 6881),
    }
}

/// Our id is all zeros; ids starting 0x80.. share 0 bits, 0x40.. share 1 bit, and so on.
fn table(now: Instant) -> RoutingTable {
    RoutingTable::new(NodeId([0; 20]), 8, now)
}

#[test]
fn fills_then_splits_only_our_bucket() {
    let t0 = Instant::now();
    let mut t = table(t0);
    // 8 far nodes (prefix 0) fill the single bucket.
    for i in 0..8 {
        assert_eq!(
            t.heard(
                node(id_with_prefix(0x80, i), u32::from(i)),
                Heard::Response,
                t0
            ),
            None
        );
    }
    assert_eq!((t.len(), t.bucket_count()), (8, 1));
    // A near node forces a split: far nodes stay in bucket 0, the near one goes to bucket 1.
    t.heard(node(id_with_prefix(0x01, 0), 100), Heard::Response, t0);
    assert_eq!((t.len(), t.bucket_count()), (9, 2));
    // Another far node: bucket 0 is full and is no longer ours, so it does not split.
    let ping = t.heard(node(id_with_prefix(0x80, 50), 50), Heard::Response, t0);
    assert_eq!(ping, None, "all nodes good: nothing to ping");
    assert_eq!((t.len(), t.bucket_count()), (9, 2));
}

#[test]
fn one_entry_per_ip_and_no_moving_ids() {
    let t0 = Instant::now();
    let mut t = table(t0);
    let a = node(id_with_prefix(0x80, 1), 1);
    t.heard(a, Heard::Response, t0);
    // Same IP, another id: refused.
    t.heard(node(id_with_prefix(0x80, 2), 1), Heard::Response, t0);
    assert_eq!(t.len(), 1);
    // Same id, another IP: the table keeps the first address.
    t.heard(node(a.id, 9), Heard::Response, t0);
    assert_eq!(t.closest(&a.id, 8, t0), vec![a]);
    // Our own id and unroutable addresses never enter.
    t.heard(node(NodeId([0; 20]), 3), Heard::Response, t0);
    let mut zero_port = node(id_with_prefix(0x80, 4), 4);
    zero_port.addr.set_port(0);
    t.heard(zero_port, Heard::Response, t0);
    assert_eq!(t.len(), 1);
}

#[test]
fn good_questionable_bad() {
    let t0 = Instant::now();
    let mut t = table(t0);
    let a = node(id_with_prefix(0x80, 1), 1);
    t.heard(a, Heard::Response, t0);
    assert_eq!(t.status(&a.id, t0), Some(Status::Good));
    let later = t0 + GOOD_FOR;
    assert_eq!(t.status(&a.id, later), Some(Status::Questionable));
    // A query from a node that once answered makes it good again.
    t.heard(a, Heard::Query, later);
    assert_eq!(t.status(&a.id, later), Some(Status::Good));
    // A node only ever heard through queries is questionable.
    let b = node(id_with_prefix(0x80, 2), 2);
    t.heard(b, Heard::Query, t0);
    assert_eq!(t.status(&b.id, t0), Some(Status::Questionable));
    t.failed(&a.id, later);
    assert_eq!(
        t.status(&a.id, later),
        Some(Status::Good),
        "one failure is not enough"
    );
    t.failed(&a.id, later);
    assert_eq!(t.status(&a.id, later), Some(Status::Bad));
    assert!(
        !t.closest(&a.id, 8, later).contains(&a),
        "bad nodes are not handed out"
    );
    // A response clears the failures.
    t.heard(a, Heard::Response, later);
    assert_eq!(t.status(&a.id, later), Some(Status::Good));
}

#[test]
fn full_bucket_pings_questionable_before_evicting() {
    let t0 = Instant::now();
    let mut t = table(t0);
    // Bucket 1 (prefix 0x40) is not ours once split: fill bucket 0 with a near node first.
    t.heard(node(id_with_prefix(0x01, 0), 200), Heard::Response, t0);
    for i in 0..8 {
        t.heard(
            node(id_with_prefix(0x80, i), u32::from(i)),
            Heard::Response,
            t0 + Duration::from_secs(u64::from(i)),
        );
    }
    // Force the split so that bucket 0 (prefix 0x80) is full and no longer ours.
    t.heard(node(id_with_prefix(0x02, 0), 201), Heard::Response, t0);
    assert!(t.bucket_count() >= 2);
    let late = t0 + GOOD_FOR + Duration::from_secs(60);
    let newcomer = node(id_with_prefix(0x80, 99), 99);
    // Everyone is questionable now: the least recently seen (i = 0) gets pinged.
    let ping = t.heard(newcomer, Heard::Response, late).expect("a ping");
    assert_eq!(ping.id, id_with_prefix(0x80, 0));
    assert_eq!(
        t.status(&newcomer.id, late),
        None,
        "waits in the replacement cache"
    );
    // A second newcomer does not start a second ping.
    assert_eq!(
        t.heard(node(id_with_prefix(0x80, 98), 98), Heard::Response, late),
        None
    );
    // First failure: ping the same node again.
    assert_eq!(t.failed(&ping.id, late), Some(ping));
    // Second failure: evicted, the newcomer (which answered) takes its place, and the next
    // questionable node is pinged because another newcomer still waits.
    let next = t.failed(&ping.id, late).expect("next ping");
    assert_eq!(next.id, id_with_prefix(0x80, 1));
    assert_eq!(t.status(&ping.id, late), None);
    assert!(
        t.status(&newcomer.id, late).is_some()
            || t.status(&id_with_prefix(0x80, 98), late).is_some()
    );
    // The pinged node answers: the next questionable one is pinged.
    let next2 = t.heard(next, Heard::Response, late).expect("keeps pinging");
    assert_eq!(next2.id, id_with_prefix(0x80, 2));
}

#[test]
fn replacement_cache_is_capped_and_ips_freed() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.heard(node(id_with_prefix(0x01, 0), 200), Heard::Response, t0);
    t.heard(node(id_with_prefix(0x02, 0), 201), Heard::Response, t0);
    for i in 0..8 {
        t.heard(
            node(id_with_prefix(0x80, i), u32::from(i)),
            Heard::Response,
            t0,
        );
    }
    let before = t.len();
    for i in 0..30u8 {
        t.heard(
            node(id_with_prefix(0x80, 100 + i), 100 + u32::from(i)),
            Heard::Query,
            t0 + Duration::from_secs(u64::from(i)),
        );
    }
    assert_eq!(t.len(), before, "good nodes are never displaced");
    assert!(t.ips.len() <= t.len() + 8 * t.bucket_count());
    // The earliest replacements were dropped, so their IPs are free again.
    assert!(!t.ips.contains_key(&Ipv4Addr::from(0x0a00_0000 + 100)));
}

#[test]
fn closest_is_sorted_and_bounded() {
    let t0 = Instant::now();
    let mut t = table(t0);
    for i in 0..200u32 {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&(i.wrapping_mul(2_654_435_761)).to_be_bytes());
        t.heard(node(NodeId(b), i), Heard::Response, t0);
    }
    assert!(t.bucket_count() > 1);
    let target = NodeId([0x55; 20]);
    let got = t.closest(&target, 8, t0);
    assert_eq!(got.len(), 8);
    assert!(
        got.windows(2)
            .all(|w| w[0].id.distance(&target) <= w[1].id.distance(&target))
    );
    assert!(t.len() <= 8 * t.bucket_count());
}

#[test]
fn stale_buckets_are_reported_once() {
    let t0 = Instant::now();
    let mut t = table(t0);
    t.heard(node(id_with_prefix(0x80, 1), 1), Heard::Response, t0);
    assert!(
        t.take_stale(GOOD_FOR, t0 + Duration::from_secs(60))
            .is_empty()
    );
    assert_eq!(t.take_stale(GOOD_FOR, t0 + GOOD_FOR), vec![0]);
    assert!(t.take_stale(GOOD_FOR, t0 + GOOD_FOR).is_empty());
}
