//! Tunables and caps of a [`crate::Dht`], with the defaults the crate docs list.

use std::time::Duration;

/// Every number a [`crate::Dht`] runs by. `Default` gives BEP 5 values and conservative caps.
#[derive(Debug, Clone)]
pub struct Config {
    /// Bucket size and number of closest nodes a lookup must hear from (8).
    pub k: usize,
    /// Requests in flight per lookup (3; clamped to 1..=8).
    pub alpha: usize,
    /// How long a request may go unanswered before it counts as failed (2 s).
    pub request_timeout: Duration,
    /// Lookups running at once, internal ones (bootstrap, refresh) included (32).
    pub max_lookups: usize,
    /// Candidates a lookup remembers, closest first (48).
    pub max_lookup_candidates: usize,
    /// Outstanding requests (transactions) at once; lookups wait when full (256).
    pub max_transactions: usize,
    /// Packets waiting in [`crate::Dht::poll_transmit`]; further ones are dropped (1024).
    pub max_transmit_queue: usize,
    /// Events waiting in [`crate::Dht::poll_event`]; further ones are dropped (1024).
    pub max_events: usize,
    /// Bootstrap addresses remembered (32).
    pub max_bootstrap_nodes: usize,
    /// Info-hashes in the peer store; announces for new ones are refused past it (4096).
    pub max_info_hashes: usize,
    /// Peers kept per info-hash; the stalest is replaced past it (256).
    pub max_peers_per_info_hash: usize,
    /// Peers in one get_peers reply (50, about 400 bytes).
    pub max_values_per_reply: usize,
    /// How long an announced peer is kept (30 min).
    pub peer_ttl: Duration,
    /// How often the token secret changes (5 min; the previous one is still accepted).
    pub token_rotation: Duration,
    /// Sustained queries per second accepted from one IP (20).
    pub query_rate_per_ip: u32,
    /// Queries accepted from one IP in a burst (40).
    pub query_burst_per_ip: u32,
    /// IPs the rate limiter tracks; queries from new IPs are dropped past it (4096).
    pub max_rate_limited_ips: usize,
    /// A bucket unchanged this long is refreshed with a lookup (15 min).
    pub bucket_refresh: Duration,
    /// How often housekeeping runs: token rotation, expiry, pings, refreshes (10 s).
    pub maintenance_interval: Duration,
    /// How often to retry the bootstrap nodes while the table is empty (60 s).
    pub rebootstrap_interval: Duration,
    /// The `v` key sent in our messages, if any.
    pub version: Option<[u8; 4]>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 8,
            alpha: 3,
            request_timeout: Duration::from_secs(2),
            max_lookups: 32,
            max_lookup_candidates: 48,
            max_transactions: 256,
            max_transmit_queue: 1024,
            max_events: 1024,
            max_bootstrap_nodes: 32,
            max_info_hashes: 4096,
            max_peers_per_info_hash: 256,
            max_values_per_reply: 50,
            peer_ttl: Duration::from_secs(30 * 60),
            token_rotation: Duration::from_secs(5 * 60),
            query_rate_per_ip: 20,
            query_burst_per_ip: 40,
            max_rate_limited_ips: 4096,
            bucket_refresh: Duration::from_secs(15 * 60),
            maintenance_interval: Duration::from_secs(10),
            rebootstrap_interval: Duration::from_secs(60),
            version: None,
        }
    }
}
