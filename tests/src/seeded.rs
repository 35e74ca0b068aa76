//! The common stage of a download scenario: one file of pseudo-random bytes, a [`LocalTracker`]
//! and a real `swarm seed` of the file announced to it, all in a temporary directory.
//!
//! Scenarios add what they test around it (a fake peer, a fault, a signal) and fetch the file
//! with [`Seeded::fetch_command`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use metainfo::Metainfo;
use tempfile::TempDir;

use crate::client::{fetch_command, seed_command, start_seeder};
use crate::files::write_file;
use crate::process::Proc;
use crate::tracker::LocalTracker;

/// Longest a seeder may take to hash its data and start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the seeder's first announce may take to reach the tracker.
pub const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(15);

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSpec {
    /// The file's name (also the torrent's name).
    pub name: &'static str,
    /// Its length in bytes.
    pub len: u64,
    /// Seed of its pseudo-random bytes.
    pub seed: u64,
    /// `--piece-size` of the torrent (e.g. `"32K"`).
    pub piece_size: &'static str,
    /// The tracker's configuration.
    pub tracker: tracker::Config,
}

impl SeedSpec {
    /// `len` bytes named `name` from `seed`, 32 KiB pieces, a default tracker.
    pub fn new(name: &'static str, len: u64, seed: u64) -> SeedSpec {
        SeedSpec {
            name,
            len,
            seed,
            piece_size: "32K",
            tracker: tracker::Config::default(),
        }
    }
}

/// A running seeder of one file, announced to a tracker of its own.
#[derive(Debug)]
pub struct Seeded {
    /// The real seeder (killed on drop).
    pub seeder: Proc,
    /// The port the seeder accepts peers on (on 127.0.0.1).
    pub port: u16,
    /// The tracker the torrent announces to.
    pub tracker: LocalTracker,
    /// The seeded file.
    pub data: PathBuf,
    /// The torrent of it.
    pub torrent: PathBuf,
    /// The parsed torrent.
    pub meta: Metainfo,
    /// Where process logs go.
    pub logs: PathBuf,
    /// The temporary directory holding all of it (removed on drop, so dropped last).
    pub tmp: TempDir,
}

impl Seeded {
    /// Writes the file, starts the tracker and the seeder, and waits until the tracker counts
    /// the seeder.
    pub fn start(spec: SeedSpec) -> Result<Seeded> {
        let tmp = tempfile::tempdir()?;
        let logs = tmp.path().join("logs");
        let data = tmp.path().join("seed").join(spec.name);
        write_file(&data, spec.len, spec.seed)?;
        let tracker = LocalTracker::start_with(spec.tracker)?;
        let torrent = tmp.path().join(format!("{}.torrent", spec.name));
        let cmd = seed_command(&data, &torrent, &tracker.announce_url(), spec.piece_size)?;
        let (seeder, port) = start_seeder(cmd, "seeder", &logs, START_TIMEOUT)?;
        let meta = Metainfo::from_bytes(&std::fs::read(&torrent)?)?;
        tracker.wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| s.complete >= 1)?;
        Ok(Seeded {
            seeder,
            port,
            tracker,
            data,
            torrent,
            meta,
            logs,
            tmp,
        })
    }

    /// The temporary directory.
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The torrent's piece length in bytes.
    pub fn piece_len(&self) -> usize {
        self.meta.info.piece_length() as usize
    }

    /// How many pieces the torrent has.
    pub fn piece_count(&self) -> u32 {
        self.meta.info.geometry().piece_count()
    }

    /// `swarm fetch` of the torrent into `out` (see [`fetch_command`]).
    pub fn fetch_command(&self, out: &Path) -> Result<Command> {
        fetch_command(&self.torrent, out)
    }

    /// Where `swarm fetch -o out` puts the file.
    pub fn fetched(&self, out: &Path) -> PathBuf {
        out.join(self.meta.info.name())
    }
}
