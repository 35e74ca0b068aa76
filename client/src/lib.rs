//! The swarm BitTorrent client: the `swarm` command line and the tokio shell that puts the
//! sans-IO protocol crates (`engine`, `wire`, `dht`, `storage`, ...) on the network.
//!
//! The rooms, each importing only the ones listed after it:
//! - [`cli`] parses flags, [`settings`] derives what they mean, [`commands`] run them;
//! - [`session`]: the process's node (listeners, swarms by info-hash, tasks, magnet links);
//! - [`discovery`]: a swarm's candidates from every source, and its one dialer;
//! - [`torrent`]: one torrent's engine, timer and events; [`disk`]: its hashing, writing and
//!   resume data;
//! - [`peer`]: the one connection loop, over a [`peer::Driver`];
//! - [`net`]: transports, the handshake, rate limits; [`dht`]: the DHT node; [`progress`]:
//!   what the user sees, [`logging`]: log lines that keep out of its way.
//!
//! A subcommand is a variant of [`cli::Command`], its flags in `cli.rs`, a `run` in
//! `commands/`, and an arm in [`run`].

pub mod cli;
pub mod commands;
pub mod dht;
pub mod discovery;
pub mod disk;
pub mod logging;
pub mod net;
pub mod peer;
pub mod progress;
pub mod session;
pub mod settings;
pub mod size;
pub mod torrent;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::commands::{create, fetch, info, seed};

/// Entry point of the `swarm` binary: parse flags, install logging, run, and turn an error
/// into one `error: ...` line on stderr and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Create(args) => create::run(args).map(|()| ExitCode::SUCCESS),
        Command::Info(args) => info::run(args).map(|()| ExitCode::SUCCESS),
        Command::Seed(args) => in_runtime(|stop| seed::run(args, stop)),
        Command::Fetch(args) => in_runtime(|stop| fetch::run(args, stop)),
    }
}

/// Runs a networked command on a tokio runtime; SIGINT or SIGTERM cancels the token it gets
/// (a second Ctrl-C exits at once).
fn in_runtime<F, Fut>(f: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all()
        // Disk reads, hashing and writes run on the blocking pool: a few threads per core keep
        // every core busy, and fewer threads mean fewer malloc arenas holding freed buffers.
        .max_blocking_threads((4 * cores).max(8));
    // One thread for the network and the engines (as libtorrent has one network thread): what
    // is heavy -- hashing, disk reads and writes -- runs on the blocking pool, and a second
    // async worker only added wake-ups (fewer context switches, less CPU and memory at the same
    // speed: BENCHMARKS.md). tokio's own TOKIO_WORKER_THREADS still sets another number.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        rt.worker_threads(1);
    }
    let rt = rt
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        tokio::spawn(watch_signals(stop.clone()));
        f(stop).await
    })
}

async fn watch_signals(stop: tokio_util::sync::CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    stop.cancel();
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("interrupted twice; exiting at once");
    std::process::exit(130);
}

/// The error and its causes joined with ": ", on a single line.
pub fn one_line(e: &anyhow::Error) -> String {
    // Errors quote torrent names and paths: no escape sequence of theirs reaches the terminal.
    let mut line = String::new();
    logging::push_clean(&mut line, &format!("{e:#}"));
    line
}

/// Logs to stderr (above the progress bars while they are drawn); `RUST_LOG` wins, else `-v`
/// raises the level (warn, info, debug, trace). See [`logging`].
fn init_tracing(verbose: u8) {
    logging::init(verbose);
}
