//! Adding a torrent to a running session: open its storage, find out what is already on disk
//! (resume data, else a full check), build its engine and start its tasks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use metainfo::{Bitfield, Metainfo, PieceHashes, StoredBytes};
use parking_lot::Mutex;
use storage::{FileSpec, Layout, Mode, OpenOptions, ResumeData, Storage};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::hash_queue::HashQueue;
use crate::progress::Ui;
use crate::session::Session;
use crate::torrent::TorrentShared;
use crate::write_behind::WriteBehind;

/// Where a torrent's data is and how far to trust it.
#[derive(Debug, Clone)]
pub struct AddOptions {
    /// The directory the torrent's paths are relative to.
    pub out_dir: PathBuf,
    /// Use this name instead of the torrent's for the file (single-file) or top directory.
    pub rename_root: Option<String>,
    /// Read-only (seeding existing data) or read-write (downloading).
    pub mode: Mode,
    /// We just hashed these files ourselves: every piece is present.
    pub trusted_complete: bool,
    /// Keep resume data under `out_dir/.swarm/`.
    pub resume: bool,
    /// Write verified pieces around the page cache where the storage allows it
    /// ([`storage::OpenOptions::direct_writes`]).
    pub direct_writes: bool,
    /// Reserve the files' blocks when creating them ([`storage::OpenOptions::preallocate`]).
    pub preallocate: bool,
}

/// A started torrent and the tasks to await at shutdown.
#[derive(Debug)]
pub struct Added {
    /// The torrent.
    pub shared: Arc<TorrentShared>,
    /// Its background tasks.
    pub tasks: Vec<JoinHandle<()>>,
}

/// The resume file of a torrent under `out_dir`.
pub fn resume_path(out_dir: &Path, meta: &Metainfo) -> PathBuf {
    out_dir
        .join(".swarm")
        .join(format!("{}.resume", meta.info_hash.to_hex()))
}

/// The info dictionary of `meta` and its piece hashes moved into an unlinked file in
/// `out_dir` (created if need be); `None` when that fails: they then stay in memory, which
/// works the same. A directory that cannot be made is left for opening the storage to report
/// (the one error the user sees); any other failure is a warning.
fn store_info(meta: &Metainfo, out_dir: &Path) -> Option<(StoredBytes, PieceHashes)> {
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        tracing::debug!(dir = %out_dir.display(), error = %e, "no directory for the info file");
        return None;
    }
    let stored = storage::unlinked_file_in(out_dir).and_then(|file| meta.info.store_in(file));
    match stored {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(dir = %out_dir.display(), error = %e, "keeping the torrent's piece hashes in memory");
            None
        }
    }
}

/// Opens storage, checks existing data, and starts the torrent's engine, timers and announcer.
pub async fn add(
    session: &Arc<Session>,
    meta: Metainfo,
    opts: AddOptions,
    ui: &Ui,
) -> Result<Added> {
    let info = &meta.info;
    let name = info.name().to_owned();
    let files: Vec<FileSpec> = info
        .files()
        .iter()
        .map(|f| {
            let mut path = f.path.clone();
            if let (Some(first), Some(root)) = (path.first_mut(), &opts.rename_root) {
                root.clone_into(first);
            }
            FileSpec {
                path,
                length: f.length,
                pad: f.pad,
            }
        })
        .collect();
    let out_dir = opts.out_dir.clone();
    let mode = opts.mode;
    let direct_writes = opts.direct_writes;
    let preallocate = opts.preallocate;
    let pool = Some(session.files.clone());
    let piece_length = u64::from(info.piece_length());
    let for_disk = meta.clone();
    // Everything here touches the disk (the info file, the data files' sizes, opening them):
    // off the async threads.
    let (metadata, storage, fresh) = tokio::task::spawn_blocking(move || -> Result<_> {
        let meta = for_disk;
        let info = &meta.info;
        let name = info.name();
        // A download keeps its info dictionary (the piece hashes, 20 bytes a piece, and the
        // metadata served to magnet peers) in an unlinked file next to its data, not in
        // memory, so its memory does not grow with the torrent's size. Seeding keeps them in
        // memory: its directory may not be ours to write to.
        let (metadata, hashes) = if mode == Mode::ReadWrite {
            store_info(&meta, &out_dir)
        } else {
            None
        }
        .unwrap_or_else(|| (info.raw_info().clone().into(), info.pieces().clone()));
        let layout = Layout::new(piece_length, files, hashes)
            .with_context(|| format!("torrent {name:?}"))?;
        // Nothing on disk yet (no file, or only empty ones): there is nothing to check.
        let fresh = layout.files().iter().all(|f| {
            f.pad
                || std::fs::symlink_metadata(out_dir.join(f.path.iter().collect::<PathBuf>()))
                    .map_or(true, |m| m.len() == 0)
        });
        let storage = Storage::new(
            layout,
            &out_dir,
            OpenOptions {
                mode,
                pool,
                direct_writes,
                preallocate,
            },
        )
        .with_context(|| format!("opening data for {name:?} in {}", out_dir.display()))?;
        Ok((metadata, storage, fresh))
    })
    .await
    .context("storage task")??;
    let geometry = *storage.layout().geometry();
    let storage = Arc::new(storage);
    let resume_file =
        (opts.resume && opts.mode == Mode::ReadWrite).then(|| resume_path(&opts.out_dir, &meta));

    let have = if opts.trusted_complete {
        Bitfield::full(geometry.piece_count())
    } else if fresh {
        Bitfield::new(geometry.piece_count())
    } else {
        check_existing(&storage, &meta, resume_file.as_deref(), ui, &name).await?
    };
    let left = {
        let mut left = 0u64;
        for p in geometry.pieces() {
            if !have.has(p) {
                left += u64::from(geometry.piece_len(p));
            }
        }
        left
    };
    let mut config = session.config.engine.clone();
    config.private = info.is_private();
    config.dht_port = session.dht.as_ref().map(|d| d.local.port());
    let mut engine = engine::Torrent::new(geometry, have, config, rand::random(), Instant::now());
    // Peers fetching this torrent from a magnet link get the info dictionary from us (BEP 9).
    // Shared with the layout's piece hashes: the info dictionary is held once.
    engine.set_metadata(metadata);
    let data_path = match info.files().first() {
        Some(f) if !info.is_multi_file() => opts
            .out_dir
            .join(opts.rename_root.as_deref().unwrap_or(&f.path[0])),
        _ => opts
            .out_dir
            .join(opts.rename_root.as_deref().unwrap_or(info.name())),
    };
    let complete = left == 0;
    let (done, _) = watch::channel(complete);
    let shared = Arc::new(TorrentShared {
        name: name.clone(),
        info_hash: meta.info_hash,
        total_len: geometry.total_len(),
        engine: Mutex::new(engine),
        storage,
        conns: Mutex::new(Default::default()),
        candidates: Mutex::new(Default::default()),
        dialing: AtomicUsize::new(0),
        disk: Arc::new(Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
        write_lock: Arc::default(),
        write_behind: Mutex::new(WriteBehind::new(
            geometry.nominal_piece_len(),
            geometry.piece_count(),
        )),
        expiry_armed: AtomicBool::new(false),
        hash_queue: Mutex::new(HashQueue::new(crate::hash_queue::batch_size())),
        hash_armed: AtomicBool::new(false),
        done,
        error: Mutex::new(None),
        cancel: session.shutdown.child_token(),
        announce_now: Default::default(),
        tracker_status: Mutex::new(String::from("tracker: not yet contacted")),
        tracker_ok: AtomicBool::new(false),
        resume_path: resume_file,
        resume_dirty: AtomicBool::new(false),
        data_path,
        started: Instant::now(),
        left_at_start: left,
        dht: session.dht.clone(),
    });
    if shared.resume_path.is_some() && !complete {
        shared.resume_dirty.store(true, Ordering::Relaxed);
    }
    session.insert(shared.clone());
    let mut tasks = vec![
        tokio::spawn(shared.clone().run_timers(session.clone())),
        tokio::spawn(crate::announce::run(
            shared.clone(),
            session.clone(),
            meta.trackers(),
        )),
    ];
    // BEP 27: a private torrent's peers come from its trackers only.
    if let (Some(dht), false) = (&session.dht, info.is_private()) {
        tasks.push(tokio::spawn(crate::dht::run_torrent(
            shared.clone(),
            session.clone(),
            dht.clone(),
        )));
    }
    Ok(Added { shared, tasks })
}

/// Finds which pieces are already on disk: from resume data when its file stamps still match,
/// re-hashing only pieces on changed files; otherwise by hashing everything present.
async fn check_existing(
    storage: &Arc<Storage>,
    meta: &Metainfo,
    resume: Option<&Path>,
    ui: &Ui,
    name: &str,
) -> Result<Bitfield> {
    let st = storage.clone();
    let ih = meta.info_hash;
    let resume = resume.map(Path::to_path_buf);
    let total = meta.info.total_length();
    let bar = ui.bytes_bar(&format!("checking {name}"), total);
    let bar2 = bar.clone();
    let have = tokio::task::spawn_blocking(move || -> Result<Bitfield> {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        if let Some(path) = resume.filter(|p| p.exists()) {
            match ResumeData::load(&path, ih, st.layout()) {
                Ok(saved) => {
                    let trusted = storage::trusted_pieces(st.layout(), &saved, &st.stamps());
                    let mut have = trusted.have;
                    let rechecked = st.verify_set(&trusted.recheck, threads, &|n| bar2.inc(n))?;
                    for i in rechecked.iter_ones() {
                        if let Some(p) = st.layout().geometry().piece(i) {
                            have.set(p);
                        }
                    }
                    tracing::info!(
                        have = have.count(),
                        rechecked = trusted.recheck.count(),
                        "resumed"
                    );
                    return Ok(have);
                }
                Err(e) => tracing::warn!(error = %e, "ignoring resume data; checking all data"),
            }
        }
        st.verify_all(threads, &|n| bar2.inc(n))
            .map_err(anyhow::Error::from)
    })
    .await
    .context("check task")??;
    bar.finish_and_clear();
    Ok(have)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_keeps_its_info_dictionary_in_an_unlinked_file() {
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("a.bin");
        std::fs::write(&file, (0..100_000u32).map(|i| i as u8).collect::<Vec<u8>>()).unwrap();
        let meta = metainfo::TorrentBuilder::new(file)
            .piece_length(16384)
            .build(&|_| {})
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("new");
        let (info, hashes) = store_info(&meta, &dir).unwrap();
        assert!(!info.is_in_memory() && !hashes.is_in_memory());
        assert_eq!(&hashes, meta.info.pieces());
        assert_eq!(
            info.read(0, info.len()).as_ref(),
            Some(meta.info.raw_info())
        );
        // Created the directory, left no name in it.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        // A directory that cannot be made: kept in memory by the caller instead.
        let blocker = out.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        assert!(store_info(&meta, &blocker.join("sub")).is_none());
    }
}
