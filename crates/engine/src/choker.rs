//! Which peers we upload to: tit-for-tat with an optimistic unchoke and anti-snubbing.
//!
//! The rules (close to BEP 3 and to libtorrent's defaults):
//!
//! - Every [`ChokerConfig::interval`] (10 s) a *regular round* gives the
//!   [`ChokerConfig::regular_slots`] (4) regular slots to the interested, non-snubbed peers that
//!   sent us the most payload since the previous round (the window is the round interval). When
//!   seeding it is round robin instead, as libtorrent's default for seeds: the peers *we sent*
//!   the least in that window come first, so every interested peer gets its turn. Ties keep the
//!   peers already unchoked, then the lower key. A super-seed also hands a slot on after each
//!   piece it gives out ([`Choker::rotate`]).
//! - Every [`ChokerConfig::optimistic_interval`] (30 s) the optimistic slot(s) move to a random
//!   choked interested peer; peers connected within [`ChokerConfig::new_peer_window`] are
//!   [`ChokerConfig::new_peer_weight`] (3) times as likely to be picked. An optimistic peer that
//!   wins a regular slot in a round is promoted and its optimistic slot is refilled at random.
//! - Anti-snubbing: a peer we are interested in that sent us no payload for
//!   [`ChokerConfig::snub_timeout`] (60 s) is snubbed: it loses its regular slot at once and
//!   can only hold an optimistic one, until it sends us payload again.
//! - Fast start: when a peer becomes interested and a slot is free it is unchoked at once
//!   (a regular slot first, else an optimistic one); when an unchoked peer leaves, loses interest
//!   or is snubbed, its regular slot is refilled at once with the best choked candidate, and its
//!   optimistic slot at the next [`Choker::handle_timeout`] (which [`Choker::poll_timeout`] then
//!   asks for immediately, because the choice needs the caller's random number generator).
//! - Everyone else is choked. A decision is emitted only when a peer's state differs from the
//!   last one handed to the caller, so a peer that is choked and unchoked again before the caller
//!   drains [`Choker::poll_decision`] sees no message at all.
//!
//! Peers are kept in a `BTreeMap`, so a run is reproducible from its inputs and RNG seed. The map
//! grows only through [`Choker::add_peer`]: the caller's connection cap bounds it, and the
//! decision queue holds each peer at most once.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rand::Rng;

/// Tunables of the [`Choker`]; [`Default`] gives the values named in the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Peers unchoked for their rate each round (4).
    pub regular_slots: usize,
    /// Peers unchoked at random, on top of the regular ones (1).
    pub optimistic_slots: usize,
    /// Time between regular rounds, and the window their rates are measured over (10 s).
    pub interval: Duration,
    /// Time between optimistic rotations (30 s).
    pub optimistic_interval: Duration,
    /// Silence after which a peer we want data from is snubbed (60 s).
    pub snub_timeout: Duration,
    /// A peer connected this recently counts as new for the optimistic draw (60 s).
    pub new_peer_window: Duration,
    /// How many times as likely a new peer is to be drawn optimistically (3).
    pub new_peer_weight: u32,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        ChokerConfig {
            regular_slots: 4,
            optimistic_slots: 1,
            interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            snub_timeout: Duration::from_secs(60),
            new_peer_window: Duration::from_secs(60),
            new_peer_weight: 3,
        }
    }
}

/// A change to send to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Send CHOKE.
    Choke,
    /// Send UNCHOKE.
    Unchoke,
}

/// Why a peer is unchoked, if it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    None,
    Regular,
    Optimistic,
}

/// What the choker knows about one peer.
#[derive(Debug, Clone)]
struct PeerState {
    connected_at: Instant,
    /// They are interested in our data.
    interested: bool,
    /// We are interested in theirs (only then can they snub us).
    we_interested: bool,
    /// Start of the snub clock: the later of their last payload and our becoming interested.
    last_activity: Instant,
    snubbed: bool,
    slot: Slot,
    /// The state last handed to the caller (peers start choked, as on the wire).
    announced_unchoked: bool,
    /// In the decision queue.
    queued: bool,
    /// Payload they sent us since the last regular round.
    received: u64,
    /// Payload we sent them since the last regular round.
    sent: u64,
}

/// The choking state machine for one torrent, keyed by the caller's peer key `K`.
#[derive(Debug)]
pub struct Choker<K> {
    config: ChokerConfig,
    peers: BTreeMap<K, PeerState>,
    seeding: bool,
    next_regular: Instant,
    next_optimistic: Instant,
    /// The latest instant any input carried.
    last_now: Instant,
    /// An optimistic slot was vacated outside `handle_timeout` and a candidate exists.
    refill_pending: bool,
    /// No later than the earliest snub deadline: lowered whenever a snub clock starts,
    /// recomputed exactly by `handle_timeout` (so `poll_timeout` needs no pass over the peers).
    next_snub: Option<Instant>,
    queue: VecDeque<K>,
}

impl<K: Copy + Eq + Hash + Ord + Debug> Choker<K> {
    /// A choker with no peers; the first rounds fall one interval after `now`.
    pub fn new(config: ChokerConfig, now: Instant) -> Self {
        Choker {
            next_regular: now + config.interval,
            next_optimistic: now + config.optimistic_interval,
            config,
            peers: BTreeMap::new(),
            seeding: false,
            last_now: now,
            refill_pending: false,
            next_snub: None,
            queue: VecDeque::new(),
        }
    }

    /// A peer connected at `now` (choked, not interested). Adding a known peer does nothing.
    pub fn add_peer(&mut self, k: K, now: Instant) {
        self.touch(now);
        self.peers.entry(k).or_insert(PeerState {
            connected_at: now,
            interested: false,
            we_interested: false,
            last_activity: now,
            snubbed: false,
            slot: Slot::None,
            announced_unchoked: false,
            queued: false,
            received: 0,
            sent: 0,
        });
    }

    /// A peer disconnected; its slot, if any, is refilled.
    pub fn remove_peer(&mut self, k: K) {
        if let Some(p) = self.peers.remove(&k) {
            self.slot_vacated(p.slot);
        }
    }

    /// The peer told us it is (not) interested in our data.
    pub fn set_peer_interested(&mut self, k: K, interested: bool, now: Instant) {
        self.touch(now);
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        if p.interested == interested {
            return;
        }
        p.interested = interested;
        if interested {
            self.fast_unchoke(k);
        } else {
            let old = p.slot;
            self.set_slot(k, Slot::None);
            self.slot_vacated(old);
        }
    }

    /// We became (un)interested in the peer's data; the snub clock starts now.
    pub fn set_we_interested(&mut self, k: K, interested: bool, now: Instant) {
        self.touch(now);
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        if p.we_interested == interested {
            return;
        }
        p.we_interested = interested;
        p.last_activity = now;
        let unsnubbed = std::mem::replace(&mut p.snubbed, false);
        self.note_snub_clock(k);
        if unsnubbed {
            self.fill_regular();
        }
    }

    /// The peer sent us `bytes` of payload at `now`; this also ends a snub.
    pub fn on_received(&mut self, k: K, bytes: u64, now: Instant) {
        self.touch(now);
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        p.received = p.received.saturating_add(bytes);
        p.last_activity = now;
        if p.snubbed {
            p.snubbed = false;
            tracing::debug!(peer = ?k, "peer no longer snubbed");
            // A snub clock starts again; any other one only moved later.
            self.note_snub_clock(k);
            self.fill_regular();
        }
    }

    /// We sent the peer `bytes` of payload.
    pub fn on_sent(&mut self, k: K, bytes: u64) {
        if let Some(p) = self.peers.get_mut(&k) {
            p.sent = p.sent.saturating_add(bytes);
        }
    }

    /// Switches the ranking to our upload rate (seeding) or their upload rate (leeching) from the
    /// next regular round on.
    pub fn set_seeding(&mut self, seeding: bool) {
        self.seeding = seeding;
    }

    /// Hands `k`'s regular slot to the best choked candidate, if there is one (a super-seed
    /// moves on to the next waiting peer after each piece). `k` is choked only if somebody
    /// takes its place.
    pub fn rotate(&mut self, k: K) {
        if self.peers.get(&k).is_none_or(|p| p.slot != Slot::Regular) {
            return;
        }
        let Some(&next) = self
            .ranked(|p| p.slot == Slot::None)
            .iter()
            .find(|&&c| c != k)
        else {
            return;
        };
        self.set_slot(k, Slot::None);
        self.set_slot(next, Slot::Regular);
    }

    /// Runs whatever is due at `now`: snub checks, the regular round, the optimistic rotation,
    /// and refilling vacated slots.
    pub fn handle_timeout(&mut self, now: Instant, rng: &mut impl Rng) {
        self.touch(now);
        self.update_snubs(now);
        if now >= self.next_regular {
            self.regular_round();
            self.next_regular = now + self.config.interval;
        } else {
            self.fill_regular();
        }
        if now >= self.next_optimistic {
            self.rotate_optimistic(now, rng);
            self.next_optimistic = now + self.config.optimistic_interval;
        } else {
            self.fill_optimistic(now, rng);
        }
        self.refill_pending = false;
    }

    /// When [`Choker::handle_timeout`] must next run: the next regular round, optimistic
    /// rotation or snub, whichever comes first. Never later than that deadline, possibly earlier
    /// (a run that finds nothing due changes nothing); O(1). Ask again after every input: a
    /// vacated optimistic slot makes this the latest `now` seen, i.e. due at once.
    #[must_use = "the choker must run by this instant"]
    pub fn poll_timeout(&self) -> Instant {
        let mut due = self.next_regular.min(self.next_optimistic);
        if self.refill_pending {
            due = due.min(self.last_now);
        }
        if let Some(snub) = self.next_snub {
            due = due.min(snub);
        }
        due
    }

    /// The next CHOKE/UNCHOKE to send, if any; call until `None` after each input.
    #[must_use = "a decision not sent leaves the peer's choke state wrong"]
    pub fn poll_decision(&mut self) -> Option<(K, Decision)> {
        while let Some(k) = self.queue.pop_front() {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            p.queued = false;
            let want = p.slot != Slot::None;
            if want != p.announced_unchoked {
                p.announced_unchoked = want;
                let d = if want {
                    Decision::Unchoke
                } else {
                    Decision::Choke
                };
                return Some((k, d));
            }
        }
        None
    }

    /// True if the peer holds a slot (the state the decisions converge to).
    pub fn is_unchoked(&self, k: K) -> bool {
        self.peers.get(&k).is_some_and(|p| p.slot != Slot::None)
    }

    /// True if the peer holds an optimistic slot.
    pub fn is_optimistic(&self, k: K) -> bool {
        self.peers
            .get(&k)
            .is_some_and(|p| p.slot == Slot::Optimistic)
    }

    /// True if we want the peer's data and it has sent none for the snub timeout.
    pub fn is_snubbed(&self, k: K) -> bool {
        self.peers.get(&k).is_some_and(|p| p.snubbed)
    }

    /// The unchoked peers, in key order.
    pub fn unchoked(&self) -> impl Iterator<Item = K> + '_ {
        self.peers
            .iter()
            .filter(|(_, p)| p.slot != Slot::None)
            .map(|(k, _)| *k)
    }

    fn touch(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
    }

    /// When `p` is snubbed if it sends nothing: only a peer we want data from and that is not
    /// snubbed yet has a snub clock running.
    fn snub_deadline(p: &PeerState, timeout: Duration) -> Option<Instant> {
        if p.we_interested && !p.snubbed {
            p.last_activity.checked_add(timeout)
        } else {
            None
        }
    }

    /// `k`'s snub clock (re)started: lower the cached earliest snub deadline if it is earlier.
    fn note_snub_clock(&mut self, k: K) {
        let at = self
            .peers
            .get(&k)
            .and_then(|p| Self::snub_deadline(p, self.config.snub_timeout));
        if let Some(at) = at {
            self.next_snub = Some(self.next_snub.map_or(at, |t| t.min(at)));
        }
    }

    fn count(&self, slot: Slot) -> usize {
        self.peers.values().filter(|p| p.slot == slot).count()
    }

    /// Moves `k` to `slot`, queueing a decision if its unchoked state changed.
    fn set_slot(&mut self, k: K, slot: Slot) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        let was = p.slot != Slot::None;
        p.slot = slot;
        if was != (slot != Slot::None) && !p.queued {
            p.queued = true;
            self.queue.push_back(k);
        }
    }

    /// A peer that just became interested takes a free slot, if there is one.
    fn fast_unchoke(&mut self, k: K) {
        let Some(p) = self.peers.get(&k) else {
            return;
        };
        if p.slot != Slot::None {
            return;
        }
        if !p.snubbed && self.count(Slot::Regular) < self.config.regular_slots {
            self.set_slot(k, Slot::Regular);
        } else if self.count(Slot::Optimistic) < self.config.optimistic_slots {
            self.set_slot(k, Slot::Optimistic);
        }
    }

    /// A peer in `slot` left it: refill a regular slot now, an optimistic one at the next timeout.
    fn slot_vacated(&mut self, slot: Slot) {
        match slot {
            Slot::Regular => self.fill_regular(),
            Slot::Optimistic => {
                self.refill_pending |= self
                    .peers
                    .values()
                    .any(|p| p.interested && p.slot == Slot::None);
            }
            Slot::None => {}
        }
    }

    /// The payload count a peer is ranked by.
    fn score(&self, p: &PeerState) -> u64 {
        if self.seeding {
            // Round robin: the peers we sent the least this round go first.
            u64::MAX - p.sent
        } else {
            p.received
        }
    }

    /// Interested, non-snubbed peers in rank order: score, then already-regular, then key.
    fn ranked(&self, include: impl Fn(&PeerState) -> bool) -> Vec<K> {
        let mut v: Vec<(u64, bool, K)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.interested && !p.snubbed && include(p))
            .map(|(k, p)| (self.score(p), p.slot == Slot::Regular, *k))
            .collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        v.into_iter().map(|(_, _, k)| k).collect()
    }

    /// Gives free regular slots to the best choked candidates.
    fn fill_regular(&mut self) {
        let free = self
            .config
            .regular_slots
            .saturating_sub(self.count(Slot::Regular));
        if free == 0 {
            return;
        }
        for k in self.ranked(|p| p.slot == Slot::None).into_iter().take(free) {
            self.set_slot(k, Slot::Regular);
        }
    }

    /// Re-ranks everyone for the regular slots and starts a new measurement window.
    fn regular_round(&mut self) {
        let winners = self.ranked(|_| true);
        let winners = &winners[..winners.len().min(self.config.regular_slots)];
        let losers: Vec<K> = self
            .peers
            .iter()
            .filter(|(k, p)| p.slot == Slot::Regular && !winners.contains(k))
            .map(|(k, _)| *k)
            .collect();
        for k in losers {
            self.set_slot(k, Slot::None);
        }
        for &k in winners {
            // An optimistic winner is promoted; its optimistic slot is refilled below.
            self.set_slot(k, Slot::Regular);
        }
        tracing::trace!(regular = ?winners, seeding = self.seeding, "choker round");
        for p in self.peers.values_mut() {
            p.received = 0;
            p.sent = 0;
        }
    }

    /// Moves the optimistic slots to randomly drawn choked interested peers.
    fn rotate_optimistic(&mut self, now: Instant, rng: &mut impl Rng) {
        let old: Vec<K> = self
            .peers
            .iter()
            .filter(|(_, p)| p.slot == Slot::Optimistic)
            .map(|(k, _)| *k)
            .collect();
        let drawn = self.draw(now, rng, self.config.optimistic_slots);
        if drawn.is_empty() {
            return;
        }
        // Old optimistic peers keep any slots the draw could not fill.
        let keep = self.config.optimistic_slots.saturating_sub(drawn.len());
        for &k in old.iter().skip(keep) {
            self.set_slot(k, Slot::None);
        }
        for &k in &drawn {
            self.set_slot(k, Slot::Optimistic);
        }
        tracing::trace!(optimistic = ?drawn, "optimistic unchoke rotated");
    }

    /// Fills free optimistic slots at random.
    fn fill_optimistic(&mut self, now: Instant, rng: &mut impl Rng) {
        let free = self
            .config
            .optimistic_slots
            .saturating_sub(self.count(Slot::Optimistic));
        if free > 0 {
            for k in self.draw(now, rng, free) {
                self.set_slot(k, Slot::Optimistic);
            }
        }
    }

    /// Draws up to `n` distinct choked interested peers, new ones weighted up.
    fn draw(&self, now: Instant, rng: &mut impl Rng, n: usize) -> Vec<K> {
        let mut pool: Vec<(K, u64)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.interested && p.slot == Slot::None)
            .map(|(k, p)| {
                let new =
                    now.saturating_duration_since(p.connected_at) < self.config.new_peer_window;
                let w = if new {
                    self.config.new_peer_weight.max(1)
                } else {
                    1
                };
                (*k, u64::from(w))
            })
            .collect();
        let mut out = Vec::new();
        while out.len() < n && !pool.is_empty() {
            let total: u64 = pool.iter().map(|(_, w)| w).sum();
            let mut r = rng.gen_range(0..total);
            let mut at = pool.len() - 1;
            for (i, (_, w)) in pool.iter().enumerate() {
                if r < *w {
                    at = i;
                    break;
                }
                r -= w;
            }
            out.push(pool.swap_remove(at).0);
        }
        out
    }

    /// Marks peers silent for the snub timeout as snubbed; a snubbed regular peer loses its slot.
    /// Recomputes the earliest snub deadline of the others.
    fn update_snubs(&mut self, now: Instant) {
        let timeout = self.config.snub_timeout;
        let mut dropped = Vec::new();
        let mut next = None;
        for (k, p) in self.peers.iter_mut() {
            let Some(at) = Self::snub_deadline(p, timeout) else {
                continue;
            };
            if now >= at {
                p.snubbed = true;
                tracing::debug!(peer = ?k, "peer snubbed us");
                if p.slot == Slot::Regular {
                    dropped.push(*k);
                }
            } else if next.is_none_or(|n| at < n) {
                next = Some(at);
            }
        }
        self.next_snub = next;
        for k in dropped {
            self.set_slot(k, Slot::None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Drains the decision queue.
    fn drain(c: &mut Choker<u32>) -> Vec<(u32, Decision)> {
        std::iter::from_fn(|| c.poll_decision()).collect()
    }

    fn unchoked(c: &Choker<u32>) -> Vec<u32> {
        c.unchoked().collect()
    }

    fn optimistic(c: &Choker<u32>) -> Vec<u32> {
        c.unchoked().filter(|&k| c.is_optimistic(k)).collect()
    }

    /// Peers `1..=n`, all interested at `t0`.
    fn swarm(config: ChokerConfig, n: u32, t0: Instant) -> Choker<u32> {
        let mut c = Choker::new(config, t0);
        for k in 1..=n {
            c.add_peer(k, t0);
            c.set_peer_interested(k, true, t0);
        }
        c
    }

    #[test]
    fn free_slots_are_filled_the_moment_a_peer_is_interested() {
        let t0 = Instant::now();
        let mut c = swarm(ChokerConfig::default(), 6, t0);
        // Four regular slots and the optimistic one, without waiting for a round.
        assert_eq!(unchoked(&c), vec![1, 2, 3, 4, 5]);
        assert_eq!(optimistic(&c), vec![5]);
        let d = drain(&mut c);
        assert_eq!(d.len(), 5);
        assert!(d.iter().all(|&(_, d)| d == Decision::Unchoke));
        assert!(drain(&mut c).is_empty(), "each change is reported once");
    }

    #[test]
    fn round_unchokes_the_top_four_by_rate_plus_one_optimistic() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = swarm(ChokerConfig::default(), 6, t0);
        drain(&mut c);
        for k in 1..=6 {
            c.on_received(k, u64::from(k) * 100_000, t0 + secs(5));
        }
        assert_eq!(c.poll_timeout(), t0 + secs(10));
        c.handle_timeout(t0 + secs(9), &mut rng);
        assert_eq!(unchoked(&c), vec![1, 2, 3, 4, 5], "nothing due before 10 s");
        c.handle_timeout(t0 + secs(10), &mut rng);
        assert_eq!(unchoked(&c).len(), 5, "four regular + one optimistic");
        for k in 3..=6 {
            assert!(c.is_unchoked(k) && !c.is_optimistic(k), "peer {k} regular");
        }
        // Peer 5 was optimistic and won a regular slot: the optimistic slot went to 1 or 2.
        let opt = optimistic(&c);
        assert!(opt == vec![1] || opt == vec![2], "optimistic {opt:?}");
        let choked = if opt == vec![1] { 2 } else { 1 };
        assert_eq!(
            drain(&mut c),
            vec![(choked, Decision::Choke), (6, Decision::Unchoke)]
        );
    }

    #[test]
    fn rate_changes_take_effect_at_the_next_round_only() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(2);
        let mut c = swarm(ChokerConfig::default(), 6, t0);
        for k in 1..=6 {
            c.on_received(k, u64::from(k) * 100_000, t0 + secs(5));
        }
        c.handle_timeout(t0 + secs(10), &mut rng);
        drain(&mut c);
        let before = unchoked(&c);
        // Now 1 and 2 are the fastest, 3 and 4 slow, 5 and 6 silent.
        c.on_received(1, 10_000_000, t0 + secs(12));
        c.on_received(2, 9_000_000, t0 + secs(12));
        c.on_received(3, 1_000, t0 + secs(12));
        c.on_received(4, 1_000, t0 + secs(12));
        c.handle_timeout(t0 + secs(15), &mut rng);
        assert_eq!(unchoked(&c), before, "no change between rounds");
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(t0 + secs(20), &mut rng);
        for k in 1..=4 {
            assert!(c.is_unchoked(k) && !c.is_optimistic(k), "peer {k} regular");
        }
        let opt = optimistic(&c);
        assert!(opt == vec![5] || opt == vec![6], "optimistic {opt:?}");
        assert_eq!(unchoked(&c).len(), 5);
    }

    #[test]
    fn optimistic_slot_rotates_every_thirty_seconds() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(3);
        let mut c = swarm(ChokerConfig::default(), 8, t0);
        // 5..=8 are the fast peers, so the regular slots stay put.
        let mut step = |c: &mut Choker<u32>, t: u64| {
            for k in 5..=8 {
                c.on_received(k, 1_000_000, t0 + secs(t - 5));
            }
            c.handle_timeout(t0 + secs(t), &mut rng);
        };
        step(&mut c, 10);
        let first = optimistic(&c);
        assert_eq!(first.len(), 1);
        assert!(first[0] <= 4);
        step(&mut c, 20);
        assert_eq!(optimistic(&c), first, "no rotation at 20 s");
        drain(&mut c);
        step(&mut c, 30);
        let second = optimistic(&c);
        assert_eq!(second.len(), 1);
        assert_ne!(second, first, "rotated at 30 s to a peer that was choked");
        assert!(second[0] <= 4);
        assert_eq!(
            drain(&mut c),
            vec![(first[0], Decision::Choke), (second[0], Decision::Unchoke)]
        );
        assert_eq!(c.poll_timeout(), t0 + secs(40));
        step(&mut c, 40);
        step(&mut c, 50);
        assert_eq!(optimistic(&c), second, "next rotation is at 60 s");
        assert!(drain(&mut c).is_empty());
    }

    #[test]
    fn new_peers_are_three_times_as_likely_to_be_optimistic() {
        let t0 = Instant::now();
        let config = ChokerConfig {
            regular_slots: 0,
            ..ChokerConfig::default()
        };
        let trials = 600;
        let mut new_won = 0;
        for seed in 0..trials {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut c = swarm(config.clone(), 4, t0);
            for t in [30, 60, 90] {
                c.handle_timeout(t0 + secs(t), &mut rng);
            }
            // Peer 9 connects at 95 s: at 120 s the others are old and 9 is new.
            c.add_peer(9, t0 + secs(95));
            c.set_peer_interested(9, true, t0 + secs(95));
            assert!(!c.is_unchoked(9), "no free slot for 9");
            c.handle_timeout(t0 + secs(120), &mut rng);
            if c.is_optimistic(9) {
                new_won += 1;
            }
        }
        // The draw is among three old peers (weight 1) and peer 9 (weight 3): p = 3/6 = 0.5,
        // where an unweighted draw would give 0.25.
        let p = f64::from(new_won) / f64::from(trials as u32);
        assert!((0.4..=0.6).contains(&p), "new peer won {p}");
    }

    #[test]
    fn snubbed_peer_loses_its_regular_slot_at_sixty_seconds() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(4);
        let config = ChokerConfig {
            optimistic_slots: 0,
            ..ChokerConfig::default()
        };
        // 1..=4 take the regular slots at once; 5 waits.
        let mut c = swarm(config, 5, t0);
        for k in 1..=4 {
            c.set_we_interested(k, true, t0 + secs(5));
        }
        drain(&mut c);
        // 2..=4 send every 5 s; 1 never does (and keeps its slot on ties while not snubbed).
        for t in (10..=60).step_by(5) {
            for k in 2..=4 {
                c.on_received(k, 10, t0 + secs(t));
            }
            c.handle_timeout(t0 + secs(t), &mut rng);
        }
        assert!(c.is_unchoked(1) && !c.is_snubbed(1));
        assert_eq!(
            c.poll_timeout(),
            t0 + secs(65),
            "snub deadline before the 70 s round"
        );
        c.handle_timeout(t0 + secs(65), &mut rng);
        assert!(c.is_snubbed(1) && !c.is_unchoked(1));
        assert!(c.is_unchoked(5), "the slot is refilled at once");
        assert_eq!(
            drain(&mut c),
            vec![(1, Decision::Choke), (5, Decision::Unchoke)]
        );
        // Data from 1 ends the snub; it wins its slot back at the next round.
        c.on_received(1, 10, t0 + secs(66));
        assert!(!c.is_snubbed(1) && !c.is_unchoked(1));
        c.handle_timeout(t0 + secs(70), &mut rng);
        assert!(c.is_unchoked(1) && !c.is_unchoked(5));
    }

    #[test]
    fn leaving_or_uninterested_peers_free_their_slots_at_once() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(5);
        let mut c = swarm(ChokerConfig::default(), 6, t0);
        drain(&mut c);
        c.remove_peer(2);
        assert!(
            c.is_unchoked(6) && !c.is_optimistic(6),
            "6 takes 2's regular slot"
        );
        assert_eq!(drain(&mut c), vec![(6, Decision::Unchoke)]);
        c.set_peer_interested(5, false, t0 + secs(1));
        assert_eq!(drain(&mut c), vec![(5, Decision::Choke)]);
        assert_eq!(
            c.poll_timeout(),
            t0 + secs(10),
            "no candidate: nothing to refill"
        );
        c.add_peer(7, t0 + secs(2));
        c.set_peer_interested(7, true, t0 + secs(2));
        assert!(
            c.is_optimistic(7),
            "7 takes the free optimistic slot at once"
        );
        c.add_peer(8, t0 + secs(2));
        c.set_peer_interested(8, true, t0 + secs(2));
        assert!(!c.is_unchoked(8));
        c.set_peer_interested(7, false, t0 + secs(3));
        // The refill needs randomness, so the choker asks to run right away.
        assert_eq!(c.poll_timeout(), t0 + secs(3));
        c.handle_timeout(t0 + secs(3), &mut rng);
        assert!(c.is_optimistic(8));
        // 7 was unchoked and choked again before the drain: only 8's change goes out.
        assert_eq!(drain(&mut c), vec![(8, Decision::Unchoke)]);
        assert_eq!(c.poll_timeout(), t0 + secs(10));
    }

    #[test]
    fn rounds_happen_every_10_and_30_seconds_on_poll_timeout_alone() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(8);
        // 1..=4 hold the regular slots from the start and are the fast peers, so the regular
        // slots stay put and only the rotations change anything.
        let mut c = swarm(ChokerConfig::default(), 8, t0);
        drain(&mut c);
        let mut wakes = Vec::new();
        let mut rotations = Vec::new();
        while c.poll_timeout() <= t0 + secs(90) {
            let at = c.poll_timeout();
            for k in 1..=4 {
                c.on_received(k, 1_000_000, at);
            }
            let before = optimistic(&c);
            c.handle_timeout(at, &mut rng);
            if optimistic(&c) != before {
                rotations.push((at - t0).as_secs());
            }
            wakes.push(at - t0);
            drain(&mut c);
        }
        let every_10: Vec<Duration> = (1..=9).map(|n| secs(10 * n)).collect();
        assert_eq!(wakes, every_10);
        assert_eq!(rotations, [30, 60, 90]);
    }

    #[test]
    fn snub_deadline_is_never_late_and_exact_after_a_run() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(9);
        let config = ChokerConfig {
            snub_timeout: secs(5),
            ..ChokerConfig::default()
        };
        let mut c = swarm(config, 2, t0);
        c.set_we_interested(1, true, t0 + secs(1));
        assert_eq!(c.poll_timeout(), t0 + secs(6));
        // Data at 2 s moves the deadline to 7 s; the answer may stay early, never late.
        c.on_received(1, 10, t0 + secs(2));
        assert!(c.poll_timeout() <= t0 + secs(7));
        c.handle_timeout(c.poll_timeout(), &mut rng);
        assert!(!c.is_snubbed(1));
        assert_eq!(c.poll_timeout(), t0 + secs(7), "exact after a run");
        c.handle_timeout(t0 + secs(7), &mut rng);
        assert!(c.is_snubbed(1));
        assert_eq!(c.poll_timeout(), t0 + secs(10), "the next round");
        // Data ends the snub and starts the clock again, earlier than the round.
        c.on_received(1, 10, t0 + secs(8));
        assert_eq!(c.poll_timeout(), t0 + secs(10));
        c.set_we_interested(2, true, t0 + secs(3));
        assert!(c.poll_timeout() <= t0 + secs(8));
    }

    #[test]
    fn uninterested_peers_stay_choked() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(6);
        let mut c = Choker::new(ChokerConfig::default(), t0);
        for k in 1..=3 {
            c.add_peer(k, t0);
            c.on_received(k, 1_000_000, t0 + secs(1));
        }
        for t in [10, 20, 30] {
            c.handle_timeout(t0 + secs(t), &mut rng);
        }
        assert!(unchoked(&c).is_empty());
        assert!(drain(&mut c).is_empty());
    }

    #[test]
    fn a_change_undone_before_the_drain_is_not_reported() {
        let t0 = Instant::now();
        let mut c = swarm(ChokerConfig::default(), 1, t0);
        c.set_peer_interested(1, false, t0);
        assert!(drain(&mut c).is_empty());
        c.set_peer_interested(1, true, t0);
        assert_eq!(drain(&mut c), vec![(1, Decision::Unchoke)]);
        c.set_peer_interested(1, false, t0);
        c.set_peer_interested(1, true, t0);
        assert!(drain(&mut c).is_empty(), "still unchoked on the wire");
    }

    #[test]
    fn seeding_is_round_robin_by_what_we_upload() {
        let t0 = Instant::now();
        let mut rng = StdRng::seed_from_u64(7);
        let config = ChokerConfig {
            optimistic_slots: 0,
            ..ChokerConfig::default()
        };
        let mut c = swarm(config, 6, t0);
        c.set_seeding(true);
        for k in 1..=6 {
            // What they send us is ignored when seeding; the least served go first.
            c.on_received(k, u64::from(7 - k) * 1_000, t0 + secs(5));
            c.on_sent(k, u64::from(7 - k) * 1_000);
        }
        c.handle_timeout(t0 + secs(10), &mut rng);
        assert_eq!(unchoked(&c), vec![3, 4, 5, 6]);
        c.set_seeding(false);
        for k in 1..=6 {
            c.on_received(k, u64::from(7 - k) * 1_000, t0 + secs(15));
            c.on_sent(k, u64::from(k) * 1_000);
        }
        c.handle_timeout(t0 + secs(20), &mut rng);
        assert_eq!(unchoked(&c), vec![1, 2, 3, 4]);
    }

    #[test]
    fn rotate_hands_the_slot_to_a_waiting_peer_only_if_there_is_one() {
        let t0 = Instant::now();
        let config = ChokerConfig {
            regular_slots: 1,
            optimistic_slots: 0,
            ..ChokerConfig::default()
        };
        let mut c = swarm(config, 1, t0);
        c.set_seeding(true);
        assert_eq!(unchoked(&c), vec![1]);
        c.rotate(1);
        assert_eq!(unchoked(&c), vec![1], "nobody waits: the slot stays");
        c.add_peer(2, t0);
        c.set_peer_interested(2, true, t0);
        c.on_sent(1, 1_000);
        c.rotate(1);
        assert_eq!(unchoked(&c), vec![2]);
        assert!(!c.is_unchoked(1));
    }
}
