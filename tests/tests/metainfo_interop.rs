//! Our .torrent reading and writing against libtorrent, Transmission and aria2.
//!
//! - A hand-made torrent whose info dictionary is not canonical (keys out of order, an unknown
//!   key) keeps the hash of its exact bytes, as libtorrent computes it (BEP 3). Transmission
//!   re-encodes the info dictionary before hashing, so it is not asked about that torrent.
//! - Torrents we create (one file with a short last piece; a directory tree) are read by all
//!   three programs with our info-hash, and libtorrent verifies every piece against the data.

use std::path::Path;

use anyhow::{Context, Result};
use metainfo::{InfoHash, Metainfo, TorrentBuilder};
use sha1::{Digest, Sha1};
use tests::files::{pseudo_random_bytes, write_file, write_tree};
use tests::peers::{LibtorrentPeer, aria2_show, libtorrent_info, transmission_show};
use tests::ports::free_port;
use tests::{Program, require};

const PIECE: usize = 16 * 1024;

fn sha1(bytes: &[u8]) -> [u8; 20] {
    Sha1::digest(bytes).into()
}

/// `<len>:<bytes>`.
fn bstr(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{}:", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

/// A dictionary from `(key, already encoded value)` pairs, in the order given.
fn dict(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![b'd'];
    for (key, value) in entries {
        out.extend(bstr(key.as_bytes()));
        out.extend_from_slice(value);
    }
    out.push(b'e');
    out
}

fn int(n: usize) -> Vec<u8> {
    format!("i{n}e").into_bytes()
}

#[test]
fn unsorted_info_with_an_unknown_key_keeps_the_hash_of_its_bytes() -> Result<()> {
    let python = require!(Program::Libtorrent);
    assert!(python.is_file());
    let data = pseudo_random_bytes(21, 2 * PIECE + 777);
    let pieces: Vec<u8> = data.chunks(PIECE).flat_map(sha1).collect();
    let entries = [
        ("pieces", bstr(&pieces)),
        ("name", bstr(b"odd.bin")),
        ("piece length", int(PIECE)),
        ("x-swarm-unknown", bstr(b"kept, not understood")),
        ("length", int(data.len())),
    ];
    let info = dict(&entries);
    // Top level out of order too: `info` before `creation date`.
    let torrent = dict(&[("info", info.clone()), ("creation date", int(0))]);
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("odd.torrent");
    std::fs::write(&path, &torrent)?;

    let ours = Metainfo::from_bytes(&torrent).context("our parser refused the torrent")?;
    assert_eq!(
        ours.info_hash,
        InfoHash(sha1(&info)),
        "not the hash of the exact bytes"
    );
    let lt = libtorrent_info(&path)?;
    assert_eq!(ours.info_hash, lt.info_hash, "libtorrent disagrees");
    assert_eq!(lt.name, "odd.bin");
    assert_eq!(lt.total_size, data.len() as u64);
    assert_eq!(lt.pieces, 3);

    // The torrent really is non-canonical: sorted keys without the unknown one hash otherwise.
    let mut canonical = entries.to_vec();
    canonical.retain(|(k, _)| *k != "x-swarm-unknown");
    canonical.sort_by_key(|(k, _)| *k);
    assert_ne!(InfoHash(sha1(&dict(&canonical))), ours.info_hash);
    Ok(())
}

/// Builds a torrent for `data` with our code, writes it beside the data, and checks that
/// libtorrent, aria2 and Transmission read it with our hash, name, size and piece count, and
/// that libtorrent accepts every piece of the data on disk.
fn check_created_torrent(data: &Path, piece_length: u32) -> Result<()> {
    let meta = TorrentBuilder::new(data)
        .piece_length(piece_length)
        .build(&|_| {})
        .context("our builder failed")?;
    let dir = data.parent().context("data has a parent")?;
    let torrent = dir.join("made-by-swarm.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;

    let lt = libtorrent_info(&torrent)?;
    assert_eq!(lt.info_hash, meta.info_hash, "libtorrent's hash");
    assert_eq!(lt.name, meta.info.name());
    assert_eq!(lt.total_size, meta.info.total_length());
    assert_eq!(lt.pieces, meta.info.pieces().len() as u64);
    assert_eq!(lt.piece_length, u64::from(piece_length));
    assert_eq!(aria2_show(&torrent)?, meta.info_hash, "aria2's hash");
    assert_eq!(
        transmission_show(&torrent)?,
        meta.info_hash,
        "transmission's hash"
    );

    // A seeder only reports `seeding` after hashing every piece on disk against the torrent.
    let seeder = LibtorrentPeer::seed(&torrent, dir, free_port()?)?;
    seeder.stop()?;
    Ok(())
}

#[test]
fn a_single_file_torrent_we_create_has_one_hash_everywhere() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    require!(Program::TransmissionShow);
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("data").join("single.bin");
    // Four pieces, the last one 1000 bytes.
    write_file(&file, 3 * 32 * 1024 + 1000, 5)?;
    check_created_torrent(&file, 32 * 1024)
}

#[test]
fn a_multi_file_torrent_we_create_has_one_hash_everywhere() -> Result<()> {
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    require!(Program::TransmissionShow);
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("data").join("album");
    // Pieces straddle file boundaries; one file is smaller than a piece.
    let files = [
        ("a.bin", 50_000),
        ("sub/b.bin", 70_001),
        ("sub/deeper/c.txt", 17),
        ("z.bin", 16_384),
    ];
    write_tree(&root, &files, 9)?;
    check_created_torrent(&root, 16 * 1024)
}
