//! `swarm-tracker`: flags, logging, bind, and [`tracker::run`] until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracker::Listeners;
use tracker::cli::{Args, bind, bind_udp, default_udp_sockets};

/// Resolves on the first SIGINT or SIGTERM. The handlers are installed before this returns, so
/// a signal that arrives while the service is still starting is not lost.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let shutdown = shutdown_signal().context("cannot install signal handlers")?;
    let filter = match &a.log_level {
        Some(l) => EnvFilter::try_new(l).context("bad --log-level")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = a.config();
    config.validate()?;
    let mut listeners = Listeners::default();
    let udp_sockets = a.udp_sockets.unwrap_or_else(default_udp_sockets);
    for &addr in &a.listen {
        let mut addr = addr;
        if !a.no_http {
            let l = bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
            // Port 0: UDP takes the port TCP got.
            addr = l.local_addr()?;
            listeners.http.push(l);
        }
        if !a.no_udp {
            let s = bind_udp(addr, udp_sockets)
                .with_context(|| format!("cannot listen on {addr} (UDP)"))?;
            listeners.udp.extend(s);
        }
    }
    tracker::run(listeners, config, shutdown).await?;
    Ok(())
}
