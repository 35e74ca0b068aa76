//! The disk side of one torrent: complete pieces are hashed (in batches, [`hash_queue`]),
//! written (in 1 MiB groups when written around the page cache, [`write_behind`]) and reported
//! back; resume data is saved ([`resume`]).
//!
//! One task per torrent owns all of it. It is fed by a bounded channel of [`Job`]s (the engine
//! hands out at most `max_checking` pieces at once, so the channel never fills), runs the
//! hashing and writing on the blocking pool (at most one job per core), and otherwise sleeps
//! until its next deadline -- a hash batch due, a held group due, a resume save due -- or the
//! next job. It never locks the engine: which pieces are on their way (what the write-behind
//! must know of a piece's neighbours) is mirrored into [`InProgress`], atomics the torrent
//! updates from the engine's changes, and what it reports goes back through a callback.

pub mod hash_queue;
pub mod resume;
pub mod write_behind;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::{PieceData, PieceOutcome};
use metainfo::{Bitfield, InfoHash, PieceIndex};
use parking_lot::Mutex;
use storage::Storage;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use self::hash_queue::HashQueue;
use self::write_behind::{MAX_HOLD, Run, WriteBehind};

/// A piece out of the disk: how it went, and its buffer to recycle.
pub type Done = (PieceIndex, PieceOutcome, Option<PieceData>);

/// Jobs waiting in the channel; the engine's `max_checking` (24) keeps it far from full.
const QUEUE: usize = 256;
/// Resume data is saved this often while pieces arrive.
pub const RESUME_EVERY: Duration = Duration::from_secs(30);

/// A complete piece to hash and write.
#[derive(Debug)]
pub struct Job {
    /// Which piece.
    pub piece: PieceIndex,
    /// Its bytes.
    pub data: PieceData,
}

/// Which pieces are on their way (being downloaded, or being checked and written): one bit a
/// piece, set and cleared by the torrent as the engine reports changes, read by the disk's
/// blocking jobs without any lock. Cheap to clone.
#[derive(Debug, Clone)]
pub struct InProgress(Arc<[AtomicU64]>);

impl InProgress {
    /// None of `pieces` pieces on their way.
    pub fn new(pieces: u32) -> Self {
        InProgress(
            (0..pieces.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        )
    }

    /// Piece `p` is on its way (`on`) or not.
    pub fn set(&self, p: u32, on: bool) {
        if let Some(w) = self.0.get((p / 64) as usize) {
            let bit = 1u64 << (p % 64);
            if on {
                w.fetch_or(bit, Ordering::Relaxed);
            } else {
                w.fetch_and(!bit, Ordering::Relaxed);
            }
        }
    }

    /// Is piece `p` on its way?
    pub fn has(&self, p: u32) -> bool {
        self.0
            .get((p / 64) as usize)
            .is_some_and(|w| w.load(Ordering::Relaxed) & (1u64 << (p % 64)) != 0)
    }
}

/// What a torrent's disk task works with.
#[derive(Debug)]
pub struct DiskConfig {
    /// The torrent's data.
    pub storage: Arc<Storage>,
    /// Pieces verified on disk when the task starts.
    pub have: Bitfield,
    /// Where resume data is saved (`None`: never).
    pub resume: Option<PathBuf>,
    /// The torrent, named in the resume data.
    pub info_hash: InfoHash,
    /// Pieces hashed together (`hash_queue::batch_size`).
    pub hash_batch: usize,
    /// Hash-and-write jobs at once.
    pub max_jobs: usize,
}

/// Sends pieces to a torrent's disk task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Disk {
    jobs: mpsc::Sender<Job>,
    in_progress: InProgress,
}

impl Disk {
    /// Starts the task. `report` gets every batch of finished pieces; `fail` a write error
    /// that stops the torrent. On `cancel` the task finishes its jobs, writes what it holds,
    /// saves resume data if the download is not complete, and ends.
    pub fn start(
        config: DiskConfig,
        report: impl Fn(Vec<Done>) + Send + Sync + 'static,
        fail: impl Fn(String) + Send + Sync + 'static,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> Disk {
        let g = *config.storage.layout().geometry();
        let write_behind = WriteBehind::new(g.nominal_piece_len(), g.piece_count());
        let (tx, rx) = mpsc::channel(QUEUE);
        let disk = Disk {
            jobs: tx,
            in_progress: InProgress::new(g.piece_count()),
        };
        let shared = Arc::new(Shared {
            in_progress: disk.in_progress.clone(),
            storage: config.storage.clone(),
            write_behind: Mutex::new(write_behind),
            write_lock: Mutex::new(()),
            fail: Box::new(fail),
        });
        let dirty = config.resume.is_some() && !config.have.is_full();
        let task = Task {
            shared,
            report: Box::new(report),
            queue: HashQueue::new(config.hash_batch),
            batches: VecDeque::new(),
            running: JoinSet::new(),
            max_jobs: config.max_jobs.max(1),
            have: config.have,
            resume: config.resume,
            info_hash: config.info_hash,
            dirty,
            next_save: Instant::now() + RESUME_EVERY,
        };
        tasks.spawn(task.run(rx, cancel));
        disk
    }

    /// Which pieces are on their way: the torrent keeps it current.
    pub fn in_progress(&self) -> &InProgress {
        &self.in_progress
    }

    /// Hands a complete piece to the task; the piece back if the task has stopped.
    pub fn send(&self, job: Job) -> Result<(), Job> {
        self.jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
        })
    }
}

/// What the blocking jobs share with the task.
struct Shared {
    storage: Arc<Storage>,
    /// Which pieces are on their way (what a held piece may wait for).
    in_progress: InProgress,
    /// Verified pieces waiting for their group (direct writes only).
    write_behind: Mutex<WriteBehind>,
    /// Held while a piece is written through the page cache: the jobs hash in parallel but
    /// write one at a time, as concurrent buffered writes to one file make the kernel spin on
    /// the inode lock (BENCHMARKS.md has the profile). Not taken when the storage's writes run
    /// side by side (`Storage::writes_in_parallel`).
    write_lock: Mutex<()>,
    fail: Box<dyn Fn(String) + Send + Sync>,
}

/// What a blocking job came back with.
enum Outcome {
    /// Pieces finished (hashed and written, or failed).
    Pieces(Vec<Done>),
    /// Resume data saved (or not).
    Saved,
}

struct Task {
    shared: Arc<Shared>,
    report: Box<dyn Fn(Vec<Done>) + Send + Sync>,
    queue: HashQueue,
    /// Batches ready to hash, waiting for a free job slot.
    batches: VecDeque<Vec<(PieceIndex, PieceData)>>,
    running: JoinSet<Outcome>,
    max_jobs: usize,
    /// Pieces hashed and written (what resume data may claim after a flush).
    have: Bitfield,
    resume: Option<PathBuf>,
    info_hash: InfoHash,
    /// Pieces written since the last resume save.
    dirty: bool,
    next_save: Instant,
}

impl Task {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>, cancel: CancellationToken) {
        loop {
            let deadline = self.deadline();
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                job = jobs.recv() => match job {
                    Some(j) => {
                        if let Some(b) = self.queue.push(j.piece, j.data, Instant::now()) {
                            self.batches.push_back(b);
                        }
                    }
                    None => break,
                },
                Some(done) = self.running.join_next() => self.finished(done),
                _ = sleep => {}
            }
            let now = Instant::now();
            if self.queue.deadline().is_some_and(|d| d <= now) {
                self.batches.push_back(self.queue.take());
            }
            self.start_jobs();
            let expired = self.shared.write_behind.lock().expired(now, MAX_HOLD);
            if !expired.is_empty() {
                let sh = self.shared.clone();
                self.running
                    .spawn_blocking(move || Outcome::Pieces(sh.write_runs(expired)));
            }
            if self.dirty && now >= self.next_save {
                self.next_save = now + RESUME_EVERY;
                self.save();
            }
        }
        self.stop().await;
    }

    /// The next time something is due: a hash batch, a held group, a resume save.
    fn deadline(&self) -> Option<Instant> {
        let save = self.dirty.then_some(self.next_save);
        [
            self.queue.deadline(),
            self.shared.write_behind.lock().deadline(MAX_HOLD),
            save,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts hash jobs for waiting batches while job slots are free.
    fn start_jobs(&mut self) {
        while self.running.len() < self.max_jobs {
            let Some(batch) = self.batches.pop_front() else {
                break;
            };
            let sh = self.shared.clone();
            self.running
                .spawn_blocking(move || Outcome::Pieces(sh.verify_and_write(batch)));
        }
    }

    fn finished(&mut self, r: Result<Outcome, tokio::task::JoinError>) {
        match r {
            Ok(Outcome::Pieces(done)) => {
                for (p, outcome, _) in &done {
                    if *outcome == PieceOutcome::Written {
                        self.have.set(*p);
                        self.dirty = self.resume.is_some();
                    }
                }
                if self.have.is_full() {
                    // A complete download needs no resume data (see `Event::Completed`).
                    self.dirty = false;
                }
                if !done.is_empty() {
                    (self.report)(done);
                }
            }
            Ok(Outcome::Saved) => {}
            // The pieces of a job that panicked are lost to the engine's accounting: stop.
            Err(e) => (self.shared.fail)(format!("disk task failed: {e}")),
        }
    }

    /// Saves resume data in the background: flush, then the pieces written before it.
    fn save(&mut self) {
        let Some(path) = self.resume.clone() else {
            return;
        };
        self.dirty = false;
        let (st, have, ih) = (
            self.shared.storage.clone(),
            self.have.clone(),
            self.info_hash,
        );
        self.running.spawn_blocking(move || {
            resume::save(&st, &path, ih, have);
            Outcome::Saved
        });
    }

    /// At a stop: hash what is queued, finish every job, write what is held, save resume data.
    async fn stop(mut self) {
        let rest = self.queue.take();
        if !rest.is_empty() {
            self.batches.push_back(rest);
        }
        loop {
            self.start_jobs();
            match self.running.join_next().await {
                Some(r) => self.finished(r),
                None if self.batches.is_empty() => break,
                None => {}
            }
        }
        let held = self.shared.write_behind.lock().drain();
        if !held.is_empty() {
            let sh = self.shared.clone();
            let r = tokio::task::spawn_blocking(move || Outcome::Pieces(sh.write_runs(held)));
            self.finished(r.await);
        }
        if self.dirty
            && let Some(path) = self.resume.clone()
        {
            let (st, have, ih) = (
                self.shared.storage.clone(),
                self.have.clone(),
                self.info_hash,
            );
            let _ = tokio::task::spawn_blocking(move || resume::save(&st, &path, ih, have)).await;
        }
    }
}

impl Shared {
    /// Hashes a batch (together, where the CPU does that faster) and writes the pieces that
    /// match (now, or with their group through the write-behind): the pieces finished.
    fn verify_and_write(&self, batch: Vec<(PieceIndex, PieceData)>) -> Vec<Done> {
        let layout = self.storage.layout();
        let ok = {
            let data: Vec<&[u8]> = batch.iter().map(|(_, d)| &**d).collect();
            let want: Vec<Option<[u8; 20]>> =
                batch.iter().map(|(p, _)| layout.piece_hash(*p)).collect();
            let want: Vec<Option<&[u8; 20]>> = want.iter().map(Option::as_ref).collect();
            let full = layout.geometry().nominal_piece_len() as usize;
            hash_queue::verify(&data, &want, full)
        };
        let mut done = Vec::with_capacity(batch.len());
        for ((piece, data), ok) in batch.into_iter().zip(ok) {
            done.extend(self.write_verified(piece, data, ok));
        }
        done
    }

    /// Writes one hashed piece if it matched: the pieces that finished (none while `piece` is
    /// held for its group).
    fn write_verified(&self, piece: PieceIndex, data: PieceData, ok: bool) -> Vec<Done> {
        let st = &self.storage;
        if !ok {
            return vec![(piece, PieceOutcome::HashFailed, Some(data))];
        }
        if st.writes_in_parallel() {
            let p = piece.get();
            // A neighbour is still coming if the engine has it on its way now (being
            // downloaded, or checked in another job): read without the engine's lock.
            let runs = self
                .write_behind
                .lock()
                .add(p, data, Instant::now(), |q| self.in_progress.has(q));
            return self.write_runs(runs);
        }
        let written = {
            let _writing = self.write_lock.lock();
            st.write_piece(piece, &data).map(|()| PieceOutcome::Written)
        };
        let outcome = written.unwrap_or_else(|e| {
            (self.fail)(e.to_string());
            PieceOutcome::WriteFailed
        });
        vec![(piece, outcome, Some(data))]
    }

    /// Writes runs of consecutive verified pieces; a write error stops the torrent.
    fn write_runs(&self, runs: Vec<Run>) -> Vec<Done> {
        let g = *self.storage.layout().geometry();
        let mut done = Vec::new();
        for run in runs {
            let Some(first) = g.piece(run.first) else {
                continue;
            };
            let slices: Vec<&[u8]> = run.pieces.iter().map(|d| &**d).collect();
            let outcome = match self.storage.write_run(first, &slices) {
                Ok(()) => PieceOutcome::Written,
                Err(e) => {
                    (self.fail)(e.to_string());
                    PieceOutcome::WriteFailed
                }
            };
            for (k, d) in run.pieces.into_iter().enumerate() {
                if let Some(p) = g.piece(run.first + k as u32) {
                    done.push((p, outcome, Some(d)));
                }
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_progress_bits_are_set_and_cleared_per_piece() {
        let v = InProgress::new(130);
        let seen = v.clone();
        v.set(0, true);
        v.set(64, true);
        v.set(129, true);
        v.set(500, true); // past the end: ignored
        assert!(seen.has(0) && seen.has(64) && seen.has(129));
        assert!(!seen.has(1) && !seen.has(63) && !seen.has(128) && !seen.has(500));
        v.set(64, false);
        assert!(
            !seen.has(64) && seen.has(0),
            "one bit cleared, its word's others kept"
        );
    }
}
