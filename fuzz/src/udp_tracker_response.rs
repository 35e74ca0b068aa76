//! What a UDP tracker (BEP 15) sends the client: the response decoders with a fixed transaction
//! id (the first 4 bytes), and the client's state -- an `Exchange` and the session's
//! `ConnectionCache` -- driven by a script of datagrams (answers built on the transaction id
//! the client last sent, or any), unreachable addresses, jumps of time and new exchanges that
//! share the cache.
//!
//! Checked besides "no panic": decoded answers carry the asked transaction id, peers and
//! counts stay within their caps; everything the client sends is a valid request to one of the
//! tracker's addresses, with a connection id that address gave; its timer moves forward; the
//! number of sends per exchange is bounded by the schedule; an exchange that ended stays
//! silent; the cache stays within its cap.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use metainfo::{InfoHash, PeerId};
use tracker_proto::udp::{
    ConnectResponse, MAX_SCRAPE_HASHES, PeerFamily, UdpRequest, decode_announce_response,
    decode_scrape_response,
};
use tracker_proto::udp_client::{
    ConnectionCache, Exchange, MAX_ADDRESSES, Outcome, Query, Retransmit,
};
use tracker_proto::{AnnounceRequest, Event, MAX_DECODED_PEERS};

/// Runs the decoders on `data`, then `data` as a script.
pub fn run(data: &[u8]) {
    decoders(data);
    script(data);
}

fn decoders(data: &[u8]) {
    let Some((head, body)) = data.split_first_chunk::<4>() else {
        return;
    };
    let tid = u32::from_be_bytes(*head);
    if let Ok(c) = ConnectResponse::decode(body, tid) {
        assert_eq!(c.transaction_id, tid);
        assert_eq!(
            &c.encode()[..],
            &body[..16],
            "a connect response re-encodes"
        );
    }
    for family in [PeerFamily::V4, PeerFamily::V6] {
        if let Ok(r) = decode_announce_response(body, tid, family) {
            assert!(body.len() >= 20);
            assert!(r.peers.len() <= MAX_DECODED_PEERS);
            assert!(r.peers.iter().all(|p| match family {
                PeerFamily::V4 => p.is_ipv4(),
                PeerFamily::V6 => p.is_ipv6(),
            }));
        }
    }
    let asked = usize::from(head[0]) % 80;
    if let Ok(v) = decode_scrape_response(body, tid, asked) {
        assert!(v.len() <= asked.min(MAX_SCRAPE_HASHES));
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        a
    }
}

/// The tracker's addresses (an IPv4 one first, then IPv6 and more IPv4) and one never asked.
fn addresses() -> [SocketAddr; 5] {
    [
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6969)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, 6969)),
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 6969)),
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, 3), 6969)),
        SocketAddr::from((Ipv4Addr::new(192, 0, 2, 1), 6969)),
    ]
}

fn query(scrape: bool) -> Query {
    if scrape {
        return Query::Scrape(vec![InfoHash([1; 20])]);
    }
    Query::Announce {
        request: Box::new(AnnounceRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 1,
            event: Event::Started,
            compact: true,
            no_peer_id: true,
            numwant: Some(50),
            key: None,
            trackerid: None,
            ip: None,
        }),
        key: 7,
        url_data: b"/announce".to_vec(),
    }
}

/// The client and what the harness knows of it.
struct Client {
    ex: Exchange,
    /// Connection ids each address gave (in connect answers).
    given: Vec<(SocketAddr, u64)>,
    last_tid: u32,
    sends: u32,
    max_sends: u32,
    scrape: bool,
}

impl Client {
    fn check(&mut self, outcome: Option<Outcome>, now: Instant, cache: &mut ConnectionCache) {
        self.check_sends_and_outcome(outcome, cache);
        // A timer that is due is handled at once and never stays due: no busy loop.
        if let Some(t) = self.ex.poll_timeout()
            && t <= now
        {
            let o = self.ex.handle_timeout(now, cache);
            self.check_sends_and_outcome(o, cache);
            if let Some(t) = self.ex.poll_timeout() {
                assert!(t > now, "the timer stays due");
            }
        }
    }

    fn check_sends_and_outcome(&mut self, outcome: Option<Outcome>, cache: &ConnectionCache) {
        assert!(cache.len() <= cache.cap());
        while let Some((to, d)) = self.ex.poll_transmit() {
            assert!(!self.ex.is_done(), "sends after the end");
            assert!(self.ex.addresses().contains(&to), "sent to {to}");
            self.sends += 1;
            assert!(self.sends <= self.max_sends, "{} sends", self.sends);
            let conn = match UdpRequest::decode(&d) {
                Ok(UdpRequest::Connect(c)) => {
                    self.last_tid = c.transaction_id;
                    None
                }
                Ok(UdpRequest::Announce(a)) => {
                    assert!(!self.scrape);
                    self.last_tid = a.transaction_id;
                    Some(a.connection_id)
                }
                Ok(UdpRequest::Scrape(s)) => {
                    assert!(self.scrape);
                    self.last_tid = s.transaction_id;
                    Some(s.connection_id)
                }
                Err(e) => panic!("the client sent a bad request: {e}"),
            };
            if let Some(id) = conn {
                assert!(
                    self.given.contains(&(to, id)),
                    "connection id {id} was not given by {to}"
                );
            }
        }
        match &outcome {
            Some(Outcome::Announced(r)) => assert!(r.peers.len() <= MAX_DECODED_PEERS),
            Some(Outcome::Scraped(v)) => assert!(v.len() <= 1),
            Some(Outcome::Failed(_)) | None => {}
        }
        if outcome.is_some() {
            assert!(self.ex.is_done() && self.ex.poll_timeout().is_none());
        }
    }
}

fn script(data: &[u8]) {
    let mut r = Reader(data);
    let (Some(config), Some(wait)) = (r.byte(), r.byte()) else {
        return;
    };
    let n = usize::from(config & 3) + 1;
    let scrape = config & 4 != 0;
    let retransmit = Retransmit {
        first: Duration::from_millis(100 * (u64::from(wait) + 1)),
        max_n: u32::from(config >> 3 & 3),
    };
    let mut cache = ConnectionCache::new(usize::from(config >> 5) + 1, Duration::from_secs(60));
    let all = addresses();
    let addrs = &all[..n];
    let start = Instant::now();
    let mut now = start;
    let max_sends = 4 * (MAX_ADDRESSES as u32 + 2) * (retransmit.max_n + 1);
    let new_client = |cache: &ConnectionCache, now: Instant, seed: u64, given| {
        let ex = Exchange::new(
            query(scrape),
            addrs,
            cache,
            retransmit,
            now,
            now + Duration::from_secs(300),
            seed,
        );
        Client {
            ex,
            given,
            last_tid: 0,
            sends: 0,
            max_sends,
            scrape,
        }
    };
    let mut c = new_client(&cache, now, 1, Vec::new());
    c.check(None, now, &mut cache);
    for round in 0..256u64 {
        let Some(op) = r.byte() else { break };
        let outcome = match op % 6 {
            0 | 1 => {
                let a = r.byte().unwrap_or(0);
                let i = usize::from(a) % (n + 1);
                let from = if i == n { all[4] } else { all[i] };
                let mut d = Vec::new();
                if op % 6 == 0 {
                    let action = u32::from(a >> 3 & 3);
                    let tid = if a & 0x80 == 0 {
                        c.last_tid
                    } else {
                        let b = r.bytes(4);
                        u32::from_be_bytes([
                            b.first().copied().unwrap_or(0),
                            b.get(1).copied().unwrap_or(0),
                            b.get(2).copied().unwrap_or(0),
                            b.get(3).copied().unwrap_or(0),
                        ])
                    };
                    d.extend_from_slice(&action.to_be_bytes());
                    d.extend_from_slice(&tid.to_be_bytes());
                }
                let len = usize::from(r.byte().unwrap_or(0));
                d.extend_from_slice(r.bytes(len));
                // A connect answer names the id this address gives.
                if let Ok(resp) = ConnectResponse::decode(&d, c.last_tid) {
                    c.given.push((from, resp.connection_id));
                }
                c.ex.handle_datagram(from, &d, now, &mut cache)
            }
            2 => {
                let b = r.byte().unwrap_or(0);
                now = match (b, c.ex.poll_timeout()) {
                    (0, Some(t)) => t.max(now),
                    _ => now + Duration::from_millis(10 * u64::from(b)),
                };
                c.ex.handle_timeout(now, &mut cache)
            }
            3 => c.ex.handle_unreachable(now, &mut cache),
            4 => {
                let given = std::mem::take(&mut c.given);
                c = new_client(&cache, now, round + 2, given);
                None
            }
            _ => {
                now += Duration::from_secs(u64::from(r.byte().unwrap_or(0)));
                c.ex.handle_timeout(now, &mut cache)
            }
        };
        c.check(outcome, now, &mut cache);
    }
}
