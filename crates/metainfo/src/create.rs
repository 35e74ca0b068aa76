//! Creating a torrent from a file or a directory: walk, hash on all cores, encode, re-parse.
//!
//! Walk policy: a directory is walked recursively and every regular file is included, hidden
//! files too; files are ordered by their path components in byte order; empty directories
//! contribute nothing. The path given is followed if it is a symbolic link, but a symbolic link
//! (or socket, FIFO, device) found inside a directory is an error: we neither follow links (no
//! loops, no surprises about what gets shared) nor skip anything silently. Names must be valid
//! UTF-8 and pass the same path checks a downloader applies. Output is deterministic: keys
//! sorted, no creation date unless asked for.

use std::fs;
use std::path::{Path, PathBuf};

use bencode::Value;

use crate::error::MetainfoError;
use crate::geometry::{BLOCK_SIZE, MAX_PIECE_LENGTH};
use crate::hasher::{Source, hash_pieces};
use crate::info::MAX_FILES;
use crate::path::{PathProblem, check_components, component_problem};
use crate::torrent::Metainfo;

/// Default piece length: 256 KiB.
pub const DEFAULT_PIECE_LENGTH: u32 = 256 * 1024;

/// Why a torrent could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// Reading a file or directory failed.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        error: std::io::Error,
    },
    /// The requested piece length is not a power of two between 16 KiB and 64 MiB.
    #[error("piece length {0} is not a power of two between 16 KiB and 64 MiB")]
    PieceLength(u32),
    /// A symbolic link inside the directory.
    #[error("{0}: symbolic links inside the directory are not supported")]
    Symlink(PathBuf),
    /// A socket, FIFO or device.
    #[error("{0}: not a regular file or directory")]
    NotRegular(PathBuf),
    /// A name a downloader would refuse.
    #[error("{path}: name {problem}")]
    BadName {
        /// The file or directory.
        path: PathBuf,
        /// Why its name (or its path below the root) is unusable.
        problem: PathProblem,
    },
    /// A name that is not valid UTF-8.
    #[error("{0}: name is not valid UTF-8")]
    NotUtf8(PathBuf),
    /// More files than a torrent may hold.
    #[error("more than {MAX_FILES} files")]
    TooManyFiles,
    /// No bytes to share.
    #[error("{0}: nothing to share (total size is zero)")]
    Empty(PathBuf),
    /// The encoded torrent did not parse back (e.g. more pieces than allowed).
    #[error(transparent)]
    Metainfo(#[from] MetainfoError),
    /// A bug: an invariant of the hasher did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// What a directory walk found: the torrent's name, total bytes and number of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The torrent's name (the file or directory name).
    pub name: String,
    /// Total bytes to hash.
    pub total_length: u64,
    /// Number of files.
    pub files: usize,
}

/// Builds a .torrent for a file or directory.
#[derive(Debug, Clone)]
pub struct TorrentBuilder {
    root: PathBuf,
    piece_length: u32,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    comment: Option<String>,
    created_by: Option<String>,
    private: bool,
    creation_date: Option<i64>,
    threads: Option<usize>,
}

impl TorrentBuilder {
    /// A builder for the file or directory at `path`, with default settings.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        TorrentBuilder {
            root: path.into(),
            piece_length: DEFAULT_PIECE_LENGTH,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            comment: None,
            created_by: None,
            private: false,
            creation_date: None,
            threads: None,
        }
    }

    /// Piece length in bytes: a power of two >= 16 KiB (checked by `build`).
    pub fn piece_length(mut self, n: u32) -> Self {
        self.piece_length = n;
        self
    }
    /// Tracker tiers; the first tier's first URL also becomes `announce`. An `announce-list`
    /// is written when there is more than one URL. Empty tiers are dropped.
    pub fn trackers(mut self, tiers: Vec<Vec<String>>) -> Self {
        self.trackers = tiers.into_iter().filter(|t| !t.is_empty()).collect();
        self
    }
    /// BEP 19 web seed URLs (`url-list`).
    pub fn web_seeds(mut self, urls: Vec<String>) -> Self {
        self.web_seeds = urls;
        self
    }
    /// A free-text comment.
    pub fn comment(mut self, c: impl Into<String>) -> Self {
        self.comment = Some(c.into());
        self
    }
    /// The `created by` string.
    pub fn created_by(mut self, c: impl Into<String>) -> Self {
        self.created_by = Some(c.into());
        self
    }
    /// BEP 27 private flag.
    pub fn private(mut self, p: bool) -> Self {
        self.private = p;
        self
    }
    /// Creation time in Unix seconds; `None` (the default) omits it, keeping output deterministic.
    pub fn creation_date(mut self, t: Option<i64>) -> Self {
        self.creation_date = t;
        self
    }
    /// Hashing threads (default: the number of CPUs).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n.max(1));
        self
    }

    /// Walks the files without hashing: what `build` would share (for sizing a progress bar).
    pub fn scan(&self) -> Result<Scan, CreateError> {
        let (name, layout) = walk(&self.root)?;
        Ok(Scan {
            name,
            total_length: layout.files.last().map_or(0, |f| f.offset + f.len),
            files: layout.files.len(),
        })
    }

    /// Walks the files, hashes them (`progress` is called with each batch of bytes hashed),
    /// and returns the parsed torrent; `Metainfo::as_bytes()` gives the .torrent to write.
    pub fn build(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<Metainfo, CreateError> {
        let pl = self.piece_length;
        if !pl.is_power_of_two() || pl < BLOCK_SIZE || u64::from(pl) > MAX_PIECE_LENGTH {
            return Err(CreateError::PieceLength(pl));
        }
        let (name, layout) = walk(&self.root)?;
        let total = layout.files.last().map_or(0, |f| f.offset + f.len);
        if total == 0 {
            return Err(CreateError::Empty(self.root.clone()));
        }
        let threads = self.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        let pieces = hash_pieces(&layout.files, total, u64::from(pl), threads, progress)?;
        let bytes = self.encode(&name, &layout, total, &pieces);
        Ok(Metainfo::from_shared(bytes.into())?)
    }

    fn encode(&self, name: &str, layout: &Layout, total: u64, pieces: &[[u8; 20]]) -> Vec<u8> {
        let pieces: Vec<u8> = pieces.concat();
        let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
        let mut info: Vec<(&[u8], Value<'_>)> = vec![
            (b"name", Value::Bytes(name.as_bytes())),
            (b"piece length", int(u64::from(self.piece_length))),
            (b"pieces", Value::Bytes(&pieces)),
        ];
        if self.private {
            info.push((b"private", Value::Int(1)));
        }
        if layout.multi {
            let files = layout
                .files
                .iter()
                .zip(&layout.components)
                .map(|(f, comps)| {
                    let path = comps.iter().map(|c| Value::Bytes(c.as_bytes())).collect();
                    Value::Dict(vec![(b"length", int(f.len)), (b"path", Value::List(path))])
                })
                .collect();
            info.push((b"files", Value::List(files)));
        } else {
            info.push((b"length", int(total)));
        }

        let mut top: Vec<(&[u8], Value<'_>)> = vec![(b"info", Value::Dict(info))];
        let urls: usize = self.trackers.iter().map(Vec::len).sum();
        if let Some(first) = self.trackers.first().and_then(|t| t.first()) {
            top.push((b"announce", Value::Bytes(first.as_bytes())));
        }
        if urls > 1 {
            let tiers = self
                .trackers
                .iter()
                .map(|t| Value::List(t.iter().map(|u| Value::Bytes(u.as_bytes())).collect()))
                .collect();
            top.push((b"announce-list", Value::List(tiers)));
        }
        if !self.web_seeds.is_empty() {
            let seeds = self
                .web_seeds
                .iter()
                .map(|u| Value::Bytes(u.as_bytes()))
                .collect();
            top.push((b"url-list", Value::List(seeds)));
        }
        if let Some(c) = &self.comment {
            top.push((b"comment", Value::Bytes(c.as_bytes())));
        }
        if let Some(c) = &self.created_by {
            top.push((b"created by", Value::Bytes(c.as_bytes())));
        }
        if let Some(t) = self.creation_date {
            top.push((b"creation date", Value::Int(t)));
        }
        Value::Dict(top).to_vec()
    }
}

/// The files found under the root, in torrent order.
struct Layout {
    files: Vec<Source>,
    /// Path components below the torrent's name, per file.
    components: Vec<Vec<String>>,
    multi: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CreateError + '_ {
    move |error| CreateError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// A checked UTF-8 name for the last component of `path`.
fn name_of(path: &Path, raw: &std::ffi::OsStr) -> Result<String, CreateError> {
    let s = raw
        .to_str()
        .ok_or_else(|| CreateError::NotUtf8(path.to_path_buf()))?;
    match component_problem(s) {
        None => Ok(s.to_owned()),
        Some(problem) => Err(CreateError::BadName {
            path: path.to_path_buf(),
            problem,
        }),
    }
}

/// Finds the torrent's name and its files (see the module doc for the policy).
fn walk(root: &Path) -> Result<(String, Layout), CreateError> {
    let meta = fs::metadata(root).map_err(io_err(root))?;
    let canonical = fs::canonicalize(root).map_err(io_err(root))?;
    let raw_name = canonical.file_name().ok_or_else(|| CreateError::BadName {
        path: root.to_path_buf(),
        problem: PathProblem::EmptyComponent,
    })?;
    let name = name_of(root, raw_name)?;
    if meta.is_file() {
        let file = Source {
            path: root.to_path_buf(),
            len: meta.len(),
            offset: 0,
        };
        let layout = Layout {
            files: vec![file],
            components: vec![Vec::new()],
            multi: false,
        };
        return Ok((name, layout));
    }
    if !meta.is_dir() {
        return Err(CreateError::NotRegular(root.to_path_buf()));
    }

    // (components below root, absolute path, length); explicit stack, no recursion.
    let mut found: Vec<(Vec<String>, PathBuf, u64)> = Vec::new();
    let mut dirs: Vec<(Vec<String>, PathBuf)> = vec![(Vec::new(), root.to_path_buf())];
    while let Some((comps, dir)) = dirs.pop() {
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let path = entry.path();
            let ty = entry.file_type().map_err(io_err(&path))?;
            let mut sub = comps.clone();
            sub.push(name_of(&path, &entry.file_name())?);
            let mut full = vec![name.clone()];
            full.extend(sub.iter().cloned());
            if let Err(e) = check_components("", &full) {
                return Err(CreateError::BadName {
                    path,
                    problem: e.problem,
                });
            }
            if ty.is_symlink() {
                return Err(CreateError::Symlink(path));
            } else if ty.is_dir() {
                dirs.push((sub, path));
            } else if ty.is_file() {
                if found.len() >= MAX_FILES {
                    return Err(CreateError::TooManyFiles);
                }
                let len = entry.metadata().map_err(io_err(&path))?.len();
                found.push((sub, path, len));
            } else {
                return Err(CreateError::NotRegular(path));
            }
        }
    }
    found.sort_by(|a, b| {
        let ka = a.0.iter().map(|c| c.as_bytes());
        let kb = b.0.iter().map(|c| c.as_bytes());
        ka.cmp(kb)
    });
    let mut offset = 0;
    let mut files = Vec::with_capacity(found.len());
    let mut components = Vec::with_capacity(found.len());
    for (comps, path, len) in found {
        files.push(Source { path, len, offset });
        components.push(comps);
        offset += len;
    }
    Ok((
        name,
        Layout {
            files,
            components,
            multi: true,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha1::{Digest, Sha1};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Deterministic bytes (xorshift) so tests never depend on real randomness.
    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn expected_pieces(stream: &[u8], pl: usize) -> Vec<[u8; 20]> {
        stream.chunks(pl).map(|c| Sha1::digest(c).into()).collect()
    }

    fn write(path: &Path, bytes: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn single_file_with_short_last_piece() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("movie.bin");
        let bytes = data(3 * 16_384 + 777, 1);
        write(&p, &bytes);
        let hashed = AtomicU64::new(0);
        let m = TorrentBuilder::new(&p)
            .piece_length(16_384)
            .build(&|n| {
                hashed.fetch_add(n, Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(hashed.into_inner(), bytes.len() as u64);
        assert!(!m.info.is_multi_file());
        assert_eq!(m.info.name(), "movie.bin");
        assert_eq!(m.info.files()[0].path, ["movie.bin"]);
        assert_eq!(
            m.info.pieces().to_vec().unwrap(),
            expected_pieces(&bytes, 16_384)
        );
        assert_eq!(m.announce, None);
        assert_eq!(m.creation_date, None);
        // Deterministic: same input, same bytes, whatever the thread count.
        let again = TorrentBuilder::new(&p)
            .piece_length(16_384)
            .threads(3)
            .build(&|_| {})
            .unwrap();
        assert_eq!(again.as_bytes(), m.as_bytes());
        assert_eq!(Metainfo::from_bytes(m.as_bytes()).unwrap(), m);
    }

    #[test]
    fn directory_in_byte_order_with_straddling_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("share");
        let files: [(&str, usize); 6] = [
            ("b/z.bin", 20_000),
            ("a.txt", 5_000),
            ("B.txt", 1),
            ("a/x", 0),
            ("a/c/deep.bin", 40_000),
            (".hidden", 10),
        ];
        for (i, (rel, len)) in files.iter().enumerate() {
            write(&root.join(rel), &data(*len, i as u64 + 7));
        }
        fs::create_dir_all(root.join("empty/dir")).unwrap();
        let m = TorrentBuilder::new(&root)
            .piece_length(16_384)
            .trackers(vec![
                vec!["http://a/announce".into(), "http://b/announce".into()],
                vec![],
                vec!["udp://c:1".into()],
            ])
            .comment("c")
            .created_by("swarm test")
            .private(true)
            .creation_date(Some(1_234))
            .build(&|_| {})
            .unwrap();
        let paths: Vec<String> = m
            .info
            .files()
            .iter()
            .map(|f| f.path[1..].join("/"))
            .collect();
        assert_eq!(
            paths,
            [
                ".hidden",
                "B.txt",
                "a/c/deep.bin",
                "a/x",
                "a.txt",
                "b/z.bin"
            ]
        );
        assert!(m.info.files().iter().all(|f| f.path[0] == "share"));
        let stream: Vec<u8> = paths
            .iter()
            .map(|p| fs::read(root.join(p)).unwrap())
            .collect::<Vec<_>>()
            .concat();
        assert_eq!(m.info.total_length(), stream.len() as u64);
        assert_eq!(
            m.info.pieces().to_vec().unwrap(),
            expected_pieces(&stream, 16_384)
        );
        let scan = TorrentBuilder::new(&root).scan().unwrap();
        assert_eq!(
            scan,
            Scan {
                name: "share".into(),
                total_length: stream.len() as u64,
                files: 6
            }
        );
        assert_eq!(m.announce.as_deref(), Some("http://a/announce"));
        assert_eq!(m.announce_list.len(), 2);
        assert_eq!(m.comment.as_deref(), Some("c"));
        assert_eq!(m.created_by.as_deref(), Some("swarm test"));
        assert_eq!(m.creation_date, Some(1_234));
        assert!(m.info.is_private());
    }

    #[test]
    fn pieces_larger_than_a_read_straddle_files() {
        // 256 KiB pieces are read in several chunks, some of them spanning two files.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        let sizes = [100_000, 300_000, 5, 0, 700_001];
        for (i, len) in sizes.iter().enumerate() {
            write(&root.join(format!("f{i}")), &data(*len, 40 + i as u64));
        }
        let stream: Vec<u8> = (0..sizes.len())
            .flat_map(|i| fs::read(root.join(format!("f{i}"))).unwrap())
            .collect();
        for threads in [1, 2, 5] {
            let m = TorrentBuilder::new(&root)
                .threads(threads)
                .build(&|_| {})
                .unwrap();
            assert_eq!(
                m.info.pieces().to_vec().unwrap(),
                expected_pieces(&stream, 256 * 1024)
            );
        }
    }

    #[test]
    fn one_tracker_gives_announce_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"hello");
        let m = TorrentBuilder::new(&p)
            .trackers(vec![vec!["http://t/announce".into()]])
            .build(&|_| {})
            .unwrap();
        assert_eq!(m.announce.as_deref(), Some("http://t/announce"));
        assert!(m.announce_list.is_empty());
        assert_eq!(m.info.piece_length(), DEFAULT_PIECE_LENGTH);
    }

    #[test]
    fn refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, b"x");
        for bad in [0, 8192, 16_385, 3 * 16_384, 1 << 27] {
            assert!(matches!(
                TorrentBuilder::new(&p).piece_length(bad).build(&|_| {}),
                Err(CreateError::PieceLength(n)) if n == bad
            ));
        }
        let empty = dir.path().join("empty");
        fs::create_dir_all(empty.join("sub")).unwrap();
        fs::write(empty.join("sub/zero"), b"").unwrap();
        assert!(matches!(
            TorrentBuilder::new(&empty).build(&|_| {}),
            Err(CreateError::Empty(_))
        ));
        let missing = TorrentBuilder::new(dir.path().join("nope")).build(&|_| {});
        assert!(matches!(missing, Err(CreateError::Io { .. })));

        let linked = dir.path().join("linked");
        write(&linked.join("real"), b"data");
        std::os::unix::fs::symlink(&p, linked.join("link")).unwrap();
        let e = TorrentBuilder::new(&linked).build(&|_| {}).unwrap_err();
        assert!(
            matches!(e, CreateError::Symlink(ref l) if l.ends_with("link")),
            "{e}"
        );
    }

    #[test]
    fn refuses_names_a_downloader_would_refuse() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        write(&root.join("back\\slash"), b"x");
        let e = TorrentBuilder::new(&root).build(&|_| {}).unwrap_err();
        assert!(
            matches!(
                e,
                CreateError::BadName {
                    problem: PathProblem::Separator,
                    ..
                }
            ),
            "{e}"
        );
    }
}
