//! SHA-1 of every piece of a list of files laid end to end, on all cores: threads take batches
//! of consecutive pieces from a shared counter and stream them through positioned reads
//! (`read_at`, so threads never share a file offset) into a cache-sized buffer. Pieces straddle
//! file boundaries. Full pieces are hashed several at a time (`sha1-lanes`: 16 SHA-1 streams in
//! AVX-512 registers, or two interleaved on the SHA extensions, whichever the CPU has).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha1::{Digest, Sha1};
use sha1_lanes::Sha1Lanes;

use crate::create::CreateError;

/// Target size of one batch of work handed to a thread: several pieces, at least one.
const BATCH_BYTES: u64 = 1 << 20;
/// Size of one read: small enough to stay in the CPU's cache between the copy and the hash.
const CHUNK_BYTES: u64 = 64 << 10;

/// The hashes of a batch of consecutive pieces, with the index of the first.
type Batch = (u64, Vec<[u8; 20]>);

/// A file to hash: where it is, its length, and its offset in the torrent's byte stream.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub path: PathBuf,
    pub len: u64,
    pub offset: u64,
}

/// Hashes all pieces of `files` (total `total` bytes) in pieces of `piece_len` bytes, on
/// `threads` threads; `progress` receives the number of bytes hashed after each batch.
///
/// Work is handed out in batches of consecutive pieces (about [`BATCH_BYTES`] each) from a
/// shared counter, so a thread that gets less CPU (a busy machine) does not hold up the rest.
pub(crate) fn hash_pieces(
    files: &[Source],
    total: u64,
    piece_len: u64,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<[u8; 20]>, CreateError> {
    let pieces = total.div_ceil(piece_len);
    let lanes = sha1_lanes::best_lanes();
    // A batch is at least one group of pieces hashed together.
    let per_batch = (BATCH_BYTES / piece_len).max(lanes as u64);
    let batches = pieces.div_ceil(per_batch);
    let threads = (threads.max(1) as u64).min(batches.max(1));
    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let results: Vec<Result<Vec<Batch>, CreateError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (next, failed) = (&next, &failed);
                s.spawn(move || {
                    let mut r = RangeHasher::new(files, total, piece_len, lanes);
                    let mut done = Vec::new();
                    loop {
                        let b = next.fetch_add(1, Ordering::Relaxed);
                        if b >= batches || failed.load(Ordering::Relaxed) {
                            return Ok(done);
                        }
                        let first = b * per_batch;
                        let last = (first + per_batch).min(pieces);
                        match r.hash(first, last, progress) {
                            Ok(h) => done.push((first, h)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or(Err(CreateError::Internal("a hashing thread panicked")))
            })
            .collect()
    });
    let mut batches_done = Vec::with_capacity(batches as usize);
    for r in results {
        batches_done.extend(r?);
    }
    batches_done.sort_unstable_by_key(|(first, _)| *first);
    let out: Vec<[u8; 20]> = batches_done.into_iter().flat_map(|(_, h)| h).collect();
    if out.len() as u64 != pieces {
        return Err(CreateError::Internal("a batch of pieces went missing"));
    }
    Ok(out)
}

/// One thread's state: a read buffer and the file currently open.
struct RangeHasher<'f> {
    files: &'f [Source],
    total: u64,
    piece_len: u64,
    open: Option<(usize, File)>,
    buf: Vec<u8>,
    /// Full pieces hashed together.
    lanes: usize,
}

impl<'f> RangeHasher<'f> {
    fn new(files: &'f [Source], total: u64, piece_len: u64, lanes: usize) -> Self {
        RangeHasher {
            files,
            total,
            piece_len,
            open: None,
            buf: Vec::new(),
            lanes,
        }
    }

    /// Hashes pieces `first..last`, streaming each piece through a small buffer that stays in
    /// the CPU cache (copying from the page cache into a large buffer and reading it back for
    /// hashing costs more memory traffic than the hashing saves in system calls). Full pieces
    /// go `lanes` at a time through [`Sha1Lanes`] (SIMD lanes: several SHA-1 streams at once).
    fn hash(
        &mut self,
        first: u64,
        last: u64,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Vec<[u8; 20]>, CreateError> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(self.lanes * CHUNK_BYTES as usize, 0);
        let mut out = Vec::with_capacity((last - first) as usize);
        let full = (self.total / self.piece_len).min(last);
        let mut piece = first;
        let result = loop {
            let group = full.saturating_sub(piece).min(self.lanes as u64);
            let step = if group >= 2 {
                self.hash_group(piece, group as usize, &mut buf)
                    .map(|d| out.extend(d))
            } else if piece < last {
                let start = piece * self.piece_len;
                let end = (start + self.piece_len).min(self.total);
                self.hash_one(start, end, &mut buf).map(|d| out.push(d))
            } else {
                break Ok(());
            };
            if let Err(e) = step {
                break Err(e);
            }
            piece += group.max(1);
        };
        self.buf = buf;
        result?;
        progress((last * self.piece_len).min(self.total) - first * self.piece_len);
        Ok(out)
    }

    /// The SHA-1 of the torrent bytes `start..end`.
    fn hash_one(&mut self, start: u64, end: u64, buf: &mut [u8]) -> Result<[u8; 20], CreateError> {
        let mut sha = Sha1::new();
        let mut at = start;
        while at < end {
            let n = (end - at).min(CHUNK_BYTES) as usize;
            let chunk = &mut buf[..n];
            self.read(at, chunk)?;
            sha.update(&*chunk);
            at += n as u64;
        }
        Ok(sha.finalize().into())
    }

    /// The SHA-1s of the `count` full pieces from piece `first` on, hashed together.
    fn hash_group(
        &mut self,
        first: u64,
        count: usize,
        buf: &mut [u8],
    ) -> Result<Vec<[u8; 20]>, CreateError> {
        let mut sha = Sha1Lanes::new(count);
        let mut at = 0;
        while at < self.piece_len {
            let n = (self.piece_len - at).min(CHUNK_BYTES) as usize;
            let chunks = buf.chunks_mut(CHUNK_BYTES as usize).take(count);
            for (i, chunk) in (0u64..).zip(chunks) {
                self.read((first + i) * self.piece_len + at, &mut chunk[..n])?;
            }
            let parts: Vec<&[u8]> = buf
                .chunks(CHUNK_BYTES as usize)
                .take(count)
                .map(|c| &c[..n])
                .collect();
            sha.update(&parts);
            at += n as u64;
        }
        Ok(sha.finalize())
    }

    /// Fills `buf` with the torrent bytes starting at `offset`.
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), CreateError> {
        let mut i = self.files.partition_point(|f| f.offset + f.len <= offset);
        let mut pos = offset;
        let mut filled = 0usize;
        while filled < buf.len() {
            let f = self
                .files
                .get(i)
                .ok_or(CreateError::Internal("read past the last file"))?;
            let in_file = pos - f.offset;
            let want = ((f.len - in_file) as usize).min(buf.len() - filled);
            if want > 0 {
                let file = self.file(i)?;
                let dst = &mut buf[filled..filled + want];
                read_exact_at(file, dst, in_file).map_err(|error| CreateError::Io {
                    path: f.path.clone(),
                    error,
                })?;
                filled += want;
                pos += want as u64;
            }
            i += 1;
        }
        Ok(())
    }

    /// The open handle of file `i`, opening it (and closing the previous one) if needed.
    fn file(&mut self, i: usize) -> Result<&File, CreateError> {
        if self.open.as_ref().is_none_or(|(j, _)| *j != i) {
            let path = &self.files[i].path;
            let f = File::open(path).map_err(|error| CreateError::Io {
                path: path.clone(),
                error,
            })?;
            self.open = Some((i, f));
        }
        match &self.open {
            Some((_, f)) => Ok(f),
            None => Err(CreateError::Internal("no open file")),
        }
    }
}

/// `read_exact_at`, with a clear error when the file is shorter than when it was listed.
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shrank while it was being hashed",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
