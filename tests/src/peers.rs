//! Drivers for real BitTorrent programs on 127.0.0.1: libtorrent (through the repository's own
//! `peers/lt_peer.py`), aria2 and Transmission; their views of a .torrent's info-hash; and
//! `mktorrent` for torrents made without our code.
//!
//! Every driver owns a [`crate::process::Proc`], so a peer dies with the test that started it.
//! Gate a test on the program first with [`crate::require!`].

mod aria2;
mod libtorrent;
mod mktorrent;
mod transmission;

pub use aria2::{Aria2, aria2_show};
pub use libtorrent::{
    LibtorrentInfo, LibtorrentPeer, LtOptions, Transferred, libtorrent_info, libtorrent_info_hash,
};
pub use mktorrent::mktorrent;
pub use transmission::{Transmission, transmission_show};

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use metainfo::InfoHash;

use crate::programs::Program;

/// The program's path, or an error telling the test author to gate on it.
fn located(program: Program) -> Result<PathBuf> {
    program.locate().with_context(|| {
        format!(
            "{} is not installed: gate the test with require!",
            program.name()
        )
    })
}

/// Where a peer's logs go unless told: beside its data directory (the test's temp dir).
fn default_log_dir(data_dir: &Path) -> PathBuf {
    data_dir.parent().unwrap_or(data_dir).to_path_buf()
}

/// Runs a short-lived command to completion and returns its stdout; fails on a non-zero exit.
fn run_to_string(mut cmd: Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The hash on the first line of `text` that starts (after spaces) with `label`.
fn hash_after(text: &str, label: &str) -> Result<InfoHash> {
    let value = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .with_context(|| format!("no {label:?} line in:\n{text}"))?;
    InfoHash::from_hex(value.trim()).with_context(|| format!("{label:?} line in:\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_after_finds_the_labelled_line() {
        let text = "Name: x\n  Hash: 013F1D59A7DFBA57510DFF8CE40C06646C449B59\n";
        let hash = hash_after(text, "Hash:").unwrap();
        assert_eq!(hash.to_hex(), "013f1d59a7dfba57510dff8ce40c06646c449b59");
        assert!(hash_after(text, "Info Hash:").is_err());
        assert!(hash_after("Hash: zz\n", "Hash:").is_err());
    }
}
