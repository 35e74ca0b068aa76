//! The UDP tracker (BEP 15, with BEP 41 URL data read): connect, announce and scrape over the
//! same store, caps and rate limit as the HTTP tracker.
//!
//! - `conn_id.rs`: stateless connection ids (a keyed hash of the address and the issue second).
//! - `handler.rs`: one datagram in, at most one out, sans-IO ([`UdpHandler`] is that logic over
//!   its own store, for fuzzing and tests); never more bytes than the request to an address that
//!   has not shown a valid connection id.
//! - `server.rs`: the receive loop of one socket.

mod conn_id;
mod handler;
pub(crate) mod server;

use std::net::{IpAddr, SocketAddr};

use rand::Rng;

pub use conn_id::{ConnectionIds, LIFETIME_SECS};
pub use handler::Outcome;

use crate::app::App;
use crate::config::{Config, ConfigError};
use crate::store::Counts;
use crate::swarm::PeerList;

/// Bytes read of one datagram: the largest request (a scrape of 74 torrents, 1,496 bytes; an
/// announce with the most URL data the codec reads, 1,133) fits; the kernel cuts longer ones.
pub const MAX_DATAGRAM: usize = 2048;

/// The UDP request logic alone, over its own store: what the service runs for every datagram,
/// without a socket or a clock.
#[derive(Debug)]
pub struct UdpHandler {
    app: App,
    peers: PeerList,
}

impl UdpHandler {
    /// A handler with `config` whose connection ids are keyed with `key`.
    pub fn new(config: Config, key: [u8; 16]) -> Result<UdpHandler, ConfigError> {
        config.validate()?;
        Ok(UdpHandler {
            app: App::with_key(config, key),
            peers: PeerList::default(),
        })
    }

    /// Answers datagram `b` from `source` at `now_ms` (service clock, milliseconds) into `out`
    /// (cleared first); empty `out` means nothing is sent.
    pub fn handle(
        &mut self,
        b: &[u8],
        source: SocketAddr,
        now_ms: u64,
        rng: &mut impl Rng,
        out: &mut Vec<u8>,
    ) -> Outcome {
        self.app.udp(b, source, now_ms, rng, &mut self.peers, out)
    }

    /// The connection id a connect from `ip` at `now_ms` gets.
    pub fn connection_id(&self, ip: IpAddr, now_ms: u64) -> u64 {
        self.app.conn_ids.issue(ip, now_ms / 1000)
    }

    /// Totals of the store.
    pub fn counts(&self) -> Counts {
        self.app.store.counts()
    }
}

#[cfg(test)]
mod tests;
