//! The network edge of a peer connection, below the BitTorrent protocol: the byte streams a
//! peer is reached over ([`transport`]), MSE/PE encryption around them ([`encryption`]), the
//! handshake that turns one into a BitTorrent peer ([`handshake`]), and the process-wide rate
//! limits ([`limit`]).
//!
//! Nothing here knows torrents or the engine: the handshake asks its caller whether an
//! info-hash is served, and hands back a [`handshake::Handshaken`] stream.

pub mod encryption;
pub mod handshake;
pub mod limit;
pub mod transport;

use std::net::SocketAddr;
use std::time::Duration;

/// Time allowed to resolve one name.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves `host:port` names to socket addresses of either family, without duplicates.
pub async fn resolve(names: &[String]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in names {
        match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(name.as_str())).await {
            Ok(Ok(addrs)) => {
                for a in addrs {
                    let a = SocketAddr::new(a.ip().to_canonical(), a.port());
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            Ok(Err(e)) => tracing::debug!(name = %name, error = %e, "cannot resolve"),
            Err(_) => tracing::debug!(name = %name, "resolving timed out"),
        }
    }
    out
}
