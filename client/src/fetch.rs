//! `swarm fetch`: download torrents into a directory, verify every piece, exit when complete
//! (or keep seeding with `--seed`). Ctrl-C keeps every verified piece for the next run.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use metainfo::{Magnet, Metainfo};
use storage::Mode;
use tokio_util::sync::CancellationToken;

use crate::add::{AddOptions, Added, add};
use crate::options::NetArgs;
use crate::progress::{Ui, summary};
use crate::session::Session;

/// Largest .torrent file read.
const MAX_TORRENT_FILE: u64 = 64 << 20;
/// With no tracker ever answering and no peer ever connected for this long, give up.
const NO_SOURCE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long shutdown waits for stopped announces and resume saves.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// `swarm fetch TORRENT... [--output DIR] [--seed]`
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// .torrent files or magnet links to download.
    #[arg(required = true, value_name = "TORRENT|MAGNET")]
    pub torrents: Vec<String>,
    /// Directory to download into.
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Keep seeding after the download completes (until Ctrl-C).
    #[arg(long)]
    pub seed: bool,
    /// Command to run (with `sh -c`) when a torrent completes; it gets SWARM_NAME,
    /// SWARM_INFO_HASH and SWARM_PATH in its environment.
    #[arg(long, value_name = "CMD")]
    pub on_complete: Option<String>,
    /// Write verified pieces through the page cache. By default they go around it (O_DIRECT),
    /// in runs of consecutive pieces, where the file system and the disk allow: that saves
    /// copying every byte into the cache; a file system that refuses, or a disk found slow at
    /// it (spinning), gets page-cache writes anyway.
    #[arg(long)]
    pub buffered_writes: bool,
    /// Leave the files sparse instead of reserving their space when the download starts
    /// (reserving shows a full disk at once and lays each file out in few extents).
    #[arg(long)]
    pub sparse: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

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
    let ui = Ui::new(args.net.quiet);
    // Check every argument before joining any swarm.
    let mut sources = Vec::new();
    for arg in &args.torrents {
        sources.push(if arg.starts_with("magnet:") {
            Source::Magnet(Magnet::parse(arg).with_context(|| format!("bad magnet link {arg:?}"))?)
        } else {
            Source::Torrent(Box::new(load_torrent(Path::new(arg))?))
        });
    }
    let session = Session::start(args.net.session_config(), shutdown.clone()).await?;
    let out_dir =
        std::path::absolute(&args.output).with_context(|| format!("{}", args.output.display()))?;
    let mut added = Vec::new();
    for source in sources {
        let (meta, peers) = match source {
            Source::Torrent(m) => (*m, Vec::new()),
            Source::Magnet(m) => {
                match crate::magnet::resolve(&session, &m, &out_dir, &ui, &shutdown).await {
                    Ok(r) => (r.meta, r.peers),
                    Err(_) if shutdown.is_cancelled() => {
                        finish(&added).await;
                        ui.println("interrupted before the metadata arrived");
                        return Ok(ExitCode::from(130));
                    }
                    Err(e) => {
                        shutdown.cancel();
                        finish(&added).await;
                        return Err(e);
                    }
                }
            }
        };
        let opts = AddOptions {
            out_dir: out_dir.clone(),
            rename_root: None,
            mode: Mode::ReadWrite,
            trusted_complete: false,
            resume: true,
            direct_writes: !args.buffered_writes,
            preallocate: !args.sparse,
        };
        let a = add(&session, meta, opts, &ui).await?;
        if !peers.is_empty() {
            a.shared
                .candidates
                .lock()
                .add(peers, std::time::Instant::now());
            crate::peers::dial_more(&a.shared, &session);
        }
        let s = a.shared.stats();
        if s.have > 0 {
            ui.println(format!(
                "{}: {} of {} pieces already on disk",
                a.shared.name, s.have, s.pieces
            ));
        }
        added.push(a);
    }
    let displays: Vec<_> = added.iter().map(|a| ui.track(a.shared.clone())).collect();
    let started = Instant::now();
    let mut reported = vec![false; added.len()];
    let mut hooks = Vec::new();
    // Woken at once when a torrent completes or stops; the tick covers the slow checks below.
    let wake = Arc::new(tokio::sync::Notify::new());
    for a in &added {
        let (wake, t) = (wake.clone(), a.shared.clone());
        let mut done = t.done.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = done.wait_for(|d| *d) => {}
                _ = t.cancel.cancelled() => {}
            }
            wake.notify_one();
        });
    }
    let outcome = loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Outcome::Interrupted,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        if let Some(e) = added.iter().find_map(|a| a.shared.error.lock().clone()) {
            break Outcome::Failed(e);
        }
        for (i, a) in added.iter().enumerate() {
            if !reported[i] && *a.shared.done.borrow() {
                reported[i] = true;
                let t = &a.shared;
                ui.println(format!(
                    "done: {} {}; {} bytes received",
                    t.name,
                    summary(t.left_at_start, t.started.elapsed()),
                    t.stats().downloaded
                ));
                if let Some(cmd) = &args.on_complete {
                    hooks.extend(run_hook(cmd, t));
                }
            }
        }
        if reported.iter().all(|&r| r) && !args.seed {
            break Outcome::Complete;
        }
        if started.elapsed() > NO_SOURCE_TIMEOUT
            && let Some(a) = added.iter().find(|a| {
                let t = &a.shared;
                !*t.done.borrow()
                    && !t.tracker_ok.load(std::sync::atomic::Ordering::Relaxed)
                    && t.stats().downloaded == 0
                    && t.conns.lock().is_empty()
            })
        {
            let status = a.shared.tracker_status.lock().clone();
            break Outcome::Failed(format!("{}: no peers found ({status})", a.shared.name));
        }
    };
    shutdown.cancel();
    finish(&added).await;
    if let Some(d) = &session.dht {
        d.wait_stopped(FINISH_TIMEOUT).await;
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
            let have: u32 = added.iter().map(|a| a.shared.stats().have).sum();
            ui.println(format!(
                "interrupted; {have} verified pieces kept for the next run"
            ));
            Ok(if added.iter().all(|a| *a.shared.done.borrow()) {
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

/// Stops torrents: waits (bounded) for their tasks, then saves resume data.
pub async fn finish(added: &[Added]) {
    for a in added {
        a.shared.cancel.cancel();
    }
    let all = async {
        for a in added {
            for t in &a.tasks {
                while !t.is_finished() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            // A complete download needs no resume data (see `Event::Completed`).
            if !*a.shared.done.borrow() {
                a.shared.save_resume().await;
            }
        }
    };
    if tokio::time::timeout(FINISH_TIMEOUT, all).await.is_err() {
        tracing::warn!("shutdown took too long; some trackers were not told we stopped");
    }
}

/// Starts `--on-complete`'s command; the handle ends when the command does.
fn run_hook(cmd: &str, t: &crate::torrent::TorrentShared) -> Option<tokio::task::JoinHandle<()>> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SWARM_NAME", &t.name)
        .env("SWARM_INFO_HASH", t.info_hash.to_hex())
        .env("SWARM_PATH", &t.data_path)
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
