//! One datagram in, at most one datagram out: the UDP tracker's request logic on the same store,
//! caps and rate limit as HTTP, with no socket and no clock (`now_ms` is passed in).
//!
//! The amplification rule: only a connection id proves that the sender receives what is sent
//! to its address, so before one the answer is never longer than the request. A connect response
//! is 16 bytes for a request of at least 16; an error goes out only when it fits in the
//! request's length (otherwise, and for anything that is not BEP 15 at all, silence); scrape
//! responses (12 bytes a torrent) are always shorter than their requests (20 bytes a torrent).
//! Announce responses, the one answer longer than its request, need a valid id.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::Rng;
use tracing::trace;
use tracker_proto::Event;
use tracker_proto::udp::{
    ConnectResponse, UdpAnnounce, UdpError, UdpPeers, UdpRequest, UdpScrape,
    encode_announce_response, encode_error, encode_scrape_response,
};

use crate::app::App;
use crate::metrics::bump;
use crate::store::Announce;
use crate::swarm::PeerList;

/// What became of one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A connect, announce or scrape response is in `out`.
    Answered,
    /// An error response (action 3) is in `out`.
    Error,
    /// Nothing to send: not BEP 15, too short to answer, or an error that would be longer than
    /// the request.
    Silent,
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl App {
    /// Appends an error response to `out` when it is no longer than the request `b`.
    fn udp_error(&self, b: &[u8], message: &str, out: &mut Vec<u8>) -> Outcome {
        let Some(tid) = UdpRequest::transaction_id(b) else {
            return self.udp_silent();
        };
        if 8 + message.len() > b.len() {
            return self.udp_silent();
        }
        bump(&self.metrics.udp_errors);
        encode_error(tid, message, out);
        Outcome::Error
    }

    fn udp_silent(&self) -> Outcome {
        bump(&self.metrics.udp_dropped);
        Outcome::Silent
    }

    /// Answers one datagram `b` from `source` into `out` (cleared first); `now_ms` is the
    /// service clock. `peers` is scratch space reused between calls.
    pub(crate) fn udp(
        &self,
        b: &[u8],
        source: SocketAddr,
        now_ms: u64,
        rng: &mut impl Rng,
        peers: &mut PeerList,
        out: &mut Vec<u8>,
    ) -> Outcome {
        out.clear();
        let now = now_ms / 1000;
        let ip = source.ip().to_canonical();
        let req = match UdpRequest::decode(b) {
            Ok(r) => r,
            Err(UdpError::BadProtocolId | UdpError::Short { .. }) => return self.udp_silent(),
            Err(e) => {
                trace!(%source, error = %e, "bad UDP request");
                return self.udp_error(b, "malformed request", out);
            }
        };
        match req {
            UdpRequest::Connect(c) => {
                bump(&self.metrics.udp_connects);
                let reply = ConnectResponse {
                    transaction_id: c.transaction_id,
                    connection_id: self.conn_ids.issue(ip, now),
                };
                out.extend_from_slice(&reply.encode());
                Outcome::Answered
            }
            UdpRequest::Announce(a) => {
                bump(&self.metrics.udp_announces);
                if !self.conn_ids.check(a.connection_id, ip, now) {
                    bump(&self.metrics.udp_bad_connection_ids);
                    return self.udp_error(b, "bad connection id", out);
                }
                self.udp_announce(&a, b, ip, now_ms, rng, peers, out)
            }
            UdpRequest::Scrape(s) => {
                bump(&self.metrics.udp_scrapes);
                if !self.conn_ids.check(s.connection_id, ip, now) {
                    bump(&self.metrics.udp_bad_connection_ids);
                    return self.udp_error(b, "bad connection id", out);
                }
                self.udp_scrape(&s, out)
            }
        }
    }

    /// An announce from a proven address `ip`.
    #[allow(clippy::too_many_arguments)]
    fn udp_announce(
        &self,
        a: &UdpAnnounce,
        b: &[u8],
        ip: IpAddr,
        now_ms: u64,
        rng: &mut impl Rng,
        peers: &mut PeerList,
        out: &mut Vec<u8>,
    ) -> Outcome {
        if b.len() > tracker_proto::udp::ANNOUNCE_REQUEST_LEN {
            // BEP 41: the announce URL's path and query (a private tracker's passkey would be
            // read here); bounded by the codec, not used today.
            match UdpAnnounce::url_data(b) {
                Ok(path) => trace!(%ip, path = %String::from_utf8_lossy(&path), "URL data"),
                Err(e) => trace!(%ip, error = %e, "URL data ignored"),
            }
        }
        if a.port == 0 {
            return self.udp_error(b, "invalid port 0", out);
        }
        let mut ip = ip;
        if self.config.accept_ip_param && a.ip != 0 && ip.is_ipv4() {
            ip = IpAddr::V4(Ipv4Addr::from(a.ip));
        }
        if let Some(l) = &self.limiter
            && !l.allow(ip, now_ms)
        {
            return self.udp_error(b, "rate limit exceeded: announce less often", out);
        }
        let want = if a.event == Event::Stopped {
            0
        } else {
            u32::try_from(a.num_want)
                .unwrap_or(self.config.numwant_default)
                .min(self.config.numwant_max)
        };
        let announce = Announce {
            info_hash: a.info_hash,
            addr: SocketAddr::new(ip, a.port),
            seeder: a.left == 0,
            event: a.event,
            numwant: want as usize,
        };
        peers.v4.clear();
        peers.v6.clear();
        let done = match self.store.announce(&announce, now_ms / 1000, rng, peers) {
            Ok(d) => d,
            Err(e) => return self.udp_error(b, &e.to_string(), out),
        };
        bump(&self.metrics.announces);
        let list = if ip.is_ipv4() {
            UdpPeers::V4(&peers.v4)
        } else {
            UdpPeers::V6(&peers.v6)
        };
        encode_announce_response(
            a.transaction_id,
            self.config.interval,
            saturate(done.incomplete),
            saturate(done.complete),
            list,
            out,
        );
        Outcome::Answered
    }

    /// A scrape from a proven address: counts of at most `max_scrape` (and 74) torrents.
    fn udp_scrape(&self, s: &UdpScrape, out: &mut Vec<u8>) -> Outcome {
        bump(&self.metrics.scrapes);
        let hashes = s.info_hashes.iter().take(self.config.max_scrape);
        encode_scrape_response(s.transaction_id, hashes.map(|h| self.store.scrape(h)), out);
        Outcome::Answered
    }
}
