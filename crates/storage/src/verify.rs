//! Checking which pieces are already on disk: every piece hashed, on several threads, full
//! pieces several at a time (`sha1-lanes`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use metainfo::{Bitfield, PieceIndex};

use crate::error::Result;
use crate::storage::Storage;

/// Bytes of each piece read at a time when pieces are hashed together: the group's buffers
/// stay in the CPU cache between the read and the hash.
const CHUNK: usize = 64 << 10;

impl Storage {
    /// Hashes every piece whose data is present, on `threads` threads (at least one), and
    /// returns the pieces whose SHA-1 matches. Pieces on missing or short files are absent, not
    /// an error; other I/O errors stop the check and are returned. `progress(n)` is called from
    /// the worker threads after each piece with the piece's length in bytes.
    pub fn verify_all(&self, threads: usize, progress: &(dyn Fn(u64) + Sync)) -> Result<Bitfield> {
        let all = Bitfield::full(self.layout().geometry().piece_count());
        self.verify_set(&all, threads, progress)
    }

    /// [`verify_all`](Self::verify_all) restricted to the pieces in `which` (for example the
    /// `recheck` set of [`trusted_pieces`](crate::trusted_pieces)); the result holds only pieces
    /// of `which`.
    pub fn verify_set(
        &self,
        which: &Bitfield,
        threads: usize,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Bitfield> {
        let g = *self.layout().geometry();
        let todo: Vec<PieceIndex> = which.iter_ones().filter_map(|i| g.piece(i)).collect();
        let present: Vec<u64> = (0..self.layout().files().len())
            .map(|i| self.present_len(i))
            .collect();
        let readable = |p: PieceIndex| {
            self.layout().piece_spans(p).all(|s| {
                let pad = self.layout().files().get(s.file).is_none_or(|f| f.pad);
                pad || present
                    .get(s.file)
                    .is_some_and(|&len| s.file_offset + s.len as u64 <= len)
            })
        };
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let lanes = sha1_lanes::best_lanes();
        let workers = threads.clamp(1, todo.len().div_ceil(lanes).max(1));
        let nominal = g.nominal_piece_len();
        let worker = || -> Result<Vec<PieceIndex>> {
            let mut buf = vec![0u8; (nominal as usize).max(lanes * CHUNK)];
            let mut good = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let at = next.fetch_add(lanes, Ordering::Relaxed);
                let Some(group) = todo.get(at..(at + lanes).min(todo.len())) else {
                    break;
                };
                // Full pieces on disk are hashed together; the rest one by one.
                let (together, alone): (Vec<PieceIndex>, Vec<PieceIndex>) = group
                    .iter()
                    .partition(|&&p| lanes > 1 && g.piece_len(p) == nominal && readable(p));
                let together = match self.verify_group(&together, &mut buf) {
                    Ok(Some(matched)) => {
                        good.extend(matched);
                        &[][..]
                    }
                    // Data went missing under us: check those pieces one by one.
                    Ok(None) => &together[..],
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                };
                for &p in together.iter().chain(&alone) {
                    let len = g.piece_len(p);
                    if readable(p) {
                        let piece_buf = buf.get_mut(..len as usize).unwrap_or_default();
                        match self.verify_into(p, piece_buf) {
                            Ok(true) => good.push(p),
                            Ok(false) => {}
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                }
                for &p in group {
                    progress(u64::from(g.piece_len(p)));
                }
            }
            Ok(good)
        };
        let results: Vec<Result<Vec<PieceIndex>>> = thread::scope(|s| {
            let handles: Vec<_> = (0..workers).map(|_| s.spawn(worker)).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut have = Bitfield::new(g.piece_count());
        for r in results {
            for p in r? {
                have.set(p);
            }
        }
        Ok(have)
    }
}

impl Storage {
    /// Hashes `pieces` (all of the nominal length) together, streaming them through `buf` in
    /// [`CHUNK`]-byte runs of each, and returns those whose SHA-1 matches; `None` if some data
    /// turned out to be missing.
    fn verify_group(
        &self,
        pieces: &[PieceIndex],
        buf: &mut [u8],
    ) -> Result<Option<Vec<PieceIndex>>> {
        if pieces.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let len = self.layout().geometry().nominal_piece_len();
        let mut sha = sha1_lanes::Sha1Lanes::new(pieces.len());
        let mut at = 0u32;
        while at < len {
            let n = (len - at).min(CHUNK as u32) as usize;
            for (&p, chunk) in pieces.iter().zip(buf.chunks_mut(CHUNK)) {
                match self.read(p, at, &mut chunk[..n]) {
                    Ok(()) => {}
                    Err(e) if e.is_absent() => return Ok(None),
                    Err(e) => return Err(e),
                }
            }
            let parts: Vec<&[u8]> = buf
                .chunks(CHUNK)
                .take(pieces.len())
                .map(|c| &c[..n])
                .collect();
            sha.update(&parts);
            at += n as u32;
        }
        let digests = sha.finalize();
        Ok(Some(
            pieces
                .iter()
                .zip(digests)
                .filter(|(p, d)| {
                    self.layout()
                        .piece_hash(**p)
                        .is_some_and(|h| h.as_slice() == d)
                })
                .map(|(p, _)| *p)
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use sha1::{Digest, Sha1};

    use metainfo::Bitfield;

    use crate::layout::{FileSpec, Layout};
    use crate::storage::{OpenOptions, Storage};

    #[test]
    fn finds_exactly_the_good_pieces_and_reports_progress() {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 7) as u8).collect();
        let hashes: Vec<[u8; 20]> = data.chunks(16).map(|c| Sha1::digest(c).into()).collect();
        let spec = FileSpec {
            path: vec!["f".into()],
            length: 100,
            pad: false,
        };
        let layout = Layout::new(16, vec![spec], hashes).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(layout, dir.path(), OpenOptions::default()).unwrap();
        let g = *s.layout().geometry();
        for i in [0u32, 3, 6] {
            let p = g.piece(i).unwrap();
            let off = g.piece_offset(p) as usize;
            s.write_piece(p, &data[off..off + g.piece_len(p) as usize])
                .unwrap();
        }
        // Piece 4 holds wrong data.
        s.write_piece(g.piece(4).unwrap(), &[0xee; 16]).unwrap();
        for threads in [0, 1, 3, 64] {
            let bytes = AtomicU64::new(0);
            let have = s
                .verify_all(threads, &|n| {
                    bytes.fetch_add(n, Ordering::Relaxed);
                })
                .unwrap();
            assert_eq!(have.iter_ones().collect::<Vec<_>>(), vec![0, 3, 6]);
            assert_eq!(bytes.load(Ordering::Relaxed), 100);
        }
        let mut which = Bitfield::new(g.piece_count());
        for i in [1u32, 3, 4] {
            which.set(g.piece(i).unwrap());
        }
        let bytes = AtomicU64::new(0);
        let have = s
            .verify_set(&which, 2, &|n| {
                bytes.fetch_add(n, Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(have.iter_ones().collect::<Vec<_>>(), vec![3]);
        assert_eq!(bytes.load(Ordering::Relaxed), 48);
        assert!(
            s.verify_set(&Bitfield::new(g.piece_count()), 2, &|_| {})
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn pieces_hashed_together_agree_with_the_torrent() {
        // 40 full pieces of 128 KiB (two chunks each) and a short one, over three files; the
        // middle file is removed and three pieces are corrupted.
        const PL: usize = 128 << 10;
        let total = 40 * PL + 1000;
        let data: Vec<u8> = (0..total).map(|i| (i * 31 + i / 977) as u8).collect();
        let lens = [2 * PL + 5000, PL, total - 3 * PL - 5000];
        let layout = || {
            let specs = ["a", "b", "c"]
                .iter()
                .zip(lens)
                .map(|(n, length)| FileSpec {
                    path: vec![(*n).into()],
                    length: length as u64,
                    pad: false,
                });
            let hashes: Vec<[u8; 20]> = data.chunks(PL).map(|c| Sha1::digest(c).into()).collect();
            Layout::new(PL as u64, specs.collect(), hashes).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap();
        let g = *s.layout().geometry();
        for p in (0..g.piece_count()).filter_map(|i| g.piece(i)) {
            let off = g.piece_offset(p) as usize;
            let piece = &data[off..off + g.piece_len(p) as usize];
            if [5, 17, 33].contains(&p.get()) {
                let mut bad = piece.to_vec();
                bad[PL - 1] ^= 1;
                s.write_piece(p, &bad).unwrap();
            } else {
                s.write_piece(p, piece).unwrap();
            }
        }
        drop(s);
        std::fs::remove_file(dir.path().join("b")).unwrap();
        let s = Storage::new(layout(), dir.path(), OpenOptions::default()).unwrap();
        // Pieces touching b's bytes are missing.
        let (b_start, b_end) = (lens[0], lens[0] + lens[1]);
        let want: Vec<u32> = (0..41u32)
            .filter(|i| ![5, 17, 33].contains(i))
            .filter(|&i| {
                let (start, end) = (i as usize * PL, ((i as usize + 1) * PL).min(total));
                end <= b_start || start >= b_end
            })
            .collect();
        for threads in [1, 2, 5] {
            let have = s.verify_all(threads, &|_| {}).unwrap();
            assert_eq!(
                have.iter_ones().collect::<Vec<_>>(),
                want,
                "{threads} threads"
            );
        }
    }
}
