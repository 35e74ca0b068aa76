//! Per-IP query rate limiting: a token bucket per source address, in a bounded table.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Token buckets per IP: `rate` queries per second sustained, `burst` at once.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: HashMap<Ipv4Addr, (f64, Instant)>,
    rate: f64,
    burst: f64,
    max_ips: usize,
}

impl RateLimiter {
    /// A limiter tracking at most `max_ips` addresses.
    pub fn new(rate_per_sec: u32, burst: u32, max_ips: usize) -> Self {
        RateLimiter {
            buckets: HashMap::new(),
            rate: f64::from(rate_per_sec.max(1)),
            burst: f64::from(burst.max(1)),
            max_ips,
        }
    }

    /// True when a query from `ip` at `now` is within its rate. When the table is full, idle
    /// entries are pruned; if it is still full a query from a new address is refused.
    pub fn allow(&mut self, ip: Ipv4Addr, now: Instant) -> bool {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_ips {
            self.prune(now);
            if self.buckets.len() >= self.max_ips {
                return false;
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        let (tokens, last) = self.buckets.entry(ip).or_insert((burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Forgets addresses whose bucket has refilled (they would start full anyway).
    pub fn prune(&mut self, now: Instant) {
        let refill = Duration::from_secs_f64(self.burst / self.rate);
        self.buckets
            .retain(|_, (_, last)| now.saturating_duration_since(*last) < refill);
    }

    /// Addresses tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// True when no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(2, 4, 10);
        let ip = Ipv4Addr::new(1, 1, 1, 1);
        assert_eq!((0..6).filter(|_| l.allow(ip, t0)).count(), 4);
        assert!(!l.allow(ip, t0 + Duration::from_millis(100)));
        assert!(l.allow(ip, t0 + Duration::from_millis(600)));
        assert!(
            l.allow(Ipv4Addr::new(2, 2, 2, 2), t0),
            "other ips unaffected"
        );
    }

    #[test]
    fn table_is_capped() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(1, 2, 2);
        assert!(l.allow(Ipv4Addr::new(1, 0, 0, 1), t0));
        assert!(l.allow(Ipv4Addr::new(1, 0, 0, 2), t0));
        assert!(
            !l.allow(Ipv4Addr::new(1, 0, 0, 3), t0),
            "full: new ip dropped"
        );
        assert_eq!(l.len(), 2);
        // Once the old entries have refilled they are pruned to make room.
        assert!(l.allow(Ipv4Addr::new(1, 0, 0, 3), t0 + Duration::from_secs(3)));
        assert_eq!(l.len(), 1);
    }
}
