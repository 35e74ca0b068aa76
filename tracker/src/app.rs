//! The tracker's request logic between HTTP and the store: query in, bencoded body out. Every
//! refusal becomes a `failure reason` body, never an HTTP error. The UDP requests' logic is
//! `udp/handler.rs`, on the same state.

use std::net::{IpAddr, SocketAddr};

use rand::Rng;
use tracing::trace;
use tracker_proto::{
    AnnounceReply, AnnounceRequest, Event, PeerForm, ScrapeRequest, ScrapeResponse, encode_failure,
};

use crate::config::Config;
use crate::metrics::{Metrics, bump};
use crate::rate_limit::Limiter;
use crate::store::{Announce, Store};
use crate::swarm::PeerList;
use crate::udp::ConnectionIds;

/// Warning sent to a peer a cap kept out of its swarm.
const NOT_LISTED: &str = "tracker is full: you were not added to this swarm";

/// Shared state of the service.
#[derive(Debug)]
pub(crate) struct App {
    /// Settings.
    pub config: Config,
    /// All swarms.
    pub store: Store,
    /// Request counters.
    pub metrics: Metrics,
    /// Per-address announce limits, when configured.
    pub limiter: Option<Limiter>,
    /// UDP connection ids (BEP 15), keyed with this process's secret.
    pub conn_ids: ConnectionIds,
}

/// Where a request came from, as the handler saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The TCP peer.
    pub source: SocketAddr,
    /// The raw `X-Forwarded-For` header, if any.
    pub forwarded_for: Option<&'a [u8]>,
}

fn parse_ip(b: &[u8]) -> Option<IpAddr> {
    std::str::from_utf8(b).ok()?.trim().parse::<IpAddr>().ok()
}

impl App {
    /// A fresh service state with a random secret for UDP connection ids.
    pub(crate) fn new(config: Config) -> App {
        App::with_key(config, rand::random())
    }

    /// A fresh service state whose UDP connection ids are keyed with `key`.
    pub(crate) fn with_key(config: Config, key: [u8; 16]) -> App {
        App {
            store: Store::new(config.limits),
            limiter: config.rate_limit.map(Limiter::new),
            config,
            metrics: Metrics::default(),
            conn_ids: ConnectionIds::new(key),
        }
    }

    fn fail(&self, why: &str, out: &mut Vec<u8>) {
        bump(&self.metrics.failures);
        encode_failure(why, out);
    }

    /// The peer's IP: the connection's source, or the last `X-Forwarded-For` hop when the
    /// source is a trusted proxy, or the `ip` parameter when allowed. IPv4-mapped IPv6
    /// addresses count as IPv4.
    fn peer_ip(&self, origin: &Origin<'_>, req: &AnnounceRequest) -> IpAddr {
        let mut ip = origin.source.ip().to_canonical();
        if self.config.trusted_proxies.contains(&ip) {
            let hop = origin
                .forwarded_for
                .and_then(|h| h.rsplit(|&b| b == b',').next())
                .and_then(parse_ip);
            if let Some(hop) = hop {
                ip = hop.to_canonical();
            }
        }
        if self.config.accept_ip_param
            && let Some(claimed) = req.ip.as_ref().and_then(|p| parse_ip(p.as_bytes()))
        {
            ip = claimed.to_canonical();
        }
        ip
    }

    /// Answers `GET /announce?<query>` into `out`; `now_ms` is the service clock in ms.
    pub(crate) fn announce(
        &self,
        query: &[u8],
        origin: &Origin<'_>,
        now_ms: u64,
        rng: &mut impl Rng,
        out: &mut Vec<u8>,
    ) {
        if query.len() > self.config.max_query_len {
            return self.fail("request too long", out);
        }
        let req = match AnnounceRequest::parse_query(query) {
            Ok(r) => r,
            Err(e) => {
                trace!(source = %origin.source, error = %e, "bad announce");
                return self.fail(&e.to_string(), out);
            }
        };
        let want = if req.event == Event::Stopped {
            0
        } else {
            req.numwant
                .unwrap_or(self.config.numwant_default)
                .min(self.config.numwant_max)
        };
        let ip = self.peer_ip(origin, &req);
        if let Some(l) = &self.limiter
            && !l.allow(ip, now_ms)
        {
            return self.fail("rate limit exceeded: announce less often", out);
        }
        let a = Announce {
            info_hash: req.info_hash,
            addr: SocketAddr::new(ip, req.port),
            seeder: req.left == 0,
            event: req.event,
            numwant: want as usize,
        };
        let mut peers = PeerList::default();
        if a.addr.is_ipv4() {
            peers.v4.reserve_exact(want as usize);
        } else {
            peers.v6.reserve_exact(want as usize);
        }
        let done = match self.store.announce(&a, now_ms / 1000, rng, &mut peers) {
            Ok(d) => d,
            Err(e) => return self.fail(&e.to_string(), out),
        };
        bump(&self.metrics.announces);
        let reply = AnnounceReply {
            interval: self.config.interval,
            min_interval: Some(self.config.min_interval),
            complete: done.complete as u64,
            incomplete: done.incomplete as u64,
            tracker_id: None,
            warning: (!done.listed && req.event != Event::Stopped).then_some(NOT_LISTED),
            peers4: &peers.v4,
            peers6: &peers.v6,
        };
        let form = if req.compact {
            PeerForm::Compact
        } else {
            PeerForm::Dicts
        };
        reply.encode(form, out);
    }

    /// Answers `GET /scrape?<query>` into `out`.
    pub(crate) fn scrape(&self, query: &[u8], out: &mut Vec<u8>) {
        if query.len() > self.config.max_query_len {
            return self.fail("request too long", out);
        }
        let req = match ScrapeRequest::parse_query(query, self.config.max_scrape) {
            Ok(r) => r,
            Err(e) => return self.fail(&e.to_string(), out),
        };
        bump(&self.metrics.scrapes);
        let files = req
            .info_hashes
            .iter()
            .map(|h| (*h, self.store.scrape(h)))
            .collect();
        ScrapeResponse { files }.encode(out);
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
