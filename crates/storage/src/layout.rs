//! The torrent as storage sees it: files laid end to end, cut into pieces, each with its hash.
//!
//! A [`Layout`] is what [`Storage`](crate::Storage) needs from a torrent and nothing more: it is
//! built from a parsed [`Info`] ([`Layout::from_info`]) or from a plain file list (tests, tools).
//! It checks every path component again (the .torrent parser already sanitises them; storage
//! does not trust that alone) and maps any byte range of the torrent onto file spans. The span
//! mapping mirrors `Info::spans`, but also serves layouts that did not come from a .torrent.

use std::collections::HashSet;

use metainfo::{FileEntry, Geometry, GeometryError, Info, PieceHashes, PieceIndex};

/// One file of a torrent, as given to [`Layout::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// Path components relative to the output directory (for a multi-file torrent, the
    /// torrent's name is the first component).
    pub path: Vec<String>,
    /// Length in bytes (may be zero).
    pub length: u64,
    /// A BEP 47 padding file: never created, reads as zeros.
    pub pad: bool,
}

/// The part of a byte range that falls in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Index of the file in [`Layout::files`].
    pub file: usize,
    /// Offset inside the file.
    pub file_offset: u64,
    /// Offset inside the requested range (and so inside the caller's buffer).
    pub buf_offset: usize,
    /// Number of bytes.
    pub len: usize,
}

/// A file list or hash list that storage refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// The total size and piece length do not make a geometry.
    #[error("bad geometry: {0}")]
    Geometry(#[from] GeometryError),
    /// The torrent lists no files.
    #[error("torrent has no files")]
    NoFiles,
    /// A path component that could leave the output directory or is not a plain name.
    #[error("unsafe path component {component:?} in file {file}")]
    UnsafeComponent {
        /// Index of the file.
        file: usize,
        /// The component as given.
        component: String,
    },
    /// A non-padding file with an empty path.
    #[error("file {0} has an empty path")]
    EmptyPath(usize),
    /// Two files with the same path, or a file whose path is a directory of another.
    #[error("file {0} collides with another file's path")]
    Collision(usize),
    /// The sum of file lengths overflows.
    #[error("total length overflows")]
    Overflow,
    /// The number of piece hashes does not match the geometry.
    #[error("{got} piece hashes for {want} pieces")]
    HashCount {
        /// Hashes given.
        got: usize,
        /// Pieces in the geometry.
        want: u32,
    },
}

/// Files, geometry and piece hashes of one torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    geometry: Geometry,
    files: Vec<FileEntry>,
    /// Shared with the parsed torrent when built from one (not a copy).
    hashes: PieceHashes,
}

/// True if `c` is a plain file name: not empty, not `.` or `..`, no separator, no NUL.
pub(crate) fn is_plain_component(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\\', '\0'])
}

impl Layout {
    /// Lays `files` end to end in pieces of `piece_length`, checking every path component.
    /// `hashes` is a list of SHA-1s or, to share them without a copy, a parsed torrent's
    /// [`Info::pieces`] (cloned).
    pub fn new(
        piece_length: u64,
        files: Vec<FileSpec>,
        hashes: impl Into<PieceHashes>,
    ) -> Result<Self, LayoutError> {
        let hashes = hashes.into();
        if files.is_empty() {
            return Err(LayoutError::NoFiles);
        }
        let mut placed = Vec::with_capacity(files.len());
        let mut offset = 0u64;
        let mut seen_files: HashSet<&[String]> = HashSet::new();
        let mut seen_dirs: HashSet<&[String]> = HashSet::new();
        for (i, f) in files.iter().enumerate() {
            if !f.pad {
                if f.path.is_empty() {
                    return Err(LayoutError::EmptyPath(i));
                }
                if let Some(bad) = f.path.iter().find(|c| !is_plain_component(c)) {
                    return Err(LayoutError::UnsafeComponent {
                        file: i,
                        component: bad.clone(),
                    });
                }
                // A file may not share its path with another file or with a directory.
                let p = f.path.as_slice();
                if seen_dirs.contains(p) || !seen_files.insert(p) {
                    return Err(LayoutError::Collision(i));
                }
                for k in 1..p.len() {
                    let dir = p.get(..k).unwrap_or_default();
                    if seen_files.contains(dir) {
                        return Err(LayoutError::Collision(i));
                    }
                    seen_dirs.insert(dir);
                }
            }
            placed.push(FileEntry {
                path: if f.pad { Vec::new() } else { f.path.clone() },
                length: f.length,
                offset,
                pad: f.pad,
            });
            offset = offset.checked_add(f.length).ok_or(LayoutError::Overflow)?;
        }
        let geometry = Geometry::new(offset, piece_length)?;
        if hashes.len() != geometry.piece_count() as usize {
            return Err(LayoutError::HashCount {
                got: hashes.len(),
                want: geometry.piece_count(),
            });
        }
        Ok(Layout {
            geometry,
            files: placed,
            hashes,
        })
    }

    /// The layout of a parsed torrent (its files, checked again, and its piece hashes).
    pub fn from_info(info: &Info) -> Result<Self, LayoutError> {
        let files = info
            .files()
            .iter()
            .map(|f| FileSpec {
                path: f.path.clone(),
                length: f.length,
                pad: f.pad,
            })
            .collect();
        Layout::new(u64::from(info.piece_length()), files, info.pieces().clone())
    }

    /// The piece geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The files, in torrent order (padding files included).
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The expected SHA-1 of piece `p` (`None` for a piece out of range, or a hash held in a
    /// file that could not be read).
    pub fn piece_hash(&self, p: PieceIndex) -> Option<[u8; 20]> {
        self.hashes.get(p.idx())
    }

    /// The spans of the torrent byte range `[offset, offset + len)`, in order; zero-length files
    /// yield none. A range past the end of the torrent is cut at the end.
    pub fn spans(&self, offset: u64, len: usize) -> impl Iterator<Item = Span> + '_ {
        let end = offset
            .saturating_add(len as u64)
            .min(self.geometry.total_len());
        // First file whose end lies past `offset`.
        let first = self
            .files
            .partition_point(|f| f.offset + f.length <= offset);
        self.files
            .get(first..)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .take_while(move |(_, f)| f.offset < end)
            .filter(|(_, f)| f.length > 0)
            .map(move |(k, f)| {
                let lo = offset.max(f.offset);
                let hi = end.min(f.offset + f.length);
                Span {
                    file: first + k,
                    file_offset: lo - f.offset,
                    buf_offset: (lo - offset) as usize,
                    len: (hi - lo) as usize,
                }
            })
    }

    /// The spans of piece `p`.
    pub fn piece_spans(&self, p: PieceIndex) -> impl Iterator<Item = Span> + '_ {
        self.spans(
            self.geometry.piece_offset(p),
            self.geometry.piece_len(p) as usize,
        )
    }

    /// The indices of the files piece `p` touches (zero-length files excluded).
    pub fn piece_files(&self, p: PieceIndex) -> impl Iterator<Item = usize> + '_ {
        self.piece_spans(p).map(|s| s.file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(path: &[&str], length: u64, pad: bool) -> FileSpec {
        FileSpec {
            path: path.iter().map(|s| s.to_string()).collect(),
            length,
            pad,
        }
    }

    fn layout(files: Vec<FileSpec>, piece: u64) -> Result<Layout, LayoutError> {
        let total: u64 = files.iter().map(|f| f.length).sum();
        let n = total.div_ceil(piece) as usize;
        Layout::new(piece, files, vec![[0; 20]; n])
    }

    #[test]
    fn spans_straddle_files_and_skip_empty_ones() {
        let l = layout(
            vec![
                spec(&["t", "a"], 10, false),
                spec(&["t", "empty"], 0, false),
                spec(&[], 6, true),
                spec(&["t", "b"], 4, false),
                spec(&["t", "c"], 7, false),
            ],
            16,
        )
        .unwrap();
        let g = *l.geometry();
        assert_eq!(g.piece_count(), 2);
        let p0: Vec<_> = l.piece_spans(g.piece(0).unwrap()).collect();
        assert_eq!(
            p0,
            vec![
                Span {
                    file: 0,
                    file_offset: 0,
                    buf_offset: 0,
                    len: 10
                },
                Span {
                    file: 2,
                    file_offset: 0,
                    buf_offset: 10,
                    len: 6
                },
            ]
        );
        let p1: Vec<_> = l.piece_spans(g.piece(1).unwrap()).collect();
        assert_eq!(
            p1,
            vec![
                Span {
                    file: 3,
                    file_offset: 0,
                    buf_offset: 0,
                    len: 4
                },
                Span {
                    file: 4,
                    file_offset: 0,
                    buf_offset: 4,
                    len: 7
                },
            ]
        );
        let mid: Vec<_> = l.spans(9, 3).collect();
        assert_eq!(
            mid,
            vec![
                Span {
                    file: 0,
                    file_offset: 9,
                    buf_offset: 0,
                    len: 1
                },
                Span {
                    file: 2,
                    file_offset: 0,
                    buf_offset: 1,
                    len: 2
                },
            ]
        );
        assert_eq!(l.spans(27, 100).map(|s| s.len).sum::<usize>(), 0);
    }

    #[test]
    fn refuses_unsafe_and_colliding_paths() {
        for bad in ["..", ".", "", "a/b", "a\\b", "nul\0"] {
            assert!(matches!(
                layout(vec![spec(&["t", bad], 5, false)], 4),
                Err(LayoutError::UnsafeComponent { file: 0, .. })
            ));
        }
        assert_eq!(
            layout(vec![spec(&[], 5, false)], 4),
            Err(LayoutError::EmptyPath(0))
        );
        assert_eq!(
            layout(vec![spec(&["a"], 5, false), spec(&["a"], 5, false)], 4),
            Err(LayoutError::Collision(1))
        );
        assert_eq!(
            layout(vec![spec(&["a"], 5, false), spec(&["a", "b"], 5, false)], 4),
            Err(LayoutError::Collision(1))
        );
        assert_eq!(
            layout(vec![spec(&["a", "b"], 5, false), spec(&["a"], 5, false)], 4),
            Err(LayoutError::Collision(1))
        );
        assert!(matches!(
            Layout::new(4, vec![spec(&["a"], 5, false)], vec![[0; 20]]),
            Err(LayoutError::HashCount { got: 1, want: 2 })
        ));
        assert_eq!(Layout::new(4, vec![], vec![]), Err(LayoutError::NoFiles));
    }
}
