//! Adding a torrent to a running session: open its storage, find out what is already on disk
//! (resume data, else a full check), build its engine, and start its tasks and its swarm.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use metainfo::{Bitfield, Metainfo, PieceHashes, StoredBytes};
use storage::{FileSpec, Layout, Mode, OpenOptions, ResumeData, Storage};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Session;
use crate::discovery::{Discovery, Inbox};
use crate::disk::{DiskConfig, hash_queue};
use crate::peer::Driver;
use crate::progress::Ui;
use crate::settings::AddOptions;
use crate::torrent::{Parts, TorrentShared};

/// A started torrent and its swarm.
#[derive(Debug, Clone)]
pub struct Added {
    /// The torrent.
    pub torrent: Arc<TorrentShared>,
    /// Where its peers come from.
    pub discovery: Discovery,
}

/// A swarm that runs before its torrent exists (a magnet link's): the torrent joins it.
#[derive(Debug)]
pub(crate) struct Swarm {
    /// Stops the swarm and, later, the torrent.
    pub cancel: CancellationToken,
    /// Its discovery, running.
    pub discovery: Discovery,
    /// What answers for it; the torrent replaces the metadata fetch.
    pub driver: watch::Sender<Arc<dyn Driver>>,
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

impl Session {
    /// Opens storage, checks existing data, and starts the torrent: its engine, disk task,
    /// timer, and swarm (discovery, trackers, DHT).
    pub async fn add(self: &Arc<Self>, meta: Metainfo, opts: AddOptions, ui: &Ui) -> Result<Added> {
        self.add_to(meta, opts, ui, None).await
    }

    /// [`add`](Self::add), joining `swarm` when the swarm already runs (a magnet link's).
    pub(crate) async fn add_to(
        self: &Arc<Self>,
        meta: Metainfo,
        opts: AddOptions,
        ui: &Ui,
        swarm: Option<Swarm>,
    ) -> Result<Added> {
        let name = meta.info.name().to_owned();
        let (metadata, storage, fresh) = open_storage(&meta, &opts, self.files.clone()).await?;
        let geometry = *storage.layout().geometry();
        let storage = Arc::new(storage);
        let resume_file = (opts.resume && opts.mode == Mode::ReadWrite)
            .then(|| crate::disk::resume::path(&opts.out_dir, &meta));
        let have = if opts.trusted_complete {
            Bitfield::full(geometry.piece_count())
        } else if fresh {
            Bitfield::new(geometry.piece_count())
        } else {
            check_existing(&storage, &meta, resume_file.as_deref(), ui, &name).await?
        };
        let info = &meta.info;
        let config = self.settings.engine_for(
            info.is_private(),
            self.port,
            self.dht.as_ref().map(|d| d.local.port()),
            self.peer_id,
        );
        let mut engine = engine::Torrent::new(
            geometry,
            have.clone(),
            config,
            rand::random(),
            Instant::now(),
        );
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
        let (cancel, discovery, joining) = match swarm {
            Some(s) => (s.cancel, s.discovery, Joining::Running(s.driver)),
            None => {
                let (d, inbox) = Discovery::new();
                let j = Joining::New(d.clone(), inbox);
                (self.shutdown.child_token(), d, j)
            }
        };
        let torrent = TorrentShared::start(
            Parts {
                name,
                info_hash: meta.info_hash,
                data_path,
                engine,
                storage: storage.clone(),
                disk: DiskConfig {
                    storage,
                    have,
                    resume: resume_file,
                    info_hash: meta.info_hash,
                    hash_batch: hash_queue::batch_size(),
                    max_jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
                },
                peers_found: discovery.sink(),
                dht: self.dht.clone(),
                crypto: self.crypto_memory.clone(),
                cancel: cancel.clone(),
            },
            &self.tasks,
        );
        let driver: Arc<dyn Driver> = torrent.clone();
        self.register(meta.info_hash, driver.clone());
        let tx = match joining {
            Joining::Running(tx) => {
                // A magnet link's swarm was public until its metadata said otherwise (BEP 27).
                if info.is_private() {
                    self.leave_lsd(meta.info_hash);
                }
                // The metadata fetch's connections move over as they notice.
                tx.send_replace(driver);
                tx
            }
            Joining::New(d, inbox) => {
                let (tx, rx) = watch::channel(driver);
                let private = info.is_private();
                self.start_swarm(
                    meta.info_hash,
                    (d, inbox),
                    meta.trackers(),
                    private,
                    rx,
                    &cancel,
                );
                tx
            }
        };
        self.keep_until(tx, cancel);
        Ok(Added { torrent, discovery })
    }
}

/// How a torrent joins its swarm.
enum Joining {
    /// The swarm runs already (a magnet link's); the torrent becomes its driver.
    Running(watch::Sender<Arc<dyn Driver>>),
    /// A new swarm, started once the torrent exists.
    New(Discovery, Inbox),
}

/// Everything here touches the disk (the info file, the data files' sizes, opening them), so
/// it runs off the async threads: the info dictionary to serve, the storage, and whether
/// nothing is on disk yet (nothing to check).
async fn open_storage(
    meta: &Metainfo,
    opts: &AddOptions,
    pool: storage::HandlePool,
) -> Result<(StoredBytes, Storage, bool)> {
    let files: Vec<FileSpec> = meta
        .info
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
    let piece_length = u64::from(meta.info.piece_length());
    let meta = meta.clone();
    tokio::task::spawn_blocking(move || -> Result<_> {
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
                pool: Some(pool),
                direct_writes,
                preallocate,
            },
        )
        .with_context(|| format!("opening data for {name:?} in {}", out_dir.display()))?;
        Ok((metadata, storage, fresh))
    })
    .await
    .context("storage task")?
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
