//! File stamps (size + modification time) and which pieces resume data lets us trust.
//!
//! When a file's stamp is what resume data recorded, nobody has touched it and the pieces wholly
//! inside unchanged files keep their saved state without hashing. Pieces touching a changed
//! file must be hashed again. Caveat: file times have the kernel's timer granularity (a few
//! milliseconds), so a same-size rewrite in the same tick as our last write goes unseen; take
//! stamps after [`Storage::flush`], as the client does when it saves resume data.

use std::fs;
use std::os::unix::fs::MetadataExt;

use metainfo::Bitfield;

use crate::layout::Layout;
use crate::resume::ResumeData;
use crate::storage::Storage;

/// A file's size and modification time, to notice changes made behind our back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i128,
}

impl FileStamp {
    /// The stamp of a file that does not exist (or is not a regular file, or is padding).
    pub const MISSING: FileStamp = FileStamp {
        len: 0,
        mtime_ns: i128::MIN,
    };

    /// The stamp of `meta`.
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

impl Storage {
    /// The current stamp of every file, in [`Layout::files`] order (padding and missing files:
    /// [`FileStamp::MISSING`]). Symlinks are not followed. Call after [`flush`](Self::flush).
    pub fn stamps(&self) -> Vec<FileStamp> {
        (0..self.layout().files().len())
            .map(|i| {
                self.file_path(i)
                    .and_then(|p| fs::symlink_metadata(p).ok())
                    .filter(fs::Metadata::is_file)
                    .map_or(FileStamp::MISSING, |m| FileStamp::of(&m))
            })
            .collect()
    }
}

/// What resume data lets us skip: `have` holds pieces trusted as present without hashing;
/// `recheck` holds pieces that touch a changed file and must be verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trusted {
    /// Pieces present, trusted from the resume data.
    pub have: Bitfield,
    /// Pieces to verify again.
    pub recheck: Bitfield,
}

/// Compares `saved` with the files' stamps `now` (from [`Storage::stamps`]): pieces lying only
/// in unchanged files keep their saved state; every piece touching a changed file is to be
/// rechecked. If `saved` does not fit `layout`, everything is to be rechecked.
pub fn trusted_pieces(layout: &Layout, saved: &ResumeData, now: &[FileStamp]) -> Trusted {
    let g = layout.geometry();
    let n = g.piece_count();
    let fits = saved.have.len() == n
        && saved.files.len() == layout.files().len()
        && now.len() == layout.files().len();
    if !fits {
        return Trusted {
            have: Bitfield::new(n),
            recheck: Bitfield::full(n),
        };
    }
    let changed: Vec<bool> = layout
        .files()
        .iter()
        .zip(saved.files.iter().zip(now))
        .map(|(f, (a, b))| !f.pad && a != b)
        .collect();
    let mut have = Bitfield::new(n);
    let mut recheck = Bitfield::new(n);
    for p in g.pieces() {
        if layout
            .piece_files(p)
            .any(|i| changed.get(i).copied().unwrap_or(true))
        {
            recheck.set(p);
        } else if saved.have.has(p) {
            have.set(p);
        }
    }
    Trusted { have, recheck }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileSpec;
    use metainfo::InfoHash;

    #[test]
    fn only_pieces_touching_changed_files_are_rechecked() {
        // Files: a = [0,10), pad = [10,16), b = [16,40), c = [40,41); pieces of 16 bytes:
        // p0 = a + pad, p1 = b, p2 = b (to 40) + c.
        let files = vec![
            FileSpec {
                path: vec!["a".into()],
                length: 10,
                pad: false,
            },
            FileSpec {
                path: vec![],
                length: 6,
                pad: true,
            },
            FileSpec {
                path: vec!["b".into()],
                length: 24,
                pad: false,
            },
            FileSpec {
                path: vec!["c".into()],
                length: 1,
                pad: false,
            },
        ];
        let layout = Layout::new(16, files, vec![[0; 20]; 3]).unwrap();
        let stamp = |len, t| FileStamp { len, mtime_ns: t };
        let then = vec![stamp(10, 1), FileStamp::MISSING, stamp(24, 2), stamp(1, 3)];
        let mut have = Bitfield::new(3);
        have.set(layout.geometry().piece(0).unwrap());
        have.set(layout.geometry().piece(2).unwrap());
        let saved = ResumeData {
            info_hash: InfoHash([1; 20]),
            have,
            files: then.clone(),
        };

        let same = trusted_pieces(&layout, &saved, &then);
        assert_eq!(same.have, saved.have);
        assert!(same.recheck.is_none());

        let mut now = then.clone();
        now[3] = stamp(1, 4); // c touched: only p2 touches it
        let t = trusted_pieces(&layout, &saved, &now);
        assert_eq!(t.have.iter_ones().collect::<Vec<_>>(), vec![0]);
        assert_eq!(t.recheck.iter_ones().collect::<Vec<_>>(), vec![2]);

        let mut now = then.clone();
        now[2] = FileStamp::MISSING; // b deleted: p1 and p2
        let t = trusted_pieces(&layout, &saved, &now);
        assert_eq!(t.have.iter_ones().collect::<Vec<_>>(), vec![0]);
        assert_eq!(t.recheck.iter_ones().collect::<Vec<_>>(), vec![1, 2]);

        let t = trusted_pieces(&layout, &saved, &then[..2]);
        assert!(t.have.is_none());
        assert!(t.recheck.is_full());
    }
}
