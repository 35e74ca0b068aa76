//! Resume data: which pieces we had and what our files looked like, saved atomically.
//!
//! Format (version 1), little-endian, fixed size for a given torrent:
//!
//! ```text
//! magic  "swarmRD\0"  8 bytes
//! version u32         1
//! info-hash           20 bytes
//! piece count u32, file count u32
//! have                ceil(pieces / 8) bytes, wire order, spare bits zero
//! per file            len u64, mtime_ns i128            (24 bytes each)
//! checksum            SHA-1 of everything above          (20 bytes)
//! ```
//!
//! Loading is strict: any mismatch with the torrent, a wrong size, a bad checksum or stray bits
//! is an error, and the caller falls back to a full verify.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use metainfo::{Bitfield, BitfieldError, InfoHash};
use sha1::{Digest, Sha1};

use crate::atomic_file::write_atomic;
use crate::error::Op;
use crate::layout::Layout;
use crate::stamp::FileStamp;

const MAGIC: &[u8; 8] = b"swarmRD\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 20 + 4 + 4;
const STAMP_LEN: usize = 24;
const CHECKSUM_LEN: usize = 20;

/// Largest resume file accepted (a torrent at the piece cap with a million files fits).
pub const MAX_RESUME_LEN: u64 = 32 * 1024 * 1024;

/// What we had of a torrent when we last saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Pieces verified present.
    pub have: Bitfield,
    /// Stamps of every file in [`Layout::files`] order, taken after a flush.
    pub files: Vec<FileStamp>,
}

/// Resume data that cannot be used; the caller verifies everything instead.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// A file operation failed.
    #[error("{op} {}: {err}", path.display())]
    Io {
        /// What was being done.
        op: Op,
        /// The file.
        path: PathBuf,
        /// The OS error (shown in the message, so not chained as a source).
        err: std::io::Error,
    },
    /// The file is not this torrent's resume data size (truncated, padded or over the cap).
    #[error("resume data is {got} bytes, expected {want}")]
    Length {
        /// Bytes found.
        got: u64,
        /// Bytes expected for this torrent.
        want: u64,
    },
    /// Not a resume file.
    #[error("not a resume file (bad magic)")]
    Magic,
    /// A format version we do not know.
    #[error("unknown resume format version {0}")]
    Version(u32),
    /// The checksum does not match: the file is damaged.
    #[error("resume data checksum mismatch")]
    Checksum,
    /// Resume data of another torrent.
    #[error("resume data is for torrent {got}, not {want}")]
    WrongTorrent {
        /// Info-hash in the file.
        got: InfoHash,
        /// Info-hash of the torrent.
        want: InfoHash,
    },
    /// Piece or file count differs from the torrent's.
    #[error("resume data has {got} {what}, the torrent has {want}")]
    Count {
        /// "pieces" or "files".
        what: &'static str,
        /// Count in the file.
        got: u64,
        /// Count in the torrent.
        want: u64,
    },
    /// The have-bitfield is malformed.
    #[error("resume bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
}

/// Size of the encoded resume data for `layout`.
pub fn encoded_len(layout: &Layout) -> u64 {
    (HEADER_LEN + layout.geometry().bitfield_len() + CHECKSUM_LEN) as u64
        + layout.files().len() as u64 * STAMP_LEN as u64
}

/// Splits `n` bytes off the front of `b`.
fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, rest) = b.split_at_checked(n)?;
    *b = rest;
    Some(head)
}

fn take_array<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
    take(b, N).and_then(|h| h.try_into().ok())
}

impl ResumeData {
    /// The binary form described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            HEADER_LEN + self.have.as_bytes().len() + self.files.len() * STAMP_LEN + CHECKSUM_LEN,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(self.info_hash.as_bytes());
        out.extend_from_slice(&self.have.len().to_le_bytes());
        out.extend_from_slice(&(self.files.len() as u32).to_le_bytes());
        out.extend_from_slice(self.have.as_bytes());
        for f in &self.files {
            out.extend_from_slice(&f.len.to_le_bytes());
            out.extend_from_slice(&f.mtime_ns.to_le_bytes());
        }
        let sum = Sha1::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    /// Parses resume data, checking it belongs to torrent `info_hash` laid out as `layout`.
    pub fn decode(bytes: &[u8], info_hash: InfoHash, layout: &Layout) -> Result<Self, ResumeError> {
        let want = encoded_len(layout);
        if bytes.len() as u64 != want {
            return Err(ResumeError::Length {
                got: bytes.len() as u64,
                want,
            });
        }
        let mut b = bytes;
        let short = || ResumeError::Length {
            got: bytes.len() as u64,
            want,
        };
        if take(&mut b, MAGIC.len()) != Some(MAGIC.as_slice()) {
            return Err(ResumeError::Magic);
        }
        let version = u32::from_le_bytes(take_array(&mut b).ok_or_else(short)?);
        if version != VERSION {
            return Err(ResumeError::Version(version));
        }
        let body_len = bytes.len() - CHECKSUM_LEN;
        let (body, sum) = bytes.split_at(body_len);
        if Sha1::digest(body).as_slice() != sum {
            return Err(ResumeError::Checksum);
        }
        let got = InfoHash(take_array(&mut b).ok_or_else(short)?);
        if got != info_hash {
            return Err(ResumeError::WrongTorrent {
                got,
                want: info_hash,
            });
        }
        let pieces = u32::from_le_bytes(take_array(&mut b).ok_or_else(short)?);
        let want_pieces = layout.geometry().piece_count();
        if pieces != want_pieces {
            return Err(ResumeError::Count {
                what: "pieces",
                got: pieces.into(),
                want: want_pieces.into(),
            });
        }
        let files = u32::from_le_bytes(take_array(&mut b).ok_or_else(short)?);
        if files as usize != layout.files().len() {
            return Err(ResumeError::Count {
                what: "files",
                got: files.into(),
                want: layout.files().len() as u64,
            });
        }
        let bf = take(&mut b, layout.geometry().bitfield_len()).ok_or_else(short)?;
        let have = Bitfield::from_bytes(bf, pieces)?;
        let mut stamps = Vec::with_capacity(layout.files().len());
        for _ in 0..files {
            let len = u64::from_le_bytes(take_array(&mut b).ok_or_else(short)?);
            let mtime_ns = i128::from_le_bytes(take_array(&mut b).ok_or_else(short)?);
            stamps.push(FileStamp { len, mtime_ns });
        }
        Ok(ResumeData {
            info_hash: got,
            have,
            files: stamps,
        })
    }

    /// Writes the resume data to `path` with [`write_atomic`]: a crash leaves the old file or the
    /// new one.
    pub fn save_atomic(&self, path: &Path) -> crate::Result<()> {
        write_atomic(path, &self.encode())
    }

    /// Reads and strictly checks resume data saved for torrent `info_hash` laid out as `layout`.
    pub fn load(path: &Path, info_hash: InfoHash, layout: &Layout) -> Result<Self, ResumeError> {
        let io = |op| {
            move |err| ResumeError::Io {
                op,
                path: path.to_path_buf(),
                err,
            }
        };
        let want = encoded_len(layout);
        let f = File::open(path).map_err(io(Op::Open))?;
        let got = f.metadata().map_err(io(Op::Stat))?.len();
        if got != want || got > MAX_RESUME_LEN {
            return Err(ResumeError::Length { got, want });
        }
        let mut bytes = Vec::with_capacity(want as usize);
        f.take(want + 1)
            .read_to_end(&mut bytes)
            .map_err(io(Op::Read))?;
        Self::decode(&bytes, info_hash, layout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::FileSpec;
    use proptest::prelude::*;
    use std::fs;

    fn layout(files: usize, pieces: u32) -> Layout {
        let specs = (0..files)
            .map(|i| FileSpec {
                path: vec![format!("f{i}")],
                length: if i == 0 { u64::from(pieces) * 16 } else { 0 },
                pad: false,
            })
            .collect();
        Layout::new(16, specs, vec![[0; 20]; pieces as usize]).unwrap()
    }

    fn sample(l: &Layout) -> ResumeData {
        let mut have = Bitfield::new(l.geometry().piece_count());
        for p in l.geometry().pieces().step_by(3) {
            have.set(p);
        }
        ResumeData {
            info_hash: InfoHash([9; 20]),
            have,
            files: (0..l.files().len())
                .map(|i| FileStamp {
                    len: i as u64 * 1000,
                    mtime_ns: -(i as i128) * 1_000_000_007,
                })
                .collect(),
        }
    }

    #[test]
    fn save_load_round_trip_and_strict_checks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.resume");
        let l = layout(3, 21);
        let r = sample(&l);
        r.save_atomic(&path).unwrap();
        r.save_atomic(&path).unwrap(); // replaces
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
        assert_eq!(ResumeData::load(&path, r.info_hash, &l).unwrap(), r);

        let err = ResumeData::load(&path, InfoHash([8; 20]), &l).unwrap_err();
        assert!(matches!(err, ResumeError::WrongTorrent { .. }), "{err}");
        let err = ResumeData::load(&path, r.info_hash, &layout(3, 30)).unwrap_err();
        assert!(matches!(err, ResumeError::Length { .. }), "{err}");
        let err = ResumeData::load(&path, r.info_hash, &layout(4, 21)).unwrap_err();
        assert!(matches!(err, ResumeError::Length { .. }), "{err}");

        let good = fs::read(&path).unwrap();
        let mut bad = good.clone();
        bad[50] ^= 1;
        fs::write(&path, &bad).unwrap();
        let err = ResumeData::load(&path, r.info_hash, &l).unwrap_err();
        assert!(matches!(err, ResumeError::Checksum), "{err}");
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        let err = ResumeData::load(&path, r.info_hash, &l).unwrap_err();
        assert!(matches!(err, ResumeError::Length { .. }), "{err}");
        fs::write(&path, vec![b'x'; good.len()]).unwrap();
        let err = ResumeData::load(&path, r.info_hash, &l).unwrap_err();
        assert!(matches!(err, ResumeError::Magic), "{err}");
        let missing = ResumeData::load(&dir.path().join("nope"), r.info_hash, &l).unwrap_err();
        assert!(missing.to_string().starts_with("open "), "{missing}");
    }

    #[test]
    fn same_counts_but_other_shape_are_refused() {
        // 10 pieces and 2 files in the file, but the torrent has 11 pieces (same bitfield size).
        let l10 = layout(2, 10);
        let l11 = layout(2, 11);
        let bytes = sample(&l10).encode();
        let err = ResumeData::decode(&bytes, InfoHash([9; 20]), &l11).unwrap_err();
        assert!(
            matches!(
                err,
                ResumeError::Count {
                    what: "pieces",
                    got: 10,
                    want: 11
                }
            ),
            "{err}"
        );
        // A spare bit set behind a valid checksum.
        let mut bytes = sample(&l10).encode();
        bytes[HEADER_LEN + 1] |= 0x01;
        let body = bytes.len() - CHECKSUM_LEN;
        let sum = Sha1::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&sum);
        let err = ResumeData::decode(&bytes, InfoHash([9; 20]), &l10).unwrap_err();
        assert!(matches!(err, ResumeError::Bitfield(_)), "{err}");
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(
            files in 1usize..20,
            pieces in 1u32..300,
            bits in proptest::collection::vec(any::<bool>(), 300),
            stamps in proptest::collection::vec((any::<u64>(), any::<i128>()), 20),
        ) {
            let l = layout(files, pieces);
            let mut have = Bitfield::new(pieces);
            for p in l.geometry().pieces() {
                if bits[p.idx()] {
                    have.set(p);
                }
            }
            let r = ResumeData {
                info_hash: InfoHash([3; 20]),
                have,
                files: stamps[..files].iter().map(|&(len, mtime_ns)| FileStamp { len, mtime_ns }).collect(),
            };
            let bytes = r.encode();
            prop_assert_eq!(bytes.len() as u64, encoded_len(&l));
            prop_assert_eq!(ResumeData::decode(&bytes, r.info_hash, &l).unwrap(), r);
        }

        #[test]
        fn decode_never_panics_and_rejects_any_flip(
            pieces in 1u32..100,
            flip in any::<prop::sample::Index>(),
            junk in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let l = layout(2, pieces);
            let mut bytes = sample(&l).encode();
            let i = flip.index(bytes.len());
            bytes[i] ^= 0x40;
            prop_assert!(ResumeData::decode(&bytes, InfoHash([9; 20]), &l).is_err());
            prop_assert!(ResumeData::decode(&junk, InfoHash([9; 20]), &l).is_err());
        }
    }
}
