//! Storage errors: each names the operation and the file, so one line tells the user what failed.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::layout::LayoutError;

/// The file operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Opening or creating a file.
    Open,
    /// Creating a directory.
    CreateDir,
    /// Reading file metadata.
    Stat,
    /// Setting a file's length.
    Resize,
    /// Reserving a file's blocks.
    Allocate,
    /// Reading data.
    Read,
    /// Writing data.
    Write,
    /// Flushing data to the disk (fsync).
    Sync,
    /// Renaming a file into place.
    Rename,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::CreateDir => "create directory",
            Op::Stat => "stat",
            Op::Resize => "resize",
            Op::Allocate => "allocate",
            Op::Read => "read",
            Op::Write => "write",
            Op::Sync => "sync",
            Op::Rename => "rename",
        })
    }
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed (for example `write /data/a.bin: No space left on device`).
    #[error("{op} {}: {err}", path.display())]
    Io {
        /// What was being done.
        op: Op,
        /// The file or directory.
        path: PathBuf,
        /// The OS error (shown in the message, so not chained as a source).
        err: io::Error,
    },
    /// A path that would lead outside the output directory, through a symlink, or to something
    /// that is not a regular file.
    #[error("refusing {}: {reason}", path.display())]
    UnsafePath {
        /// The offending path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The torrent's file list cannot be stored.
    #[error("cannot store torrent: {0}")]
    Layout(#[from] LayoutError),
    /// A buffer or range that does not fit the piece.
    #[error("piece {piece}: range {begin}+{len} does not fit a piece of {piece_len} bytes")]
    Range {
        /// Piece number.
        piece: u32,
        /// Offset in the piece.
        begin: u32,
        /// Length asked for.
        len: usize,
        /// Length of the piece.
        piece_len: u32,
    },
    /// A write on storage opened read-only.
    #[error("storage is open read-only")]
    ReadOnly,
}

/// Storage results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    pub(crate) fn io(op: Op, path: &Path, err: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.to_path_buf(),
            err,
        }
    }

    pub(crate) fn unsafe_path(path: &Path, reason: &'static str) -> Self {
        StorageError::UnsafePath {
            path: path.to_path_buf(),
            reason,
        }
    }

    /// The kind of the underlying OS error, if this is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            StorageError::Io { err, .. } => Some(err.kind()),
            _ => None,
        }
    }

    /// True for "this data is simply not there" (file missing or shorter than the torrent says):
    /// the piece is absent, which is not a failure when checking what we have.
    pub fn is_absent(&self) -> bool {
        matches!(
            self.io_kind(),
            Some(io::ErrorKind::NotFound | io::ErrorKind::UnexpectedEof)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_naming_op_and_file() {
        let e = StorageError::io(
            Op::Write,
            Path::new("dl/a.bin"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        let s = e.to_string();
        assert!(
            s.starts_with("write dl/a.bin: No space left on device"),
            "{s}"
        );
        assert!(!s.contains('\n'));
        assert_eq!(e.io_kind(), Some(io::ErrorKind::StorageFull));
        assert!(!e.is_absent());
    }
}
