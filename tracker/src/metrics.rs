//! Request counters (HTTP and UDP) and the two read-only pages built from them: `/stats` for people and
//! `/metrics` in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::Counts;

/// Counters bumped by the handlers.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    /// Announces answered with peers.
    pub announces: AtomicU64,
    /// Scrapes answered.
    pub scrapes: AtomicU64,
    /// Requests answered with a `failure reason`.
    pub failures: AtomicU64,
    /// UDP connect requests.
    pub udp_connects: AtomicU64,
    /// UDP announce requests (with a valid connection id or not).
    pub udp_announces: AtomicU64,
    /// UDP scrape requests (with a valid connection id or not).
    pub udp_scrapes: AtomicU64,
    /// UDP error responses sent.
    pub udp_errors: AtomicU64,
    /// UDP announces and scrapes whose connection id was forged, expired or another address's.
    pub udp_bad_connection_ids: AtomicU64,
    /// UDP datagrams left unanswered: not BEP 15, too short, an error longer than the request
    /// to an unproven address, or a failed send.
    pub udp_dropped: AtomicU64,
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl Metrics {
    /// The `/stats` page.
    pub(crate) fn stats_page(&self, c: &Counts, uptime: Duration) -> String {
        let peers = c.peers4 + c.peers6;
        format!(
            "swarm-tracker\n\
             uptime:     {} s\n\
             swarms:     {}\n\
             peers:      {} (IPv4 {}, IPv6 {})\n\
             seeders:    {}\n\
             leechers:   {}\n\
             announces:  {}\n\
             scrapes:    {}\n\
             failures:   {}\n\
             udp connects:   {}\n\
             udp announces:  {}\n\
             udp scrapes:    {}\n\
             udp errors:     {}\n\
             udp bad ids:    {}\n\
             udp dropped:    {}\n",
            uptime.as_secs(),
            c.swarms,
            peers,
            c.peers4,
            c.peers6,
            c.seeders,
            peers.saturating_sub(c.seeders),
            get(&self.announces),
            get(&self.scrapes),
            get(&self.failures),
            get(&self.udp_connects),
            get(&self.udp_announces),
            get(&self.udp_scrapes),
            get(&self.udp_errors),
            get(&self.udp_bad_connection_ids),
            get(&self.udp_dropped),
        )
    }

    /// The `/metrics` page (Prometheus text exposition format 0.0.4).
    pub(crate) fn prometheus(&self, c: &Counts) -> String {
        let mut s = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(s, "# HELP swarm_tracker_{name} {help}");
            let _ = writeln!(s, "# TYPE swarm_tracker_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(s, "swarm_tracker_{name}{labels} {v}");
            }
        };
        metric(
            "announces_total",
            "counter",
            "Announces answered with peers.",
            &[("", get(&self.announces))],
        );
        metric(
            "scrapes_total",
            "counter",
            "Scrapes answered.",
            &[("", get(&self.scrapes))],
        );
        metric(
            "failures_total",
            "counter",
            "Requests answered with a failure reason.",
            &[("", get(&self.failures))],
        );
        metric(
            "udp_requests_total",
            "counter",
            "UDP requests read, by action.",
            &[
                ("{action=\"connect\"}", get(&self.udp_connects)),
                ("{action=\"announce\"}", get(&self.udp_announces)),
                ("{action=\"scrape\"}", get(&self.udp_scrapes)),
            ],
        );
        metric(
            "udp_errors_total",
            "counter",
            "UDP error responses sent.",
            &[("", get(&self.udp_errors))],
        );
        metric(
            "udp_bad_connection_ids_total",
            "counter",
            "UDP requests with a forged, expired or foreign connection id.",
            &[("", get(&self.udp_bad_connection_ids))],
        );
        metric(
            "udp_dropped_total",
            "counter",
            "UDP datagrams left unanswered.",
            &[("", get(&self.udp_dropped))],
        );
        metric("swarms", "gauge", "Swarms held.", &[("", c.swarms as u64)]);
        metric(
            "peers",
            "gauge",
            "Peers held, by address family.",
            &[
                ("{family=\"ipv4\"}", c.peers4 as u64),
                ("{family=\"ipv6\"}", c.peers6 as u64),
            ],
        );
        metric(
            "seeders",
            "gauge",
            "Seeders held.",
            &[("", c.seeders as u64)],
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_series() {
        let m = Metrics::default();
        bump(&m.announces);
        bump(&m.announces);
        bump(&m.failures);
        bump(&m.udp_connects);
        bump(&m.udp_dropped);
        let c = Counts {
            swarms: 3,
            peers4: 5,
            peers6: 1,
            seeders: 2,
        };
        let text = m.prometheus(&c);
        for line in [
            "# TYPE swarm_tracker_announces_total counter",
            "swarm_tracker_announces_total 2",
            "swarm_tracker_scrapes_total 0",
            "swarm_tracker_failures_total 1",
            "swarm_tracker_udp_requests_total{action=\"connect\"} 1",
            "swarm_tracker_udp_requests_total{action=\"scrape\"} 0",
            "swarm_tracker_udp_dropped_total 1",
            "swarm_tracker_swarms 3",
            "swarm_tracker_peers{family=\"ipv4\"} 5",
            "swarm_tracker_peers{family=\"ipv6\"} 1",
            "swarm_tracker_seeders 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        let page = m.stats_page(&c, Duration::from_secs(9));
        assert!(page.contains("peers:      6 (IPv4 5, IPv6 1)"));
        assert!(page.contains("leechers:   4"));
        assert!(page.contains("udp connects:   1"));
    }
}
