//! `swarm create`: hash a file or directory into a .torrent, with a progress bar.

use std::fs::OpenOptions;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use metainfo::TorrentBuilder;

use crate::size::{human, parse_piece_size};

/// Flags of `swarm create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or directory to share.
    pub path: PathBuf,
    /// Where to write the torrent [default: NAME.torrent in the current directory].
    #[arg(short, long, value_name = "OUT.torrent")]
    pub output: Option<PathBuf>,
    /// Tracker announce URL; repeat for backup trackers (each URL is its own tier, tried in
    /// order).
    #[arg(short, long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Piece size: a power of two from 16K to 64M, e.g. 256K, 1M or 262144.
    #[arg(long, value_name = "SIZE", default_value = "256K", value_parser = parse_piece_size)]
    pub piece_size: u32,
    /// Mark the torrent private (BEP 27: peers only from its trackers).
    #[arg(long)]
    pub private: bool,
    /// A comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// Overwrite the output file if it already exists.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `swarm create`.
pub fn run(args: CreateArgs) -> anyhow::Result<()> {
    let mut builder = TorrentBuilder::new(&args.path)
        .piece_length(args.piece_size)
        .private(args.private)
        .created_by(concat!("swarm ", env!("CARGO_PKG_VERSION")))
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
