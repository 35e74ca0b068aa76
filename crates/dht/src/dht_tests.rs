use super::*;
use crate::message::{ERROR_METHOD_UNKNOWN, ERROR_PROTOCOL, KrpcError};
use std::net::Ipv4Addr;

/// A few nodes that deliver packets instantly and without loss.
struct Mini {
    nodes: Vec<Dht>,
    addrs: Vec<SocketAddrV4>,
    events: Vec<Vec<DhtEvent>>,
    now: Instant,
}

impl Mini {
    fn new(n: usize, seed: u64) -> Mini {
        let mut rng = StdRng::seed_from_u64(seed);
        let now = Instant::now();
        let nodes = (0..n)
            .map(|_| Dht::new(NodeId::random(&mut rng), Config::default(), &mut rng, now))
            .collect();
        let addrs = (0..n)
            .map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i as u8 + 1), 6881))
            .collect();
        Mini {
            nodes,
            addrs,
            events: vec![Vec::new(); n],
            now,
        }
    }

    /// Delivers packets until the network is quiet.
    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(e) = self.nodes[i].poll_event() {
                    self.events[i].push(e);
                }
                while let Some((to, bytes)) = self.nodes[i].poll_transmit() {
                    moved = true;
                    let from = SocketAddr::V4(self.addrs[i]);
                    if let Some(j) = self.addrs.iter().position(|a| SocketAddr::V4(*a) == to) {
                        self.nodes[j].handle_packet(from, &bytes, self.now);
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn bootstrap_all(&mut self) {
        let first = SocketAddr::V4(self.addrs[0]);
        for i in 1..self.nodes.len() {
            self.nodes[i].bootstrap(&[first], self.now);
            self.settle();
        }
    }
}

#[test]
fn bootstrap_then_announce_then_get_peers() {
    let mut net = Mini::new(12, 1);
    net.bootstrap_all();
    assert!(
        net.events[5]
            .iter()
            .any(|e| matches!(e, DhtEvent::Bootstrapped { .. }))
    );
    assert!(net.nodes.iter().all(|n| n.routing_nodes() > 0));
    let h = InfoHash([0x42; 20]);
    let now = net.now;
    let a = net.nodes[3].announce(h, Some(7000), now).unwrap();
    net.settle();
    let done = net.events[3].iter().find_map(|e| match e {
        DhtEvent::LookupDone { lookup, stats, .. } if *lookup == a => Some(*stats),
        _ => None,
    });
    let stats = done.expect("announce lookup ended");
    assert!(stats.announced >= 8, "{stats:?}");
    let stored = net
        .nodes
        .iter()
        .filter(|n| n.stored_info_hashes() == 1)
        .count();
    assert_eq!(stored as u32, stats.announced);

    let g = net.nodes[9].get_peers(h, now).unwrap();
    net.settle();
    let peers: Vec<_> = net.events[9]
        .iter()
        .filter_map(|e| match e {
            DhtEvent::Peers { lookup, peers, .. } if *lookup == g => Some(peers.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(peers.contains(&SocketAddrV4::new(*net.addrs[3].ip(), 7000)));
}

#[test]
fn find_node_reaches_the_closest() {
    let mut net = Mini::new(20, 2);
    net.bootstrap_all();
    let target = net.nodes[17].id();
    let now = net.now;
    let l = net.nodes[4].find_node(target, now).unwrap();
    net.settle();
    let closest = net.events[4].iter().find_map(|e| match e {
        DhtEvent::LookupDone {
            lookup, closest, ..
        } if *lookup == l => Some(closest.clone()),
        _ => None,
    });
    let closest = closest.expect("done");
    assert_eq!(closest.first().map(|n| n.id), Some(target));
    assert_eq!(closest.len(), 8);
}

fn one(seed: u64) -> (Dht, Instant) {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = Instant::now();
    (
        Dht::new(NodeId([1; 20]), Config::default(), &mut rng, now),
        now,
    )
}

fn peer() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 6881))
}

fn reply_to(d: &mut Dht) -> Message {
    let (_, bytes) = d.poll_transmit().expect("a reply");
    Message::decode(&bytes).expect("decodes")
}

#[test]
fn answers_ping_and_errors() {
    let (mut d, now) = one(3);
    let ping = Message {
        tid: b"xy".to_vec(),
        version: None,
        read_only: false,
        body: Body::Query(Query::Ping {
            id: NodeId([9; 20]),
        }),
    };
    d.handle_packet(peer(), &ping.to_vec(), now);
    let r = reply_to(&mut d);
    assert_eq!(r.tid, b"xy");
    assert_eq!(r.body, Body::Response(Response::id_only(NodeId([1; 20]))));
    assert_eq!(d.routing_nodes(), 1, "the querier is remembered");

    d.handle_packet(
        peer(),
        b"d1:ad2:id20:abcdefghij0123456789e1:q3:put1:t2:ab1:y1:qe",
        now,
    );
    assert!(matches!(
        reply_to(&mut d).body,
        Body::Error(KrpcError {
            code: ERROR_METHOD_UNKNOWN,
            ..
        })
    ));
    d.handle_packet(peer(), b"d1:ad2:id3:abce1:q4:ping1:t2:ab1:y1:qe", now);
    assert!(matches!(
        reply_to(&mut d).body,
        Body::Error(KrpcError {
            code: ERROR_PROTOCOL,
            ..
        })
    ));
    d.handle_packet(peer(), b"garbage", now);
    assert!(d.poll_transmit().is_none(), "no reply to garbage");
}

#[test]
fn announce_needs_a_valid_token() {
    let (mut d, now) = one(4);
    let h = InfoHash([7; 20]);
    let announce = |token: Vec<u8>| Message {
        tid: b"an".to_vec(),
        version: None,
        read_only: false,
        body: Body::Query(Query::AnnouncePeer {
            id: NodeId([9; 20]),
            info_hash: h,
            port: 0,
            implied_port: true,
            token,
        }),
    };
    d.handle_packet(peer(), &announce(b"forged".to_vec()).to_vec(), now);
    assert!(matches!(
        reply_to(&mut d).body,
        Body::Error(KrpcError {
            code: ERROR_PROTOCOL,
            ..
        })
    ));
    assert_eq!(d.stored_info_hashes(), 0);

    let gp = Message {
        tid: b"gp".to_vec(),
        version: None,
        read_only: false,
        body: Body::Query(Query::GetPeers {
            id: NodeId([9; 20]),
            info_hash: h,
        }),
    };
    d.handle_packet(peer(), &gp.to_vec(), now);
    let Body::Response(r) = reply_to(&mut d).body else {
        panic!("not a response")
    };
    let token = r.token.expect("a token");
    d.handle_packet(peer(), &announce(token).to_vec(), now);
    assert!(matches!(reply_to(&mut d).body, Body::Response(_)));
    d.handle_packet(peer(), &gp.to_vec(), now);
    let Body::Response(r) = reply_to(&mut d).body else {
        panic!("not a response")
    };
    assert_eq!(
        r.values,
        vec![SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 6881)],
        "implied port"
    );
}

#[test]
fn queries_past_the_rate_limit_are_dropped() {
    let (mut d, now) = one(5);
    let ping = Message {
        tid: b"xy".to_vec(),
        version: None,
        read_only: true,
        body: Body::Query(Query::Ping {
            id: NodeId([9; 20]),
        }),
    }
    .to_vec();
    for _ in 0..100 {
        d.handle_packet(peer(), &ping, now);
    }
    let answered = std::iter::from_fn(|| d.poll_transmit()).count();
    assert_eq!(answered, Config::default().query_burst_per_ip as usize);
    assert_eq!(d.routing_nodes(), 0, "read-only nodes are not added");
}

#[test]
fn requests_time_out_and_lookups_end() {
    let (mut d, now) = one(6);
    let boot = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 9), 6881));
    d.bootstrap(&[boot], now);
    assert!(d.poll_transmit().is_some());
    let l = d.find_node(NodeId([5; 20]), now).unwrap();
    let deadline = d.poll_timeout().expect("a deadline");
    assert_eq!(deadline, now + Config::default().request_timeout);
    d.handle_timeout(deadline);
    let events: Vec<_> = std::iter::from_fn(|| d.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e, DhtEvent::LookupDone { lookup, closest, .. } if *lookup == l && closest.is_empty())));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, DhtEvent::Bootstrapped { .. })),
        "nobody answered"
    );
    assert_eq!(d.lookups_running(), 0);
    // A stray response to a finished transaction is ignored.
    let stray = Message {
        tid: vec![0, 0],
        version: None,
        read_only: false,
        body: Body::Response(Response::id_only(NodeId([8; 20]))),
    };
    d.handle_packet(boot, &stray.to_vec(), deadline);
    assert_eq!(d.routing_nodes(), 0);
}

#[test]
fn lookups_are_capped() {
    let (mut d, now) = one(7);
    let cap = Config::default().max_lookups;
    // With an empty table and no bootstrap nodes a lookup ends at once, so use a table entry.
    let other = Message {
        tid: b"xy".to_vec(),
        version: None,
        read_only: false,
        body: Body::Query(Query::Ping {
            id: NodeId([9; 20]),
        }),
    };
    d.handle_packet(peer(), &other.to_vec(), now);
    for i in 0..cap {
        assert!(d.get_peers(InfoHash([i as u8; 20]), now).is_ok());
    }
    assert_eq!(
        d.get_peers(InfoHash([0xee; 20]), now),
        Err(DhtError::TooManyLookups(cap))
    );
}

#[test]
fn a_pinged_address_joins_the_table_and_is_listed() {
    let mut net = Mini::new(2, 9);
    let now = net.now;
    assert!(net.nodes[0].nodes(now).is_empty());
    net.nodes[0].ping_addr(SocketAddr::V4(net.addrs[1]), now);
    // Unroutable and IPv6 addresses are not pinged.
    net.nodes[0].ping_addr("0.0.0.0:1".parse().unwrap(), now);
    net.nodes[0].ping_addr("[::1]:6881".parse().unwrap(), now);
    net.settle();
    let listed = net.nodes[0].nodes(now);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].addr, net.addrs[1]);
    assert_eq!(listed[0].id, net.nodes[1].id());
}
