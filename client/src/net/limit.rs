//! Rate limits: a token bucket shared by every connection of the process.

use std::time::Duration;

use tokio::time::Instant;

use parking_lot::Mutex;

/// The process-wide caps every connection pays into (`--upload-limit`, `--download-limit`).
#[derive(Debug)]
pub struct Limits {
    /// Payload and messages we send.
    pub upload: Limiter,
    /// Bytes we receive.
    pub download: Limiter,
}

impl Limits {
    /// Caps of `upload` and `download` bytes per second (`None`: unlimited).
    pub fn new(upload: Option<u64>, download: Option<u64>) -> Self {
        Limits {
            upload: Limiter::new(upload),
            download: Limiter::new(download),
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
