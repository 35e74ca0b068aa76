//! A whole DHT network in one process on virtual time: every node is a `dht::Dht`, packets are
//! delayed by a random latency and lost at random, nodes join and leave. Shared by
//! `tests/sim.rs` (small network) and `examples/sim.rs` (5,000 nodes, release mode).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::{Config, Dht, DhtEvent, LookupId, NodeId};
use metainfo::InfoHash;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The shape of one simulated run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Nodes in the network at any time.
    pub nodes: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Chance that a packet is lost.
    pub loss: f64,
    /// One-way latency range, in milliseconds.
    pub latency_ms: (u64, u64),
    /// Nodes join one after another over this time.
    pub join_window: Duration,
    /// Info-hashes announced before the lookups.
    pub announced: usize,
    /// get_peers lookups run during the measured phase.
    pub lookups: usize,
    /// Length of the measured phase (lookups and churn).
    pub measure_window: Duration,
    /// Fraction of the nodes replaced (one leaves, a new one joins) per second of the
    /// measured phase.
    pub churn_per_sec: f64,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// get_peers lookups started.
    pub lookups: usize,
    /// Lookups that ended (LookupDone).
    pub finished: usize,
    /// Lookups that found at least one peer.
    pub found_peers: usize,
    /// Sum over lookups of |answered closest ∩ true 8 closest alive| / 8.
    pub recall_sum: f64,
    /// Rounds per finished lookup.
    pub rounds: Vec<u32>,
    /// Requests sent per finished lookup.
    pub queries: Vec<u32>,
    /// Time from start to the first peer, per lookup that found one.
    pub first_peer: Vec<Duration>,
    /// Time from start to LookupDone.
    pub duration: Vec<Duration>,
    /// Datagrams sent in the whole run, and lost.
    pub packets: u64,
    /// Datagrams dropped by the loss model.
    pub lost: u64,
    /// Nodes that left and joined during the measured phase.
    pub churned: usize,
    /// Lookups not counted because their node left before they ended.
    pub abandoned: usize,
    /// Announce lookups that sent at least one announce_peer.
    pub announces_ok: usize,
}

impl Report {
    /// Share of lookups that found peers.
    pub fn success(&self) -> f64 {
        self.found_peers as f64 / self.lookups.max(1) as f64
    }

    /// Mean recall of the true 8 closest.
    pub fn recall(&self) -> f64 {
        self.recall_sum / self.lookups.max(1) as f64
    }

    /// Prints the figures to stderr.
    pub fn print(&self, label: &str) {
        eprintln!(
            "{label}: lookups {} finished {} found-peers {} ({:.2}%), recall of true 8 closest {:.2}%",
            self.lookups,
            self.finished,
            self.found_peers,
            100.0 * self.success(),
            100.0 * self.recall()
        );
        eprintln!(
            "{label}: median rounds {}, median queries per lookup {} (p90 {}), median time to first peer {:?} (p90 {:?}), median lookup time {:?}",
            median(&self.rounds),
            median(&self.queries),
            pct(&self.queries, 0.9),
            median(&self.first_peer),
            pct(&self.first_peer, 0.9),
            median(&self.duration)
        );
        eprintln!(
            "{label}: packets {} (lost {}), nodes churned {}, lookups abandoned (origin left) {}, announces that reached nodes {}",
            self.packets, self.lost, self.churned, self.abandoned, self.announces_ok
        );
    }
}

fn pct<T: Copy + Ord + Default>(v: &[T], p: f64) -> T {
    let mut s = v.to_vec();
    s.sort_unstable();
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s.get(i).copied().unwrap_or_default()
}

fn median<T: Copy + Ord + Default>(v: &[T]) -> T {
    pct(v, 0.5)
}

enum Ev {
    Deliver {
        to: SocketAddrV4,
        from: SocketAddrV4,
        bytes: Vec<u8>,
    },
    Wake {
        node: usize,
    },
}

struct Item {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Item {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Item {}
impl PartialOrd for Item {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Item {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct SimNode {
    dht: Dht,
    addr: SocketAddrV4,
    alive: bool,
    bootstrapped: bool,
    wake: Option<u64>,
}

struct Track {
    start: u64,
    target: NodeId,
    first_peer: Option<u64>,
    announce: bool,
}

/// The network.
struct Net {
    cfg: SimConfig,
    rng: StdRng,
    base: Instant,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Item>>,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddrV4, usize>,
    tracks: HashMap<(usize, LookupId), Track>,
    report: Report,
    routers: Vec<SocketAddr>,
}

const ROUTERS: usize = 2;

impl Net {
    fn instant(&self, t: u64) -> Instant {
        self.base + Duration::from_micros(t)
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Item {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn add_node(&mut self) -> usize {
        let i = self.nodes.len();
        let addr = SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i as u32 + 1), 6881);
        let id = NodeId::random(&mut self.rng);
        let now = self.instant(self.now);
        let dht = Dht::new(id, Config::default(), &mut self.rng, now);
        self.nodes.push(SimNode {
            dht,
            addr,
            alive: true,
            bootstrapped: false,
            wake: None,
        });
        self.by_addr.insert(addr, i);
        let routers: Vec<SocketAddr> = self
            .routers
            .iter()
            .copied()
            .filter(|r| *r != SocketAddr::V4(addr))
            .collect();
        if let Some(n) = self.nodes.get_mut(i) {
            if routers.is_empty() {
                n.bootstrapped = true;
            } else {
                n.dht.bootstrap(&routers, now);
            }
        }
        if i < ROUTERS {
            self.routers.push(SocketAddr::V4(addr));
        }
        self.flush(i);
        i
    }

    /// Node `i` leaves; its own unfinished lookups are no longer counted.
    fn kill(&mut self, i: usize) {
        if let Some(n) = self.nodes.get_mut(i) {
            n.alive = false;
            self.by_addr.remove(&n.addr);
        }
        let before = self.tracks.len();
        self.tracks.retain(|(node, _), t| *node != i || t.announce);
        let gone = before - self.tracks.len();
        self.report.lookups -= gone;
        self.report.abandoned += gone;
    }

    /// Moves node `i`'s output into the network and reschedules its timer.
    fn flush(&mut self, i: usize) {
        let now = self.now;
        let mut out = Vec::new();
        let mut events = Vec::new();
        let (from, wake) = {
            let Some(n) = self.nodes.get_mut(i) else {
                return;
            };
            while let Some(t) = n.dht.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = n.dht.poll_event() {
                events.push(e);
            }
            (n.addr, n.dht.poll_timeout())
        };
        for (to, bytes) in out {
            self.report.packets += 1;
            if self.rng.gen_bool(self.cfg.loss) {
                self.report.lost += 1;
                continue;
            }
            let SocketAddr::V4(to) = to else { continue };
            let (lo, hi) = self.cfg.latency_ms;
            let delay = self.rng.gen_range(lo * 1000..=hi * 1000);
            self.push(now + delay, Ev::Deliver { to, from, bytes });
        }
        for e in events {
            self.on_event(i, e);
        }
        if let Some(w) = wake {
            let at = w
                .saturating_duration_since(self.base)
                .as_micros()
                .try_into()
                .unwrap_or(u64::MAX)
                .max(now);
            let n = &mut self.nodes[i];
            if n.wake.is_none_or(|cur| at < cur) {
                n.wake = Some(at);
                self.push(at, Ev::Wake { node: i });
            }
        }
    }

    fn on_event(&mut self, i: usize, e: DhtEvent) {
        match e {
            DhtEvent::Bootstrapped { .. } => self.nodes[i].bootstrapped = true,
            DhtEvent::Peers { lookup, .. } => {
                if let Some(t) = self.tracks.get_mut(&(i, lookup)) {
                    t.first_peer.get_or_insert(self.now);
                }
            }
            DhtEvent::LookupDone {
                lookup,
                closest,
                stats,
                ..
            } => {
                let Some(t) = self.tracks.remove(&(i, lookup)) else {
                    return;
                };
                if t.announce {
                    if std::env::var("SIM_DEBUG").is_ok() {
                        let truth = self.true_closest(&t.target, 8);
                        let hit = closest.iter().filter(|n| truth.contains(&n.id)).count();
                        eprintln!(
                            "announce: hit {hit} closest {} stats {stats:?}",
                            closest.len()
                        );
                    }
                    if stats.announced > 0 {
                        self.report.announces_ok += 1;
                    }
                    return;
                }
                let r = &mut self.report;
                r.finished += 1;
                r.rounds.push(stats.rounds);
                r.queries.push(stats.queries);
                r.duration.push(Duration::from_micros(self.now - t.start));
                if let Some(fp) = t.first_peer {
                    r.found_peers += 1;
                    r.first_peer.push(Duration::from_micros(fp - t.start));
                }
                let truth = self.true_closest(&t.target, 8);
                let hit = closest.iter().filter(|n| truth.contains(&n.id)).count();
                if std::env::var("SIM_DEBUG").is_ok() && t.first_peer.is_none() {
                    eprintln!(
                        "no peers: hit {hit} closest {} stats {stats:?}",
                        closest.len()
                    );
                }
                self.report.recall_sum += hit as f64 / truth.len().max(1) as f64;
            }
        }
    }

    fn true_closest(&self, target: &NodeId, n: usize) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self
            .nodes
            .iter()
            .filter(|x| x.alive)
            .map(|x| x.dht.id())
            .collect();
        ids.sort_unstable_by_key(|id| id.distance(target));
        ids.truncate(n);
        ids
    }

    fn run_until(&mut self, t: u64) {
        while self.queue.peek().is_some_and(|Reverse(it)| it.at <= t) {
            let Some(Reverse(it)) = self.queue.pop() else {
                break;
            };
            self.now = it.at;
            let now = self.instant(it.at);
            match it.ev {
                Ev::Deliver { to, from, bytes } => {
                    let Some(&i) = self.by_addr.get(&to) else {
                        continue;
                    };
                    self.nodes[i]
                        .dht
                        .handle_packet(SocketAddr::V4(from), &bytes, now);
                    self.flush(i);
                }
                Ev::Wake { node } => {
                    let n = &mut self.nodes[node];
                    if !n.alive || n.wake != Some(it.at) {
                        continue;
                    }
                    n.wake = None;
                    n.dht.handle_timeout(now);
                    self.flush(node);
                }
            }
        }
        self.now = t;
    }

    fn random_ready_node(&mut self) -> usize {
        loop {
            let i = self.rng.gen_range(0..self.nodes.len());
            if self.nodes[i].alive && self.nodes[i].bootstrapped && i >= ROUTERS {
                return i;
            }
        }
    }

    fn start_lookup(&mut self, i: usize, h: InfoHash, announce: bool) {
        let now = self.instant(self.now);
        let d = &mut self.nodes[i].dht;
        let id = if announce {
            d.announce(h, Some(7000), now)
        } else {
            d.get_peers(h, now)
        };
        if let Ok(id) = id {
            self.tracks.insert(
                (i, id),
                Track {
                    start: self.now,
                    target: h.into(),
                    first_peer: None,
                    announce,
                },
            );
            if !announce {
                self.report.lookups += 1;
            }
        }
        self.flush(i);
    }
}

const SEC: u64 = 1_000_000;

/// Runs the scenario: nodes join over the join window, some announce, then get_peers lookups
/// run under churn; returns what was measured.
pub fn run(cfg: SimConfig) -> Report {
    let mut net = Net {
        rng: StdRng::seed_from_u64(cfg.seed),
        // The only clock read: the origin of virtual time.
        base: Instant::now(),
        now: 0,
        seq: 0,
        queue: BinaryHeap::new(),
        nodes: Vec::new(),
        by_addr: HashMap::new(),
        tracks: HashMap::new(),
        report: Report::default(),
        routers: Vec::new(),
        cfg,
    };
    let n = net.cfg.nodes;
    let join_us = net.cfg.join_window.as_micros() as u64;
    for i in 0..n {
        net.run_until(join_us * i as u64 / n as u64);
        net.add_node();
    }
    net.run_until(join_us + 30 * SEC);

    let hashes: Vec<InfoHash> = (0..net.cfg.announced)
        .map(|_| InfoHash(net.rng.r#gen()))
        .collect();
    for h in &hashes {
        let i = net.random_ready_node();
        net.start_lookup(i, *h, true);
    }
    let mut t = net.now + 20 * SEC;
    net.run_until(t);

    let secs = net.cfg.measure_window.as_secs().max(1);
    let per_sec = net.cfg.lookups as u64 / secs;
    let extra = net.cfg.lookups as u64 % secs;
    let mut churn_debt = 0.0;
    for s in 0..secs {
        churn_debt += net.cfg.churn_per_sec * n as f64;
        while churn_debt >= 1.0 {
            churn_debt -= 1.0;
            let victim = net.random_ready_node();
            net.kill(victim);
            net.add_node();
            net.report.churned += 1;
        }
        let count = per_sec + u64::from(s < extra);
        for _ in 0..count {
            let i = net.random_ready_node();
            let h = *hashes.choose(&mut net.rng).unwrap_or(&InfoHash([0; 20]));
            net.start_lookup(i, h, false);
        }
        t += SEC;
        net.run_until(t);
    }
    net.run_until(t + 60 * SEC);
    net.report
}
