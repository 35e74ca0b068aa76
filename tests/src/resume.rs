//! Readings of `swarm fetch`'s resume data and of a resumed run: where the resume file is, what
//! it claims, whether those claims hold on disk, and how much a rerun fetched.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, ensure};
use metainfo::{Bitfield, Metainfo};
use storage::{Layout, ResumeData};

use crate::client::{bytes_received, pieces_already_on_disk};

/// Where `swarm fetch -o out` keeps a torrent's resume data.
pub fn resume_file(out: &Path, meta: &Metainfo) -> PathBuf {
    out.join(".swarm")
        .join(format!("{}.resume", meta.info_hash.to_hex()))
}

/// The storage layout of `meta` (as the client builds it).
pub fn layout(meta: &Metainfo) -> Result<Layout> {
    Layout::from_info(&meta.info).map_err(|e| anyhow!("layout: {e}"))
}

/// The pieces the resume file at `path` claims, if it is there and valid for `meta`.
pub fn claimed_pieces(path: &Path, meta: &Metainfo) -> Result<Option<Bitfield>> {
    if !path.exists() {
        return Ok(None);
    }
    let data = ResumeData::load(path, meta.info_hash, &layout(meta)?)
        .map_err(|e| anyhow!("resume data {}: {e}", path.display()))?;
    Ok(Some(data.have))
}

/// Checks that every piece in `claimed` of the single-file torrent holds the bytes of the file
/// `want` in the file `have`; returns how many pieces were checked.
pub fn claimed_pieces_are_on_disk(
    claimed: &Bitfield,
    want: &Path,
    have: &Path,
    piece_len: usize,
) -> Result<usize> {
    let want = std::fs::read(want).with_context(|| format!("read {}", want.display()))?;
    let have = std::fs::read(have).with_context(|| format!("read {}", have.display()))?;
    let mut checked = 0;
    for i in claimed.iter_ones() {
        let start = i as usize * piece_len;
        let end = (start + piece_len).min(want.len());
        ensure!(
            have.get(start..end) == want.get(start..end),
            "the resume data claims piece {i}, but its bytes on disk are not the torrent's"
        );
        checked += 1;
    }
    Ok(checked)
}

/// The resumed run's `N of M pieces already on disk`, checked to be some but not all.
pub fn resumed_pieces(stdout: &str, total: u32) -> Result<u32> {
    let (have, of) = pieces_already_on_disk(stdout)
        .with_context(|| format!("no 'already on disk' line in:\n{stdout}"))?;
    ensure!(
        of == total,
        "{have} of {of}, the torrent has {total} pieces"
    );
    ensure!(
        have > 0 && have < total,
        "resumed with {have} of {total} pieces"
    );
    Ok(have)
}

/// The resumed run received no more than the `total - have` pieces of `piece_len` bytes it
/// lacked: with one seeder and no hash failures only missing pieces cross the wire (less when
/// the short last piece is among them).
pub fn only_missing_pieces_received(
    stdout: &str,
    have: u32,
    total: u32,
    piece_len: usize,
) -> Result<()> {
    let received = bytes_received(stdout).with_context(|| format!("no done line:\n{stdout}"))?;
    let missing = u64::from(total - have) * piece_len as u64;
    ensure!(
        received <= missing,
        "received {received} bytes, but only {} pieces ({missing} bytes) were missing",
        total - have
    );
    ensure!(received > 0, "received nothing:\n{stdout}");
    Ok(())
}
