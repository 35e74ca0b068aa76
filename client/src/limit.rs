//! Rate limits: a token bucket shared by every connection of the process.

use std::time::Duration;

use tokio::time::Instant;

use parking_lot::Mutex;

/// Bytes per second with a short burst; `None` rate means unlimited.
#[derive(Debug)]
pub struct Limiter {
    rate: Option<f64>,
    state: Mutex<(f64, Instant)>,
}

impl Limiter {
    /// A limiter of `rate` bytes per second (`None`: unlimited).
    pub fn new(rate: Option<u64>) -> Self {
        let rate = rate.filter(|&r| r > 0).map(|r| r as f64);
        Limiter {
            rate,
            state: Mutex::new((0.0, Instant::now())),
        }
    }

    /// Is a limit set?
    pub fn is_limited(&self) -> bool {
        self.rate.is_some()
    }

    /// Accounts for `bytes` and waits as long as the budget is overdrawn. Transfers go ahead
    /// first and pay afterwards (a debt model), so a 16 KiB block never waits for a bucket
    /// smaller than itself.
    pub async fn consume(&self, bytes: usize) {
        let Some(rate) = self.rate else { return };
        let wait = {
            let mut st = self.state.lock();
            let now = Instant::now();
            let burst = (rate / 4.0).max(32.0 * 1024.0);
            let elapsed = now.saturating_duration_since(st.1).as_secs_f64();
            st.0 = (st.0 + elapsed * rate).min(burst) - bytes as f64;
            st.1 = now;
            if st.0 < 0.0 { -st.0 / rate } else { 0.0 }
        };
        if wait > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// Parses a rate such as `500K`, `2M`, `1.5M`, `100000` (bytes per second; K = 1024).
pub fn parse_rate(s: &str) -> Result<u64, String> {
    parse_size(s)
}

/// Parses a size such as `256K`, `1M`, `262144`, `1GiB` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let trimmed = lower
        .trim_end_matches("ib")
        .trim_end_matches('b')
        .trim_end_matches("/s");
    let (num, mult) = match trimmed.chars().last() {
        Some('k') => (&trimmed[..trimmed.len() - 1], 1u64 << 10),
        Some('m') => (&trimmed[..trimmed.len() - 1], 1 << 20),
        Some('g') => (&trimmed[..trimmed.len() - 1], 1 << 30),
        _ => (trimmed, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a size: {s:?} (examples: 256K, 2M, 1000000)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("not a size: {s:?}"));
    }
    let bytes = v * mult as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size too large: {s:?}"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256K"), Ok(262_144));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("fast").is_err());
        assert!(parse_size("-1K").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_paces_to_rate() {
        let l = Limiter::new(Some(100 * 1024));
        let t0 = tokio::time::Instant::now();
        for _ in 0..20 {
            l.consume(16 * 1024).await;
        }
        // 320 KiB at 100 KiB/s with at most a 32 KiB burst: about 2.9 s of virtual time.
        let took = t0.elapsed().as_secs_f64();
        assert!((2.5..3.5).contains(&took), "took {took}");
    }
}
