//! [`Storage`]: a torrent's pieces on its files, with positioned reads and writes.
//!
//! Every method takes `&self` and `Storage` is `Send + Sync`: the client calls it from a
//! blocking thread pool. Reads and writes use `pread`/`pwrite` (`FileExt::*_at`), so threads
//! never share a file cursor; handles come from a bounded [`HandlePool`].

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use metainfo::{Info, PieceIndex};

use crate::error::{Op, Result, StorageError};
use crate::layout::{Layout, Span};
use crate::path::{self, Access};
use crate::pool::HandlePool;

/// Whether storage may create and write files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Create directories and files, size them, and write pieces.
    #[default]
    ReadWrite,
    /// Seed existing data: create nothing, resize nothing, write nothing. Missing or short files
    /// mean the pieces on them are absent.
    ReadOnly,
}

/// How to open a [`Storage`].
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Read-write or read-only.
    pub mode: Mode,
    /// Where open file handles are kept: `None` for a private pool of
    /// [`DEFAULT_MAX_OPEN_FILES`](crate::DEFAULT_MAX_OPEN_FILES); pass one shared pool to every
    /// storage of a process to bound the process as a whole.
    pub pool: Option<HandlePool>,
}

impl OpenOptions {
    /// Read-only options with the default handle cap.
    pub fn read_only() -> Self {
        OpenOptions {
            mode: Mode::ReadOnly,
            ..OpenOptions::default()
        }
    }
}

/// A torrent's data on disk under one output directory.
#[derive(Debug)]
pub struct Storage {
    layout: Layout,
    root: PathBuf,
    /// Full path of each file; `None` for padding files.
    paths: Vec<Option<PathBuf>>,
    mode: Mode,
    handles: HandlePool,
    /// This storage's key in the pool.
    owner: u64,
    /// Files written since the last successful `flush`.
    dirty: Vec<AtomicBool>,
}

impl Storage {
    /// Opens torrent `info` under `out_dir`; see [`Storage::new`].
    pub fn open(info: &Info, out_dir: &Path, opts: OpenOptions) -> Result<Storage> {
        Storage::new(Layout::from_info(info)?, out_dir, opts)
    }

    /// Opens the torrent described by `layout` under `out_dir`. Read-write: creates `out_dir`,
    /// the directories and the files (padding files never), and sets each file to its length
    /// (sparse; existing data of the right length is kept, a longer file is cut to length).
    /// Read-only: only checks that `out_dir` exists.
    pub fn new(layout: Layout, out_dir: &Path, opts: OpenOptions) -> Result<Storage> {
        if opts.mode == Mode::ReadWrite {
            fs::create_dir_all(out_dir).map_err(|e| StorageError::io(Op::CreateDir, out_dir, e))?;
        }
        let root = fs::canonicalize(out_dir).map_err(|e| StorageError::io(Op::Open, out_dir, e))?;
        let paths = layout
            .files()
            .iter()
            .map(|f| (!f.pad).then(|| path::join(&root, &f.path)))
            .collect();
        let storage = Storage {
            dirty: layout
                .files()
                .iter()
                .map(|_| AtomicBool::new(false))
                .collect(),
            handles: opts.pool.unwrap_or_default(),
            owner: HandlePool::new_owner(),
            mode: opts.mode,
            paths,
            root,
            layout,
        };
        if opts.mode == Mode::ReadWrite {
            storage.create_files()?;
        }
        Ok(storage)
    }

    fn create_files(&self) -> Result<()> {
        for (f, p) in self.layout.files().iter().zip(&self.paths) {
            let Some(p) = p else { continue };
            let file = path::open(&self.root, &f.path, Access::Write)?;
            let len = file
                .metadata()
                .map_err(|e| StorageError::io(Op::Stat, p, e))?
                .len();
            if len != f.length {
                file.set_len(f.length)
                    .map_err(|e| StorageError::io(Op::Resize, p, e))?;
            }
        }
        Ok(())
    }

    /// The torrent's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The canonical output directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Read-write or read-only.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The on-disk path of every file except padding files, in torrent order.
    pub fn file_paths(&self) -> Vec<&Path> {
        self.paths.iter().flatten().map(PathBuf::as_path).collect()
    }

    /// The on-disk path of file `idx` (`None` for padding files or out of range).
    pub fn file_path(&self, idx: usize) -> Option<&Path> {
        self.paths.get(idx)?.as_deref()
    }

    /// Number of file handles this storage holds in its pool now.
    pub fn open_handles(&self) -> usize {
        self.handles.owned_by(self.owner)
    }

    fn handle(&self, idx: usize) -> Result<Arc<File>> {
        let access = match self.mode {
            Mode::ReadWrite => Access::Write,
            Mode::ReadOnly => Access::Read,
        };
        self.handles.get_or_open((self.owner, idx), || {
            let comps = self.layout.files().get(idx).map(|f| f.path.as_slice());
            path::open(&self.root, comps.unwrap_or_default(), access)
        })
    }

    fn display_path(&self, idx: usize) -> &Path {
        self.file_path(idx).unwrap_or(&self.root)
    }

    /// Checks that `[begin, begin + len)` lies in piece `p`; returns its torrent offset.
    fn range(&self, p: PieceIndex, begin: u32, len: usize) -> Result<u64> {
        let g = self.layout.geometry();
        let piece_len = g.piece_len(p);
        if u64::from(begin) + len as u64 > u64::from(piece_len) {
            return Err(StorageError::Range {
                piece: p.get(),
                begin,
                len,
                piece_len,
            });
        }
        Ok(g.piece_offset(p) + u64::from(begin))
    }

    fn is_pad(&self, s: &Span) -> bool {
        self.layout.files().get(s.file).is_none_or(|f| f.pad)
    }

    /// Writes `data` at byte `begin` of piece `p` (a block, or the whole piece), across file
    /// boundaries; bytes that fall on padding files are dropped.
    pub fn write(&self, p: PieceIndex, begin: u32, data: &[u8]) -> Result<()> {
        if self.mode == Mode::ReadOnly {
            return Err(StorageError::ReadOnly);
        }
        let offset = self.range(p, begin, data.len())?;
        for s in self.layout.spans(offset, data.len()) {
            if self.is_pad(&s) {
                continue;
            }
            let chunk = data
                .get(s.buf_offset..s.buf_offset + s.len)
                .unwrap_or_default();
            let file = self.handle(s.file)?;
            if let Some(d) = self.dirty.get(s.file) {
                d.store(true, Ordering::Release);
            }
            file.write_all_at(chunk, s.file_offset)
                .map_err(|e| StorageError::io(Op::Write, self.display_path(s.file), e))?;
        }
        Ok(())
    }

    /// Writes a whole piece; `data` must be exactly the piece's length.
    pub fn write_piece(&self, p: PieceIndex, data: &[u8]) -> Result<()> {
        let piece_len = self.layout.geometry().piece_len(p);
        if data.len() != piece_len as usize {
            return Err(StorageError::Range {
                piece: p.get(),
                begin: 0,
                len: data.len(),
                piece_len,
            });
        }
        self.write(p, 0, data)
    }

    /// Fills `buf` from byte `begin` of piece `p`, across file boundaries; padding reads as zeros.
    /// A missing or short file is an error for which [`StorageError::is_absent`] is true.
    pub fn read(&self, p: PieceIndex, begin: u32, buf: &mut [u8]) -> Result<()> {
        let offset = self.range(p, begin, buf.len())?;
        for s in self.layout.spans(offset, buf.len()) {
            let pad = self.is_pad(&s);
            let Some(chunk) = buf.get_mut(s.buf_offset..s.buf_offset + s.len) else {
                continue;
            };
            if pad {
                chunk.fill(0);
                continue;
            }
            let file = self.handle(s.file)?;
            file.read_exact_at(chunk, s.file_offset)
                .map_err(|e| StorageError::io(Op::Read, self.display_path(s.file), e))?;
        }
        Ok(())
    }

    /// Reads the whole of piece `p`; `buf` must be exactly the piece's length.
    pub fn read_piece(&self, p: PieceIndex, buf: &mut [u8]) -> Result<()> {
        let piece_len = self.layout.geometry().piece_len(p);
        if buf.len() != piece_len as usize {
            return Err(StorageError::Range {
                piece: p.get(),
                begin: 0,
                len: buf.len(),
                piece_len,
            });
        }
        self.read(p, 0, buf)
    }

    /// Reads piece `p` and compares its SHA-1 with the torrent's. Missing or short data is
    /// `Ok(false)`; other I/O errors are errors.
    pub fn verify_piece(&self, p: PieceIndex) -> Result<bool> {
        let mut buf = vec![0u8; self.layout.geometry().piece_len(p) as usize];
        self.verify_into(p, &mut buf)
    }

    /// [`verify_piece`](Self::verify_piece) with a caller's buffer of the piece's length.
    pub(crate) fn verify_into(&self, p: PieceIndex, buf: &mut [u8]) -> Result<bool> {
        match self.read_piece(p, buf) {
            Ok(()) => {}
            Err(e) if e.is_absent() => return Ok(false),
            Err(e) => return Err(e),
        }
        let digest = <sha1::Sha1 as sha1::Digest>::digest(&*buf);
        Ok(self
            .layout
            .piece_hash(p)
            .is_some_and(|h| h.as_slice() == digest.as_slice()))
    }

    /// Fsyncs every file written since the last successful flush.
    pub fn flush(&self) -> Result<()> {
        for (idx, d) in self.dirty.iter().enumerate() {
            if !d.swap(false, Ordering::AcqRel) {
                continue;
            }
            let synced = self.handle(idx).and_then(|f| {
                f.sync_all()
                    .map_err(|e| StorageError::io(Op::Sync, self.display_path(idx), e))
            });
            if let Err(e) = synced {
                d.store(true, Ordering::Release);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Bytes of file `idx` present on disk now (0 when missing, not a regular file, or padding
    /// -- padding is never read from disk).
    pub(crate) fn present_len(&self, idx: usize) -> u64 {
        self.file_path(idx)
            .and_then(|p| fs::symlink_metadata(p).ok())
            .filter(fs::Metadata::is_file)
            .map_or(0, |m| m.len())
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.handles.release(self.owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileSpec;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn storage_is_send_and_sync() {
        assert_send_sync::<Storage>();
    }

    #[test]
    fn enospc_surfaces_as_an_error_naming_the_file() {
        // /dev/full fails every write with ENOSPC: the same path a full disk takes.
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let err = full
            .write_all_at(&[1u8; 4096], 0)
            .map_err(|e| StorageError::io(Op::Write, Path::new("/dev/full"), e))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("write /dev/full: No space left on device"),
            "{err}"
        );
    }

    #[test]
    fn rejects_wrong_lengths_and_writes_in_read_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let spec = FileSpec {
            path: vec!["f".into()],
            length: 40,
            pad: false,
        };
        let layout = Layout::new(16, vec![spec], vec![[0; 20]; 3]).unwrap();
        let s = Storage::new(layout.clone(), dir.path(), OpenOptions::default()).unwrap();
        let g = *s.layout().geometry();
        let p2 = g.piece(2).unwrap();
        assert!(matches!(
            s.write_piece(p2, &[0; 16]),
            Err(StorageError::Range {
                piece: 2,
                len: 16,
                piece_len: 8,
                ..
            })
        ));
        assert!(matches!(
            s.write(p2, 4, &[0; 5]),
            Err(StorageError::Range { .. })
        ));
        let mut buf = [0u8; 9];
        assert!(matches!(
            s.read(p2, 0, &mut buf),
            Err(StorageError::Range { .. })
        ));
        s.write(p2, 4, &[7; 4]).unwrap();

        let ro = Storage::new(layout, dir.path(), OpenOptions::read_only()).unwrap();
        assert!(matches!(
            ro.write(p2, 0, &[0; 8]),
            Err(StorageError::ReadOnly)
        ));
        let mut buf = [0u8; 4];
        ro.read(p2, 4, &mut buf).unwrap();
        assert_eq!(buf, [7; 4]);
    }
}
