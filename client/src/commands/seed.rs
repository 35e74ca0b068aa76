//! `swarm seed`: hash files into torrents (or take an existing .torrent and its data) and seed
//! them until Ctrl-C, with a tracker in the same process when none is named.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use metainfo::{Metainfo, TorrentBuilder};
use tokio_util::sync::CancellationToken;

use super::{STOP_GRACE, any_change};
use crate::cli::SeedArgs;
use crate::progress::Ui;
use crate::session::Session;
use crate::settings::{AddOptions, Settings};

/// Runs `swarm seed` until `shutdown`.
pub async fn run(args: SeedArgs, shutdown: CancellationToken) -> Result<ExitCode> {
    let settings = Settings::for_seed(&args);
    let ui = Ui::new(settings.quiet);
    if args.torrent.is_some() && args.paths.len() != 1 {
        bail!("--torrent needs exactly one PATH");
    }
    if args.data.is_some() && args.paths.len() != 1 {
        bail!("--data needs exactly one PATH (the .torrent)");
    }
    let session = Session::start(settings, shutdown.clone()).await?;

    let mut trackers = args.trackers.clone();
    let needs_tracker = trackers.is_empty() && args.data.is_none() && !args.no_tracker;
    if args.no_tracker && session.dht().is_none() && !session.lsd_running() {
        ui.println(
            "warning: no tracker, no DHT and no local discovery; peers can only reach this seed directly",
        );
    }
    if needs_tracker {
        let url = start_embedded_tracker(&args, &session, &shutdown).await?;
        ui.println(format!("tracker: {url} (embedded)"));
        trackers.push(url);
    }

    let mut added = Vec::new();
    for path in &args.paths {
        let (meta, opts) = if let Some(data) = &args.data {
            existing_torrent(path, data)?
        } else {
            create_torrent(&args, path, &trackers, &ui).await?
        };
        let magnet = meta.magnet().to_string();
        let ih = meta.info_hash;
        let a = session.add(meta, opts, &ui).await?;
        ui.println(format!(
            "seeding {}\n  info-hash: {ih}\n  magnet:    {magnet}",
            a.torrent.name()
        ));
        added.push(a);
    }
    ui.println(format!(
        "listening on port {}; Ctrl-C to stop",
        session.port()
    ));
    if let Some(d) = session.dht() {
        ui.println(format!("dht: node on udp {}", d.local));
    }
    let mut displays = Vec::new();
    for a in &added {
        displays.push(ui.track(a.torrent.clone()));
    }
    // Seed until told to stop, or until a torrent fails (a failure stops its torrent).
    let stopped: Vec<CancellationToken> =
        added.iter().map(|a| a.torrent.stopped().clone()).collect();
    any_change(&mut [], &stopped).await;
    let failed = added.iter().find_map(|a| a.torrent.error());
    if !session.stop(STOP_GRACE).await {
        tracing::warn!("shutdown took too long; some trackers were not told we stopped");
    }
    for d in displays {
        let _ = d.await;
    }
    let up: u64 = added.iter().map(|a| a.torrent.status().uploaded).sum();
    ui.println(format!("stopped; uploaded {}", indicatif::HumanBytes(up)));
    match failed {
        Some(e) => bail!(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

async fn start_embedded_tracker(
    args: &SeedArgs,
    session: &Session,
    shutdown: &CancellationToken,
) -> Result<String> {
    let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, args.tracker_port));
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot start the embedded tracker on {addr} (use --tracker-port, or --tracker URL to use another tracker)"
        )
    })?;
    let port = listener.local_addr()?.port();
    // UDP (BEP 15) on the same port, as `swarm-tracker` serves it; best effort: the torrent
    // names the HTTP URL.
    let udp = match tokio::net::UdpSocket::bind(SocketAddr::from((addr.ip(), port))).await {
        Ok(s) => vec![s],
        Err(e) => {
            tracing::debug!(error = %e, port, "embedded tracker without UDP");
            Vec::new()
        }
    };
    let listeners = tracker::Listeners {
        http: vec![listener],
        udp,
    };
    let stop = shutdown.clone();
    session.spawn(async move {
        let cfg = tracker::Config::default();
        if let Err(e) = tracker::run(listeners, cfg, stop.cancelled_owned()).await {
            tracing::error!(error = %e, "embedded tracker stopped");
        }
    });
    let host = args.announce_host.clone().unwrap_or_else(outward_address);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host
    };
    Ok(format!("http://{host}:{port}/announce"))
}

/// The address this machine uses towards other hosts (no packet is sent: connecting a UDP
/// socket only selects a route). Falls back to loopback on a machine without a route.
fn outward_address() -> String {
    let probe = || -> std::io::Result<std::net::IpAddr> {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
        s.connect((Ipv4Addr::new(192, 0, 2, 1), 9))?;
        Ok(s.local_addr()?.ip())
    };
    match probe() {
        Ok(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => Ipv4Addr::LOCALHOST.to_string(),
    }
}

async fn create_torrent(
    args: &SeedArgs,
    path: &Path,
    trackers: &[String],
    ui: &Ui,
) -> Result<(Metainfo, AddOptions)> {
    let meta_path = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if !(meta_path.is_file() || meta_path.is_dir()) {
        bail!("{}: not a file or directory", path.display());
    }
    let piece = args.piece_size;
    let abs = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
    let builder = TorrentBuilder::new(abs.clone())
        .piece_length(piece)
        .trackers(vec![trackers.to_vec()])
        .created_by(metainfo::CLIENT_VERSION);
    let total = builder
        .scan()
        .with_context(|| format!("cannot share {}", path.display()))?
        .total_length;
    let bar = ui.bytes_bar("hashing", total);
    let bar2 = bar.clone();
    let meta = tokio::task::spawn_blocking(move || builder.build(&|n| bar2.inc(n)))
        .await
        .context("hashing task")?
        .with_context(|| format!("hashing {}", path.display()))?;
    bar.finish_and_clear();
    let out = match &args.torrent {
        Some(t) => t.clone(),
        None => {
            let mut s = abs.clone().into_os_string();
            s.push(".torrent");
            PathBuf::from(s)
        }
    };
    std::fs::write(&out, meta.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
    ui.println(format!("wrote {}", out.display()));
    let out_dir = parent_dir(&abs);
    Ok((meta, AddOptions::seeding(out_dir, None, true)))
}

fn existing_torrent(torrent: &Path, data: &Path) -> Result<(Metainfo, AddOptions)> {
    let meta = super::fetch::load_torrent(torrent)?;
    let abs = std::path::absolute(data).with_context(|| format!("{}", data.display()))?;
    if !abs.exists() {
        bail!("{}: no such file or directory", data.display());
    }
    let root = abs
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .context("--data names no file")?;
    let out_dir = parent_dir(&abs);
    Ok((meta, AddOptions::seeding(out_dir, Some(root), false)))
}

/// The directory holding `abs` (an absolute path): the torrent's paths are relative to it.
fn parent_dir(abs: &Path) -> PathBuf {
    abs.parent()
        .map_or_else(|| PathBuf::from("/"), Path::to_path_buf)
}
