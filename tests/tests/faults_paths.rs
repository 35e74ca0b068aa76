//! `swarm fetch` never writes outside its output directory: not through a symlink planted where
//! the torrent's file or top directory goes, and not for a torrent whose paths climb out (`..`)
//! or are absolute. Each case ends with one clear `error:` line and a non-zero exit, and the
//! files outside are untouched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, ensure};
use tests::client::{fails_with, fetch_command, seed_command, start_seeder};
use tests::files::{pseudo_random_bytes, write_tree};
use tests::process::Proc;
use tests::seeded::{ANNOUNCE_TIMEOUT, START_TIMEOUT, SeedSpec, Seeded};
use tests::tracker::LocalTracker;

/// A bound: each case fails at once, or after its first piece.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A file outside every output directory, with known bytes, to check it is never touched.
fn bait(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>)> {
    let path = dir.join("outside").join(name);
    let bytes = pseudo_random_bytes(5, 1000);
    std::fs::create_dir_all(dir.join("outside"))?;
    std::fs::write(&path, &bytes)?;
    Ok((path, bytes))
}

#[test]
fn a_symlink_in_place_of_the_file_is_refused() -> Result<()> {
    let s = Seeded::start(SeedSpec::new("victim.bin", 300_000, 111))?;
    let (target, before) = bait(s.dir(), "precious")?;
    let out = s.dir().join("leech");
    std::fs::create_dir_all(&out)?;
    std::os::unix::fs::symlink(&target, out.join("victim.bin"))?;
    let line = fails_with(
        Proc::spawn(s.fetch_command(&out)?, "leecher", &s.logs)?,
        &["victim.bin"],
        TIMEOUT,
    )?;
    eprintln!("planted file symlink: {line}");
    ensure!(
        std::fs::read(&target)? == before,
        "the file behind the symlink was changed"
    );
    Ok(())
}

#[test]
fn a_symlink_in_place_of_the_top_directory_is_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = tmp.path().join("seed/album");
    write_tree(&data, &[("a.bin", 70_000), ("sub/b.bin", 50_000)], 113)?;
    let tracker = LocalTracker::start()?;
    let torrent = tmp.path().join("album.torrent");
    let cmd = seed_command(&data, &torrent, &tracker.announce_url(), "32K")?;
    let (_seeder, _) = start_seeder(cmd, "seeder", &logs, START_TIMEOUT)?;
    let meta = metainfo::Metainfo::from_bytes(&std::fs::read(&torrent)?)?;
    tracker.wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;

    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere)?;
    let out = tmp.path().join("leech");
    std::fs::create_dir_all(&out)?;
    std::os::unix::fs::symlink(&elsewhere, out.join("album"))?;
    let line = fails_with(
        Proc::spawn(fetch_command(&torrent, &out)?, "leecher", &logs)?,
        &["album"],
        TIMEOUT,
    )?;
    eprintln!("planted directory symlink: {line}");
    let written: Vec<_> = std::fs::read_dir(&elsewhere)?.collect();
    ensure!(
        written.is_empty(),
        "{} entries written through the symlink into {}",
        written.len(),
        elsewhere.display()
    );
    Ok(())
}

/// A bencoded byte string.
fn bstr(b: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", b.len()).into_bytes();
    out.extend_from_slice(b);
    out
}

/// A .torrent (built by hand, keys sorted) whose info dict is `info_entries` (already encoded
/// `key value` pairs, sorted) plus a piece length and one piece hash.
fn torrent_bytes(info_entries: &[u8]) -> Vec<u8> {
    let mut info = b"d".to_vec();
    info.extend_from_slice(info_entries);
    info.extend_from_slice(&bstr(b"piece length"));
    info.extend_from_slice(b"i16384e");
    info.extend_from_slice(&bstr(b"pieces"));
    info.extend_from_slice(&bstr(&[0x42; 20]));
    info.push(b'e');
    let mut t = b"d".to_vec();
    t.extend_from_slice(&bstr(b"announce"));
    t.extend_from_slice(&bstr(b"http://127.0.0.1:1/announce"));
    t.extend_from_slice(&bstr(b"info"));
    t.extend_from_slice(&info);
    t.push(b'e');
    t
}

/// `files` = one file at `path` (components) of 100 bytes, under the torrent `name`.
fn multi_file(name: &[u8], path: &[&[u8]]) -> Vec<u8> {
    let mut e = bstr(b"files");
    e.extend_from_slice(b"ld");
    e.extend_from_slice(&bstr(b"length"));
    e.extend_from_slice(b"i100e");
    e.extend_from_slice(&bstr(b"path"));
    e.push(b'l');
    for c in path {
        e.extend_from_slice(&bstr(c));
    }
    e.extend_from_slice(b"eee");
    e.extend_from_slice(&bstr(b"name"));
    e.extend_from_slice(&bstr(name));
    torrent_bytes(&e)
}

/// A single file of 100 bytes named `name`.
fn single_file(name: &[u8]) -> Vec<u8> {
    let mut e = bstr(b"length");
    e.extend_from_slice(b"i100e");
    e.extend_from_slice(&bstr(b"name"));
    e.extend_from_slice(&bstr(name));
    torrent_bytes(&e)
}

#[test]
fn torrents_with_paths_out_of_the_directory_are_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    // Everything is fetched into work/out; nothing may appear in work/ or elsewhere.
    let work = tmp.path().join("work");
    let out = work.join("out");
    std::fs::create_dir_all(&out)?;
    let cases: [(&str, Vec<u8>); 6] = [
        (
            "dotdot-component",
            multi_file(b"top", &[b"..", b"..", b"escape.bin"]),
        ),
        ("dotdot-name", multi_file(b"..", &[b"escape.bin"])),
        ("slash-in-name", single_file(b"../escape.bin")),
        ("absolute-name", single_file(b"/tmp/swarm-escape.bin")),
        (
            "absolute-component",
            multi_file(b"top", &[b"/tmp", b"escape.bin"]),
        ),
        ("dotdot-single", single_file(b"..")),
    ];
    for (label, bytes) in cases {
        let torrent = tmp.path().join(format!("{label}.torrent"));
        std::fs::write(&torrent, &bytes)?;
        let line = fails_with(
            Proc::spawn(fetch_command(&torrent, &out)?, label, &logs)?,
            &[&format!("{label}.torrent")],
            TIMEOUT,
        )?;
        eprintln!("{label}: {line}");
        let mut left: Vec<String> = std::fs::read_dir(&work)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        left.retain(|n| n != "out");
        ensure!(
            left.is_empty(),
            "{label}: {left:?} written beside the output directory"
        );
        ensure!(
            !Path::new("/tmp/swarm-escape.bin").exists() && !Path::new("/tmp/escape.bin").exists(),
            "{label}: a file was written at an absolute path"
        );
    }
    Ok(())
}
