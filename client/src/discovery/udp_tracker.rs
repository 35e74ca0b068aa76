//! UDP trackers (BEP 15) on the network: announces and scrapes run by
//! `tracker_proto::udp_client::Exchange`, one exchange per request over its own ephemeral
//! sockets (one per address family), with the session's connection-id cache.
//!
//! Why sockets of their own and not the listen port's (see ARCHITECTURE.md, "UDP"): a tracker
//! answers the address that asked, so nothing has to reach us unasked; the kernel hands each
//! exchange its own datagrams, so no receive loop routes answers and one swarm's slow tracker
//! holds up nobody else's; a random source port makes a forged answer harder on top of the
//! transaction id. An exchange holds at most two sockets, and each swarm runs one announce at
//! a time.
//!
//! Bounds: the whole exchange (name lookup included) ends at [`UdpTrackerConfig::timeout`];
//! the name lookup takes at most [`LOOKUP_TIMEOUT`]; at most
//! [`MAX_ADDRESSES`](tracker_proto::udp_client::MAX_ADDRESSES) addresses are tried; datagrams
//! are read into [`MAX_DATAGRAM`] bytes (a longer one is cut to its whole peers); the cache
//! keeps [`UdpTrackerConfig::max_cached`] trackers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};
use tracker_proto::udp_client::{
    CONNECTION_ID_TTL, ConnectionCache, Exchange, ExchangeError, MAX_DATAGRAM, Outcome, Query,
    Retransmit,
};
use tracker_proto::{AnnounceRequest, AnnounceResponse, ScrapeStats};

/// The longest name lookup.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// How the session talks to UDP trackers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpTrackerConfig {
    /// When unanswered requests are sent again (BEP 15: 15 s * 2^n, n <= 8).
    pub retransmit: Retransmit,
    /// The most one announce or scrape to one tracker may take, every address and retransmit
    /// included: past it the schedule is cut and the next tracker is tried.
    pub timeout: Duration,
    /// How long a connection id is used (BEP 15: a minute).
    pub connection_ttl: Duration,
    /// Trackers whose connection id is remembered.
    pub max_cached: usize,
}

impl Default for UdpTrackerConfig {
    fn default() -> Self {
        UdpTrackerConfig {
            retransmit: Retransmit::BEP15,
            // BEP 15's first three sends (0, 15, 45 s): a dead tracker costs a swarm a minute
            // before its next tracker, not the schedule's two hours.
            timeout: Duration::from_secs(60),
            connection_ttl: CONNECTION_ID_TTL,
            max_cached: 256,
        }
    }
}

/// Why a UDP announce or scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum UdpTrackerError {
    /// Not `udp://host:port[/...]`.
    #[error("bad UDP tracker URL")]
    BadUrl,
    /// The host name did not resolve (in time).
    #[error("cannot resolve {host}: {reason}")]
    Lookup {
        /// The name.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// No socket could be opened, or reading one failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The exchange with the tracker failed (no answer, an error message, a bad answer).
    #[error("{0}")]
    Exchange(#[from] ExchangeError),
}

impl UdpTrackerError {
    /// The tracker's own error message (action 3), if that is what this is.
    pub fn tracker_message(&self) -> Option<&str> {
        match self {
            UdpTrackerError::Exchange(ExchangeError::Tracker(m)) => Some(m),
            _ => None,
        }
    }
}

/// A `udp://` URL's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// An IP literal (without brackets) or a name.
    host: String,
    port: u16,
    /// BEP 41: the path and query, e.g. `/announce?passkey=x`.
    url_data: Vec<u8>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, UdpTrackerError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| UdpTrackerError::BadUrl)?;
        if parsed.scheme() != "udp" {
            return Err(UdpTrackerError::BadUrl);
        }
        let host = parsed.host_str().ok_or(UdpTrackerError::BadUrl)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = match parsed.port() {
            Some(p) if p != 0 && !host.is_empty() => p,
            _ => return Err(UdpTrackerError::BadUrl),
        };
        let mut url_data = parsed.path().as_bytes().to_vec();
        if let Some(q) = parsed.query() {
            url_data.push(b'?');
            url_data.extend_from_slice(q.as_bytes());
        }
        Ok(Target {
            host: host.to_owned(),
            port,
            url_data,
        })
    }
}

/// The session's UDP tracker client: its settings and the connection ids of every tracker,
/// shared by every swarm; cheap to clone.
#[derive(Debug, Clone)]
pub struct UdpTrackers {
    config: UdpTrackerConfig,
    cache: Arc<Mutex<ConnectionCache>>,
}

impl UdpTrackers {
    /// A client with an empty cache.
    pub fn new(config: UdpTrackerConfig) -> UdpTrackers {
        UdpTrackers {
            config,
            cache: Arc::new(Mutex::new(ConnectionCache::new(
                config.max_cached,
                config.connection_ttl,
            ))),
        }
    }

    /// The settings it runs with.
    pub fn config(&self) -> &UdpTrackerConfig {
        &self.config
    }

    /// One announce to the tracker at `url`; the answer in the HTTP path's form.
    pub async fn announce(
        &self,
        url: &str,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, UdpTrackerError> {
        let target = Target::parse(url)?;
        let query = Query::Announce {
            request: Box::new(req.clone()),
            key: key_of(req),
            url_data: target.url_data.clone(),
        };
        let deadline = Instant::now() + self.config.timeout;
        let addrs = resolve(&target, deadline).await?;
        match self.exchange(&addrs, query, deadline).await? {
            Outcome::Announced(r) => Ok(r),
            Outcome::Failed(e) => Err(e.into()),
            Outcome::Scraped(_) => Err(ExchangeError::NoAddress.into()),
        }
    }

    /// The tracker's counts for one torrent (action 2).
    pub async fn scrape(
        &self,
        url: &str,
        info_hash: metainfo::InfoHash,
    ) -> Result<ScrapeStats, UdpTrackerError> {
        let target = Target::parse(url)?;
        let deadline = Instant::now() + self.config.timeout;
        let addrs = resolve(&target, deadline).await?;
        let query = Query::Scrape(vec![info_hash]);
        match self.exchange(&addrs, query, deadline).await? {
            // A tracker that sends no entry counts nobody.
            Outcome::Scraped(v) => Ok(v.first().copied().unwrap_or_default()),
            Outcome::Failed(e) => Err(e.into()),
            Outcome::Announced(_) => Err(ExchangeError::NoAddress.into()),
        }
    }

    /// Runs one exchange with the tracker at `addrs` (in the order to try them) until
    /// `deadline` at the latest.
    async fn exchange(
        &self,
        addrs: &[SocketAddr],
        query: Query,
        deadline: Instant,
    ) -> Result<Outcome, UdpTrackerError> {
        let s4 = bind_for(addrs, true).await;
        let s6 = bind_for(addrs, false).await;
        let usable: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| match a {
                SocketAddr::V4(_) => s4.is_some(),
                SocketAddr::V6(_) => s6.is_some(),
            })
            .collect();
        let now = || Instant::now().into_std();
        let mut ex = {
            let cache = self.cache.lock();
            Exchange::new(
                query,
                &usable,
                &cache,
                self.config.retransmit,
                now(),
                deadline.into_std(),
                rand::random(),
            )
        };
        if let Some(e) = ex.result() {
            // Every address is of a family we cannot open a socket for: say why.
            let failed = bind_error(addrs).await;
            return Err(failed.map_or(e.into(), UdpTrackerError::Io));
        }
        let mut buf4 = vec![0u8; if s4.is_some() { MAX_DATAGRAM } else { 0 }];
        let mut buf6 = vec![0u8; if s6.is_some() { MAX_DATAGRAM } else { 0 }];
        loop {
            while let Some((to, bytes)) = ex.poll_transmit() {
                let sock = if to.is_ipv4() { &s4 } else { &s6 };
                let sent = match sock {
                    Some(s) => s.send_to(&bytes, to).await.map(drop),
                    None => Err(std::io::ErrorKind::Unsupported.into()),
                };
                if let Err(e) = sent {
                    tracing::debug!(tracker = %to, error = %e, "cannot send to the tracker");
                    if let Some(o) = ex.handle_unreachable(now(), &mut self.cache.lock()) {
                        return Ok(o);
                    }
                }
            }
            let Some(wake) = ex.poll_timeout() else {
                // Over without an outcome only if it never started, handled above.
                return Ok(Outcome::Failed(ExchangeError::NoAddress));
            };
            let got = tokio::select! {
                r = recv(&s4, &mut buf4) => r.map(|(n, from)| (buf4.get(..n).unwrap_or_default(), from)),
                r = recv(&s6, &mut buf6) => r.map(|(n, from)| (buf6.get(..n).unwrap_or_default(), from)),
                () = tokio::time::sleep_until(Instant::from_std(wake)) => {
                    if let Some(o) = ex.handle_timeout(now(), &mut self.cache.lock()) {
                        return Ok(o);
                    }
                    continue;
                }
            };
            let (data, from) = got?;
            if let Some(o) = ex.handle_datagram(from, data, now(), &mut self.cache.lock()) {
                return Ok(o);
            }
        }
    }
}

/// A socket for the family of `v4` (IPv4 or IPv6) if some address needs one and it opens.
async fn bind_for(addrs: &[SocketAddr], v4: bool) -> Option<UdpSocket> {
    if !addrs.iter().any(|a| a.is_ipv4() == v4) {
        return None;
    }
    let local: SocketAddr = if v4 {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    match UdpSocket::bind(local).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(%local, error = %e, "cannot open a UDP socket");
            None
        }
    }
}

/// Why no socket opens for the first address (for the message).
async fn bind_error(addrs: &[SocketAddr]) -> Option<std::io::Error> {
    let a = addrs.first()?;
    let local: SocketAddr = match a {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    UdpSocket::bind(local).await.err()
}

async fn recv(s: &Option<UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match s {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Every address the tracker's name resolves to (IPv6 and IPv4, in the resolver's order).
async fn resolve(t: &Target, deadline: Instant) -> Result<Vec<SocketAddr>, UdpTrackerError> {
    if let Ok(ip) = t.host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, t.port)]);
    }
    let until = deadline.min(Instant::now() + LOOKUP_TIMEOUT);
    let failed = |reason: String| UdpTrackerError::Lookup {
        host: t.host.clone(),
        reason,
    };
    match timeout_at(until, tokio::net::lookup_host((t.host.as_str(), t.port))).await {
        Err(_) => Err(failed("timed out".into())),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Ok(Ok(found)) => {
            let addrs: Vec<SocketAddr> = found.collect();
            if addrs.is_empty() {
                Err(failed("no address".into()))
            } else {
                Ok(addrs)
            }
        }
    }
}

/// The announce loop's key (8 hex digits) as BEP 15's 32-bit key.
fn key_of(req: &AnnounceRequest) -> u32 {
    req.key
        .as_ref()
        .and_then(|k| std::str::from_utf8(k.as_bytes()).ok())
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
