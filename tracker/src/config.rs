//! The tracker's settings, with the defaults of the best public trackers.

use std::net::IpAddr;
use std::time::Duration;

use crate::rate_limit::RateLimit;
use crate::store::{Limits, MAX_EXPIRY_SECS};

/// Everything [`crate::run`] can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Seconds clients are told to wait between announces.
    pub interval: u32,
    /// Seconds clients must wait at least.
    pub min_interval: u32,
    /// Peers returned when the client does not say.
    pub numwant_default: u32,
    /// Most peers returned to one announce.
    pub numwant_max: u32,
    /// Swarm store caps and peer expiry (default expiry: 1.5 x interval).
    pub limits: Limits,
    /// How often expired peers are swept.
    pub sweep_every: Duration,
    /// Most info-hashes in one scrape.
    pub max_scrape: usize,
    /// Longest query string accepted; longer gets a `failure reason`.
    pub max_query_len: usize,
    /// Most bytes a connection may send without getting a response; beyond it the connection is
    /// closed (this is what bounds a huge request line or header block).
    pub max_request_bytes: usize,
    /// A connection must complete each request within this long of opening or of its previous
    /// response, and read each response within it, or it is closed.
    pub request_timeout: Duration,
    /// Most open connections per listener; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Honour the `ip` parameter (only IP literals; off by default, as it enables spoofing).
    pub accept_ip_param: bool,
    /// Proxies whose `X-Forwarded-For` header (its last entry) is taken as the peer address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Per-address announce rate limit; off by default (clients behind one NAT share an address).
    pub rate_limit: Option<RateLimit>,
}

impl Default for Config {
    fn default() -> Self {
        let interval = 1800;
        Config {
            interval,
            min_interval: 900,
            numwant_default: 50,
            numwant_max: 200,
            limits: Limits {
                peer_expiry_secs: u64::from(interval) * 3 / 2,
                ..Limits::default()
            },
            sweep_every: Duration::from_secs(60),
            max_scrape: tracker_proto::DEFAULT_MAX_SCRAPE,
            max_query_len: 8 * 1024,
            max_request_bytes: 32 * 1024,
            request_timeout: Duration::from_secs(15),
            max_connections: 4096,
            accept_ip_param: false,
            trusted_proxies: Vec::new(),
            rate_limit: None,
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tracker config: {0}")]
pub struct ConfigError(pub &'static str);

impl Config {
    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (self.interval == 0, "interval must be positive"),
            (
                self.min_interval > self.interval,
                "min interval must not exceed the interval",
            ),
            (
                self.numwant_default > self.numwant_max,
                "default numwant must not exceed numwant max",
            ),
            (
                self.limits.peer_expiry_secs == 0 || self.limits.peer_expiry_secs > MAX_EXPIRY_SECS,
                "peer expiry must be between 1 s and 24 h",
            ),
            (
                self.sweep_every.is_zero()
                    || self.sweep_every.as_secs() > self.limits.peer_expiry_secs,
                "sweep period must be positive and at most the peer expiry",
            ),
            (self.max_scrape == 0, "scrape cap must be positive"),
            (
                self.max_request_bytes <= self.max_query_len,
                "request byte cap must exceed the query length cap",
            ),
            (
                self.request_timeout.is_zero(),
                "request timeout must be positive",
            ),
            (self.max_connections == 0, "connection cap must be positive"),
            (
                self.rate_limit
                    .is_some_and(|r| r.per_minute == 0 || r.per_minute > 60_000),
                "announce rate must be between 1 and 60000 per minute",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err(ConfigError(why)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_spec() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            (c.interval, c.numwant_default, c.numwant_max),
            (1800, 50, 200)
        );
        assert_eq!(c.limits.peer_expiry_secs, 2700);
        assert_eq!(c.max_scrape, 100);
    }

    #[test]
    fn rejects_inconsistent_settings() {
        let bad = Config {
            min_interval: 2000,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        let mut bad = Config::default();
        bad.limits.peer_expiry_secs = 30;
        assert!(bad.validate().is_err(), "sweep period longer than expiry");
    }
}
