//! `swarm create`: hash a file or directory into a .torrent, with a progress bar.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use metainfo::TorrentBuilder;

use crate::cli::CreateArgs;
use crate::size::human;

/// Runs `swarm create`.
pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    let mut builder = TorrentBuilder::new(&args.path)
        .piece_length(args.piece_size)
        .private(args.private)
        .created_by(metainfo::CLIENT_VERSION)
        .trackers(args.trackers.iter().map(|t| vec![t.clone()]).collect());
    if let Some(c) = &args.comment {
        builder = builder.comment(c.clone());
    }
    let scan = builder
        .scan()
        .with_context(|| format!("cannot share {}", args.path.display()))?;
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.torrent", scan.name)));
    if out.exists() && !args.force {
        bail!(
            "{} already exists (use --force to overwrite)",
            out.display()
        );
    }
    tracing::info!(files = scan.files, bytes = scan.total_length, "hashing");

    let bar = progress_bar(scan.total_length);
    let result = builder.build(&|n| bar.inc(n));
    bar.finish_and_clear();
    let m =
        result.with_context(|| format!("cannot create a torrent for {}", args.path.display()))?;

    let mut file = if args.force {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&out)
    } else {
        OpenOptions::new().write(true).create_new(true).open(&out)
    }
    .with_context(|| format!("cannot write {}", out.display()))?;
    file.write_all(m.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", out.display()))?;

    let g = m.info.geometry();
    println!("created   {}", out.display());
    println!(
        "content   {} ({} files, {})",
        m.info.name(),
        m.info.files().len(),
        human(m.info.total_length())
    );
    println!(
        "pieces    {} x {}",
        g.piece_count(),
        human(u64::from(m.info.piece_length()))
    );
    println!("info-hash {}", m.info_hash);
    println!("magnet    {}", m.magnet());
    Ok(())
}

/// A bar over bytes hashed on stderr, hidden when stderr is not a terminal.
fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "hashing {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}
