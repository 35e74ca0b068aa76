//! The swarm store: every swarm, sharded by info-hash behind `parking_lot` mutexes so the
//! request tasks rarely contend. Sans-IO and clock-free: `now` (seconds on any monotonic scale)
//! and the random source are arguments, so tests run on virtual time.
//!
//! Time is kept per peer as a 15-bit tick of [`TICK_SECS`] seconds, compared with wrapping
//! arithmetic; that is exact to one tick as long as every peer is swept before it is
//! [`MAX_EXPIRY_SECS`] old, which the sweep (run at least once per expiry) guarantees.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;

use hashbrown::{DefaultHashBuilder, HashMap};
use metainfo::InfoHash;
use parking_lot::Mutex;
use rand::Rng;
use tracker_proto::{Event, ScrapeStats};

use crate::peer_set::TICK_MASK;
use crate::swarm::{PeerList, Step, Swarm};

/// Seconds per "last seen" tick.
pub const TICK_SECS: u64 = 8;
/// Longest peer expiry the tick arithmetic supports (a day; ticks wrap after ~72 hours).
pub const MAX_EXPIRY_SECS: u64 = 24 * 3600;
/// Number of shards (a power of two).
const SHARDS: usize = 16;

/// Caps and timing of a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most swarms held (each costs about 250 bytes before its peers, so 1,000,000 swarms of one
    /// peer each take about 270 MB: size this cap to the memory you give the tracker).
    pub max_swarms: usize,
    /// Most peers in one swarm (both families).
    pub max_peers_per_swarm: usize,
    /// Most peers held overall (both families).
    pub max_peers: usize,
    /// Seconds after its last announce that a peer is dropped (at most [`MAX_EXPIRY_SECS`]).
    pub peer_expiry_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_swarms: 1_000_000,
            max_peers_per_swarm: 1_000_000,
            max_peers: 10_000_000,
            peer_expiry_secs: 2700,
        }
    }
}

/// One announce as the store sees it.
#[derive(Debug, Clone, Copy)]
pub struct Announce {
    /// The torrent.
    pub info_hash: InfoHash,
    /// The peer's address (already chosen by the service: connection source, or trusted).
    pub addr: SocketAddr,
    /// `left` was 0.
    pub seeder: bool,
    /// The event.
    pub event: Event,
    /// Peers wanted (already clamped by the service).
    pub numwant: usize,
}

/// The outcome of an accepted announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announced {
    /// Seeders in the swarm after this announce.
    pub complete: usize,
    /// Leechers in the swarm after this announce.
    pub incomplete: usize,
    /// False when a cap kept a new peer out (it still gets peers) or it stopped.
    pub listed: bool,
}

/// An announce the store refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The swarm is new and the swarm cap is reached.
    #[error("tracker is full: too many torrents")]
    TooManySwarms,
}

/// Totals over all swarms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Swarms held.
    pub swarms: usize,
    /// IPv4 peers.
    pub peers4: usize,
    /// IPv6 peers.
    pub peers6: usize,
    /// Seeders (both families).
    pub seeders: usize,
}

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Peers dropped.
    pub peers: usize,
    /// Swarms dropped because they became empty.
    pub swarms: usize,
}

#[derive(Debug, Default)]
struct Shard {
    swarms: HashMap<InfoHash, Swarm>,
    counts: Counts,
}

fn apply(n: &mut usize, delta: isize) {
    *n = n.saturating_add_signed(delta);
}

/// Every swarm of the tracker.
#[derive(Debug)]
pub struct Store {
    shards: Box<[Mutex<Shard>]>,
    limits: Limits,
    /// Swarms held, across shards (kept beside the per-shard counts so caps are global).
    swarms_held: AtomicUsize,
    /// Peers held, across shards.
    peers_held: AtomicUsize,
    hasher: DefaultHashBuilder,
}

fn tick(now: u64) -> u16 {
    ((now / TICK_SECS) as u16) & TICK_MASK
}

impl Store {
    /// An empty store; the expiry is clamped to [`MAX_EXPIRY_SECS`].
    pub fn new(mut limits: Limits) -> Store {
        limits.peer_expiry_secs = limits.peer_expiry_secs.clamp(1, MAX_EXPIRY_SECS);
        Store {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            limits,
            swarms_held: AtomicUsize::new(0),
            peers_held: AtomicUsize::new(0),
            hasher: DefaultHashBuilder::default(),
        }
    }

    fn shard(&self, h: &InfoHash) -> &Mutex<Shard> {
        let i = usize::from(h.0[0]) % SHARDS;
        &self.shards[i]
    }

    /// Records one announce at `now` and appends up to `numwant` peers of the announcer's
    /// family to `out`, never the announcer itself.
    pub fn announce(
        &self,
        a: &Announce,
        now: u64,
        rng: &mut impl Rng,
        out: &mut PeerList,
    ) -> Result<Announced, Refused> {
        let mut guard = self.shard(&a.info_hash).lock();
        let shard = &mut *guard;
        if !shard.swarms.contains_key(&a.info_hash) {
            if a.event == Event::Stopped {
                return Ok(Announced {
                    complete: 0,
                    incomplete: 0,
                    listed: false,
                });
            }
            if self.swarms_held.load(Relaxed) >= self.limits.max_swarms {
                return Err(Refused::TooManySwarms);
            }
            shard.swarms.insert(a.info_hash, Swarm::default());
            shard.counts.swarms += 1;
            self.swarms_held.fetch_add(1, Relaxed);
        }
        let Some(swarm) = shard.swarms.get_mut(&a.info_hash) else {
            return Err(Refused::TooManySwarms);
        };
        let is_v6 = a.addr.is_ipv6();
        let held = self.peers_held.load(Relaxed);
        let cap = if swarm.len() < self.limits.max_peers_per_swarm && held < self.limits.max_peers {
            usize::MAX
        } else {
            swarm.len_of(is_v6)
        };
        let step = Step {
            seeder: a.seeder || a.event == Event::Paused,
            event: a.event,
            want: a.numwant,
            start: rng.r#gen::<u32>() as usize,
            tick: tick(now),
            cap,
        };
        let change = swarm.announce(a.addr, &step, out, &self.hasher);
        let done = Announced {
            complete: swarm.seeders(),
            incomplete: swarm.len() - swarm.seeders(),
            listed: change.listed,
        };
        if is_v6 {
            apply(&mut shard.counts.peers6, change.peers);
        } else {
            apply(&mut shard.counts.peers4, change.peers);
        }
        apply(&mut shard.counts.seeders, change.seeders);
        if change.peers > 0 {
            self.peers_held
                .fetch_add(change.peers.unsigned_abs(), Relaxed);
        } else if change.peers < 0 {
            self.peers_held
                .fetch_sub(change.peers.unsigned_abs(), Relaxed);
        }
        if swarm.is_empty() {
            shard.swarms.remove(&a.info_hash);
            shard.counts.swarms -= 1;
            self.swarms_held.fetch_sub(1, Relaxed);
        }
        Ok(done)
    }

    /// The counts of one torrent (zeros when unknown).
    pub fn scrape(&self, h: &InfoHash) -> ScrapeStats {
        let shard = self.shard(h).lock();
        shard
            .swarms
            .get(h)
            .map_or_else(ScrapeStats::default, |s| ScrapeStats {
                complete: s.seeders() as u64,
                downloaded: s.downloaded,
                incomplete: (s.len() - s.seeders()) as u64,
            })
    }

    /// Drops peers not seen for the expiry and then any empty swarm.
    pub fn sweep(&self, now: u64) -> Swept {
        let now_tick = tick(now);
        let max_age = self.limits.peer_expiry_secs.div_ceil(TICK_SECS) as u16;
        let expired = |m: u16| now_tick.wrapping_sub(m & TICK_MASK) & TICK_MASK >= max_age;
        let mut swept = Swept::default();
        for shard in self.shards.iter() {
            let mut guard = shard.lock();
            let Shard { swarms, counts } = &mut *guard;
            let before = swarms.len();
            swarms.retain(|_, sw| {
                let (p4, p6, s) = sw.sweep(expired, &self.hasher);
                counts.peers4 = counts.peers4.saturating_sub(p4);
                counts.peers6 = counts.peers6.saturating_sub(p6);
                counts.seeders = counts.seeders.saturating_sub(s);
                swept.peers += p4 + p6;
                self.peers_held.fetch_sub(p4 + p6, Relaxed);
                !sw.is_empty()
            });
            swept.swarms += before - swarms.len();
            self.swarms_held.fetch_sub(before - swarms.len(), Relaxed);
            counts.swarms = swarms.len();
            if swarms.capacity() > 64 && swarms.len() < swarms.capacity() / 4 {
                swarms.shrink_to(swarms.len() * 2);
            }
        }
        swept
    }

    /// Totals over all shards (each shard locked briefly in turn).
    pub fn counts(&self) -> Counts {
        self.shards.iter().fold(Counts::default(), |acc, s| {
            let c = s.lock().counts;
            Counts {
                swarms: acc.swarms + c.swarms,
                peers4: acc.peers4 + c.peers4,
                peers6: acc.peers6 + c.peers6,
                seeders: acc.seeders + c.seeders,
            }
        })
    }

    /// Heap bytes held by peer storage and the swarm maps (an estimate for memory reports).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let g = s.lock();
                g.swarms.allocation_size() + g.swarms.values().map(Swarm::heap_bytes).sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
