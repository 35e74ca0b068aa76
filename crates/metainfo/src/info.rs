//! The `info` dictionary: name, piece length and hashes, files, private flag. Its SHA-1, taken
//! over the exact bytes as they stand in the .torrent, is the torrent's identity.
//!
//! Piece length policy: any multiple of 16 KiB up to 64 MiB is accepted. That covers every
//! power of two >= 16 KiB (what libtorrent and we create) and the non-power-of-two multiples of
//! 16 KiB some old torrents use; smaller or unaligned piece lengths are refused, because every
//! piece must split into whole 16 KiB blocks (only the very last block of the torrent is short).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use bencode::Value;
use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::error::{MetainfoError, Problem};
use crate::fields::Dict;
use crate::files::{FileEntry, Spans};
use crate::geometry::{
    BLOCK_SIZE, Geometry, GeometryError, MAX_PIECE_LENGTH, MAX_PIECES, PieceIndex,
};
use crate::hash::InfoHash;
use crate::path::{check_components, join_checked, sanitize_component};
use crate::pieces::{PieceHashes, shared_slice};
use crate::stored::StoredBytes;

/// Largest .torrent (or bare info dictionary) accepted, in bytes.
pub const MAX_TORRENT_BYTES: usize = 64 << 20;
/// Most files accepted in one torrent.
pub const MAX_FILES: usize = 1_000_000;

/// Decoder limits for torrents: the size cap, depth 32 (a torrent needs 5), and 16 Mi values
/// (enough for [`MAX_FILES`] files with a few path components each). The value tree costs
/// about 32 bytes per value, so hostile input is held to roughly 512 MiB of transient memory.
pub(crate) fn limits() -> bencode::Limits {
    bencode::Limits {
        max_len: MAX_TORRENT_BYTES,
        max_depth: 32,
        max_items: 16 << 20,
    }
}

/// A parsed and checked `info` dictionary.
///
/// It keeps the dictionary's bytes once, shared: the piece hashes are a view into them, and
/// cloning an `Info` (or its [`raw_info`](Info::raw_info) or [`pieces`](Info::pieces)) copies
/// neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Info {
    name: String,
    piece_length: u32,
    pieces: PieceHashes,
    private: bool,
    source: Option<String>,
    files: Vec<FileEntry>,
    multi_file: bool,
    geometry: Geometry,
    info_hash: InfoHash,
    raw: Bytes,
}

impl fmt::Debug for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Info")
            .field("name", &self.name)
            .field("info_hash", &self.info_hash)
            .field("piece_length", &self.piece_length)
            .field("pieces", &self.pieces.len())
            .field("files", &self.files.len())
            .field("total_length", &self.geometry.total_len())
            .field("private", &self.private)
            .finish_non_exhaustive()
    }
}

impl Info {
    /// Parses a bare bencoded info dictionary (e.g. metadata received from peers, BEP 9); the
    /// info-hash is the SHA-1 of exactly these bytes (compare it with the hash you asked for).
    pub fn from_bytes(raw: &[u8]) -> Result<Info, MetainfoError> {
        check_size(raw)?;
        Info::from_shared(Bytes::copy_from_slice(raw))
    }

    /// Like [`from_bytes`](Info::from_bytes), but keeps `raw` itself (no copy): the result
    /// shares its bytes.
    pub fn from_shared(raw: Bytes) -> Result<Info, MetainfoError> {
        check_size(&raw)?;
        let value =
            bencode::decode_with(&raw, &limits()).map_err(|error| MetainfoError::Bencode {
                field: "info",
                error,
            })?;
        let info_hash = InfoHash(Sha1::digest(&raw).into());
        parse(&value, &raw, info_hash)
    }

    /// The torrent's name: the file name (single-file) or top directory (multi-file); checked.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The nominal piece length in bytes.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }
    /// The SHA-1 of every piece, in order (a view into [`raw_info`](Info::raw_info); clone it
    /// to share the hashes without copying them).
    pub fn pieces(&self) -> &PieceHashes {
        &self.pieces
    }
    /// The SHA-1 of piece `p` (`None` only for an index from another torrent's geometry).
    pub fn piece_hash(&self, p: PieceIndex) -> Option<[u8; 20]> {
        self.pieces.get(p.idx())
    }
    /// BEP 27 private flag: no DHT, PEX or local discovery for this torrent.
    pub fn is_private(&self) -> bool {
        self.private
    }
    /// The optional `source` tag some private trackers add (part of the info-hash).
    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
    /// All files in torrent order, padding files included.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }
    /// True for a multi-file torrent (`files` list), false for a single-file one (`length`).
    pub fn is_multi_file(&self) -> bool {
        self.multi_file
    }
    /// Sum of all file lengths (padding included).
    pub fn total_length(&self) -> u64 {
        self.geometry.total_len()
    }
    /// How the torrent divides into pieces and blocks.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }
    /// SHA-1 of the raw info dictionary.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }
    /// The info dictionary's bytes exactly as in the .torrent (for BEP 9 metadata exchange);
    /// clone it to share them without copying.
    pub fn raw_info(&self) -> &Bytes {
        &self.raw
    }

    /// The info dictionary written to `file` (which should be empty, and normally unlinked so
    /// that nobody else can change it), and its piece hashes, both served from that file from
    /// now on: what a torrent holds for its whole life can then live outside memory. The
    /// `Info` itself keeps its bytes; drop it to free them.
    pub fn store_in(&self, file: std::fs::File) -> std::io::Result<(StoredBytes, PieceHashes)> {
        let stored = StoredBytes::to_file(&self.raw, file)?;
        let hashes = self
            .pieces
            .rebased(stored.clone())
            .ok_or_else(|| std::io::Error::other("piece hashes outside the stored bytes"))?;
        Ok((stored, hashes))
    }

    /// File spans covering the torrent bytes `[offset, offset + len)` (clipped to the total).
    pub fn spans(&self, offset: u64, len: u64) -> Spans<'_> {
        Spans::new(&self.files, offset, len)
    }

    /// File spans covering piece `p`.
    pub fn file_spans(&self, p: PieceIndex) -> Spans<'_> {
        let len = u64::from(self.geometry.piece_len(p));
        self.spans(self.geometry.piece_offset(p), len)
    }

    /// Where `file` goes under `out_dir`: only checked, single, normal components are appended,
    /// so the result is always inside `out_dir`.
    pub fn safe_join(&self, out_dir: &Path, file: &FileEntry) -> PathBuf {
        join_checked(out_dir, &file.path)
    }
}

/// Refuses input over [`MAX_TORRENT_BYTES`].
pub(crate) fn check_size(raw: &[u8]) -> Result<(), MetainfoError> {
    if raw.len() > MAX_TORRENT_BYTES {
        return Err(MetainfoError::TooLarge {
            len: raw.len(),
            max: MAX_TORRENT_BYTES,
        });
    }
    Ok(())
}

/// Reads the name, preferring a valid `name.utf-8` as libtorrent does.
fn parse_name(d: &Dict<'_, '_>) -> Result<String, MetainfoError> {
    let raw = match d.get("name.utf-8").and_then(Value::as_str) {
        Some(s) => s.as_bytes(),
        None => d.bytes("name")?,
    };
    let name = sanitize_component(&d.field("name"), raw)?;
    Ok(name)
}

fn parse_piece_length(d: &Dict<'_, '_>) -> Result<u32, MetainfoError> {
    let field = d.field("piece length");
    let n = d.int("piece length")?;
    if n <= 0 {
        return Err(MetainfoError::invalid(
            field,
            format!("{n} is not positive"),
        ));
    }
    if n % i64::from(BLOCK_SIZE) != 0 {
        return Err(MetainfoError::invalid(
            field,
            format!("{n} is not a multiple of {BLOCK_SIZE} (16 KiB)"),
        ));
    }
    if n as u64 > MAX_PIECE_LENGTH {
        return Err(MetainfoError::invalid(
            field,
            format!("{n} is over the {MAX_PIECE_LENGTH}-byte limit"),
        ));
    }
    Ok(n as u32)
}

/// The `pieces` string as a view into `whole`, the bytes `d` was decoded from.
fn parse_pieces(d: &Dict<'_, '_>, whole: &Bytes) -> Result<PieceHashes, MetainfoError> {
    let raw = d.bytes("pieces")?;
    if raw.len() % 20 != 0 {
        return Err(MetainfoError::invalid(
            d.field("pieces"),
            format!("length {} is not a multiple of 20", raw.len()),
        ));
    }
    // A decoded byte string borrows from the input, so this always finds it. The hashes
    // view the whole dictionary from their offset on, so that a copy of the dictionary
    // elsewhere (`Info::store_in`) holds them at the same place.
    shared_slice(whole, raw)
        .and_then(|part| {
            let at = part.as_ptr().addr().checked_sub(whole.as_ptr().addr())?;
            PieceHashes::within(StoredBytes::from(whole.clone()), at, raw.len() / 20)
        })
        .ok_or_else(|| MetainfoError::invalid(d.field("pieces"), "not inside the info bytes"))
}

fn parse_length(d: &Dict<'_, '_>) -> Result<u64, MetainfoError> {
    let n = d.int("length")?;
    u64::try_from(n)
        .map_err(|_| MetainfoError::invalid(d.field("length"), format!("{n} is negative")))
}

/// Reads a file's path components, preferring a valid `path.utf-8` list.
fn parse_path(d: &Dict<'_, '_>, name: &str) -> Result<Vec<String>, MetainfoError> {
    let field = d.field("path");
    let utf8 = d
        .get("path.utf-8")
        .and_then(Value::as_list)
        .filter(|l| !l.is_empty() && l.iter().all(|c| c.as_str().is_some()));
    let list = match utf8 {
        Some(l) => l,
        None => d.list("path")?,
    };
    if list.is_empty() {
        check_components(&field, &[])?;
    }
    let mut out = Vec::with_capacity(list.len() + 1);
    out.push(name.to_owned());
    for (j, c) in list.iter().enumerate() {
        let raw = c.as_bytes().ok_or_else(|| {
            MetainfoError::field(
                format!("{field}[{j}]"),
                Problem::WrongType {
                    expected: "byte string",
                    found: c.kind_name(),
                },
            )
        })?;
        out.push(sanitize_component(&field, raw)?);
    }
    check_components(&field, &out)?;
    Ok(out)
}

fn parse_files(d: &Dict<'_, '_>, name: &str) -> Result<Vec<FileEntry>, MetainfoError> {
    let list = d.list("files")?;
    let field = d.field("files");
    if list.is_empty() {
        return Err(MetainfoError::invalid(field, "empty"));
    }
    if list.len() > MAX_FILES {
        return Err(MetainfoError::invalid(
            field,
            format!("{} files, over the limit of {MAX_FILES}", list.len()),
        ));
    }
    let mut files = Vec::with_capacity(list.len());
    let mut offset: u64 = 0;
    for (i, v) in list.iter().enumerate() {
        let f = Dict::new(format!("{field}[{i}]"), v)?;
        let length = parse_length(&f)?;
        let path = parse_path(&f, name)?;
        let pad = f
            .get("attr")
            .and_then(Value::as_bytes)
            .is_some_and(|a| a.contains(&b'p'));
        files.push(FileEntry {
            path,
            length,
            offset,
            pad,
        });
        offset = offset
            .checked_add(length)
            .ok_or_else(|| MetainfoError::invalid(f.field("length"), "total length overflows"))?;
    }
    check_collisions(&field, &files)?;
    Ok(files)
}

/// Refuses two real files with the same path, or a file whose path is also a directory of
/// another (padding files are never created, so they are exempt).
fn check_collisions(field: &str, files: &[FileEntry]) -> Result<(), MetainfoError> {
    let mut seen: HashMap<&[String], usize> = HashMap::with_capacity(files.len());
    for (i, f) in files.iter().enumerate().filter(|(_, f)| !f.pad) {
        if let Some(j) = seen.insert(&f.path, i) {
            return Err(MetainfoError::invalid(
                format!("{field}[{i}].path"),
                format!("same path as {field}[{j}]"),
            ));
        }
    }
    for (i, f) in files.iter().enumerate().filter(|(_, f)| !f.pad) {
        for k in 1..f.path.len() {
            if let Some(j) = f.path.get(..k).and_then(|p| seen.get(p)) {
                return Err(MetainfoError::invalid(
                    format!("{field}[{i}].path"),
                    format!("its directory is the file {field}[{j}]"),
                ));
            }
        }
    }
    Ok(())
}

/// Builds an [`Info`] from the dictionary `value` decoded from exactly `raw`.
fn parse(value: &Value<'_>, raw: &Bytes, info_hash: InfoHash) -> Result<Info, MetainfoError> {
    let d = Dict::new("info", value)?;
    d.unique_keys()?;
    let name = parse_name(&d)?;
    let piece_length = parse_piece_length(&d)?;
    let pieces = parse_pieces(&d, raw)?;
    let private = d.lenient_int("private").is_some_and(|n| n != 0);
    let source = d.lenient_str("source");

    let (files, multi_file) = match (d.get("files"), d.get("length")) {
        (Some(_), Some(_)) => {
            return Err(MetainfoError::invalid(
                "info",
                "has both length (single file) and files (multi-file)",
            ));
        }
        (Some(_), None) => (parse_files(&d, &name)?, true),
        (None, _) => {
            let length = parse_length(&d)?;
            let file = FileEntry {
                path: vec![name.clone()],
                length,
                offset: 0,
                pad: false,
            };
            (vec![file], false)
        }
    };

    let total_len = files.last().map_or(0, FileEntry::end);
    let geometry = Geometry::new(total_len, u64::from(piece_length)).map_err(|e| match e {
        GeometryError::Empty => MetainfoError::invalid("info", "total length is zero"),
        GeometryError::PieceCount(n) => MetainfoError::invalid(
            "info",
            format!("{n} pieces, over the limit of {MAX_PIECES}"),
        ),
        GeometryError::PieceLength(n) => {
            MetainfoError::invalid(d.field("piece length"), format!("{n} is out of range"))
        }
    })?;
    let expected = u64::from(geometry.piece_count());
    if pieces.len() as u64 != expected {
        return Err(MetainfoError::PieceCount {
            pieces: pieces.len() as u64,
            expected,
            total_len,
            piece_len: u64::from(piece_length),
        });
    }
    Ok(Info {
        name,
        piece_length,
        pieces,
        private,
        source,
        files,
        multi_file,
        geometry,
        info_hash,
        raw: raw.clone(),
    })
}
