//! The swarm tracker as a library: HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15, BEP 41 read).
//! [`run`] serves `GET /announce`, `/scrape`, `/stats` and `/metrics` on the TCP listeners and
//! BEP 15 connect, announce and scrape on the UDP sockets it is given until `shutdown` resolves,
//! so the `swarm-tracker` binary and the client's `swarm seed` embed the same service.
//!
//! Inside: a sharded, clock-free swarm store (`store.rs`, `swarm.rs`, `peer_set.rs`) that keeps
//! IPv4 peers in 8-byte packed entries; the HTTP request logic (`app.rs`); the axum routes
//! (`routes.rs`); connection guards (`conn.rs`); an optional per-address announce rate limit
//! (`rate_limit.rs`); the UDP tracker (`udp/`: stateless connection ids, a sans-IO handler, one
//! receive loop per socket) on the same store, caps and limit. It does not store peer ids
//! (dictionary-form peer lists carry none).

mod app;
pub mod cli;
mod config;
mod conn;
mod metrics;
mod peer_set;
pub mod rate_limit;
mod routes;
pub mod store;
mod swarm;
pub mod udp;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, info};

pub use config::{Config, ConfigError};
pub use swarm::PeerList;

use crate::conn::{ClientAddr, ConnLimits, GuardedListener};
use crate::routes::Shared;

/// The sockets [`run`] serves: HTTP on the TCP listeners, BEP 15 on the UDP sockets (several
/// sockets may share one port with `SO_REUSEPORT`; each gets its own receive loop).
#[derive(Debug, Default)]
pub struct Listeners {
    /// Listening TCP sockets for HTTP.
    pub http: Vec<TcpListener>,
    /// Bound UDP sockets.
    pub udp: Vec<UdpSocket>,
}

impl From<Vec<TcpListener>> for Listeners {
    /// HTTP only.
    fn from(http: Vec<TcpListener>) -> Listeners {
        Listeners {
            http,
            udp: Vec::new(),
        }
    }
}

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `run` was given no listener and no UDP socket.
    #[error("no listener to serve on")]
    NoListener,
    /// A listener failed.
    #[error("listener i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A service task panicked or was cancelled.
    #[error("service task failed: {0}")]
    Task(String),
}

/// Serves the tracker on every listener and UDP socket until `shutdown` resolves, then stops
/// accepting, lets open HTTP requests finish (each is bounded by the request timeout) and
/// returns. A `Vec<TcpListener>` serves HTTP only.
pub async fn run(
    listeners: impl Into<Listeners>,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    config.validate()?;
    let Listeners {
        http: listeners,
        udp,
    } = listeners.into();
    if listeners.is_empty() && udp.is_empty() {
        return Err(Error::NoListener);
    }
    let limits = ConnLimits {
        max_request_bytes: config.max_request_bytes,
        request_timeout: config.request_timeout,
    };
    let max_connections = config.max_connections;
    let sweep_every = config.sweep_every;
    let shared = Arc::new(Shared {
        app: app::App::new(config),
        started: Instant::now(),
    });
    let router = routes::router(shared.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<Result<(), Error>> = JoinSet::new();
    for l in listeners {
        info!(addr = %l.local_addr()?, "tracker listening");
        let listener = GuardedListener::new(l, max_connections, limits);
        let service = router
            .clone()
            .into_make_service_with_connect_info::<ClientAddr>();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await?;
            Ok(())
        });
    }
    for socket in udp {
        info!(addr = %socket.local_addr()?, "UDP tracker listening");
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            tokio::select! {
                r = udp::server::serve(socket, shared) => r.map_err(Error::Io),
                _ = stop.wait_for(|s| *s) => Ok(()),
            }
        });
    }
    let mut stop = stop_rx.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let now = shared.started.elapsed();
                    let swept = shared.app.store.sweep(now.as_secs());
                    let forgotten = shared.app.limiter.as_ref().map_or(0, |l| l.sweep(now.as_millis() as u64));
                    debug!(peers = swept.peers, swarms = swept.swarms, forgotten, "swept");
                }
                _ = stop.wait_for(|s| *s) => return Ok(()),
            }
        }
    });
    // Stop on request, or as soon as any task ends early (a listener error).
    let early = tokio::select! {
        () = shutdown => None,
        r = tasks.join_next() => r,
    };
    info!("tracker shutting down");
    let _ = stop_tx.send(true);
    let mut result = flatten(early);
    while let Some(r) = tasks.join_next().await {
        let r = flatten(Some(r));
        if result.is_ok() {
            result = r;
        }
    }
    result
}

fn flatten(r: Option<Result<Result<(), Error>, tokio::task::JoinError>>) -> Result<(), Error> {
    match r {
        None => Ok(()),
        Some(Ok(r)) => r,
        Some(Err(e)) => Err(Error::Task(e.to_string())),
    }
}
