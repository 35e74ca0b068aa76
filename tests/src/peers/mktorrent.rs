//! `mktorrent`, a third-party .torrent creator: torrents made without our own code.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, ensure};

use super::{located, run_to_string};
use crate::programs::Program;

/// Makes `out` for the file or directory `data` with pieces of `2^piece_log2` bytes, naming
/// `announce` as its tracker when given; no creation date, so the output is reproducible.
pub fn mktorrent(data: &Path, out: &Path, piece_log2: u8, announce: Option<&str>) -> Result<()> {
    ensure!(
        (15..=28).contains(&piece_log2),
        "mktorrent takes -l 15..=28, not {piece_log2}"
    );
    let mut cmd = Command::new(located(Program::Mktorrent)?);
    cmd.arg("--no-date")
        .arg(format!("--piece-length={piece_log2}"))
        .arg("--threads=1")
        .arg("--output")
        .arg(out);
    if let Some(url) = announce {
        cmd.arg(format!("--announce={url}"));
    }
    cmd.arg(data);
    run_to_string(cmd)?;
    ensure!(out.is_file(), "mktorrent wrote no {}", out.display());
    Ok(())
}
