//! The [`Dht`]: one node's state machine. The shell feeds it packets, timer expiries and
//! commands, and drains packets to send, the next deadline and events.
//!
//! This file holds the client side (transactions, lookups, bootstrap, housekeeping); the
//! answers to other nodes' queries are in `server.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Instant;

use metainfo::InfoHash;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::{debug, trace};

use crate::compact::NodeInfo;
use crate::config::Config;
use crate::error::DhtError;
use crate::id::NodeId;
use crate::lookup::{Lookup, LookupId};
use crate::message::{Body, Message, Query, Response};
use crate::ratelimit::RateLimiter;
use crate::routing::{Heard, RoutingTable};
use crate::store::PeerStore;
use crate::token::TokenSecrets;

/// What the [`Dht`] tells its shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhtEvent {
    /// A node answered a get_peers (or announce) lookup with peers.
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// The torrent.
        info_hash: InfoHash,
        /// Peers as the node gave them (not deduplicated across events).
        peers: Vec<SocketAddrV4>,
    },
    /// A lookup started by [`Dht::find_node`], [`Dht::get_peers`] or [`Dht::announce`] ended.
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// The id or info-hash looked up.
        target: NodeId,
        /// The closest nodes that answered, closest first (at most k).
        closest: Vec<NodeInfo>,
        /// Counters.
        stats: LookupStats,
    },
    /// The bootstrap lookup ended with a non-empty routing table.
    Bootstrapped {
        /// Nodes in the routing table.
        nodes: usize,
    },
}

/// What a finished lookup cost and reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupStats {
    /// Requests sent.
    pub queries: u32,
    /// Answers received.
    pub responses: u32,
    /// Sequential round trips that led to the closest answers.
    pub rounds: u32,
    /// announce_peer requests sent (announce lookups only).
    pub announced: u32,
}

#[derive(Debug, Clone, Copy)]
enum Purpose {
    Bootstrap,
    Refresh,
    FindNode,
    GetPeers(InfoHash),
    Announce(InfoHash, Option<u16>),
}

#[derive(Debug)]
struct Running {
    lookup: Lookup,
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy)]
enum TxKind {
    Ping,
    Lookup { id: LookupId, seed: bool },
    Announce,
}

#[derive(Debug)]
struct Tx {
    addr: SocketAddrV4,
    node: Option<NodeId>,
    deadline: Instant,
    kind: TxKind,
}

/// One DHT node (IPv4, BEP 5) as a sans-IO state machine; see the crate docs.
#[derive(Debug)]
pub struct Dht {
    pub(crate) config: Config,
    pub(crate) id: NodeId,
    pub(crate) rng: StdRng,
    pub(crate) table: RoutingTable,
    pub(crate) tokens: TokenSecrets,
    pub(crate) store: PeerStore,
    pub(crate) limiter: RateLimiter,
    txs: BTreeMap<u16, Tx>,
    next_tid: u16,
    lookups: BTreeMap<LookupId, Running>,
    next_lookup: u64,
    transmits: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<DhtEvent>,
    bootstrap_nodes: Vec<SocketAddrV4>,
    bootstrapping: Option<LookupId>,
    last_bootstrap: Option<Instant>,
    next_maintenance: Instant,
}

impl Dht {
    /// A node with id `id`; `rng` seeds the node's own generator (transaction ids, token
    /// secrets, refresh targets), so a seeded `rng` makes a run reproducible.
    pub fn new(id: NodeId, mut config: Config, rng: &mut impl Rng, now: Instant) -> Self {
        config.k = config.k.max(1);
        config.alpha = config.alpha.clamp(1, 8);
        let mut rng = StdRng::from_seed(rng.r#gen());
        Dht {
            table: RoutingTable::new(id, config.k, now),
            tokens: TokenSecrets::new(&mut rng, now, config.token_rotation),
            store: PeerStore::new(
                config.max_info_hashes,
                config.max_peers_per_info_hash,
                config.peer_ttl,
            ),
            limiter: RateLimiter::new(
                config.query_rate_per_ip,
                config.query_burst_per_ip,
                config.max_rate_limited_ips,
            ),
            txs: BTreeMap::new(),
            next_tid: rng.r#gen(),
            lookups: BTreeMap::new(),
            next_lookup: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            bootstrap_nodes: Vec::new(),
            bootstrapping: None,
            last_bootstrap: None,
            next_maintenance: now + config.maintenance_interval,
            id,
            rng,
            config,
        }
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Nodes in the routing table.
    pub fn routing_nodes(&self) -> usize {
        self.table.len()
    }

    /// Info-hashes other nodes announced to us that we still hold.
    pub fn stored_info_hashes(&self) -> usize {
        self.store.len()
    }

    /// Lookups running (internal ones included).
    pub fn lookups_running(&self) -> usize {
        self.lookups.len()
    }

    /// Every good or questionable node in the routing table, closest to our id first (what a
    /// shell saves to bootstrap from next time).
    pub fn nodes(&self, now: Instant) -> Vec<NodeInfo> {
        self.table.closest(&self.id, usize::MAX, now)
    }

    /// Pings `addr`, a node whose id we do not know (from a peer's PORT message or a saved
    /// table); it joins the routing table if it answers. IPv6 addresses are ignored, and so is
    /// the ping when the transaction table is full.
    pub fn ping_addr(&mut self, addr: SocketAddr, now: Instant) {
        let SocketAddr::V4(addr) = addr else {
            return;
        };
        if !crate::compact::is_routable(&addr) {
            return;
        }
        let q = Query::Ping { id: self.id };
        self.send_query(addr, None, q, TxKind::Ping, now);
    }

    /// Remembers `addrs` (IPv4 only, up to [`Config::max_bootstrap_nodes`]) and looks up our
    /// own id through them; [`DhtEvent::Bootstrapped`] follows. Retried while the table is empty.
    pub fn bootstrap(&mut self, addrs: &[SocketAddr], now: Instant) {
        for a in addrs {
            if let SocketAddr::V4(a) = a
                && !self.bootstrap_nodes.contains(a)
                && self.bootstrap_nodes.len() < self.config.max_bootstrap_nodes
            {
                self.bootstrap_nodes.push(*a);
            }
        }
        self.start_bootstrap(now);
        self.drive(now);
    }

    /// Starts a get_peers lookup; peers arrive as [`DhtEvent::Peers`], then
    /// [`DhtEvent::LookupDone`].
    pub fn get_peers(&mut self, info_hash: InfoHash, now: Instant) -> Result<LookupId, DhtError> {
        let id = self.start(info_hash.into(), Purpose::GetPeers(info_hash), now)?;
        self.drive(now);
        Ok(id)
    }

    /// A get_peers lookup that then announces `port` (`None`: the UDP source port, BEP 5
    /// `implied_port`) to the k closest nodes that gave a token.
    pub fn announce(
        &mut self,
        info_hash: InfoHash,
        port: Option<u16>,
        now: Instant,
    ) -> Result<LookupId, DhtError> {
        let id = self.start(info_hash.into(), Purpose::Announce(info_hash, port), now)?;
        self.drive(now);
        Ok(id)
    }

    /// Starts a find_node lookup for `target`; ends with [`DhtEvent::LookupDone`].
    pub fn find_node(&mut self, target: NodeId, now: Instant) -> Result<LookupId, DhtError> {
        let id = self.start(target, Purpose::FindNode, now)?;
        self.drive(now);
        Ok(id)
    }

    /// Feeds one received UDP datagram. IPv6 senders and malformed packets are dropped
    /// (malformed queries get a 203 or 204 error reply).
    pub fn handle_packet(&mut self, from: SocketAddr, bytes: &[u8], now: Instant) {
        let SocketAddr::V4(from) = from else {
            return;
        };
        match Message::decode(bytes) {
            Err(e) => self.on_malformed(from, e, now),
            Ok(msg) => match msg.body {
                Body::Query(q) => self.on_query(from, msg.tid, msg.read_only, q, now),
                Body::Response(r) => self.on_response(from, &msg.tid, r, now),
                Body::Error(e) => {
                    trace!(%from, code = e.code, "krpc error reply");
                    self.on_error_reply(from, &msg.tid, now);
                }
            },
        }
        self.drive(now);
    }

    /// Runs what is due at `now`: request timeouts and housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<u16> = self
            .txs
            .iter()
            .filter(|(_, tx)| tx.deadline <= now)
            .map(|(tid, _)| *tid)
            .collect();
        for tid in expired {
            if let Some(tx) = self.txs.remove(&tid) {
                self.tx_failed(tx, true, now);
            }
        }
        if now >= self.next_maintenance {
            self.maintain(now);
        }
        self.drive(now);
    }

    /// The next datagram to send.
    #[must_use = "a datagram taken must be sent"]
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.transmits.pop_front()
    }

    /// When [`Dht::handle_timeout`] should next be called.
    #[must_use = "handle_timeout must run by this instant"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.txs.values().map(|t| t.deadline).min();
        Some(tx.map_or(self.next_maintenance, |t| t.min(self.next_maintenance)))
    }

    /// The next event.
    #[must_use = "an event taken must be acted on"]
    pub fn poll_event(&mut self) -> Option<DhtEvent> {
        self.events.pop_front()
    }

    pub(crate) fn push_event(&mut self, e: DhtEvent) {
        if self.events.len() >= self.config.max_events {
            debug!("event queue full, dropping event");
            return;
        }
        self.events.push_back(e);
    }

    pub(crate) fn push_transmit(&mut self, to: SocketAddrV4, msg: &Message) {
        if self.transmits.len() >= self.config.max_transmit_queue {
            debug!(%to, "transmit queue full, dropping packet");
            return;
        }
        self.transmits.push_back((SocketAddr::V4(to), msg.to_vec()));
    }

    fn can_send(&self) -> bool {
        self.txs.len() < self.config.max_transactions
            && self.transmits.len() < self.config.max_transmit_queue
    }

    /// Sends a query as a new transaction; false when the transaction table is full.
    fn send_query(
        &mut self,
        to: SocketAddrV4,
        node: Option<NodeId>,
        query: Query,
        kind: TxKind,
        now: Instant,
    ) -> bool {
        if !self.can_send() {
            return false;
        }
        let mut tid = self.next_tid;
        while self.txs.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        let msg = Message {
            tid: tid.to_be_bytes().to_vec(),
            version: self.config.version.map(|v| v.to_vec()),
            read_only: false,
            body: Body::Query(query),
        };
        self.push_transmit(to, &msg);
        let deadline = now + self.config.request_timeout;
        self.txs.insert(
            tid,
            Tx {
                addr: to,
                node,
                deadline,
                kind,
            },
        );
        true
    }

    pub(crate) fn ping(&mut self, node: NodeInfo, now: Instant) {
        let q = Query::Ping { id: self.id };
        self.send_query(node.addr, Some(node.id), q, TxKind::Ping, now);
    }

    fn take_tx(&mut self, from: SocketAddrV4, tid: &[u8]) -> Option<Tx> {
        let tid = u16::from_be_bytes(<[u8; 2]>::try_from(tid).ok()?);
        if self.txs.get(&tid)?.addr != from {
            return None;
        }
        self.txs.remove(&tid)
    }

    fn on_response(&mut self, from: SocketAddrV4, tid: &[u8], r: Response, now: Instant) {
        let Some(tx) = self.take_tx(from, tid) else {
            trace!(%from, "response to no transaction of ours");
            return;
        };
        if r.id == self.id || tx.node.is_some_and(|n| n != r.id) {
            debug!(%from, "response from an unexpected node id");
            self.tx_failed(tx, false, now);
            return;
        }
        let info = NodeInfo {
            id: r.id,
            addr: from,
        };
        if let Some(p) = self.table.heard(info, Heard::Response, now) {
            self.ping(p, now);
        }
        let TxKind::Lookup { id, seed } = tx.kind else {
            return;
        };
        let Some(run) = self.lookups.get_mut(&id) else {
            return;
        };
        run.lookup.responded(info, seed, &r.nodes, r.token);
        let info_hash = match run.purpose {
            Purpose::GetPeers(h) | Purpose::Announce(h, _) => h,
            _ => return,
        };
        let peers: Vec<SocketAddrV4> = r
            .values
            .into_iter()
            .filter(crate::compact::is_routable)
            .collect();
        if !peers.is_empty() {
            self.push_event(DhtEvent::Peers {
                lookup: id,
                info_hash,
                peers,
            });
        }
    }

    fn on_error_reply(&mut self, from: SocketAddrV4, tid: &[u8], now: Instant) {
        let Some(tx) = self.take_tx(from, tid) else {
            return;
        };
        // An error reply still shows the node is alive.
        if let Some(id) = tx.node {
            let info = NodeInfo { id, addr: tx.addr };
            if let Some(p) = self.table.heard(info, Heard::Response, now) {
                self.ping(p, now);
            }
        }
        if let TxKind::Lookup { id, seed } = tx.kind {
            let node = tx.node.map(|id| NodeInfo { id, addr: tx.addr });
            if let Some(run) = self.lookups.get_mut(&id) {
                run.lookup.failed(node, seed, false);
            }
        }
    }

    /// A request failed: timed out (`timeout`) or answered by the wrong node.
    fn tx_failed(&mut self, tx: Tx, timeout: bool, now: Instant) {
        let node = tx.node.map(|id| NodeInfo { id, addr: tx.addr });
        if let Some(n) = node
            && let Some(p) = self.table.failed(&n.id, now)
        {
            self.ping(p, now);
        }
        if let TxKind::Lookup { id, seed } = tx.kind
            && let Some(run) = self.lookups.get_mut(&id)
        {
            run.lookup.failed(node, seed, timeout);
        }
    }

    fn start(
        &mut self,
        target: NodeId,
        purpose: Purpose,
        now: Instant,
    ) -> Result<LookupId, DhtError> {
        if self.lookups.len() >= self.config.max_lookups {
            return Err(DhtError::TooManyLookups(self.config.max_lookups));
        }
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let c = &self.config;
        let mut lookup = Lookup::new(target, self.id, c.k, c.alpha, c.max_lookup_candidates);
        lookup.add(
            &self.table.closest(&target, c.max_lookup_candidates, now),
            0,
        );
        self.lookups.insert(id, Running { lookup, purpose });
        if self.table.len() < self.config.k {
            self.seed(id, now);
        }
        debug!(lookup = id.0, %target, ?purpose, "lookup started");
        Ok(id)
    }

    /// Asks the bootstrap nodes too (we know few nodes of our own).
    fn seed(&mut self, id: LookupId, now: Instant) {
        let Some(target) = self.lookups.get(&id).map(|r| r.lookup.target) else {
            return;
        };
        for addr in self.bootstrap_nodes.clone() {
            let q = self.query_for(id, target);
            if self.send_query(addr, None, q, TxKind::Lookup { id, seed: true }, now)
                && let Some(run) = self.lookups.get_mut(&id)
            {
                run.lookup.seeds_in_flight += 1;
            }
        }
    }

    fn start_bootstrap(&mut self, now: Instant) {
        if self.bootstrapping.is_some() {
            return;
        }
        self.last_bootstrap = Some(now);
        if let Ok(id) = self.start(self.id, Purpose::Bootstrap, now) {
            self.bootstrapping = Some(id);
            if self.table.len() >= self.config.k {
                self.seed(id, now);
            }
        }
    }

    fn query_for(&self, id: LookupId, target: NodeId) -> Query {
        match self.lookups.get(&id).map(|r| r.purpose) {
            Some(Purpose::GetPeers(h) | Purpose::Announce(h, _)) => Query::GetPeers {
                id: self.id,
                info_hash: h,
            },
            _ => Query::FindNode {
                id: self.id,
                target,
            },
        }
    }

    /// Sends what the lookups want to send and finishes the ones that are done.
    fn drive(&mut self, now: Instant) {
        let ids: Vec<LookupId> = self.lookups.keys().copied().collect();
        for id in ids {
            while self.can_send() {
                let Some(run) = self.lookups.get_mut(&id) else {
                    break;
                };
                let Some(node) = run.lookup.next() else {
                    break;
                };
                let target = run.lookup.target;
                let q = self.query_for(id, target);
                self.send_query(
                    node.addr,
                    Some(node.id),
                    q,
                    TxKind::Lookup { id, seed: false },
                    now,
                );
            }
            if self.lookups.get(&id).is_some_and(|r| r.lookup.is_done()) {
                self.finish(id, now);
            }
        }
    }

    fn finish(&mut self, id: LookupId, now: Instant) {
        let Some(run) = self.lookups.remove(&id) else {
            return;
        };
        let l = &run.lookup;
        let mut stats = LookupStats {
            queries: l.queries,
            responses: l.responses,
            rounds: l.rounds(),
            announced: 0,
        };
        let k = self.config.k;
        debug!(
            lookup = id.0,
            queries = stats.queries,
            rounds = stats.rounds,
            "lookup done"
        );
        match run.purpose {
            Purpose::Bootstrap => {
                self.bootstrapping = None;
                if !self.table.is_empty() {
                    // Fill every bucket farther than ours (BEP 5 refresh): without this, a
                    // node knows little outside its own neighbourhood and lookups stall.
                    let ours = self.table.bucket_count().saturating_sub(1);
                    for bucket in 0..ours {
                        if self.lookups.len() >= self.config.max_lookups / 2 {
                            break;
                        }
                        let target = self.id.random_with_prefix(bucket, &mut self.rng);
                        let _ = self.start(target, Purpose::Refresh, now);
                    }
                    let nodes = self.table.len();
                    self.push_event(DhtEvent::Bootstrapped { nodes });
                }
                return;
            }
            Purpose::Refresh => return,
            Purpose::Announce(info_hash, port) => {
                let targets: Vec<(NodeInfo, Vec<u8>)> = l
                    .closest_responded(usize::MAX)
                    .into_iter()
                    .filter_map(|(n, t)| Some((n, t?.to_vec())))
                    .take(k)
                    .collect();
                for (node, token) in targets {
                    let q = Query::AnnouncePeer {
                        id: self.id,
                        info_hash,
                        port: port.unwrap_or(0),
                        implied_port: port.is_none(),
                        token,
                    };
                    if self.send_query(node.addr, Some(node.id), q, TxKind::Announce, now) {
                        stats.announced += 1;
                    }
                }
            }
            Purpose::FindNode | Purpose::GetPeers(_) => {}
        }
        let closest = l.closest_responded(k).into_iter().map(|(n, _)| n).collect();
        self.push_event(DhtEvent::LookupDone {
            lookup: id,
            target: l.target,
            closest,
            stats,
        });
    }

    /// Housekeeping: token rotation, store expiry, pings, bucket refreshes, re-bootstrap.
    fn maintain(&mut self, now: Instant) {
        self.next_maintenance = now + self.config.maintenance_interval;
        self.tokens.maybe_rotate(&mut self.rng, now);
        self.store.expire(now);
        self.limiter.prune(now);
        for p in self.table.pings_due(now) {
            self.ping(p, now);
        }
        let retry = self
            .last_bootstrap
            .is_none_or(|t| now.saturating_duration_since(t) >= self.config.rebootstrap_interval);
        if self.table.is_empty() && !self.bootstrap_nodes.is_empty() && retry {
            self.start_bootstrap(now);
        }
        for bucket in self.table.take_stale(self.config.bucket_refresh, now) {
            if self.lookups.len() >= self.config.max_lookups / 2 {
                break;
            }
            let target = self.id.random_with_prefix(bucket, &mut self.rng);
            let _ = self.start(target, Purpose::Refresh, now);
        }
    }
}

#[cfg(test)]
#[path = "dht_tests.rs"]
mod tests;
