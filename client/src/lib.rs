//! The swarm BitTorrent client: the `swarm` command line (clap), its subcommands, and (later)
//! the tokio shell that drives the sans-IO protocol crates.
//!
//! Each subcommand lives in its own module with an `Args` struct and a `run` function; add one
//! by adding a variant to [`cli::Command`] and an arm to [`run`].

pub mod cli;
pub mod create;
pub mod info;
pub mod size;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Entry point of the `swarm` binary: parse flags, install logging, run, and turn an error
/// into one `error: ...` line on stderr and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Create(args) => create::run(args),
        Command::Info(args) => info::run(args),
    }
}

/// The error and its causes joined with ": ", on a single line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace(['\n', '\r'], " ")
}

/// Logs to stderr; `RUST_LOG` wins, else `-v` raises the level (warn, info, debug, trace).
fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // A second initialisation (tests calling main twice) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
