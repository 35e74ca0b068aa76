//! A transfer-rate estimator over a sliding window of time, driven by a caller-supplied clock.
//!
//! The window is split into [`BUCKETS`] equal buckets; bytes land in the bucket of the instant
//! they are reported, and buckets older than the window are forgotten. The estimate divides the
//! bytes still in the window by the time the window actually covers, so a transfer that started
//! 200 ms ago is not diluted over a whole window.

use std::time::{Duration, Instant};

/// Number of buckets a window is split into.
pub const BUCKETS: usize = 10;

/// Shortest span an estimate divides by, so the first sample does not divide by zero.
const MIN_SPAN: Duration = Duration::from_millis(1);

/// Bytes per second over the last `window` of (virtual) time.
#[derive(Debug, Clone)]
pub struct Rate {
    /// When the estimator was created: the estimate never covers time before it.
    start: Instant,
    /// Length of one bucket.
    bucket: Duration,
    /// Bytes per bucket; `ring[head]` is the bucket that contains `head_start`.
    ring: [u64; BUCKETS],
    /// Index of the current bucket in `ring`.
    head: usize,
    /// Start of the current bucket.
    head_start: Instant,
    /// Total bytes ever reported.
    total: u64,
    /// The estimate as of the last call to [`Rate::add`].
    last: f64,
}

impl Rate {
    /// An estimator over `window` (at least [`BUCKETS`] nanoseconds), starting empty at `now`.
    pub fn new(now: Instant, window: Duration) -> Self {
        let bucket = (window / BUCKETS as u32).max(Duration::from_nanos(1));
        Rate {
            start: now,
            bucket,
            ring: [0; BUCKETS],
            head: 0,
            head_start: now,
            total: 0,
            last: 0.0,
        }
    }

    /// The length of the window.
    pub fn window(&self) -> Duration {
        self.bucket * BUCKETS as u32
    }

    /// Records `bytes` transferred at `now` (an instant before the last one counts as the last).
    pub fn add(&mut self, now: Instant, bytes: u64) {
        self.advance(now);
        if let Some(slot) = self.ring.get_mut(self.head) {
            *slot = slot.saturating_add(bytes);
        }
        self.total = self.total.saturating_add(bytes);
        self.last = self.rate_at(now);
    }

    /// The estimate as of the last [`Rate::add`] (0 before any).
    pub fn rate(&self) -> f64 {
        self.last
    }

    /// Total bytes ever reported.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The estimate at `now`: bytes in the window ending at `now` over the span it covers.
    pub fn rate_at(&self, now: Instant) -> f64 {
        let behind = self.buckets_behind(now);
        if behind >= BUCKETS as u64 {
            return 0.0;
        }
        // Buckets still inside the window once the ring has moved `behind` steps forward.
        let keep = BUCKETS - behind as usize;
        let bytes: u64 = (0..keep)
            .filter_map(|age| self.ring.get((self.head + BUCKETS - age) % BUCKETS))
            .sum();
        // The window ends at `now` and starts `BUCKETS - 1` whole buckets before the bucket
        // that contains `now`, but never before the estimator existed.
        let current_start = self.head_start + self.bucket * behind as u32;
        let into_current = now.saturating_duration_since(current_start);
        let full = self.bucket * (BUCKETS as u32 - 1) + into_current;
        let span = full
            .min(now.saturating_duration_since(self.start))
            .max(MIN_SPAN);
        bytes as f64 / span.as_secs_f64()
    }

    /// How many whole buckets `now` lies past the current one.
    fn buckets_behind(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.head_start);
        (since.as_nanos() / self.bucket.as_nanos().max(1)) as u64
    }

    /// Moves the current bucket forward to the one containing `now`, clearing skipped buckets.
    fn advance(&mut self, now: Instant) {
        let behind = self.buckets_behind(now);
        if behind == 0 {
            return;
        }
        let steps = behind.min(BUCKETS as u64) as usize;
        for _ in 0..steps {
            self.head = (self.head + 1) % BUCKETS;
            if let Some(slot) = self.ring.get_mut(self.head) {
                *slot = 0;
            }
        }
        self.head_start += self.bucket * behind as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn steady_stream_reads_its_rate() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0, Duration::from_secs(2));
        // 100 KB every 100 ms = 1 MB/s, for 5 s.
        for i in 1..=50 {
            r.add(t0 + ms(100 * i), 100_000);
        }
        let est = r.rate();
        assert!((est - 1_000_000.0).abs() < 100_000.0, "estimate {est}");
        assert_eq!(r.total(), 5_000_000);
    }

    #[test]
    fn young_estimator_is_not_diluted_by_the_window() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0, Duration::from_secs(3));
        // 1 MB in the first 100 ms: 10 MB/s, not 1 MB / 3 s.
        for i in 1..=10 {
            r.add(t0 + ms(10 * i), 100_000);
        }
        let est = r.rate();
        assert!((est - 10_000_000.0).abs() < 1_000_000.0, "estimate {est}");
    }

    #[test]
    fn old_bytes_leave_the_window() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0, Duration::from_secs(1));
        r.add(t0 + ms(500), 1_000_000);
        assert!(r.rate_at(t0 + ms(900)) > 900_000.0);
        // 1.6 s later every bucket holding those bytes has left the window.
        assert_eq!(r.rate_at(t0 + ms(2_100)), 0.0);
        r.add(t0 + ms(2_100), 10_000);
        let est = r.rate();
        assert!(est > 0.0 && est < 20_000.0, "estimate {est}");
    }

    #[test]
    fn rate_decays_when_the_stream_stops() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0, Duration::from_secs(2));
        for i in 1..=20 {
            r.add(t0 + ms(100 * i), 10_000);
        }
        let busy = r.rate_at(t0 + ms(2_000));
        let later = r.rate_at(t0 + ms(3_000));
        assert!(later < busy * 0.6, "busy {busy} later {later}");
        assert_eq!(r.rate_at(t0 + ms(10_000)), 0.0);
        // `rate()` is frozen at the last sample.
        assert!(r.rate() > 0.0);
    }

    #[test]
    fn first_sample_and_time_going_backwards_are_finite() {
        let t0 = Instant::now();
        let mut r = Rate::new(t0, Duration::from_secs(1));
        r.add(t0, 16_384);
        assert!(r.rate().is_finite() && r.rate() > 0.0);
        r.add(t0 + ms(300), 16_384);
        r.add(t0 + ms(100), 16_384); // earlier than the last: counted in the current bucket
        assert_eq!(r.total(), 3 * 16_384);
        assert!(r.rate().is_finite());
    }
}
