//! Resume data: which pieces are verified on disk, saved after a flush so that it never claims
//! a piece the disk might not hold after a crash.

use std::path::{Path, PathBuf};

use metainfo::{Bitfield, InfoHash, Metainfo};
use storage::{ResumeData, Storage};

/// The resume file of a torrent under `out_dir`.
pub fn path(out_dir: &Path, meta: &Metainfo) -> PathBuf {
    out_dir
        .join(".swarm")
        .join(format!("{}.resume", meta.info_hash.to_hex()))
}

/// Flushes the data (fsync), then writes `have` (pieces written before the flush) and the
/// files' stamps atomically to `path`. A failure is a warning: the next run checks the data.
pub fn save(st: &Storage, path: &Path, info_hash: InfoHash, have: Bitfield) {
    let r = st.flush().map_err(|e| e.to_string()).and_then(|()| {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let data = ResumeData {
            info_hash,
            have,
            files: st.stamps(),
        };
        data.save_atomic(path).map_err(|e| e.to_string())
    });
    if let Err(e) = r {
        tracing::warn!(file = %path.display(), error = %e, "could not save resume data");
    }
}
