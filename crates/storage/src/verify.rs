//! Checking which pieces are already on disk: every piece hashed, on several threads.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use metainfo::{Bitfield, PieceIndex};

use crate::error::Result;
use crate::storage::Storage;

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
        let workers = threads.clamp(1, todo.len().max(1));
        let worker = || -> Result<Vec<PieceIndex>> {
            let mut buf = vec![0u8; g.nominal_piece_len() as usize];
            let mut good = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Some(&p) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                    break;
                };
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
                progress(u64::from(len));
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
}
