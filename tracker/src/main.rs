//! `swarm-tracker`: flags, logging, bind, and [`tracker::run`] until SIGINT or SIGTERM.

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracker::cli::{Args, bind};

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => drop(t.recv().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let filter = match &a.log_level {
        Some(l) => EnvFilter::try_new(l).context("bad --log-level")?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = a.config();
    config.validate()?;
    let listeners = a
        .listen
        .iter()
        .map(|&addr| bind(addr).with_context(|| format!("cannot listen on {addr}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    tracker::run(listeners, config, shutdown_signal()).await?;
    Ok(())
}
