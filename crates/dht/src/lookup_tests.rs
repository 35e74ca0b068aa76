use super::*;
use std::net::Ipv4Addr;

fn node(first: u8, ip: u32) -> NodeInfo {
    let mut b = [0u8; 20];
    b[0] = first;
    NodeInfo {
        id: NodeId(b),
        addr: SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + ip), 6881),
    }
}

fn lookup(k: usize, alpha: usize) -> Lookup {
    Lookup::new(NodeId([0; 20]), NodeId([0xff; 20]), k, alpha, 16)
}

#[test]
fn parallelism_is_bounded() {
    let mut l = lookup(8, 3);
    let nodes: Vec<_> = (1..=10).map(|i| node(i, u32::from(i))).collect();
    l.add(&nodes, 0);
    let sent: Vec<_> = std::iter::from_fn(|| l.next()).collect();
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[0], nodes[0], "closest first");
    assert!(!l.is_done());
    l.responded(sent[0], false, &[], None);
    assert!(l.next().is_some(), "a slot freed");
    assert!(l.next().is_none());
}

#[test]
fn ends_when_k_closest_answered() {
    let mut l = lookup(2, 3);
    let (a, b, c) = (node(1, 1), node(2, 2), node(3, 3));
    l.add(&[a, b, c], 0);
    let first = l.next().unwrap();
    let second = l.next().unwrap();
    assert_eq!((first, second), (a, b));
    assert_eq!(l.next(), None, "c is outside the 2 closest");
    l.responded(a, false, &[], Some(b"ta".to_vec()));
    assert!(!l.is_done());
    // b fails: c moves into the 2 closest and is queried.
    l.failed(Some(b), false, false);
    assert_eq!(l.next(), Some(c));
    l.responded(c, false, &[], None);
    assert!(l.is_done());
    let got = l.closest_responded(8);
    assert_eq!(got, vec![(a, Some(&b"ta"[..])), (c, None)]);
    assert_eq!((l.queries, l.responses), (3, 2));
}

#[test]
fn closer_nodes_from_answers_are_followed() {
    let mut l = lookup(1, 3);
    let far = node(0x80, 1);
    l.add(&[far], 0);
    assert_eq!(l.next(), Some(far));
    let near = node(0x01, 2);
    l.responded(far, false, &[near], None);
    assert!(!l.is_done());
    assert_eq!(l.next(), Some(near));
    l.responded(near, false, &[], None);
    assert!(l.is_done());
    assert_eq!(l.rounds(), 2);
}

#[test]
fn seeds_count_until_they_answer() {
    let mut l = lookup(8, 3);
    l.seeds_in_flight = 2;
    assert!(!l.is_done());
    let s = node(5, 5);
    l.responded(s, true, &[node(1, 1)], None);
    l.failed(None, true, true);
    assert!(!l.is_done(), "the learned node is fresh");
    assert_eq!(l.next(), Some(node(1, 1)));
    l.responded(node(1, 1), false, &[], None);
    assert!(l.is_done());
    assert_eq!(l.closest_responded(8).len(), 2, "the seed answered too");
}

#[test]
fn candidates_are_capped_and_deduplicated() {
    let mut l = Lookup::new(NodeId([0; 20]), NodeId([0xff; 20]), 2, 3, 4);
    let nodes: Vec<_> = (1..=20).map(|i| node(i, u32::from(i))).collect();
    l.add(&nodes, 0);
    l.add(&nodes, 0);
    let mut own = node(0, 99);
    own.id = NodeId([0xff; 20]);
    l.add(&[own], 0);
    assert_eq!(l.candidates.len(), 4);
    assert!(l.candidates.windows(2).all(|w| w[0].dist < w[1].dist));
}

#[test]
fn empty_lookup_is_done() {
    assert!(lookup(8, 3).is_done());
}

#[test]
fn a_timed_out_node_is_asked_twice() {
    let mut l = lookup(1, 3);
    let a = node(1, 1);
    l.add(&[a], 0);
    assert_eq!(l.next(), Some(a));
    l.failed(Some(a), false, true);
    assert!(!l.is_done());
    assert_eq!(l.next(), Some(a), "asked again after a timeout");
    l.failed(Some(a), false, true);
    assert_eq!(l.next(), None);
    assert!(l.is_done());
    assert_eq!(l.queries, 2);
}
