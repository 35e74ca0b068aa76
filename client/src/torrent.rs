//! One torrent in the shell: the engine behind a lock, its storage, its connections, its timers,
//! and the disk jobs that verify and write pieces.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use engine::{Event, PeerKey, PieceData, PieceOutcome, Stats};
use metainfo::{InfoHash, PieceIndex};
use parking_lot::Mutex;
use storage::{ResumeData, Storage};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::hash_queue::{self, HashQueue};
use crate::peers::Candidates;
use crate::write_behind::{MAX_HOLD, Run, WriteBehind};

/// A piece out of the disk jobs: how it went, and its buffer to recycle.
type Written = (PieceIndex, PieceOutcome, Option<PieceData>);

/// What a connection task needs to be told from outside.
#[derive(Debug)]
pub struct Conn {
    /// Output is queued for this peer.
    pub notify: Arc<Notify>,
    /// Drop the connection.
    pub cancel: CancellationToken,
    /// The peer's address.
    pub addr: SocketAddr,
}

/// The shared state of one torrent.
#[derive(Debug)]
pub struct TorrentShared {
    /// The torrent's name (for displays and hooks).
    pub name: String,
    /// Its info-hash.
    pub info_hash: InfoHash,
    /// Total bytes.
    pub total_len: u64,
    /// The protocol state machine.
    pub engine: Mutex<engine::Torrent>,
    /// The data on disk.
    pub storage: Arc<Storage>,
    /// Live connections by engine key.
    pub conns: Mutex<HashMap<PeerKey, Conn>>,
    /// Addresses to dial.
    pub candidates: Mutex<Candidates>,
    /// Dials in progress.
    pub dialing: AtomicUsize,
    /// Verify+write jobs allowed at once.
    pub disk: Arc<Semaphore>,
    /// Held while a piece is written: the jobs hash in parallel but write one at a time, as
    /// concurrent buffered writes to one file make the kernel spin on the inode lock (perf:
    /// 16% of a leecher's CPU in `rwsem_spin_on_owner` with two writers). Not taken when the
    /// storage's writes run side by side (`Storage::writes_in_parallel`).
    pub write_lock: Arc<Mutex<()>>,
    /// Verified pieces waiting to be written with their group (direct writes only).
    pub write_behind: Mutex<WriteBehind>,
    /// The write-behind's expiry timer is running.
    pub expiry_armed: AtomicBool,
    /// Complete pieces waiting (<= `hash_queue::MAX_WAIT`) to be hashed together.
    pub hash_queue: Mutex<HashQueue>,
    /// The hash queue's flush timer is running.
    pub hash_armed: AtomicBool,
    /// True once every piece is verified and on disk.
    pub done: watch::Sender<bool>,
    /// A fatal error (disk full, unwritable directory): the torrent stops.
    pub error: Mutex<Option<String>>,
    /// Stops every task of this torrent.
    pub cancel: CancellationToken,
    /// Ask the announcer for an early announce (short of peers, or completed).
    pub announce_now: Notify,
    /// The last thing a tracker said, for displays.
    pub tracker_status: Mutex<String>,
    /// Some tracker answered at least once.
    pub tracker_ok: AtomicBool,
    /// Where resume data is kept.
    pub resume_path: Option<PathBuf>,
    /// Pieces changed since the last resume save.
    pub resume_dirty: AtomicBool,
    /// Where the data lives (for hooks and messages).
    pub data_path: PathBuf,
    /// When the torrent started in this process.
    pub started: Instant,
    /// Bytes still missing when it started (for the summary).
    pub left_at_start: u64,
    /// The session's DHT node, told about nodes peers name in PORT messages.
    pub dht: Option<crate::dht::DhtHandle>,
}

impl TorrentShared {
    /// Runs `f` on the engine under its lock, then acts on the events it produced.
    pub fn with_engine<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut engine::Torrent, Instant) -> R,
    ) -> R {
        let mut events = Vec::new();
        let r = {
            let mut e = self.engine.lock();
            let r = f(&mut e, Instant::now());
            while let Some(ev) = e.poll_event() {
                events.push(ev);
            }
            r
        };
        for ev in events {
            self.act(ev);
        }
        r
    }

    fn act(self: &Arc<Self>, ev: Event) {
        match ev {
            Event::Wake(k) => {
                if let Some(c) = self.conns.lock().get(&k) {
                    c.notify.notify_one();
                }
            }
            Event::Disconnect(k, why) => {
                if let Some(c) = self.conns.lock().get(&k) {
                    tracing::debug!(peer = %c.addr, reason = %why, "disconnecting");
                    c.cancel.cancel();
                }
            }
            Event::PieceReady { piece, data } => self.queue_verify(piece, data),
            Event::PieceDone(_) => self.resume_dirty.store(true, Ordering::Relaxed),
            Event::Peers(addrs) => {
                // Peer exchange: dialed by the timer task's next `dial_more`.
                self.candidates.lock().add(addrs, Instant::now());
            }
            Event::DhtNode(addr) => {
                if let Some(d) = &self.dht {
                    d.add_node(addr);
                }
            }
            Event::Completed => {
                // Every piece is verified and written (to the page cache). Like libtorrent,
                // Transmission and aria2 we do not wait for the disk: no fsync here, and no
                // resume data either, as resume data is only ever saved after an fsync (a run
                // that finds none, or a stale one, checks the data instead).
                self.done.send_replace(true);
                self.announce_now.notify_one();
            }
        }
    }

    /// Queues a complete piece to be hashed with the others completing about now: its batch
    /// goes to the disk when full, or [`hash_queue::MAX_WAIT`] after the first piece queued.
    fn queue_verify(self: &Arc<Self>, piece: PieceIndex, data: PieceData) {
        let full = self.hash_queue.lock().push(piece, data);
        if let Some(batch) = full {
            return self.spawn_verify(batch);
        }
        if self.hash_armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(hash_queue::MAX_WAIT).await;
            // Disarm before taking: a piece queued after the take arms a new timer.
            me.hash_armed.store(false, Ordering::Release);
            let batch = me.hash_queue.lock().take();
            if !batch.is_empty() {
                me.spawn_verify(batch);
            }
        });
    }

    /// Hashes complete pieces off the async threads (together, where the CPU does that
    /// faster), writes those that match (now, or with their group through the write-behind),
    /// and reports back every piece finished.
    fn spawn_verify(self: &Arc<Self>, batch: Vec<(PieceIndex, PieceData)>) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(permit) = me.disk.clone().acquire_owned().await else {
                return;
            };
            let pieces: Vec<PieceIndex> = batch.iter().map(|(p, _)| *p).collect();
            let me2 = me.clone();
            let job = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                me2.verify_and_write(batch)
            });
            match job.await {
                Ok((done, held)) => {
                    if held {
                        me.expire_held_later();
                    }
                    me.report(done);
                }
                Err(e) => {
                    me.fail(format!("disk task failed: {e}"));
                    let failed = pieces
                        .into_iter()
                        .map(|p| (p, PieceOutcome::WriteFailed, None));
                    me.report(failed.collect());
                }
            }
        });
    }

    /// The blocking part of [`spawn_verify`](Self::spawn_verify): the pieces it finished, and
    /// whether it left some held for their groups.
    fn verify_and_write(&self, batch: Vec<(PieceIndex, PieceData)>) -> (Vec<Written>, bool) {
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
        let mut held = false;
        for ((piece, data), ok) in batch.into_iter().zip(ok) {
            let (d, h) = self.write_verified(piece, data, ok);
            done.extend(d);
            held |= h;
        }
        (done, held)
    }

    /// Writes one hashed piece if it matched: the pieces that finished, and whether `piece`
    /// was left held for its group.
    fn write_verified(&self, piece: PieceIndex, data: PieceData, ok: bool) -> (Vec<Written>, bool) {
        let st = &self.storage;
        if !ok {
            return (vec![(piece, PieceOutcome::HashFailed, Some(data))], false);
        }
        if st.writes_in_parallel() {
            let p = piece.get();
            let members = self.write_behind.lock().group_of(p);
            let coming: Vec<bool> = {
                let e = self.engine.lock();
                members
                    .clone()
                    .map(|q| {
                        e.geometry()
                            .piece(q)
                            .is_some_and(|q| e.piece_in_progress(q))
                    })
                    .collect()
            };
            let first = members.start;
            let runs = self.write_behind.lock().add(p, data, Instant::now(), |q| {
                coming
                    .get(q.saturating_sub(first) as usize)
                    .copied()
                    .unwrap_or(false)
            });
            let held = runs
                .iter()
                .all(|r| !(r.first..r.first + r.pieces.len() as u32).contains(&p));
            return (self.write_runs(runs), held);
        }
        let written = {
            let _writing = self.write_lock.lock();
            st.write_piece(piece, &data).map(|()| PieceOutcome::Written)
        };
        let outcome = written.unwrap_or_else(|e| {
            self.fail(e.to_string());
            PieceOutcome::WriteFailed
        });
        (vec![(piece, outcome, Some(data))], false)
    }

    /// Writes runs of consecutive verified pieces; a write error stops the torrent.
    fn write_runs(&self, runs: Vec<Run>) -> Vec<Written> {
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
                    self.fail(e.to_string());
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

    /// Writes, once [`MAX_HOLD`] has passed, the groups still held then.
    /// One timer per torrent, armed while pieces are held: every half [`MAX_HOLD`] it takes
    /// the groups held too long and writes them off the async threads.
    fn expire_held_later(self: &Arc<Self>) {
        if self.expiry_armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = me.cancel.cancelled() => break,
                    _ = tokio::time::sleep(MAX_HOLD / 2) => {}
                }
                let runs = me.write_behind.lock().expired(Instant::now(), MAX_HOLD);
                if !runs.is_empty() {
                    let me2 = me.clone();
                    let job = tokio::task::spawn_blocking(move || me2.write_runs(runs));
                    if let Ok(done) = job.await {
                        me.report(done);
                    }
                }
                if me.write_behind.lock().held() == 0 {
                    me.expiry_armed.store(false, Ordering::Release);
                    // A piece held since the check above found the timer still armed: keep
                    // going for it, unless another timer has been armed meanwhile.
                    if me.write_behind.lock().held() == 0
                        || me.expiry_armed.swap(true, Ordering::AcqRel)
                    {
                        break;
                    }
                }
            }
        });
    }

    /// Tells the engine how pieces came out of the disk jobs and gives their buffers back.
    fn report(self: &Arc<Self>, done: Vec<Written>) {
        if done.is_empty() {
            return;
        }
        for (piece, outcome, _) in &done {
            if *outcome == PieceOutcome::HashFailed {
                tracing::info!(
                    piece = piece.get(),
                    "piece failed its hash check; fetching it again"
                );
            }
        }
        self.with_engine(|e, now| {
            for (piece, outcome, buf) in done {
                e.piece_written(piece, outcome, now);
                if let Some(buf) = buf {
                    e.recycle(buf);
                }
            }
        });
    }

    /// Stops the torrent with an error the user will see.
    pub fn fail(&self, msg: String) {
        let mut err = self.error.lock();
        if err.is_none() {
            tracing::error!(torrent = %self.name, error = %msg, "torrent stopped");
            *err = Some(msg);
        }
        self.cancel.cancel();
    }

    /// Counters for displays.
    pub fn stats(&self) -> Stats {
        self.engine.lock().stats()
    }

    /// Writes resume data (verified pieces and file stamps) atomically, after flushing.
    pub async fn save_resume(self: &Arc<Self>) {
        let Some(path) = self.resume_path.clone() else {
            return;
        };
        self.resume_dirty.store(false, Ordering::Relaxed);
        let have = self.engine.lock().have().clone();
        let st = self.storage.clone();
        let info_hash = self.info_hash;
        let r = tokio::task::spawn_blocking(move || {
            st.flush().map_err(|e| e.to_string())?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("create {}: {e}", dir.display()))?;
            }
            let data = ResumeData {
                info_hash,
                have,
                files: st.stamps(),
            };
            data.save_atomic(&path).map_err(|e| e.to_string())
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not save resume data"),
            Err(e) => tracing::warn!(error = %e, "resume task failed"),
        }
    }

    /// The periodic driver: engine timers, dialing, resume saves. Ends when the torrent stops.
    pub async fn run_timers(self: Arc<Self>, session: Arc<crate::session::Session>) {
        let mut last_save = Instant::now();
        loop {
            let deadline = {
                let e = self.engine.lock();
                e.poll_timeout(Instant::now())
            };
            let sleep = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(50));
            tokio::select! {
                _ = self.cancel.cancelled() => break,
                _ = tokio::time::sleep(sleep) => {}
            }
            self.with_engine(|e, now| e.handle_timeout(now));
            crate::peers::dial_more(&self, &session);
            if self.resume_dirty.load(Ordering::Relaxed)
                && last_save.elapsed() > Duration::from_secs(30)
            {
                last_save = Instant::now();
                self.save_resume().await;
            }
        }
    }
}

/// What a torrent's display reads (progress.rs knows nothing else of it).
impl crate::progress::Progress for TorrentShared {
    fn name(&self) -> &str {
        &self.name
    }

    fn total_len(&self) -> u64 {
        self.total_len
    }

    fn stats(&self) -> Stats {
        TorrentShared::stats(self)
    }

    fn stopped(&self) -> CancellationToken {
        self.cancel.clone()
    }
}
