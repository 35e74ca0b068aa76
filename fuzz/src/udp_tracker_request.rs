//! The UDP tracker's request handling (`tracker::udp::UdpHandler`: BEP 15 decode + the sans-IO
//! handler over a small store) fed a script of datagrams from 8 senders (IPv4, IPv6 and
//! v4-mapped) on a clock that jumps. A record can carry the sender's valid connection id, so the
//! fuzzer reaches announces and scrapes. Checked besides "no panic": an answer longer than its
//! request is an announce response to a sender whose id is valid; every answer carries the
//! request's transaction id and decodes (peers of the sender's family, at most numwant max;
//! scrapes at most 74); the store stays within its caps.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use tracker::Config;
use tracker::rate_limit::RateLimit;
use tracker::udp::{ConnectionIds, MAX_DATAGRAM, Outcome, UdpHandler};
use tracker_proto::udp::{
    ConnectResponse, PeerFamily, UdpError, decode_announce_response, decode_scrape_response,
};

const KEY: [u8; 16] = *b"fuzz-udp-tracker";
const MAX_SWARMS: usize = 8;
const MAX_PEERS: usize = 64;
const NUMWANT_MAX: u32 = 20;

fn sender(i: u8) -> SocketAddr {
    let port = 1000 + u16::from(i);
    match i % 8 {
        0..=3 => SocketAddr::from((Ipv4Addr::new(10, 0, 0, i % 8), port)),
        4..=6 => SocketAddr::from((
            Ipv6Addr::new(0x2001, 0xdb8, 0, u16::from(i % 8), 0, 0, 0, 1),
            port,
        )),
        _ => SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped(), port)),
    }
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Runs the script in `data`: records of a flags byte (sender in bits 0-2; bit 3: put the
/// sender's id in bytes 0-8, issued now or, with bit 7, at the previous record's time (stale
/// after a long step); clock step in bits 4-5; length x 8 in bit 6), a length byte, then the
/// datagram.
pub fn run(data: &[u8]) {
    let mut config = Config {
        numwant_max: NUMWANT_MAX,
        numwant_default: 5,
        max_scrape: 74,
        rate_limit: Some(RateLimit {
            per_minute: 600,
            burst: 20,
            max_tracked: 16,
        }),
        ..Config::default()
    };
    config.limits.max_swarms = MAX_SWARMS;
    config.limits.max_peers = MAX_PEERS;
    config.limits.max_peers_per_swarm = MAX_PEERS / 2;
    let Ok(mut handler) = UdpHandler::new(config, KEY) else {
        panic!("the fuzz config is valid");
    };
    let ids = ConnectionIds::new(KEY);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut out = Vec::new();
    let mut now_ms: u64 = 5_000_000;
    let mut rest = data;
    while let [flags, len, tail @ ..] = rest {
        let mut len = usize::from(*len);
        if flags & 0x40 != 0 {
            len *= 8;
        }
        let len = len.min(tail.len()).min(MAX_DATAGRAM);
        let (body, next) = tail.split_at(len);
        rest = next;
        let prev_ms = now_ms;
        now_ms += [0, 1_000, 61_000, 200_000][usize::from(flags >> 4 & 3)];
        let from = sender(flags & 7);
        let mut d = body.to_vec();
        if flags & 0x08 != 0
            && let Some(head) = d.get_mut(..8)
        {
            let at = if flags & 0x80 != 0 { prev_ms } else { now_ms };
            head.copy_from_slice(&handler.connection_id(from.ip(), at).to_be_bytes());
        }
        let outcome = handler.handle(&d, from, now_ms, &mut rng, &mut out);
        check(&d, from, now_ms, &ids, outcome, &out);
        let c = handler.counts();
        assert!(c.swarms <= MAX_SWARMS, "{c:?}");
        assert!(c.peers4 + c.peers6 <= MAX_PEERS, "{c:?}");
    }
}

fn check(d: &[u8], from: SocketAddr, now_ms: u64, ids: &ConnectionIds, o: Outcome, out: &[u8]) {
    assert_eq!(
        o == Outcome::Silent,
        out.is_empty(),
        "{o:?} with {} bytes",
        out.len()
    );
    if out.is_empty() {
        return;
    }
    let tid = be32(d, 12).expect("an answer only to a request with a transaction id");
    let action = be32(out, 0).expect("an answer has an action");
    assert_eq!(be32(out, 4), Some(tid), "the request's transaction id");
    let proven = d
        .get(..8)
        .and_then(|h| <[u8; 8]>::try_from(h).ok())
        .is_some_and(|h| ids.check(u64::from_be_bytes(h), from.ip(), now_ms / 1000));
    if out.len() > d.len() {
        assert!(
            proven && action == 1,
            "{} bytes for {} unproven",
            out.len(),
            d.len()
        );
    }
    let family = match from.ip().to_canonical() {
        IpAddr::V4(_) => PeerFamily::V4,
        IpAddr::V6(_) => PeerFamily::V6,
    };
    match action {
        0 => {
            let c = ConnectResponse::decode(out, tid).expect("a connect response decodes");
            assert!(ids.check(c.connection_id, from.ip(), now_ms / 1000));
            assert_eq!(out.len(), 16);
        }
        1 => {
            assert!(proven, "announce response without a valid id");
            let r = decode_announce_response(out, tid, family).expect("an announce response");
            assert!(r.peers.len() <= NUMWANT_MAX as usize);
            let fam = |a: &SocketAddr| PeerFamily::of(a) == family;
            assert!(r.peers.iter().all(fam), "peers of another family");
        }
        2 => {
            assert!(proven, "scrape response without a valid id");
            let s = decode_scrape_response(out, tid, 74).expect("a scrape response decodes");
            assert!(!s.is_empty() && s.len() <= 74);
            assert!(out.len() < d.len());
        }
        3 => match ConnectResponse::decode(out, tid) {
            Err(UdpError::Tracker(m)) => assert!(!m.is_empty()),
            other => panic!("an error response reads as {other:?}"),
        },
        a => panic!("action {a} sent"),
    }
}
