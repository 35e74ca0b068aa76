//! Per-address announce rate limiting: a generic cell rate algorithm (GCRA) per client address
//! (IPv4 address, or IPv6 /64 prefix, since one host usually owns a whole /64), in a bounded,
//! sharded table. Clock-free: `now` is passed in as milliseconds on any monotonic scale.
//!
//! At the table's cap new addresses are let through untracked (the limiter fails open rather
//! than growing); `sweep` forgets addresses whose allowance has fully recovered.

use std::net::IpAddr;

use hashbrown::HashMap;
use parking_lot::Mutex;

const SHARDS: usize = 16;

/// The limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained announces allowed per minute per address.
    pub per_minute: u32,
    /// Announces allowed in a burst above the sustained rate.
    pub burst: u32,
    /// Most addresses tracked at once.
    pub max_tracked: usize,
}

/// Announce rate limits per client address.
#[derive(Debug)]
pub struct Limiter {
    shards: Box<[Mutex<HashMap<u128, u64>>]>,
    /// Milliseconds one announce costs.
    step_ms: u64,
    /// How far ahead of `now` the theoretical arrival time may run.
    slack_ms: u64,
    per_shard: usize,
}

/// The table key: IPv4 addresses whole, IPv6 by /64 prefix.
fn key(ip: IpAddr) -> u128 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => (v6.to_bits() >> 64 << 64) | 1,
    }
}

impl Limiter {
    /// A limiter with `limit`'s rate, burst and table cap (`per_minute` at least 1).
    pub fn new(limit: RateLimit) -> Limiter {
        let step_ms = 60_000 / u64::from(limit.per_minute.max(1));
        Limiter {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            step_ms,
            slack_ms: step_ms * u64::from(limit.burst),
            per_shard: limit.max_tracked.div_ceil(SHARDS),
        }
    }

    fn shard(&self, k: u128) -> &Mutex<HashMap<u128, u64>> {
        // Mix the high and low halves so IPv4 and IPv6 prefixes both spread.
        let h = (k ^ (k >> 64)) as u64;
        &self.shards[(h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SHARDS]
    }

    /// True when `ip` may announce at `now_ms` (and records the announce).
    pub fn allow(&self, ip: IpAddr, now_ms: u64) -> bool {
        let k = key(ip);
        let mut table = self.shard(k).lock();
        let at_cap = table.len() >= self.per_shard;
        match table.get_mut(&k) {
            Some(tat) => {
                let start = (*tat).max(now_ms);
                if start - now_ms > self.slack_ms {
                    return false;
                }
                *tat = start + self.step_ms;
                true
            }
            None if at_cap => true,
            None => {
                table.insert(k, now_ms + self.step_ms);
                true
            }
        }
    }

    /// Forgets addresses whose allowance has fully recovered; returns how many.
    pub fn sweep(&self, now_ms: u64) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let mut t = s.lock();
                let before = t.len();
                t.retain(|_, tat| *tat > now_ms);
                before - t.len()
            })
            .sum()
    }

    /// Addresses tracked.
    pub fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn limiter(per_minute: u32, burst: u32, max_tracked: usize) -> Limiter {
        Limiter::new(RateLimit {
            per_minute,
            burst,
            max_tracked,
        })
    }

    #[test]
    fn allows_the_burst_then_the_sustained_rate() {
        let l = limiter(60, 3, 100);
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let allowed = (0..10).filter(|_| l.allow(ip, 0)).count();
        assert_eq!(allowed, 4, "one plus a burst of three");
        assert!(!l.allow(ip, 999));
        assert!(l.allow(ip, 1000), "one more each second");
        assert!(!l.allow(ip, 1000));
        // Another address is unaffected.
        assert!(l.allow(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 1000));
    }

    #[test]
    fn ipv6_is_limited_per_64() {
        let l = limiter(60, 0, 100);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2::ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(l.allow(a, 0));
        assert!(!l.allow(b, 0), "same /64");
        assert!(l.allow(c, 0));
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert!(l.allow(mapped, 0));
        assert!(
            !l.allow(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 0),
            "mapped = IPv4"
        );
        assert!(l.allow(IpAddr::V6(Ipv6Addr::LOCALHOST), 0));
    }

    #[test]
    fn table_is_bounded_and_swept() {
        let l = limiter(60, 0, 16);
        for i in 0..1000u32 {
            l.allow(IpAddr::V4(Ipv4Addr::from(i)), 0);
        }
        let tracked = l.tracked();
        assert!(tracked > 0 && tracked <= 16, "{tracked}");
        assert_eq!(l.sweep(500), 0);
        assert_eq!(l.sweep(1000), tracked);
        assert_eq!(l.tracked(), 0);
    }
}
