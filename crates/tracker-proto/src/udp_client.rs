//! The client side of BEP 15 as a state machine: one [`Exchange`] asks one tracker (every
//! address its name resolved to) for an announce or a scrape, through the connect step when no
//! fresh connection id is cached; the [`ConnectionCache`] keeps connection ids per tracker
//! address for a minute, shared by every exchange of a session.
//!
//! Like the rest of this crate it does no I/O and reads no clock: the caller sends what
//! [`Exchange::poll_transmit`] hands out, sleeps until [`Exchange::poll_timeout`], and feeds
//! back datagrams ([`Exchange::handle_datagram`]) and expired timers
//! ([`Exchange::handle_timeout`]), passing `now` each time; transaction ids come from a seed.
//!
//! Policy:
//! - a request unanswered after [`Retransmit::wait`]`(n)` (BEP 15: 15 * 2^n s) is sent again
//!   with the same transaction id (so a late answer still counts), up to n = `max_n`;
//! - an address that has not answered the connect request within its first wait is left for
//!   the next one (a late answer from it is still taken); the last address gets the rest of the
//!   schedule; an address we cannot send to is left at once;
//! - datagrams from addresses not asked, with another transaction id, or too short to carry one
//!   are ignored; an error (action 3) ends the exchange with the tracker's message, except an
//!   error to a cached connection id, which may have expired at the tracker: the id is dropped
//!   and a fresh connect is made once;
//! - the whole exchange ends at the caller's deadline, whatever the schedule says.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use metainfo::InfoHash;

use crate::announce_request::AnnounceRequest;
use crate::announce_response::{AnnounceResponse, MAX_DECODED_PEERS};
use crate::scrape::ScrapeStats;
use crate::udp::{
    ANNOUNCE_RESPONSE_HEADER, ConnectRequest, ConnectResponse, MAX_SCRAPE_HASHES, PeerFamily,
    UdpAnnounce, UdpError, UdpScrape, decode_announce_response, decode_scrape_response,
};

/// How long a connection id may be used after the connect response (BEP 15: one minute).
pub const CONNECTION_ID_TTL: Duration = Duration::from_secs(60);
/// Most addresses of one tracker an exchange tries.
pub const MAX_ADDRESSES: usize = 8;
/// The largest datagram the caller should read: a header, the most peers we keep at the
/// largest size, and slack. A datagram of this size may have been cut by the receive buffer:
/// only its whole peers are read.
pub const MAX_DATAGRAM: usize = 2048 + ANNOUNCE_RESPONSE_HEADER + 18 * MAX_DECODED_PEERS;

/// When an unanswered request is sent again: after `first * 2^n` for the n-th send (n from 0),
/// and not after the `max_n`-th. BEP 15 says 15 s and 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retransmit {
    /// The wait after the first send.
    pub first: Duration,
    /// The last n: `max_n + 1` sends in all.
    pub max_n: u32,
}

impl Retransmit {
    /// BEP 15's schedule: 15 s, 30 s, ... 3840 s.
    pub const BEP15: Retransmit = Retransmit {
        first: Duration::from_secs(15),
        max_n: 8,
    };

    /// The wait after the n-th send: `first * 2^n` (n counted up to 31; saturating).
    pub fn wait(&self, n: u32) -> Duration {
        self.first.saturating_mul(1u32 << n.min(31))
    }
}

impl Default for Retransmit {
    fn default() -> Self {
        Retransmit::BEP15
    }
}

/// Connection ids by tracker address, each valid for a time-to-live after the connect
/// response; at most `cap` addresses (at the cap an expired id, else the oldest, makes room).
#[derive(Debug, Clone)]
pub struct ConnectionCache {
    ids: HashMap<SocketAddr, (u64, Instant)>,
    cap: usize,
    ttl: Duration,
}

impl ConnectionCache {
    /// An empty cache of at most `cap` (at least 1) addresses, ids valid for `ttl`.
    pub fn new(cap: usize, ttl: Duration) -> ConnectionCache {
        ConnectionCache {
            ids: HashMap::new(),
            cap: cap.max(1),
            ttl,
        }
    }

    /// The id to use with `addr` at `now`, if one is younger than the time-to-live.
    pub fn get(&self, addr: SocketAddr, now: Instant) -> Option<u64> {
        let (id, got) = self.ids.get(&canonical(addr))?;
        (now.saturating_duration_since(*got) < self.ttl).then_some(*id)
    }

    /// Remembers the id `addr` gave at `now`.
    pub fn insert(&mut self, addr: SocketAddr, id: u64, now: Instant) {
        let addr = canonical(addr);
        if !self.ids.contains_key(&addr) && self.ids.len() >= self.cap {
            let ttl = self.ttl;
            self.ids
                .retain(|_, (_, got)| now.saturating_duration_since(*got) < ttl);
            if self.ids.len() >= self.cap
                && let Some(oldest) = self.ids.iter().min_by_key(|(_, (_, t))| *t).map(|e| *e.0)
            {
                self.ids.remove(&oldest);
            }
        }
        self.ids.insert(addr, (id, now));
    }

    /// Drops the id of `addr` (the tracker no longer takes it).
    pub fn forget(&mut self, addr: SocketAddr) {
        self.ids.remove(&canonical(addr));
    }

    /// Addresses remembered (expired ones included until they make room).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The most addresses remembered.
    pub fn cap(&self) -> usize {
        self.cap
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so one tracker has one key.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// What to ask the tracker.
#[derive(Debug, Clone)]
pub enum Query {
    /// An announce; `key` is BEP 15's 32-bit key, `url_data` the tracker URL's path and query
    /// (BEP 41; empty sends none).
    Announce {
        /// The request in the HTTP path's form.
        request: Box<AnnounceRequest>,
        /// The client's key.
        key: u32,
        /// Path and query of the tracker URL.
        url_data: Vec<u8>,
    },
    /// Counts for 1 to [`MAX_SCRAPE_HASHES`] torrents (more are not asked).
    Scrape(Vec<InfoHash>),
}

/// How an exchange ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The announce response; its peers are of the answering address's family.
    Announced(AnnounceResponse),
    /// One count triple per torrent asked, in order (fewer if the tracker sent fewer).
    Scraped(Vec<ScrapeStats>),
    /// The exchange failed.
    Failed(ExchangeError),
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// There was no address to ask, or none could be sent to.
    #[error("no address to reach the tracker at")]
    NoAddress,
    /// Nothing answered a step in time.
    #[error("no answer to the {step} request (tried {addresses} address{s})", s = if *.addresses == 1 { "" } else { "es" })]
    TimedOut {
        /// `connect`, `announce` or `scrape`.
        step: &'static str,
        /// Addresses asked.
        addresses: usize,
    },
    /// The tracker answered with an error (action 3).
    #[error("{0}")]
    Tracker(String),
    /// A datagram with our transaction id that is not the answer asked for.
    #[error("bad response: {0}")]
    Protocol(UdpError),
    /// A scrape of no torrent.
    #[error("nothing to scrape")]
    EmptyScrape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connect { tid: u32 },
    Request { tid: u32, conn: u64, cached: bool },
}

/// One announce or scrape to one tracker; see the module's policy.
#[derive(Debug)]
pub struct Exchange {
    query: Query,
    addrs: Vec<SocketAddr>,
    /// The address asked now.
    current: usize,
    /// Addresses asked so far: `addrs[..tried]`.
    tried: usize,
    step: Step,
    /// Sends of this step to the current address, less one (the n of its wait).
    n: u32,
    retransmit: Retransmit,
    next: Instant,
    deadline: Instant,
    transmit: Option<(SocketAddr, Vec<u8>)>,
    rng: u64,
    reconnected: bool,
    done: bool,
}

impl Exchange {
    /// Starts asking `addrs` (in order; IPv4-mapped ones as IPv4, repeats dropped, at most
    /// [`MAX_ADDRESSES`]); `seed` makes the transaction ids. With no address (or an empty
    /// scrape) the exchange is over at once: see [`Exchange::result`].
    pub fn new(
        query: Query,
        addrs: &[SocketAddr],
        cache: &ConnectionCache,
        retransmit: Retransmit,
        now: Instant,
        deadline: Instant,
        seed: u64,
    ) -> Exchange {
        let mut list: Vec<SocketAddr> = Vec::new();
        for a in addrs.iter().map(|a| canonical(*a)) {
            if !list.contains(&a) && list.len() < MAX_ADDRESSES {
                list.push(a);
            }
        }
        let mut ex = Exchange {
            query,
            addrs: list,
            current: 0,
            tried: 0,
            step: Step::Connect { tid: 0 },
            n: 0,
            retransmit,
            next: now,
            deadline,
            transmit: None,
            rng: seed,
            reconnected: false,
            done: false,
        };
        if ex.addrs.is_empty() || matches!(&ex.query, Query::Scrape(h) if h.is_empty()) {
            ex.done = true;
        } else {
            ex.start_address(0, cache, now);
        }
        ex
    }

    /// Whether [`Exchange::new`] had nothing to do, and why.
    pub fn result(&self) -> Option<ExchangeError> {
        if !self.done {
            return None;
        }
        Some(match &self.query {
            Query::Scrape(h) if h.is_empty() => ExchangeError::EmptyScrape,
            _ => ExchangeError::NoAddress,
        })
    }

    /// The addresses this exchange asks, in order.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmit.take()
    }

    /// When [`Exchange::handle_timeout`] is due; `None` once the exchange is over.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then(|| self.next.min(self.deadline))
    }

    /// Is the exchange over (an [`Outcome`] was returned, or it never started)?
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn next_tid(&mut self) -> u32 {
        // splitmix64: ids that differ from one request to the next and from run to run.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }

    /// Asks address `i`: the request itself if its connection id is cached, else a connect.
    fn start_address(&mut self, i: usize, cache: &ConnectionCache, now: Instant) {
        self.current = i;
        self.tried = self.tried.max(i + 1);
        let addr = self.addrs[i];
        self.step = match cache.get(addr, now) {
            Some(conn) => Step::Request {
                tid: self.next_tid(),
                conn,
                cached: true,
            },
            None => match self.step {
                // The connect keeps its transaction id across addresses: a late answer from an
                // address left behind is still recognised.
                Step::Connect { tid } if tid != 0 => Step::Connect { tid },
                _ => Step::Connect {
                    tid: self.next_tid(),
                },
            },
        };
        self.n = 0;
        self.send(now);
    }

    /// Queues the current step's datagram and arms its wait.
    fn send(&mut self, now: Instant) {
        let addr = self.addrs[self.current];
        let bytes = match (self.step, &self.query) {
            (Step::Connect { tid }, _) => ConnectRequest {
                transaction_id: tid,
            }
            .encode()
            .to_vec(),
            (
                Step::Request { tid, conn, .. },
                Query::Announce {
                    request,
                    key,
                    url_data,
                },
            ) => {
                let mut out = Vec::new();
                UdpAnnounce::from_request(request, conn, tid, *key)
                    .encode_with_url_data(url_data, &mut out);
                out
            }
            (Step::Request { tid, conn, .. }, Query::Scrape(hashes)) => {
                let mut out = Vec::new();
                let req = UdpScrape {
                    connection_id: conn,
                    transaction_id: tid,
                    info_hashes: hashes.iter().take(MAX_SCRAPE_HASHES).copied().collect(),
                };
                // 1 to MAX_SCRAPE_HASHES hashes: `new` refused an empty scrape.
                if req.encode(&mut out).is_err() {
                    out.clear();
                }
                out
            }
        };
        self.transmit = Some((addr, bytes));
        self.next = now + self.retransmit.wait(self.n);
    }

    fn step_name(&self) -> &'static str {
        match (self.step, &self.query) {
            (Step::Connect { .. }, _) => "connect",
            (Step::Request { .. }, Query::Announce { .. }) => "announce",
            (Step::Request { .. }, Query::Scrape(_)) => "scrape",
        }
    }

    fn finish(&mut self, o: Outcome) -> Option<Outcome> {
        self.done = true;
        self.transmit = None;
        Some(o)
    }

    fn timed_out(&mut self) -> Option<Outcome> {
        let e = ExchangeError::TimedOut {
            step: self.step_name(),
            addresses: self.tried,
        };
        self.finish(Outcome::Failed(e))
    }

    /// The current step's wait (or the deadline) passed: send again, move to the next address,
    /// or give up.
    pub fn handle_timeout(&mut self, now: Instant, cache: &mut ConnectionCache) -> Option<Outcome> {
        if self.done {
            return None;
        }
        if now >= self.deadline {
            return self.timed_out();
        }
        if now < self.next {
            return None;
        }
        let addr = self.addrs[self.current];
        match self.step {
            Step::Request { cached: true, .. } => {
                // The id may have died with the tracker's memory of us: connect afresh.
                cache.forget(addr);
                self.step = Step::Connect {
                    tid: self.next_tid(),
                };
                self.n = 0;
                self.send(now);
                None
            }
            Step::Connect { .. } if self.current + 1 < self.addrs.len() => {
                self.start_address(self.current + 1, cache, now);
                None
            }
            _ if self.n < self.retransmit.max_n => {
                self.n += 1;
                self.send(now);
                None
            }
            _ => self.timed_out(),
        }
    }

    /// Sending to the current address failed at once (no route, say): move on to the next
    /// address, or give up.
    pub fn handle_unreachable(
        &mut self,
        now: Instant,
        cache: &mut ConnectionCache,
    ) -> Option<Outcome> {
        if self.done {
            return None;
        }
        if self.current + 1 < self.addrs.len() {
            self.start_address(self.current + 1, cache, now);
            return None;
        }
        // Wait for a late answer from an address asked before, if any; else it is over.
        if self.tried > 1 {
            self.next = self.deadline;
            return None;
        }
        self.finish(Outcome::Failed(ExchangeError::NoAddress))
    }

    /// A datagram from `from`; an [`Outcome`] when it ends the exchange.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
        cache: &mut ConnectionCache,
    ) -> Option<Outcome> {
        if self.done {
            return None;
        }
        let from = canonical(from);
        let i = self.addrs[..self.tried].iter().position(|a| *a == from)?;
        let ignore = |e: &UdpError| {
            matches!(
                e,
                UdpError::WrongTransaction(_) | UdpError::Short { need: 8, .. }
            )
        };
        match self.step {
            Step::Connect { tid } => match ConnectResponse::decode(data, tid) {
                Ok(c) => {
                    cache.insert(from, c.connection_id, now);
                    self.current = i;
                    self.step = Step::Request {
                        tid: self.next_tid(),
                        conn: c.connection_id,
                        cached: false,
                    };
                    self.n = 0;
                    self.send(now);
                    None
                }
                Err(e) if ignore(&e) => None,
                Err(UdpError::Tracker(m)) => {
                    self.finish(Outcome::Failed(ExchangeError::Tracker(m)))
                }
                Err(e) => self.finish(Outcome::Failed(ExchangeError::Protocol(e))),
            },
            Step::Request { tid, cached, .. } => {
                if i != self.current {
                    return None;
                }
                let r = match &self.query {
                    Query::Announce { .. } => {
                        let family = PeerFamily::of(&from);
                        decode_announce_response(whole_peers(data, family), tid, family)
                            .map(Outcome::Announced)
                    }
                    Query::Scrape(h) => {
                        decode_scrape_response(data, tid, h.len()).map(Outcome::Scraped)
                    }
                };
                match r {
                    Ok(o) => self.finish(o),
                    Err(e) if ignore(&e) => None,
                    Err(UdpError::Tracker(_)) if cached && !self.reconnected => {
                        // Perhaps only our old id was refused: connect once more.
                        self.reconnected = true;
                        cache.forget(from);
                        self.step = Step::Connect {
                            tid: self.next_tid(),
                        };
                        self.n = 0;
                        self.send(now);
                        None
                    }
                    Err(UdpError::Tracker(m)) => {
                        self.finish(Outcome::Failed(ExchangeError::Tracker(m)))
                    }
                    Err(e) => self.finish(Outcome::Failed(ExchangeError::Protocol(e))),
                }
            }
        }
    }
}

/// A datagram that filled the receive buffer may have been cut: its whole peers only.
fn whole_peers(b: &[u8], family: PeerFamily) -> &[u8] {
    if b.len() < MAX_DATAGRAM {
        return b;
    }
    let peers = b.len().saturating_sub(ANNOUNCE_RESPONSE_HEADER);
    b.get(..b.len() - peers % family.peer_size()).unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announce_request::Event;
    use crate::udp::{UdpPeers, encode_announce_response, encode_error, encode_scrape_response};
    use metainfo::PeerId;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

    const FAST: Retransmit = Retransmit {
        first: Duration::from_secs(1),
        max_n: 2,
    };

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::new(10, 0, 0, last), 6969))
    }

    fn v6() -> SocketAddr {
        SocketAddr::from((Ipv6Addr::LOCALHOST, 6969))
    }

    fn announce_query() -> Query {
        Query::Announce {
            request: Box::new(AnnounceRequest {
                info_hash: InfoHash([7; 20]),
                peer_id: PeerId([8; 20]),
                port: 6881,
                uploaded: 1,
                downloaded: 2,
                left: 3,
                event: Event::Started,
                compact: true,
                no_peer_id: true,
                numwant: Some(50),
                key: None,
                trackerid: None,
                ip: None,
            }),
            key: 0xcafe,
            url_data: b"/announce?k=1".to_vec(),
        }
    }

    fn tid_of(d: &[u8]) -> u32 {
        u32::from_be_bytes(d[12..16].try_into().unwrap())
    }

    fn connect_answer(d: &[u8], id: u64) -> Vec<u8> {
        let c = ConnectRequest::decode(d).unwrap();
        ConnectResponse {
            transaction_id: c.transaction_id,
            connection_id: id,
        }
        .encode()
        .to_vec()
    }

    fn start(q: Query, addrs: &[SocketAddr], cache: &ConnectionCache, t0: Instant) -> Exchange {
        Exchange::new(q, addrs, cache, FAST, t0, t0 + Duration::from_secs(600), 1)
    }

    #[test]
    fn bep15_schedule() {
        let r = Retransmit::BEP15;
        let waits: Vec<u64> = (0..=r.max_n).map(|n| r.wait(n).as_secs()).collect();
        assert_eq!(waits, [15, 30, 60, 120, 240, 480, 960, 1920, 3840]);
        assert_eq!(r.wait(40), r.wait(31), "no overflow past 2^31");
    }

    #[test]
    fn connect_then_announce_with_url_data_and_the_id() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let mut ex = start(announce_query(), &[addr(1)], &cache, t0);
        let (to, c) = ex.poll_transmit().unwrap();
        assert_eq!(to, addr(1));
        assert!(ex.poll_transmit().is_none());
        assert_eq!(ex.poll_timeout(), Some(t0 + Duration::from_secs(1)));
        assert!(
            ex.handle_datagram(addr(1), &connect_answer(&c, 77), t0, &mut cache)
                .is_none()
        );
        assert_eq!(cache.get(addr(1), t0), Some(77));
        let (_, a) = ex.poll_transmit().unwrap();
        let req = UdpAnnounce::decode(&a).unwrap();
        assert_eq!((req.connection_id, req.key, req.port), (77, 0xcafe, 6881));
        assert_eq!(UdpAnnounce::url_data(&a).unwrap(), b"/announce?k=1");
        let mut resp = Vec::new();
        let peers = [SocketAddrV4::new(Ipv4Addr::new(1, 2, 3, 4), 5)];
        encode_announce_response(tid_of(&a), 900, 1, 2, UdpPeers::V4(&peers), &mut resp);
        let o = ex.handle_datagram(addr(1), &resp, t0, &mut cache);
        match o {
            Some(Outcome::Announced(r)) => {
                assert_eq!(r.peers, vec![SocketAddr::from(peers[0])]);
                assert_eq!((r.complete, r.incomplete), (Some(2), Some(1)));
            }
            o => panic!("{o:?}"),
        }
        assert!(ex.is_done() && ex.poll_timeout().is_none());
    }

    #[test]
    fn retransmits_on_schedule_then_gives_up() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let mut ex = start(announce_query(), &[addr(1)], &cache, t0);
        let first = ex.poll_transmit().unwrap().1;
        let mut at = t0;
        let mut sends = vec![at];
        while let Some(t) = ex.poll_timeout() {
            assert!(t > at, "the timer moves forward");
            at = t;
            if let Some(o) = ex.handle_timeout(at, &mut cache) {
                assert_eq!(
                    o,
                    Outcome::Failed(ExchangeError::TimedOut {
                        step: "connect",
                        addresses: 1
                    })
                );
                break;
            }
            let (_, d) = ex.poll_transmit().unwrap();
            assert_eq!(d, first, "a retransmission is the same datagram");
            sends.push(at);
        }
        let gaps: Vec<u64> = sends.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
        assert_eq!(gaps, [1, 2], "waits of 1 * 2^n s");
        assert_eq!(
            at - sends[2],
            Duration::from_secs(4),
            "last wait before giving up"
        );
    }

    #[test]
    fn the_deadline_cuts_the_schedule() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let deadline = t0 + Duration::from_millis(1500);
        let mut ex = Exchange::new(announce_query(), &[addr(1)], &cache, FAST, t0, deadline, 9);
        assert!(
            ex.handle_timeout(t0 + Duration::from_secs(1), &mut cache)
                .is_none()
        );
        assert_eq!(ex.poll_timeout(), Some(deadline));
        assert!(matches!(
            ex.handle_timeout(deadline, &mut cache),
            Some(Outcome::Failed(ExchangeError::TimedOut { .. }))
        ));
    }

    #[test]
    fn strays_are_ignored_and_late_answers_count() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let mut ex = start(announce_query(), &[addr(1)], &cache, t0);
        let (_, c) = ex.poll_transmit().unwrap();
        let mut stray = connect_answer(&c, 5);
        stray[7] ^= 1;
        for junk in [&stray[..], &[0u8; 3][..], &[0, 0, 0, 0, 1][..]] {
            assert!(ex.handle_datagram(addr(1), junk, t0, &mut cache).is_none());
        }
        // Someone else answering with our transaction id is not the tracker.
        assert!(
            ex.handle_datagram(addr(2), &connect_answer(&c, 5), t0, &mut cache)
                .is_none()
        );
        assert!(cache.is_empty());
        // The first wait passes, the connect goes again; the answer to the first one arrives.
        let t1 = t0 + Duration::from_secs(1);
        assert!(ex.handle_timeout(t1, &mut cache).is_none());
        assert_eq!(ex.poll_transmit().unwrap().1, c);
        assert!(
            ex.handle_datagram(addr(1), &connect_answer(&c, 6), t1, &mut cache)
                .is_none()
        );
        assert_eq!(cache.get(addr(1), t1), Some(6));
    }

    #[test]
    fn moves_to_the_next_address_and_takes_the_late_one() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let mut ex = start(announce_query(), &[v6(), addr(1), addr(2)], &cache, t0);
        let (to, c) = ex.poll_transmit().unwrap();
        assert_eq!(to, v6());
        let t1 = t0 + Duration::from_secs(1);
        ex.handle_timeout(t1, &mut cache);
        assert_eq!(ex.poll_transmit().unwrap(), (addr(1), c.clone()));
        // The IPv6 address answers late: it is the one used, with 18-byte peers.
        ex.handle_datagram(v6(), &connect_answer(&c, 9), t1, &mut cache);
        let (to, a) = ex.poll_transmit().unwrap();
        assert_eq!(to, v6());
        assert_eq!(UdpAnnounce::decode(&a).unwrap().connection_id, 9);
        let p6 = [SocketAddrV6::new(Ipv6Addr::LOCALHOST, 51413, 0, 0)];
        let mut resp = Vec::new();
        encode_announce_response(tid_of(&a), 60, 0, 1, UdpPeers::V6(&p6), &mut resp);
        // The same answer from the other address is not taken.
        assert!(ex.handle_datagram(addr(1), &resp, t1, &mut cache).is_none());
        match ex.handle_datagram(v6(), &resp, t1, &mut cache) {
            Some(Outcome::Announced(r)) => assert_eq!(r.peers, vec![SocketAddr::from(p6[0])]),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn unreachable_addresses_are_skipped() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let mut ex = start(announce_query(), &[v6(), addr(1)], &cache, t0);
        ex.poll_transmit();
        assert!(ex.handle_unreachable(t0, &mut cache).is_none());
        assert_eq!(ex.poll_transmit().unwrap().0, addr(1));
        let mut one = start(announce_query(), &[addr(1)], &cache, t0);
        assert_eq!(
            one.handle_unreachable(t0, &mut cache),
            Some(Outcome::Failed(ExchangeError::NoAddress))
        );
    }

    #[test]
    fn the_id_is_reused_within_its_life_and_renewed_after() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        cache.insert(addr(1), 41, t0);
        let within = t0 + Duration::from_secs(59);
        let mut ex = Exchange::new(
            Query::Scrape(vec![InfoHash([1; 20])]),
            &[addr(1)],
            &cache,
            FAST,
            within,
            within + Duration::from_secs(60),
            3,
        );
        let (_, s) = ex.poll_transmit().unwrap();
        let req = UdpScrape::decode(&s).unwrap();
        assert_eq!(req.connection_id, 41, "no connect within the minute");
        let mut resp = Vec::new();
        let st = ScrapeStats {
            complete: 1,
            downloaded: 2,
            incomplete: 3,
        };
        encode_scrape_response(tid_of(&s), [st], &mut resp);
        assert_eq!(
            ex.handle_datagram(addr(1), &resp, within, &mut cache),
            Some(Outcome::Scraped(vec![st]))
        );
        let after = t0 + CONNECTION_ID_TTL;
        let mut ex = start(
            Query::Scrape(vec![InfoHash([1; 20])]),
            &[addr(1)],
            &cache,
            after,
        );
        let (_, c) = ex.poll_transmit().unwrap();
        assert!(
            ConnectRequest::decode(&c).is_ok(),
            "a minute on: connect again"
        );
    }

    #[test]
    fn an_error_to_a_cached_id_reconnects_once() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        cache.insert(addr(1), 41, t0);
        let mut ex = start(announce_query(), &[addr(1)], &cache, t0);
        let (_, a) = ex.poll_transmit().unwrap();
        let mut err = Vec::new();
        encode_error(tid_of(&a), "Connection ID missmatch.", &mut err);
        assert!(ex.handle_datagram(addr(1), &err, t0, &mut cache).is_none());
        assert_eq!(cache.get(addr(1), t0), None);
        let (_, c) = ex.poll_transmit().unwrap();
        ex.handle_datagram(addr(1), &connect_answer(&c, 42), t0, &mut cache);
        let (_, a) = ex.poll_transmit().unwrap();
        let mut err = Vec::new();
        encode_error(tid_of(&a), "torrent not registered", &mut err);
        assert_eq!(
            ex.handle_datagram(addr(1), &err, t0, &mut cache),
            Some(Outcome::Failed(ExchangeError::Tracker(
                "torrent not registered".into()
            )))
        );
        // A timeout with a cached id also drops it and connects afresh.
        let mut ex = start(announce_query(), &[addr(1)], &cache, t0);
        ex.poll_transmit();
        assert!(
            ex.handle_timeout(t0 + Duration::from_secs(1), &mut cache)
                .is_none()
        );
        assert!(ConnectRequest::decode(&ex.poll_transmit().unwrap().1).is_ok());
        assert_eq!(cache.get(addr(1), t0), None);
    }

    #[test]
    fn wrong_actions_and_bad_lists_are_errors() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let mut ex = start(announce_query(), &[addr(1)], &cache, t0);
        let (_, c) = ex.poll_transmit().unwrap();
        let mut wrong = connect_answer(&c, 1);
        wrong[3] = 2;
        assert_eq!(
            ex.handle_datagram(addr(1), &wrong, t0, &mut cache),
            Some(Outcome::Failed(ExchangeError::Protocol(
                UdpError::WrongAction(2)
            )))
        );
        let mut ex = start(announce_query(), &[addr(1)], &cache, t0);
        let (_, c) = ex.poll_transmit().unwrap();
        ex.handle_datagram(addr(1), &connect_answer(&c, 1), t0, &mut cache);
        let (_, a) = ex.poll_transmit().unwrap();
        let mut resp = Vec::new();
        encode_announce_response(tid_of(&a), 1, 1, 1, UdpPeers::V4(&[]), &mut resp);
        resp.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(
            ex.handle_datagram(addr(1), &resp, t0, &mut cache),
            Some(Outcome::Failed(ExchangeError::Protocol(
                UdpError::BadPeerList { .. }
            )))
        ));
    }

    #[test]
    fn a_cut_datagram_keeps_its_whole_peers() {
        let mut b = vec![0u8; MAX_DATAGRAM];
        b[3] = 1;
        assert_eq!(
            whole_peers(&b, PeerFamily::V4).len() % 6,
            ANNOUNCE_RESPONSE_HEADER % 6
        );
        assert_eq!(
            (whole_peers(&b, PeerFamily::V6).len() - ANNOUNCE_RESPONSE_HEADER) % 18,
            0
        );
        let r =
            decode_announce_response(whole_peers(&b, PeerFamily::V6), 0, PeerFamily::V6).unwrap();
        assert_eq!(r.peers.len(), MAX_DECODED_PEERS);
    }

    #[test]
    fn nothing_to_do_is_over_at_once() {
        let t0 = Instant::now();
        let cache = ConnectionCache::new(4, CONNECTION_ID_TTL);
        let ex = start(announce_query(), &[], &cache, t0);
        assert_eq!(ex.result(), Some(ExchangeError::NoAddress));
        assert!(ex.poll_timeout().is_none());
        let ex = start(Query::Scrape(Vec::new()), &[addr(1)], &cache, t0);
        assert_eq!(ex.result(), Some(ExchangeError::EmptyScrape));
        let mut many = Vec::new();
        for i in 0..20 {
            many.push(addr(i));
            many.push(addr(i));
        }
        let ex = start(announce_query(), &many, &cache, t0);
        assert_eq!(ex.addresses().len(), MAX_ADDRESSES);
    }

    #[test]
    fn the_cache_is_bounded() {
        let t0 = Instant::now();
        let mut cache = ConnectionCache::new(3, CONNECTION_ID_TTL);
        for i in 0..10u8 {
            cache.insert(
                addr(i),
                u64::from(i),
                t0 + Duration::from_secs(u64::from(i)),
            );
            assert!(cache.len() <= 3);
        }
        let now = t0 + Duration::from_secs(10);
        assert_eq!(cache.get(addr(9), now), Some(9));
        assert_eq!(cache.get(addr(0), now), None, "the oldest made room");
        // An IPv4-mapped address is the same tracker.
        let mapped = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 9).to_ipv6_mapped(), 6969));
        assert_eq!(cache.get(mapped, now), Some(9));
        cache.forget(mapped);
        assert_eq!(cache.get(addr(9), now), None);
    }
}
