//! The UDP request logic on virtual time: connect, announce, scrape, ids, caps, bad input.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use metainfo::{InfoHash, PeerId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_proto::Event;
use tracker_proto::udp::{
    ConnectRequest, ConnectResponse, PeerFamily, UdpAnnounce, UdpError, UdpScrape,
    decode_announce_response, decode_scrape_response,
};

use super::*;
use crate::rate_limit::RateLimit;

const KEY: [u8; 16] = [7; 16];
const T0: u64 = 1_000_000;

fn handler(config: Config) -> UdpHandler {
    UdpHandler::new(config, KEY).unwrap()
}

fn v4(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, last), port))
}

fn v6(last: u16, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, last, 0, 0, 0, 1), port))
}

struct Client {
    rng: SmallRng,
    out: Vec<u8>,
}

impl Client {
    fn new() -> Client {
        Client {
            rng: SmallRng::seed_from_u64(3),
            out: Vec::new(),
        }
    }

    fn send(&mut self, h: &mut UdpHandler, b: &[u8], from: SocketAddr, now_ms: u64) -> Outcome {
        h.handle(b, from, now_ms, &mut self.rng, &mut self.out)
    }

    fn connect(&mut self, h: &mut UdpHandler, from: SocketAddr, now_ms: u64) -> u64 {
        let req = ConnectRequest { transaction_id: 42 }.encode();
        assert_eq!(self.send(h, &req, from, now_ms), Outcome::Answered);
        assert_eq!(self.out.len(), 16, "a connect response is 16 bytes");
        ConnectResponse::decode(&self.out, 42)
            .unwrap()
            .connection_id
    }
}

fn announce(cid: u64, hash: u8, port: u16, left: u64, event: Event) -> UdpAnnounce {
    UdpAnnounce {
        connection_id: cid,
        transaction_id: 9,
        info_hash: InfoHash([hash; 20]),
        peer_id: PeerId([port as u8; 20]),
        downloaded: 0,
        left,
        uploaded: 0,
        event,
        ip: 0,
        key: 1,
        num_want: -1,
        port,
    }
}

#[test]
fn connect_then_announce_returns_the_other_peers() {
    let mut h = handler(Config::default());
    let mut c = Client::new();
    let seed = v4(1, 40000);
    let cid = c.connect(&mut h, seed, T0);
    assert_eq!(cid, h.connection_id(seed.ip(), T0));
    let a = announce(cid, 5, 6881, 0, Event::Started).encode();
    assert_eq!(c.send(&mut h, &a, seed, T0 + 500), Outcome::Answered);
    let r = decode_announce_response(&c.out, 9, PeerFamily::V4).unwrap();
    assert_eq!(r.peers, vec![], "alone in the swarm");
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(0)));
    assert_eq!(r.interval, Some(1800));

    let leech = v4(2, 40001);
    let cid2 = c.connect(&mut h, leech, T0 + 1000);
    let a = announce(cid2, 5, 7000, 10, Event::Started).encode();
    c.send(&mut h, &a, leech, T0 + 1000);
    let r = decode_announce_response(&c.out, 9, PeerFamily::V4).unwrap();
    // The seeder's announced port, at its source IP.
    assert_eq!(r.peers, vec![v4(1, 6881)]);
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));
    assert_eq!(h.counts().peers4, 2);

    // Stopped leaves the swarm and gets no peers.
    let a = announce(cid2, 5, 7000, 10, Event::Stopped).encode();
    c.send(&mut h, &a, leech, T0 + 2000);
    let r = decode_announce_response(&c.out, 9, PeerFamily::V4).unwrap();
    assert!(r.peers.is_empty());
    assert_eq!(h.counts().peers4, 1);
}

#[test]
fn ipv6_senders_get_18_byte_peers_and_mapped_senders_are_ipv4() {
    let mut h = handler(Config::default());
    let mut c = Client::new();
    for (i, from) in [v6(1, 1000), v6(2, 1000)].into_iter().enumerate() {
        let cid = c.connect(&mut h, from, T0);
        let a = announce(cid, 1, 6000 + i as u16, 1, Event::Started).encode();
        c.send(&mut h, &a, from, T0);
    }
    let r = decode_announce_response(&c.out, 9, PeerFamily::V6).unwrap();
    let first = SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1),
        6000,
        0,
        0,
    ));
    assert_eq!(r.peers, vec![first]);
    assert_eq!(c.out.len(), 20 + 18);

    // An IPv4 client reaching a dual-stack socket shows up as ::ffff:a.b.c.d.
    let plain = v4(9, 2000);
    let mapped = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped(), 2000));
    let cid = c.connect(&mut h, mapped, T0);
    assert_eq!(cid, h.connection_id(plain.ip(), T0), "the same id as IPv4");
    let a = announce(cid, 1, 6100, 1, Event::Started).encode();
    c.send(&mut h, &a, mapped, T0);
    let r = decode_announce_response(&c.out, 9, PeerFamily::V4).unwrap();
    assert!(r.peers.is_empty(), "no IPv4 peer yet, and no IPv6 one");
    let other = v4(10, 2000);
    let cid = c.connect(&mut h, other, T0);
    c.send(
        &mut h,
        &announce(cid, 1, 6200, 1, Event::Started).encode(),
        other,
        T0,
    );
    let r = decode_announce_response(&c.out, 9, PeerFamily::V4).unwrap();
    assert_eq!(
        r.peers,
        vec![SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(10, 0, 0, 9),
            6100
        ))]
    );
    assert_eq!((h.counts().peers4, h.counts().peers6), (2, 2));
}

#[test]
fn num_want_is_clamped_and_minus_one_is_the_default() {
    let config = Config {
        numwant_default: 3,
        numwant_max: 5,
        ..Config::default()
    };
    let mut h = handler(config);
    let mut c = Client::new();
    for i in 0..10 {
        let from = v4(i, 1);
        let cid = c.connect(&mut h, from, T0);
        c.send(
            &mut h,
            &announce(cid, 2, 100 + u16::from(i), 1, Event::Started).encode(),
            from,
            T0,
        );
    }
    let from = v4(50, 1);
    let cid = c.connect(&mut h, from, T0);
    for (want, got) in [(-1, 3), (0, 0), (4, 4), (1000, 5), (i32::MIN, 3)] {
        let mut a = announce(cid, 2, 999, 1, Event::None);
        a.num_want = want;
        c.send(&mut h, &a.encode(), from, T0);
        let r = decode_announce_response(&c.out, 9, PeerFamily::V4).unwrap();
        assert_eq!(r.peers.len(), got, "num_want {want}");
    }
}

#[test]
fn scrape_answers_up_to_74_torrents_in_order() {
    let mut h = handler(Config::default());
    let mut c = Client::new();
    let from = v4(3, 3000);
    let cid = c.connect(&mut h, from, T0);
    c.send(
        &mut h,
        &announce(cid, 7, 1, 0, Event::Started).encode(),
        from,
        T0,
    );
    let mut hashes: Vec<InfoHash> = (0..74).map(|i| InfoHash([i; 20])).collect();
    let s = UdpScrape {
        connection_id: cid,
        transaction_id: 5,
        info_hashes: hashes.clone(),
    };
    let mut b = Vec::new();
    s.encode(&mut b).unwrap();
    assert_eq!(c.send(&mut h, &b, from, T0), Outcome::Answered);
    let got = decode_scrape_response(&c.out, 5, 74).unwrap();
    assert_eq!(got.len(), 74);
    assert_eq!(got[7].complete, 1);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, s)| i == 7 || s.complete == 0)
    );
    assert!(c.out.len() < b.len(), "a scrape response is shorter");

    // Hashes past 74 in a longer datagram are not read.
    hashes.extend((74..90).map(|i| InfoHash([i; 20])));
    let mut long = b[..16].to_vec();
    for hash in &hashes {
        long.extend_from_slice(hash.as_bytes());
    }
    c.send(&mut h, &long, from, T0);
    assert_eq!(c.out.len(), 8 + 74 * 12);

    // The configured scrape cap applies too.
    let mut h = handler(Config {
        max_scrape: 2,
        ..Config::default()
    });
    let cid = c.connect(&mut h, from, T0);
    b[..8].copy_from_slice(&cid.to_be_bytes());
    c.send(&mut h, &b, from, T0);
    assert_eq!(decode_scrape_response(&c.out, 5, 74).unwrap().len(), 2);
}

#[test]
fn forged_foreign_and_expired_ids_are_refused() {
    let mut h = handler(Config::default());
    let mut c = Client::new();
    let me = v4(4, 4000);
    let cid = c.connect(&mut h, me, T0);
    let check = |c: &mut Client, h: &mut UdpHandler, cid: u64, from, now| {
        let out = c.send(
            h,
            &announce(cid, 1, 1, 1, Event::Started).encode(),
            from,
            now,
        );
        (out, ConnectResponse::decode(&c.out, 9))
    };
    let refused = Err(UdpError::Tracker("bad connection id".into()));
    assert_eq!(check(&mut c, &mut h, cid, me, T0).0, Outcome::Answered);
    let late = T0 + LIFETIME_SECS * 1000;
    assert_eq!(check(&mut c, &mut h, cid, me, late).0, Outcome::Answered);
    assert_eq!(check(&mut c, &mut h, cid, me, late + 1000).1, refused);
    assert_eq!(check(&mut c, &mut h, cid, v4(5, 4000), T0).1, refused);
    assert_eq!(check(&mut c, &mut h, cid ^ 0x10, me, T0).1, refused);
    assert_eq!(check(&mut c, &mut h, 0x41727101980, me, T0).1, refused);
    // Another process (another secret) gave out this id.
    let other = UdpHandler::new(Config::default(), [8; 16]).unwrap();
    let foreign = other.connection_id(me.ip(), T0);
    assert_eq!(check(&mut c, &mut h, foreign, me, T0).1, refused);
    // The same for scrapes.
    let s = UdpScrape {
        connection_id: cid,
        transaction_id: 9,
        info_hashes: vec![InfoHash([1; 20])],
    };
    let mut b = Vec::new();
    s.encode(&mut b).unwrap();
    c.send(&mut h, &b, me, late + 1000);
    assert_eq!(ConnectResponse::decode(&c.out, 9), refused);
    let text = h.app.metrics.prometheus(&h.counts());
    assert!(
        text.contains("swarm_tracker_udp_bad_connection_ids_total 6"),
        "{text}"
    );
    assert_eq!(h.counts().peers4, 1, "no refused announce was stored");
}

/// A datagram of `len` bytes: random, or random after a head that reaches further into the
/// decoder (connect magic, or an action and a random connection id).
fn hostile(rng: &mut SmallRng, len: usize, head: u8) -> Vec<u8> {
    let mut b: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
    let mut put = |at: usize, bytes: &[u8]| {
        for (i, x) in bytes.iter().enumerate() {
            if let Some(slot) = b.get_mut(at + i) {
                *slot = *x;
            }
        }
    };
    match head {
        0 => {}
        1 => put(0, &0x0417_2710_1980u64.to_be_bytes()),
        2 => {
            put(0, &0x0417_2710_1980u64.to_be_bytes());
            put(8, &[0, 0, 0, 0]);
        }
        3 => put(8, &[0, 0, 0, 1]),
        4 => put(8, &[0, 0, 0, 2]),
        5 => put(8, &[0, 0, 0, 3]),
        _ => put(8, &[0, 0, 0, rng.r#gen()]),
    }
    b
}

#[test]
fn never_more_bytes_than_received_to_an_unproven_address() {
    let mut h = handler(Config::default());
    let mut c = Client::new();
    let mut rng = SmallRng::seed_from_u64(11);
    let from = v4(6, 6000);
    let mut answers = 0;
    for len in 0..=MAX_DATAGRAM + 100 {
        for head in 0..7 {
            let b = hostile(&mut rng, len, head);
            let outcome = c.send(&mut h, &b, from, T0);
            assert!(
                c.out.len() <= b.len(),
                "{} bytes answered to {len} (head {head}): {outcome:?}",
                c.out.len()
            );
            assert_eq!(outcome == Outcome::Silent, c.out.is_empty());
            answers += usize::from(outcome != Outcome::Silent);
        }
    }
    // Connects (head 2, from 16 bytes on) and errors that fit were answered.
    assert!(answers > MAX_DATAGRAM, "{answers}");
    assert_eq!(h.counts().swarms, 0, "nothing unproven was stored");
}

#[test]
fn bad_requests_get_a_short_error_or_silence() {
    let mut h = handler(Config::default());
    let mut c = Client::new();
    let from = v4(7, 7000);
    // Not BEP 15 at all (no protocol id), or too short for a transaction id: silence.
    assert_eq!(c.send(&mut h, &[0; 16], from, T0), Outcome::Silent);
    assert_eq!(c.send(&mut h, &[1; 15], from, T0), Outcome::Silent);
    assert_eq!(c.send(&mut h, &[], from, T0), Outcome::Silent);
    // An unknown action with room for the error: answered with this transaction id.
    let mut odd = ConnectRequest { transaction_id: 77 }.encode().to_vec();
    odd[11] = 9;
    odd.extend_from_slice(&[0; 40]);
    assert_eq!(c.send(&mut h, &odd, from, T0), Outcome::Error);
    assert_eq!(
        ConnectResponse::decode(&c.out, 77),
        Err(UdpError::Tracker("malformed request".into()))
    );
    // Without room for it: silence.
    assert_eq!(c.send(&mut h, &odd[..16], from, T0), Outcome::Silent);
    // A bad event from a proven address.
    let cid = c.connect(&mut h, from, T0);
    let mut a = announce(cid, 1, 1, 1, Event::None).encode();
    a[83] = 9;
    assert_eq!(c.send(&mut h, &a, from, T0), Outcome::Error);
    // Port 0 is refused, as over HTTP.
    let a = announce(cid, 1, 0, 1, Event::None).encode();
    assert_eq!(
        (
            c.send(&mut h, &a, from, T0),
            ConnectResponse::decode(&c.out, 9)
        ),
        (
            Outcome::Error,
            Err(UdpError::Tracker("invalid port 0".into()))
        )
    );
    assert_eq!(h.counts().swarms, 0);
}

#[test]
fn url_data_is_read_and_bad_options_do_not_cost_the_announce() {
    let mut h = handler(Config::default());
    let mut c = Client::new();
    let from = v4(8, 8000);
    let cid = c.connect(&mut h, from, T0);
    let a = announce(cid, 3, 1234, 1, Event::Started);
    let mut b = Vec::new();
    a.encode_with_url_data(b"/announce?passkey=abc", &mut b);
    assert_eq!(c.send(&mut h, &b, from, T0), Outcome::Answered);
    let mut bad = a.encode().to_vec();
    bad.extend_from_slice(&[2, 200, b'/']);
    assert_eq!(c.send(&mut h, &bad, from, T0), Outcome::Answered);
    decode_announce_response(&c.out, 9, PeerFamily::V4).unwrap();
    assert_eq!(h.counts().peers4, 1);
}

#[test]
fn announce_floods_from_one_address_are_rate_limited() {
    let config = Config {
        rate_limit: Some(RateLimit {
            per_minute: 60,
            burst: 4,
            max_tracked: 1000,
        }),
        ..Config::default()
    };
    let mut h = handler(config);
    let mut c = Client::new();
    let flooder = v4(9, 9000);
    let cid = c.connect(&mut h, flooder, T0);
    let mut answered = 0;
    for i in 0..1000u16 {
        let a = announce(cid, (i % 200) as u8, 1 + i, 1, Event::Started).encode();
        match c.send(&mut h, &a, flooder, T0) {
            Outcome::Answered => answered += 1,
            Outcome::Error => assert_eq!(
                ConnectResponse::decode(&c.out, 9),
                Err(UdpError::Tracker(
                    "rate limit exceeded: announce less often".into()
                ))
            ),
            Outcome::Silent => panic!("a proven address gets an error"),
        }
    }
    assert_eq!(answered, 5, "one plus the burst");
    assert_eq!(h.counts().peers4, 5);
    // Another address is not held back, and the flooder may go on a second later.
    let other = v4(10, 9000);
    let cid2 = c.connect(&mut h, other, T0);
    let a = announce(cid2, 1, 1, 1, Event::Started).encode();
    assert_eq!(c.send(&mut h, &a, other, T0), Outcome::Answered);
    let a = announce(cid, 1, 1, 1, Event::Started).encode();
    assert_eq!(c.send(&mut h, &a, flooder, T0 + 1000), Outcome::Answered);
}

#[test]
fn floods_of_connects_from_many_addresses_hold_no_state() {
    let config = Config {
        limits: crate::store::Limits {
            max_swarms: 10,
            ..Config::default().limits
        },
        ..Config::default()
    };
    let mut h = handler(config);
    let mut c = Client::new();
    for i in 0..20_000u32 {
        let from = SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + i), 1));
        c.connect(&mut h, from, T0);
    }
    assert_eq!(h.counts().swarms, 0);
    // At the swarm cap a new torrent gets the store's refusal as an error.
    let from = v4(1, 1);
    let cid = c.connect(&mut h, from, T0);
    for i in 0..11u8 {
        let a = announce(cid, i, 1, 1, Event::Started).encode();
        let outcome = c.send(&mut h, &a, from, T0);
        assert_eq!(outcome == Outcome::Error, i == 10, "torrent {i}");
    }
    assert_eq!(h.counts().swarms, 10);
}
