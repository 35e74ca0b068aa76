//! `swarm fetch` against a disk that fills up or refuses writes: one clear `error:` line naming
//! the file and the cause, a non-zero exit, no panic, and resume data (if any was written) that
//! claims only pieces whose bytes really are on disk.
//!
//! Pieces are written O_DIRECT by default, in runs of consecutive pieces: a download completes
//! with identical bytes both where the file system takes O_DIRECT and where it refuses it
//! (ramfs), through the page cache then, and with `--buffered-writes --sparse` (page-cache
//! writes into a sparse file).
//!
//! The disks are tmpfs or ramfs mounts made by the test (8 MiB, or read-only), which needs root; without
//! it each test prints `SKIP: ...` with the reason and passes. Read-only mounts stop root too,
//! where permission bits (chmod 0555) do not.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Result, ensure};
use tests::client::fails_with;
use tests::mount::Tmpfs;
use tests::process::Proc;
use tests::resume::{claimed_pieces, claimed_pieces_are_on_disk, resume_file};
use tests::seeded::{SeedSpec, Seeded};

/// A bound: a full disk stops the download in a second or two.
const TIMEOUT: Duration = Duration::from_secs(40);

fn skip(test: &str, why: &str) {
    eprintln!("SKIP: {test}: {why}");
}

#[test]
fn a_full_disk_stops_the_download_with_a_clear_error() -> Result<()> {
    // The file's space is reserved when the download starts: the error comes at once.
    full_disk("a_full_disk_stops_the_download_with_a_clear_error", &[])
}

#[test]
fn a_disk_that_fills_up_while_writing_stops_the_download_with_a_clear_error() -> Result<()> {
    // A sparse file: the disk fills up part-way through, on a write.
    full_disk(
        "a_disk_that_fills_up_while_writing_stops_the_download_with_a_clear_error",
        &["--sparse"],
    )
}

fn full_disk(test: &str, extra: &[&str]) -> Result<()> {
    // 12 MiB into 8 MiB, in 256 KiB pieces.
    let mut spec = SeedSpec::new("big.bin", 12 * 1024 * 1024 + 5, 91);
    spec.piece_size = "256K";
    let s = Seeded::start(spec)?;
    let disk_dir = s.dir().join("small-disk");
    let disk = match Tmpfs::mount(&disk_dir, "8m", false)? {
        Ok(d) => d,
        Err(why) => {
            skip(test, &why.0);
            return Ok(());
        }
    };
    let out = disk.path().to_path_buf();
    let mut cmd = s.fetch_command(&out)?;
    cmd.args(extra);
    let leecher = Proc::spawn(cmd, "leecher", &s.logs)?;
    let line = fails_with(leecher, &["No space left on device", "big.bin"], TIMEOUT)?;
    eprintln!("full disk ({extra:?}): {line}");

    let got = s.fetched(&out);
    let resume = resume_file(&out, &s.meta);
    match claimed_pieces(&resume, &s.meta)? {
        None => eprintln!("full disk: no resume data was written"),
        Some(claimed) => {
            let n = claimed_pieces_are_on_disk(&claimed, &s.data, &got, s.piece_len())?;
            eprintln!(
                "full disk: the resume data claims {n} of {} pieces, all on disk",
                s.piece_count()
            );
        }
    }
    drop(disk);
    Ok(())
}

#[test]
fn a_read_only_output_directory_is_a_clear_error() -> Result<()> {
    let s = Seeded::start(SeedSpec::new("ro.bin", 200_000, 93))?;
    let ro_dir = s.dir().join("read-only");
    let ro = match Tmpfs::mount(&ro_dir, "1m", true)? {
        Ok(d) => d,
        Err(why) => {
            skip("a_read_only_output_directory_is_a_clear_error", &why.0);
            return Ok(());
        }
    };
    let out = ro.path().join("downloads");
    let leecher = Proc::spawn(s.fetch_command(&out)?, "leecher", &s.logs)?;
    let line = fails_with(leecher, &["Read-only file system"], TIMEOUT)?;
    eprintln!("read-only: {line}");
    ensure!(
        mentions_path(&line, &out) || mentions_path(&line, ro.path()),
        "the error names neither {} nor the mount: {line}",
        out.display()
    );
    ensure!(!out.exists(), "{} was created", out.display());
    Ok(())
}

#[test]
fn a_file_system_that_refuses_direct_writes_gets_buffered_ones() -> Result<()> {
    // Pieces are written around the page cache (O_DIRECT); ramfs refuses that at open, and the
    // download must carry on through the page cache with nothing lost.
    let s = direct_seed("ram.bin", 95)?;
    let ram_dir = s.dir().join("ramfs");
    let ram = match Tmpfs::mount_ramfs(&ram_dir)? {
        Ok(d) => d,
        Err(why) => {
            skip(
                "a_file_system_that_refuses_direct_writes_gets_buffered_ones",
                &why.0,
            );
            return Ok(());
        }
    };
    let probe = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .custom_flags(libc::O_DIRECT)
        .open(ram.path().join("probe"));
    ensure!(
        probe.is_err(),
        "this ramfs takes O_DIRECT: the test would not test the fallback"
    );
    fetch_direct(&s, &ram.path().join("downloads"), &[])?;
    drop(ram);
    Ok(())
}

#[test]
fn direct_writes_download_whole_pieces_and_a_short_tail() -> Result<()> {
    // The same download on the test's own disk, where O_DIRECT is taken: whole pieces go around
    // the page cache, the 777-byte tail through it.
    let s = direct_seed("direct.bin", 97)?;
    fetch_direct(&s, &s.dir().join("direct-out"), &[])
}

#[test]
fn buffered_writes_into_a_sparse_file_download_the_same_bytes() -> Result<()> {
    let s = direct_seed("buffered.bin", 98)?;
    let out = s.dir().join("buffered-out");
    fetch_direct(&s, &out, &["--buffered-writes", "--sparse"])?;
    Ok(())
}

/// A seeder of nine pieces of 256 KiB and a short last one, so that runs of whole pieces (two
/// groups of four, then a group with the tail) and a tail are all written.
fn direct_seed(name: &'static str, seed: u64) -> Result<Seeded> {
    let mut spec = SeedSpec::new(name, 9 * 256 * 1024 + 777, seed);
    spec.piece_size = "256K";
    Seeded::start(spec)
}

/// `swarm fetch` (with `extra` flags) into `out`: it must succeed with the seed's exact bytes.
fn fetch_direct(s: &Seeded, out: &Path, extra: &[&str]) -> Result<()> {
    let mut cmd = s.fetch_command(out)?;
    cmd.args(extra);
    let mut leecher = Proc::spawn(cmd, "leecher", &s.logs)?;
    leecher.wait_success(TIMEOUT)?;
    ensure!(
        std::fs::read(s.fetched(out))? == std::fs::read(&s.data)?,
        "the download into {} differs from the seed's data",
        out.display()
    );
    Ok(())
}

fn mentions_path(line: &str, path: &Path) -> bool {
    line.contains(&path.display().to_string())
}
