//! `swarm fetch`: download torrents into a directory, verify every piece, exit when complete
//! (or keep seeding with `--seed`). Ctrl-C keeps every verified piece for the next run.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use metainfo::{Magnet, Metainfo};
use tokio_util::sync::CancellationToken;

use super::{STOP_GRACE, any_change};
use crate::cli::FetchArgs;
use crate::progress::{Ui, summary};
use crate::session::Session;
use crate::settings::{AddOptions, Settings};

/// Largest .torrent file read.
const MAX_TORRENT_FILE: u64 = 64 << 20;
/// With no tracker ever answering and no peer ever connected for this long, give up.
const NO_SOURCE_TIMEOUT: Duration = Duration::from_secs(60);
/// After [`NO_SOURCE_TIMEOUT`], how often a download without any source is looked for.
const NO_SOURCE_RECHECK: Duration = Duration::from_secs(5);

/// Reads and parses a .torrent file, with one clear error.
pub fn load_torrent(path: &Path) -> Result<Metainfo> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("{}", path.display()))?
        .len();
    if len > MAX_TORRENT_FILE {
        bail!(
            "{}: {len} bytes is too large for a .torrent",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    Metainfo::from_shared(bytes.into())
        .with_context(|| format!("{}: not a valid .torrent", path.display()))
}

/// Runs `swarm fetch` until every torrent is complete (or `shutdown`).
pub async fn run(args: FetchArgs, shutdown: CancellationToken) -> Result<ExitCode> {
    let settings = Settings::for_fetch(&args);
    let ui = Ui::new(settings.quiet);
    // Check every argument before joining any swarm.
    let mut sources = Vec::new();
    for arg in &args.torrents {
        sources.push(if arg.starts_with("magnet:") {
            Source::Magnet(Magnet::parse(arg).with_context(|| format!("bad magnet link {arg:?}"))?)
        } else {
            Source::Torrent(Box::new(load_torrent(Path::new(arg))?))
        });
    }
    let session = Session::start(settings, shutdown.clone()).await?;
    let out_dir =
        std::path::absolute(&args.output).with_context(|| format!("{}", args.output.display()))?;
    let mut added = Vec::new();
    for source in sources {
        let opts = AddOptions::download(&args, out_dir.clone());
        let a = match source {
            Source::Torrent(m) => session.add(*m, opts, &ui).await,
            Source::Magnet(m) => {
                match crate::session::magnet::resolve(&session, &m, opts, &ui).await {
                    Err(_) if shutdown.is_cancelled() => {
                        session.stop(STOP_GRACE).await;
                        ui.println("interrupted before the metadata arrived");
                        return Ok(ExitCode::from(130));
                    }
                    r => r,
                }
            }
        };
        let a = match a {
            Ok(a) => a,
            Err(e) => {
                session.stop(STOP_GRACE).await;
                return Err(e);
            }
        };
        let s = a.torrent.status();
        if s.have > 0 {
            ui.println(format!(
                "{}: {} of {} pieces already on disk",
                a.torrent.name(),
                s.have,
                s.pieces
            ));
        }
        added.push(a);
    }
    let displays: Vec<_> = added.iter().map(|a| ui.track(a.torrent.clone())).collect();
    let started = Instant::now();
    let mut reported = vec![false; added.len()];
    let mut hooks = Vec::new();
    let mut done: Vec<_> = added
        .iter()
        .map(|a| crate::peer::Driver::done(&*a.torrent))
        .collect();
    let stopped: Vec<_> = added.iter().map(|a| a.torrent.stopped().clone()).collect();
    let mut next_check = started + NO_SOURCE_TIMEOUT;
    let outcome = loop {
        if let Some(e) = added.iter().find_map(|a| a.torrent.error()) {
            break Outcome::Failed(e);
        }
        if shutdown.is_cancelled() {
            break Outcome::Interrupted;
        }
        for (i, a) in added.iter().enumerate() {
            if !reported[i] && a.torrent.is_done() {
                reported[i] = true;
                let t = &a.torrent;
                ui.println(format!(
                    "done: {} {}; {} bytes received",
                    t.name(),
                    summary(t.left_at_start(), t.started().elapsed()),
                    t.status().downloaded
                ));
                if let Some(cmd) = &args.on_complete {
                    hooks.extend(run_hook(cmd, t));
                }
            }
        }
        if reported.iter().all(|&r| r) && !args.seed {
            break Outcome::Complete;
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + NO_SOURCE_RECHECK;
            if let Some(a) = added.iter().find(|a| {
                let t = &a.torrent;
                !t.is_done()
                    && !a.discovery.tracker_status().ok
                    && t.status().downloaded == 0
                    && t.connections() == 0
            }) {
                let status = a.discovery.tracker_status().line;
                break Outcome::Failed(format!("{}: no peers found ({status})", a.torrent.name()));
            }
        }
        // Woken when a torrent completes or stops, or when the no-source check is due.
        tokio::select! {
            _ = any_change(&mut done, &stopped) => {}
            _ = tokio::time::sleep_until(next_check.into()) => {}
        }
    };
    let interrupted_have: u32 = added.iter().map(|a| a.torrent.status().have).sum();
    let all_done = added.iter().all(|a| a.torrent.is_done());
    if !session.stop(STOP_GRACE).await {
        tracing::warn!("shutdown took too long; some trackers were not told we stopped");
    }
    for d in displays {
        let _ = d.await;
    }
    // Exiting first would orphan the hooks, and whoever kills our process group kills them.
    for h in hooks {
        let _ = h.await;
    }
    match outcome {
        Outcome::Complete => Ok(ExitCode::SUCCESS),
        Outcome::Interrupted => {
            let have: u32 = added.iter().map(|a| a.torrent.status().have).sum();
            ui.println(format!(
                "interrupted; {} verified pieces kept for the next run",
                have.max(interrupted_have)
            ));
            Ok(if all_done {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(130)
            })
        }
        Outcome::Failed(e) => bail!(e),
    }
}

/// One thing to download, as given on the command line.
enum Source {
    Torrent(Box<Metainfo>),
    Magnet(Magnet),
}

enum Outcome {
    Complete,
    Interrupted,
    Failed(String),
}

/// Starts `--on-complete`'s command; the handle ends when the command does.
fn run_hook(cmd: &str, t: &crate::torrent::TorrentShared) -> Option<tokio::task::JoinHandle<()>> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SWARM_NAME", t.name())
        .env("SWARM_INFO_HASH", t.info_hash().to_hex())
        .env("SWARM_PATH", t.data_path())
        .spawn();
    match child {
        Ok(mut c) => Some(tokio::spawn(async move {
            let _ = c.wait().await;
        })),
        Err(e) => {
            tracing::warn!(error = %e, "--on-complete command failed to start");
            None
        }
    }
}
