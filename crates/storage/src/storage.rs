//! [`Storage`]: a torrent's pieces on its files, with positioned reads and writes.
//!
//! Every method takes `&self` and `Storage` is `Send + Sync`: the client calls it from a
//! blocking thread pool. Reads and writes use `pread`/`pwrite` (`FileExt::*_at`), so threads
//! never share a file cursor; handles come from a bounded [`HandlePool`].
//!
//! With [`OpenOptions::direct_writes`], the aligned part of every write goes around the page
//! cache (`O_DIRECT`): a download is written once, by the device, instead of being copied into
//! the page cache first (a copy of every byte downloaded, a large share of a leecher's CPU;
//! see BENCHMARKS.md). Unaligned heads and tails (file boundaries inside a piece, a short last
//! piece) are written through the page cache as before. Direct writes turn themselves off for
//! the storage, and nothing is lost, when the file system refuses `O_DIRECT`, or when the device
//! proves slow at them (a spinning disk seeking for every piece of a rarest-first download,
//! which the page cache would have sorted into order; the `rotational` flag cannot tell, as
//! virtual disks claim to spin).

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

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
    /// Write pieces around the page cache (`O_DIRECT`) where the buffer, file offset and length
    /// allow it (all aligned to [`DIRECT_ALIGN`]). Ignored for read-only storage; turned off
    /// again by a file system that refuses it or a device that is slow at it (see the module
    /// documentation).
    pub direct_writes: bool,
    /// Reserve each file's blocks when it is created or grown (`fallocate`), instead of leaving
    /// it sparse: a full disk shows at once rather than part-way through the download, the file
    /// is laid out in few extents whatever order pieces arrive in, and writes need not allocate.
    /// File systems without `fallocate` get a sparse file, as without this option.
    pub preallocate: bool,
}

/// Alignment of buffer address, file offset and length that a direct write needs: 4 KiB, the
/// largest logical block size in use, so one value serves every device.
pub const DIRECT_ALIGN: usize = 4096;

/// Direct writes are judged in windows of this many writes...
const DIRECT_WINDOW: u32 = 32;
/// ...and turned off when more than half of a window's writes were slow (see [`slow_write`]).
const DIRECT_SLOW_MAX: u32 = DIRECT_WINDOW / 2;

/// Whether a direct write of `bytes` that took `took` was slow: longer than 4 ms plus the time
/// at 256 MB/s. A solid-state or virtual disk writes 256 KiB in well under a millisecond; a
/// spinning disk spends 5-15 ms seeking to each piece of a rarest-first download.
///
/// The callers time the write itself with the clock: with `sha1-lanes`' calibration, the only
/// clock reads in `crates/` (ARCHITECTURE.md, invariant 1). It measures the device, not protocol
/// time: no deadline depends on it, only whether later writes go around the page cache.
fn slow_write(bytes: usize, took: Duration) -> bool {
    let allowance = Duration::from_millis(4) + Duration::from_nanos(bytes as u64 * 4);
    took > allowance
}

/// Reserves the blocks of `file` up to `len` bytes and sets its length to at least `len`
/// (existing data is kept). `Ok(false)` when the file system has no `fallocate`.
fn allocate(file: &File, len: u64, path: &Path) -> Result<bool> {
    use rustix::io::Errno;
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::OPNOTSUPP || e == Errno::NOSYS => Ok(false),
        Err(e) => Err(StorageError::io(Op::Allocate, path, e.into())),
    }
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
    /// Direct writes are on (asked for, and not yet refused by the file system or found slow).
    direct: AtomicBool,
    /// Direct writes, and slow ones, in the current window.
    direct_count: AtomicU32,
    direct_slow: AtomicU32,
    /// Key in the pool of the `O_DIRECT` handles (`owner` keys the ordinary ones).
    direct_owner: u64,
    /// Reserve blocks for files when creating them ([`OpenOptions::preallocate`]).
    preallocate: bool,
    /// Every file's blocks were reserved by this storage.
    allocated: AtomicBool,
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
            direct: AtomicBool::new(opts.direct_writes && opts.mode == Mode::ReadWrite),
            direct_count: AtomicU32::new(0),
            direct_slow: AtomicU32::new(0),
            direct_owner: HandlePool::new_owner(),
            preallocate: opts.preallocate,
            allocated: AtomicBool::new(false),
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
        let mut all_allocated = true;
        for (f, p) in self.layout.files().iter().zip(&self.paths) {
            let Some(p) = p else { continue };
            let file = path::open(&self.root, &f.path, Access::Write)?;
            let len = file
                .metadata()
                .map_err(|e| StorageError::io(Op::Stat, p, e))?
                .len();
            if len < f.length && self.preallocate && allocate(&file, f.length, p)? {
                continue;
            }
            all_allocated = false;
            if len != f.length {
                file.set_len(f.length)
                    .map_err(|e| StorageError::io(Op::Resize, p, e))?;
            }
        }
        self.allocated.store(all_allocated, Ordering::Relaxed);
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
        self.handles.owned_by(self.owner) + self.handles.owned_by(self.direct_owner)
    }

    /// Whether aligned writes go around the page cache now (see
    /// [`OpenOptions::direct_writes`]).
    pub fn writes_direct(&self) -> bool {
        self.direct.load(Ordering::Relaxed)
    }

    /// Whether concurrent writes to one file run side by side in the kernel: aligned direct
    /// writes into blocks this storage reserved take the inode lock shared (ext4, XFS).
    /// Page-cache writes, or direct writes that allocate, take it exclusively, and writers
    /// queued on it spin: callers should then write one piece at a time.
    pub fn writes_in_parallel(&self) -> bool {
        self.writes_direct() && self.allocated.load(Ordering::Relaxed)
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

    /// Writes the aligned head of `chunk` to file `idx` at `at` with a direct write; returns the
    /// number of bytes written: 0 when direct writes are off or `chunk` or `at` is not aligned.
    /// A file system that refuses `O_DIRECT` (`EINVAL`) turns them off for good, and the caller
    /// writes the bytes through the page cache.
    fn write_direct(&self, idx: usize, chunk: &[u8], at: u64) -> Result<usize> {
        let n = chunk.len() / DIRECT_ALIGN * DIRECT_ALIGN;
        if n == 0
            || !at.is_multiple_of(DIRECT_ALIGN as u64)
            || chunk.as_ptr().align_offset(DIRECT_ALIGN) != 0
            || !self.direct.load(Ordering::Relaxed)
        {
            return Ok(0);
        }
        let Some(file) = self.direct_handle(idx)? else {
            return Ok(0);
        };
        let started = Instant::now();
        match file.write_all_at(chunk.get(..n).unwrap_or_default(), at) {
            Ok(()) => {
                self.judge_direct(slow_write(n, started.elapsed()));
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => Ok(self.stop_direct()),
            Err(e) => Err(StorageError::io(Op::Write, self.display_path(idx), e)),
        }
    }

    /// The `O_DIRECT` handle of file `idx`, opened on first use; `None` when the file system
    /// refuses `O_DIRECT` (`EINVAL`), which turns direct writes off for good.
    fn direct_handle(&self, idx: usize) -> Result<Option<Arc<File>>> {
        let opened = self.handles.get_or_open((self.direct_owner, idx), || {
            let comps = self.layout.files().get(idx).map(|f| f.path.as_slice());
            path::open(&self.root, comps.unwrap_or_default(), Access::WriteDirect)
        });
        match opened {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.io_kind() == Some(io::ErrorKind::InvalidInput) => {
                self.stop_direct();
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Counts one direct write, and turns direct writes off at the end of a window in which most
    /// were slow.
    fn judge_direct(&self, slow: bool) {
        if slow {
            self.direct_slow.fetch_add(1, Ordering::Relaxed);
        }
        let count = self.direct_count.fetch_add(1, Ordering::Relaxed) + 1;
        if count.is_multiple_of(DIRECT_WINDOW)
            && self.direct_slow.swap(0, Ordering::Relaxed) > DIRECT_SLOW_MAX
        {
            self.stop_direct();
        }
    }

    /// Turns direct writes off for good; 0, the bytes written directly.
    fn stop_direct(&self) -> usize {
        if self.direct.swap(false, Ordering::Relaxed) {
            self.handles.release(self.direct_owner);
        }
        0
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
            if let Some(d) = self.dirty.get(s.file) {
                d.store(true, Ordering::Release);
            }
            let direct = self.write_direct(s.file, chunk, s.file_offset)?;
            let rest = chunk.get(direct..).unwrap_or_default();
            if rest.is_empty() {
                continue;
            }
            let file = self.handle(s.file)?;
            file.write_all_at(rest, s.file_offset + direct as u64)
                .map_err(|e| StorageError::io(Op::Write, self.display_path(s.file), e))?;
        }
        Ok(())
    }

    /// Writes consecutive whole pieces `first, first + 1, ...` (`pieces[k]` exactly the length
    /// of piece `first + k`). When the run lies in one file and direct writes are on, it goes
    /// to the disk as one vectored write (one request where the device allows, instead of one
    /// per piece: on a virtual disk each request costs a VM exit); otherwise piece by piece.
    pub fn write_run(&self, first: PieceIndex, pieces: &[&[u8]]) -> Result<()> {
        let g = self.layout.geometry();
        // The aligned whole pieces at the head of the run (a short last piece ends it).
        let head = pieces
            .iter()
            .enumerate()
            .take_while(|(k, d)| {
                d.len() % DIRECT_ALIGN == 0
                    && d.as_ptr().align_offset(DIRECT_ALIGN) == 0
                    && g.piece(first.get() + *k as u32)
                        .is_some_and(|p| g.piece_len(p) as usize == d.len())
            })
            .count();
        let head = pieces.get(..head).unwrap_or_default();
        let head_len: usize = head.iter().map(|d| d.len()).sum();
        let mut spans = self.layout.spans(g.piece_offset(first), head_len);
        let one_file = match (spans.next(), spans.next()) {
            (Some(s), None) if s.len == head_len && !self.is_pad(&s) => Some(s),
            _ => None,
        };
        let mut done = 0;
        if let Some(s) =
            one_file.filter(|s| head.len() > 1 && s.file_offset % DIRECT_ALIGN as u64 == 0)
        {
            done = self.write_direct_vectored(s.file, head, s.file_offset)?;
        }
        // What the vectored write did not cover (all of it, when it was not tried), piece by
        // piece from the first byte not written.
        let mut skip = done;
        for (k, d) in pieces.iter().enumerate() {
            let p = g.piece(first.get() + k as u32).ok_or(StorageError::Range {
                piece: first.get() + k as u32,
                begin: 0,
                len: d.len(),
                piece_len: 0,
            })?;
            if skip >= d.len() {
                skip -= d.len();
                continue;
            }
            if skip == 0 {
                self.write_piece(p, d)?;
            } else {
                self.write(p, skip as u32, d.get(skip..).unwrap_or_default())?;
                skip = 0;
            }
        }
        Ok(())
    }

    /// One `pwritev` of aligned `bufs` to file `idx` at aligned `at`, through the direct handle;
    /// returns the bytes written (0 when direct writes are off or refused).
    fn write_direct_vectored(&self, idx: usize, bufs: &[&[u8]], at: u64) -> Result<usize> {
        if !self.direct.load(Ordering::Relaxed) {
            return Ok(0);
        }
        let Some(file) = self.direct_handle(idx)? else {
            return Ok(0);
        };
        if let Some(d) = self.dirty.get(idx) {
            d.store(true, Ordering::Release);
        }
        let slices: Vec<io::IoSlice<'_>> = bufs.iter().map(|b| io::IoSlice::new(b)).collect();
        let started = Instant::now();
        match rustix::io::pwritev(&*file, &slices, at) {
            Ok(n) => {
                self.judge_direct(slow_write(n, started.elapsed()));
                Ok(n)
            }
            Err(e) if e == rustix::io::Errno::INVAL => Ok(self.stop_direct()),
            // Interrupted before writing anything: the caller writes the run piece by piece.
            Err(e) if e == rustix::io::Errno::INTR => Ok(0),
            Err(e) => Err(StorageError::io(
                Op::Write,
                self.display_path(idx),
                e.into(),
            )),
        }
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
        self.fill_spans(offset, buf, |idx, chunk, at| {
            let file = self.handle(idx)?;
            file.read_exact_at(chunk, at)
                .map_err(|e| StorageError::io(Op::Read, self.display_path(idx), e))?;
            Ok(true)
        })
        .map(|_| ())
    }

    /// Fills `buf` with the torrent's bytes from `offset`: padding with zeros, every file span
    /// through `each(file, chunk, file_offset)`, which may decline (`false`, returned at once).
    fn fill_spans(
        &self,
        offset: u64,
        buf: &mut [u8],
        mut each: impl FnMut(usize, &mut [u8], u64) -> Result<bool>,
    ) -> Result<bool> {
        for s in self.layout.spans(offset, buf.len()) {
            let pad = self.is_pad(&s);
            let Some(chunk) = buf.get_mut(s.buf_offset..s.buf_offset + s.len) else {
                continue;
            };
            if pad {
                chunk.fill(0);
            } else if !each(s.file, chunk, s.file_offset)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// [`read`](Self::read) from the page cache only, without ever waiting for the disk: `false`
    /// (with `buf` in an unspecified state) as soon as a part of it is not cached, its file is
    /// not open yet, or the kernel cannot tell (`preadv2` with `RWF_NOWAIT`); the caller then
    /// reads it with [`read`](Self::read) off the async threads, which also reports any error.
    /// Lets a seeder serve a popular file's blocks without a hop to a blocking thread.
    pub fn read_cached(&self, p: PieceIndex, begin: u32, buf: &mut [u8]) -> bool {
        let Ok(offset) = self.range(p, begin, buf.len()) else {
            return false;
        };
        let cached = self.fill_spans(offset, buf, |idx, chunk, from| {
            let Some(file) = self.handles.get((self.owner, idx)) else {
                return Ok(false);
            };
            let mut at = 0;
            while let Some(rest) = chunk.get_mut(at..).filter(|r| !r.is_empty()) {
                let mut iov = [io::IoSliceMut::new(rest)];
                let flags = rustix::io::ReadWriteFlags::NOWAIT;
                match rustix::io::preadv2(&*file, &mut iov, from + at as u64, flags) {
                    Ok(n) if n > 0 => at += n,
                    // End of file (a short file), not cached, not supported, interrupted, or
                    // an error: the blocking read decides.
                    _ => return Ok(false),
                }
            }
            Ok(true)
        });
        cached.unwrap_or(false)
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
        self.handles.release(self.direct_owner);
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

    /// One unpadded file spec per (name, length).
    fn file_specs(files: &[(&str, u64)]) -> Vec<FileSpec> {
        files
            .iter()
            .map(|(n, l)| FileSpec {
                path: vec![(*n).into()],
                length: *l,
                pad: false,
            })
            .collect()
    }

    #[test]
    fn cached_reads_match_reads_across_files_and_decline_what_they_cannot_serve() {
        let dir = tempfile::tempdir().unwrap();
        // Two files; piece 1 straddles the boundary.
        let files = [("a", 20_000u64), ("b", 12_768)];
        let specs = file_specs(&files);
        let layout = Layout::new(16384, specs, vec![[0; 20]; 2]).unwrap();
        let s = Storage::new(layout, dir.path(), OpenOptions::default()).unwrap();
        let g = *s.layout().geometry();
        let (p0, p1) = (g.piece(0).unwrap(), g.piece(1).unwrap());
        let mut scratch = vec![0u8; 1000];
        // Nothing opened yet: declined, not opened on this thread.
        assert!(!s.read_cached(p0, 0, &mut scratch));
        let data: Vec<u8> = (0..32_768u32).map(|i| (i % 253) as u8).collect();
        s.write_piece(p0, &data[..16384]).unwrap();
        s.write(p1, 0, &data[16384..16384 + 8000]).unwrap();
        s.flush().unwrap();
        // Written just now, so in the page cache: the same bytes as a read, across the file
        // boundary (piece 1 starts in a and ends in b).
        let mut want = vec![0u8; 8000];
        let mut got = vec![7u8; 8000];
        s.read(p1, 0, &mut want).unwrap();
        if !s.read_cached(p1, 0, &mut got) {
            eprintln!(
                "SKIPPED the cached-read comparison: {} declines preadv2(RWF_NOWAIT) even for \
                 data just written (every upload then takes the blocking path)",
                dir.path().display()
            );
            return;
        }
        assert_eq!(got, want);
        assert_eq!(got, data[16384..16384 + 8000]);
        let mut whole = vec![0u8; 16384];
        assert!(s.read_cached(p0, 0, &mut whole));
        assert_eq!(whole, data[..16384]);
        // Past the end of b once something shortened it: declined; the blocking read reports
        // it.
        fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("b"))
            .unwrap()
            .set_len(4000)
            .unwrap();
        let mut tail = vec![0u8; 1000];
        assert!(!s.read_cached(p1, 15_000, &mut tail));
        assert!(s.read(p1, 15_000, &mut tail).unwrap_err().is_absent());
        // Out of range: declined.
        assert!(!s.read_cached(p1, 16_000, &mut tail));
    }

    /// `len` bytes of `fill` at a 4 KiB-aligned address: the buffer (kept alive) and the offset.
    #[test]
    fn runs_are_written_as_one_where_they_can_be_and_piece_by_piece_where_not() {
        let dir = tempfile::tempdir().unwrap();
        // Files a (5 pieces of 16 KiB) and b (2 pieces and 1,000 bytes), 8 pieces in all,
        // preallocated. Runs: 0..3 inside a (one vectored write), 3..6 across the boundary
        // (piece by piece), 6..8 ending in the short last piece (only piece 6 is aligned).
        let files = [("a", 5 * 16384), ("b", 2 * 16384 + 1000)];
        let specs = file_specs(&files);
        let opts = OpenOptions {
            direct_writes: true,
            preallocate: true,
            ..OpenOptions::default()
        };
        let layout = Layout::new(16384, specs, vec![[0; 20]; 8]).unwrap();
        let s = Storage::new(layout, dir.path(), opts).unwrap();
        for (n, l) in files {
            assert_eq!(fs::metadata(dir.path().join(n)).unwrap().len(), l);
        }
        let total = 7 * 16384 + 1000;
        let want: Vec<u8> = (0..total).map(|i| (i * 13 % 251) as u8).collect();
        let g = *s.layout().geometry();
        let bufs: Vec<(Vec<u8>, usize, usize)> = g
            .pieces()
            .map(|p| {
                let off = g.piece_offset(p) as usize;
                let len = g.piece_len(p) as usize;
                let (b, at) = aligned(len, |i| want[off + i]);
                (b, at, len)
            })
            .collect();
        let slices: Vec<&[u8]> = bufs.iter().map(|(b, at, l)| &b[*at..at + l]).collect();
        for (first, end) in [(0, 3), (3, 6), (6, 8)] {
            s.write_run(g.piece(first).unwrap(), &slices[first as usize..end])
                .unwrap();
        }
        let mut got = fs::read(dir.path().join("a")).unwrap();
        got.extend(fs::read(dir.path().join("b")).unwrap());
        assert_eq!(got, want);
        if takes_o_direct(dir.path()) {
            assert!(s.writes_in_parallel(), "preallocated, and taking O_DIRECT");
            // One vectored write (0..3), three direct pieces (3 and 4 in a, 5 in b; the
            // boundary falls between pieces) and piece 6; piece 7's 1,000 bytes have no
            // aligned head and go through the page cache.
            assert_eq!(s.direct_count.load(Ordering::Relaxed), 1 + 3 + 1);
        } else {
            eprintln!(
                "note: {} refuses O_DIRECT; the writes went through the page cache",
                dir.path().display()
            );
        }
        // A piece of the wrong length is refused, not written short.
        assert!(s.write_run(g.piece(7).unwrap(), &[&want[..100]]).is_err());
    }

    fn aligned(len: usize, fill: impl Fn(usize) -> u8) -> (Vec<u8>, usize) {
        let mut raw = vec![0u8; len + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN);
        assert!(start < DIRECT_ALIGN);
        for (i, b) in raw[start..start + len].iter_mut().enumerate() {
            *b = fill(i);
        }
        (raw, start)
    }

    fn direct(layout: Layout, dir: &Path) -> Storage {
        let opts = OpenOptions {
            direct_writes: true,
            ..OpenOptions::default()
        };
        Storage::new(layout, dir, opts).unwrap()
    }

    /// Whether `dir`'s file system takes `O_DIRECT` at all (tmpfs before Linux 6.6 does not).
    fn takes_o_direct(dir: &Path) -> bool {
        use std::os::unix::fs::OpenOptionsExt;
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(libc::O_DIRECT)
            .open(dir.join("probe"))
            .is_ok()
    }

    #[test]
    fn direct_writes_land_whole_pieces_and_short_tails() {
        let dir = tempfile::tempdir().unwrap();
        // Three pieces of 16 KiB, the last 7,232 bytes: 4 KiB direct, the 3,136-byte tail not.
        let len = 2 * 16384 + 7232;
        let spec = FileSpec {
            path: vec!["f".into()],
            length: len as u64,
            pad: false,
        };
        let s = direct(
            Layout::new(16384, vec![spec], vec![[0; 20]; 3]).unwrap(),
            dir.path(),
        );
        assert!(s.writes_direct());
        let want: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let g = *s.layout().geometry();
        for p in g.pieces() {
            let off = g.piece_offset(p) as usize;
            let plen = g.piece_len(p) as usize;
            let (buf, at) = aligned(plen, |i| want[off + i]);
            s.write_piece(p, &buf[at..at + plen]).unwrap();
        }
        // A block at an unaligned offset, from an unaligned buffer: through the page cache.
        let p1 = g.piece(1).unwrap();
        let block: Vec<u8> = (0..1000).map(|i| want[16384 + 100 + i]).collect();
        s.write(p1, 100, &block).unwrap();
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), want);
        let mut back = vec![0u8; 7232];
        s.read_piece(g.piece(2).unwrap(), &mut back).unwrap();
        assert_eq!(back, want[2 * 16384..]);
        if takes_o_direct(dir.path()) {
            assert!(
                s.writes_direct(),
                "direct writes turned off on a file system that takes them"
            );
            // Both whole pieces and the aligned head of the last went around the page cache.
            assert_eq!(s.direct_count.load(Ordering::Relaxed), 3);
        } else {
            eprintln!(
                "note: {} refuses O_DIRECT; the writes went through the page cache",
                dir.path().display()
            );
            assert!(!s.writes_direct());
        }
    }

    #[test]
    fn direct_writes_split_at_unaligned_file_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let files = [("a", 5000u64), ("b", 30000), ("c", 4096), ("d", 9000)];
        let specs = files
            .iter()
            .map(|&(n, l)| FileSpec {
                path: vec![n.into()],
                length: l,
                pad: false,
            })
            .collect();
        let total: usize = files.iter().map(|f| f.1 as usize).sum();
        let s = direct(
            Layout::new(16384, specs, vec![[0; 20]; 3]).unwrap(),
            dir.path(),
        );
        let want: Vec<u8> = (0..total).map(|i| (i * 13 % 253) as u8).collect();
        let g = *s.layout().geometry();
        let mut order: Vec<_> = g.pieces().collect();
        order.reverse();
        for p in order {
            let off = g.piece_offset(p) as usize;
            let plen = g.piece_len(p) as usize;
            let (buf, at) = aligned(plen, |i| want[off + i]);
            s.write_piece(p, &buf[at..at + plen]).unwrap();
        }
        let mut off = 0;
        for (name, l) in files {
            let got = fs::read(dir.path().join(name)).unwrap();
            assert_eq!(got, want[off..off + l as usize], "file {name}");
            off += l as usize;
        }
    }

    #[test]
    fn slow_writes_are_told_from_fast_ones() {
        let ms = Duration::from_millis;
        assert!(!slow_write(256 << 10, ms(1)));
        assert!(slow_write(256 << 10, ms(10)));
        assert!(!slow_write(4 << 20, ms(12)));
        assert!(slow_write(4 << 20, ms(30)));
    }

    #[test]
    fn a_window_of_mostly_slow_writes_turns_direct_writes_off() {
        let dir = tempfile::tempdir().unwrap();
        let spec = FileSpec {
            path: vec!["f".into()],
            length: 4096,
            pad: false,
        };
        let s = direct(
            Layout::new(4096, vec![spec], vec![[0; 20]]).unwrap(),
            dir.path(),
        );
        // Exactly half slow: kept.
        for i in 0..DIRECT_WINDOW {
            s.judge_direct(i % 2 == 0);
        }
        assert!(s.writes_direct());
        // One more than half: off, and it stays off.
        for i in 0..DIRECT_WINDOW {
            s.judge_direct(i <= DIRECT_SLOW_MAX);
        }
        assert!(!s.writes_direct());
        let (buf, at) = aligned(4096, |i| i as u8);
        s.write_piece(s.layout().geometry().piece(0).unwrap(), &buf[at..at + 4096])
            .unwrap();
        assert!(!s.writes_direct());
        assert_eq!(fs::read(dir.path().join("f")).unwrap(), buf[at..at + 4096]);
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
