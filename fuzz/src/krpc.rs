//! KRPC (BEP 5) as the DHT reads it: `dht::message::Message::decode` on the raw bytes, and a
//! whole `dht::Dht` node fed a script of datagrams from a few senders, with commands and jumps
//! of virtual time in between.
//!
//! A script is a sequence of steps `[control, len_hi, len_lo, packet...]` (at most
//! [`MAX_STEPS`]). The control byte picks the sender (bits 0-1), whether the packet's
//! transaction id is replaced by the last one we sent that sender (bit 2, so responses can
//! match our queries), whether its `token` is replaced by the last one we gave that sender (bit
//! 3, so announces can pass), a command run first (bits 4-5: none, get_peers, announce,
//! find_node, on the packet's first 20 bytes) and a jump of time before it (bits 6-7: none, 1 s,
//! 3 s, 11 min) followed by `handle_timeout`.
//!
//! Invariants besides "no panic": what decodes re-encodes to a message that decodes to the same
//! value; everything the node sends decodes, fits a packet and goes to a routable IPv4 address;
//! queues, routing table, peer store and lookups stay within the configured caps.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::message::{Body, MAX_PACKET, Message};
use dht::{Config, Dht, ID_BITS, NodeId};
use metainfo::InfoHash;
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Most steps run from one input.
pub const MAX_STEPS: usize = 64;

/// The senders a step can pick: the bootstrap node, two other nodes, an IPv6 address.
fn senders() -> [SocketAddr; 4] {
    [
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(1, 1, 1, 1), 6881)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(2, 2, 2, 2), 6881)),
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(3, 3, 3, 3), 1000)),
        "[2001:db8::1]:6881"
            .parse()
            .unwrap_or(SocketAddr::from(([9, 9, 9, 9], 9))),
    ]
}

/// Small caps, so that fuzzing reaches them.
fn config() -> Config {
    Config {
        max_lookups: 4,
        max_transactions: 16,
        max_transmit_queue: 32,
        max_events: 16,
        max_info_hashes: 2,
        max_peers_per_info_hash: 3,
        max_values_per_reply: 4,
        query_burst_per_ip: 4,
        max_rate_limited_ips: 2,
        ..Config::default()
    }
}

/// Decodes `bytes`; what decodes must re-encode to the same message.
fn decode_checked(bytes: &[u8]) -> Option<Message> {
    let m = Message::decode(bytes).ok()?;
    let again = m.to_vec();
    assert_eq!(
        Message::decode(&again).as_ref(),
        Ok(&m),
        "re-encoded {again:?} does not decode to the same message"
    );
    Some(m)
}

/// What the node last sent to one sender: a query's transaction id and a token.
#[derive(Default, Clone)]
struct Sent {
    tid: Option<Vec<u8>>,
    token: Option<Vec<u8>>,
}

/// Replaces the bytes right after the first `pattern` with `value` (same length only).
fn substitute(packet: &mut [u8], pattern: &[u8], value: &[u8]) {
    let Some(at) = packet.windows(pattern.len()).position(|w| w == pattern) else {
        return;
    };
    let start = at + pattern.len();
    if let Some(slot) = packet.get_mut(start..start + value.len()) {
        slot.copy_from_slice(value);
    }
}

struct Harness {
    node: Dht,
    config: Config,
    now: Instant,
    senders: [SocketAddr; 4],
    sent: [Sent; 4],
}

impl Harness {
    /// Drains what the node wants to send and its events, and checks the caps.
    fn drain(&mut self) {
        let mut n = 0;
        while let Some((to, bytes)) = self.node.poll_transmit() {
            n += 1;
            assert!(
                n <= self.config.max_transmit_queue,
                "transmit queue over its cap"
            );
            assert!(bytes.len() <= MAX_PACKET, "sent {} bytes", bytes.len());
            let SocketAddr::V4(v4) = to else {
                panic!("sent to IPv6 {to}");
            };
            assert!(v4.port() != 0 && !v4.ip().is_unspecified(), "sent to {to}");
            let m = Message::decode(&bytes)
                .unwrap_or_else(|e| panic!("our own packet does not decode: {e}: {bytes:?}"));
            let Some(i) = self.senders.iter().position(|s| *s == to) else {
                continue;
            };
            match m.body {
                Body::Query(_) => self.sent[i].tid = Some(m.tid),
                Body::Response(r) if r.token.is_some() => self.sent[i].token = r.token,
                _ => {}
            }
        }
        let mut events = 0;
        while self.node.poll_event().is_some() {
            events += 1;
            assert!(events <= self.config.max_events, "event queue over its cap");
        }
        let k = self.config.k;
        assert!(self.node.routing_nodes() <= ID_BITS * k);
        assert!(self.node.stored_info_hashes() <= self.config.max_info_hashes);
        assert!(self.node.lookups_running() <= self.config.max_lookups);
        assert!(self.node.poll_timeout().is_some());
    }

    fn step(&mut self, control: u8, packet: &mut [u8]) {
        let who = usize::from(control & 3);
        self.now += match control >> 6 {
            0 => Duration::ZERO,
            1 => Duration::from_secs(1),
            2 => Duration::from_secs(3),
            _ => Duration::from_secs(11 * 60),
        };
        if control >> 6 != 0 {
            self.node.handle_timeout(self.now);
            self.drain();
        }
        let mut target = [0u8; 20];
        for (t, b) in target.iter_mut().zip(packet.iter()) {
            *t = *b;
        }
        let now = self.now;
        let _ = match (control >> 4) & 3 {
            0 => Ok(()),
            1 => self.node.get_peers(InfoHash(target), now).map(drop),
            2 => self.node.announce(InfoHash(target), None, now).map(drop),
            _ => self.node.find_node(NodeId(target), now).map(drop),
        };
        self.drain();
        let sent = self.sent[who].clone();
        if control & 4 != 0
            && let Some(tid) = &sent.tid
        {
            substitute(packet, b"1:t2:", tid);
        }
        if control & 8 != 0
            && let Some(token) = &sent.token
        {
            substitute(packet, b"5:token20:", token);
        }
        let _ = decode_checked(packet);
        self.node.handle_packet(self.senders[who], packet, self.now);
        self.drain();
    }
}

/// Decodes `data` as one packet, then runs it as a script against a fresh node.
pub fn run(data: &[u8]) {
    let _ = decode_checked(data);
    let config = config();
    let mut rng = StdRng::seed_from_u64(7);
    let now = Instant::now();
    let senders = senders();
    let node = Dht::new(NodeId([0x55; 20]), config.clone(), &mut rng, now);
    let mut h = Harness {
        node,
        config,
        now,
        senders,
        sent: Default::default(),
    };
    h.node.bootstrap(&[senders[0]], now);
    h.drain();
    let mut rest = data;
    for _ in 0..MAX_STEPS {
        let [control, hi, lo, tail @ ..] = rest else {
            return;
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (packet, after) = tail.split_at(len);
        let mut packet = packet.to_vec();
        h.step(*control, &mut packet);
        rest = after;
    }
}
