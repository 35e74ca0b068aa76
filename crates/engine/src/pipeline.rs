//! How many block requests to keep outstanding with one peer.
//!
//! A peer's throughput is capped by the bytes we have asked for divided by the round-trip time,
//! so the queue must cover the round trip with room to spare. Like libtorrent we keep about
//! [`IN_FLIGHT`] (3 s) of the peer's measured rate in flight, never fewer than [`MIN_TARGET`]
//! and never more than [`MAX_TARGET`] or the peer's advertised `reqq`.
//!
//! A new peer has no measured rate, so the pipeline starts in slow start at [`INITIAL_TARGET`]
//! requests and grows by one request for every block that arrives (the queue doubles each round
//! trip, as TCP's window does). Slow start ends when the measured rate stops growing by at least
//! [`SLOW_START_GROWTH`] per [`SLOW_START_CHECK`]; from then on the target follows the rate.
//! On loopback (hundreds of MB/s, tens of microseconds of RTT) the target reaches the cap within a
//! few hundred blocks.

use std::time::{Duration, Instant};

use metainfo::BLOCK_SIZE;

use crate::rate::Rate;

/// Seconds of the peer's rate to keep requested.
pub const IN_FLIGHT: Duration = Duration::from_secs(3);
/// Requests outstanding at the start of slow start.
pub const INITIAL_TARGET: usize = 16;
/// Never keep fewer requests than this outstanding.
pub const MIN_TARGET: usize = 2;
/// Never keep more requests than this outstanding, whatever the rate: 4 MiB in flight, which
/// still fills 40 MB/s per peer at 100 ms round trip. Every piece with a block in flight holds
/// a piece buffer, so the cap also bounds memory (a higher cap cost peak memory on loopback for
/// no speed: BENCHMARKS.md, "Figures that were in code comments").
pub const MAX_TARGET: usize = 250;
/// How often slow start checks whether the rate is still growing.
pub const SLOW_START_CHECK: Duration = Duration::from_secs(1);
/// Relative rate growth per check below which slow start ends (0.1 = 10 %).
pub const SLOW_START_GROWTH: f64 = 0.1;
/// Window of the rate estimate the target is computed from.
pub const RATE_WINDOW: Duration = Duration::from_secs(3);

/// Request-queue sizing for one peer; create one per connection.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// Payload rate of blocks we requested from the peer.
    rate: Rate,
    /// True while the queue grows per block instead of following the rate.
    slow_start: bool,
    /// The slow-start queue length.
    slow_target: usize,
    /// When slow start next compares the rate with `check_rate`.
    check_at: Instant,
    /// The rate at the previous slow-start check.
    check_rate: f64,
}

impl Pipeline {
    /// A pipeline in slow start for a peer connected at `now`.
    pub fn new(now: Instant) -> Self {
        Pipeline {
            rate: Rate::new(now, RATE_WINDOW),
            slow_start: true,
            slow_target: INITIAL_TARGET,
            check_at: now + SLOW_START_CHECK,
            check_rate: 0.0,
        }
    }

    /// A requested block of `bytes` arrived at `now`.
    pub fn on_block(&mut self, now: Instant, bytes: u32) {
        self.rate.add(now, u64::from(bytes));
        if !self.slow_start {
            return;
        }
        self.slow_target = (self.slow_target + 1).min(MAX_TARGET);
        if now >= self.check_at {
            let rate = self.rate.rate();
            if rate < self.check_rate * (1.0 + SLOW_START_GROWTH) {
                self.slow_start = false;
                tracing::trace!(rate, "pipeline leaves slow start");
            } else {
                self.check_rate = rate;
                self.check_at = now + SLOW_START_CHECK;
            }
        }
    }

    /// The peer choked us (its queue of our requests is gone): go back to slow start, so the
    /// queue regrows quickly after the next unchoke even if the measured rate is stale or low.
    pub fn on_choked(&mut self) {
        self.slow_start = true;
        self.slow_target = INITIAL_TARGET;
        self.check_rate = 0.0;
    }

    /// True while the pipeline is in slow start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// How many requests to keep outstanding, given the peer's advertised `reqq` if any.
    pub fn target(&self, peer_reqq: Option<u32>) -> usize {
        let blocks = self.rate.rate() * IN_FLIGHT.as_secs_f64() / f64::from(BLOCK_SIZE);
        // `as` saturates for huge or NaN values, which the cap below then handles.
        let mut target = (blocks.ceil() as usize).max(MIN_TARGET);
        if self.slow_start {
            target = target.max(self.slow_target);
        }
        let cap = peer_reqq.map_or(MAX_TARGET, |q| (q as usize).clamp(1, MAX_TARGET));
        target.min(cap)
    }

    /// Payload bytes per second received from the peer, as of the last block.
    pub fn rate(&self) -> f64 {
        self.rate.rate()
    }

    /// The underlying estimator (for a rate that decays while nothing arrives, use
    /// [`Rate::rate_at`]).
    pub fn rate_estimator(&self) -> &Rate {
        &self.rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `count` full blocks, one every `gap`, starting one gap after `from`; returns the
    /// instant of the last block.
    fn feed(p: &mut Pipeline, from: Instant, gap: Duration, count: u32) -> Instant {
        let mut t = from;
        for _ in 0..count {
            t += gap;
            p.on_block(t, BLOCK_SIZE);
        }
        t
    }

    #[test]
    fn starts_at_the_slow_start_value() {
        let t0 = Instant::now();
        let p = Pipeline::new(t0);
        assert_eq!(p.target(None), INITIAL_TARGET);
        assert!(p.in_slow_start());
        assert_eq!(p.rate(), 0.0);
    }

    #[test]
    fn loopback_peer_reaches_the_cap_within_a_few_hundred_blocks() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(t0);
        // 16 KiB every 30 us is about 550 MB/s.
        let mut t = t0;
        let mut blocks = 0;
        while p.target(None) < MAX_TARGET {
            t = feed(&mut p, t, Duration::from_micros(30), 1);
            blocks += 1;
            assert!(
                blocks <= 500,
                "target only {} after 500 blocks",
                p.target(None)
            );
        }
        feed(&mut p, t, Duration::from_micros(30), 1_000);
        assert!(p.rate() > 400e6, "rate {}", p.rate());
        assert_eq!(p.target(None), MAX_TARGET);
    }

    #[test]
    fn slow_start_grows_one_request_per_block() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(t0);
        // 10 small blocks within the first check interval: the rate alone would ask for 2.
        for i in 1..=10 {
            p.on_block(t0 + Duration::from_millis(50 * i), 100);
        }
        assert!(p.in_slow_start());
        assert_eq!(p.target(None), INITIAL_TARGET + 10);
    }

    #[test]
    fn steady_peer_keeps_three_seconds_in_flight() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(t0);
        // 163,840 B/s (10 blocks per second) for 20 s.
        feed(&mut p, t0, Duration::from_millis(100), 200);
        assert!(!p.in_slow_start(), "a steady rate ends slow start");
        // 3 s of 10 blocks/s = 30 requests (allow for the estimator's bucket edges).
        let target = p.target(None);
        assert!((28..=34).contains(&target), "target {target}");
    }

    #[test]
    fn slow_peer_is_floored_at_two() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(t0);
        // One block every 30 s: far below one block per 3 s.
        let t = feed(&mut p, t0, Duration::from_secs(30), 3);
        assert!(!p.in_slow_start());
        assert_eq!(p.target(None), MIN_TARGET);
        p.on_block(t + Duration::from_secs(1), 1);
        assert_eq!(p.target(None), MIN_TARGET);
    }

    #[test]
    fn peer_reqq_caps_the_target() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(t0);
        feed(&mut p, t0, Duration::from_micros(30), 1_000);
        assert_eq!(p.target(None), MAX_TARGET);
        assert_eq!(p.target(Some(2000)), MAX_TARGET);
        assert_eq!(p.target(Some(50)), 50);
        assert_eq!(p.target(Some(0)), 1, "a zero reqq still allows one request");
    }

    #[test]
    fn choke_restarts_slow_start() {
        let t0 = Instant::now();
        let mut p = Pipeline::new(t0);
        let t = feed(&mut p, t0, Duration::from_secs(30), 3);
        assert_eq!(p.target(None), MIN_TARGET);
        p.on_choked();
        assert!(p.in_slow_start());
        assert_eq!(p.target(None), INITIAL_TARGET);
        // After the unchoke the queue grows again per block.
        feed(&mut p, t, Duration::from_millis(10), 5);
        assert_eq!(p.target(None), INITIAL_TARGET + 5);
    }
}
