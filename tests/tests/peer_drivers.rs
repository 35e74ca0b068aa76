//! The harness's real-peer drivers work against each other, with torrents made by mktorrent:
//! a scenario that fails here is a harness problem, not a swarm one.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use tests::files::{assert_same_bytes, write_file, write_tree};
use tests::peers::{
    Aria2, LibtorrentPeer, LtOptions, Transmission, aria2_show, libtorrent_info_hash, mktorrent,
    transmission_show,
};
use tests::ports::free_port;
use tests::{Program, require};

const TRANSFER_TIMEOUT: Duration = Duration::from_secs(90);

/// A leecher that dials `seeder` directly (no tracker), into `dir`.
fn leech_from(torrent: &Path, dir: &Path, seeder: std::net::SocketAddr) -> Result<LibtorrentPeer> {
    let opts = LtOptions {
        connect: vec![seeder],
        ..LtOptions::default()
    };
    LibtorrentPeer::leech_with(torrent, dir, free_port()?, &opts)
}

#[test]
fn show_commands_agree_on_a_mktorrent_torrent() -> Result<()> {
    require!(Program::Mktorrent);
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    require!(Program::TransmissionShow);
    let tmp = tempfile::tempdir()?;
    write_tree(&tmp.path().join("d"), &[("a", 40_000), ("sub/b", 3)], 1)?;
    let torrent = tmp.path().join("d.torrent");
    mktorrent(&tmp.path().join("d"), &torrent, 15, None)?;
    let lt = libtorrent_info_hash(&torrent)?;
    assert_eq!(aria2_show(&torrent)?, lt);
    assert_eq!(transmission_show(&torrent)?, lt);
    Ok(())
}

#[test]
fn libtorrent_seeds_to_libtorrent_and_counts_the_bytes() -> Result<()> {
    require!(Program::Mktorrent);
    require!(Program::Libtorrent);
    let tmp = tempfile::tempdir()?;
    let (seed_dir, leech_dir) = (tmp.path().join("seed"), tmp.path().join("leech"));
    let len = 1_000_003;
    write_file(&seed_dir.join("f.bin"), len, 2)?;
    let torrent = tmp.path().join("f.torrent");
    mktorrent(&seed_dir.join("f.bin"), &torrent, 16, None)?;

    let seeder = LibtorrentPeer::seed(&torrent, &seed_dir, free_port()?)?;
    let mut leecher = leech_from(&torrent, &leech_dir, seeder.addr())?;
    leecher.wait_done(TRANSFER_TIMEOUT)?;
    assert_same_bytes(&seed_dir, &leech_dir);
    let sent = seeder.stop()?;
    assert!(
        sent.uploaded >= len,
        "seeder uploaded {} < {len}",
        sent.uploaded
    );
    Ok(())
}

#[test]
fn aria2_seeds_to_libtorrent() -> Result<()> {
    require!(Program::Mktorrent);
    require!(Program::Libtorrent);
    require!(Program::Aria2c);
    let tmp = tempfile::tempdir()?;
    let (seed_dir, leech_dir) = (tmp.path().join("seed"), tmp.path().join("leech"));
    write_tree(&seed_dir.join("d"), &[("x", 300_000), ("y/z", 5)], 3)?;
    let torrent = tmp.path().join("d.torrent");
    mktorrent(&seed_dir.join("d"), &torrent, 15, None)?;

    let seeder = Aria2::seed(&torrent, &seed_dir, free_port()?)?;
    let mut leecher = leech_from(&torrent, &leech_dir, seeder.addr())?;
    leecher.wait_done(TRANSFER_TIMEOUT)?;
    assert_same_bytes(&seed_dir.join("d"), &leech_dir.join("d"));
    Ok(())
}

#[test]
fn transmission_seeds_to_libtorrent() -> Result<()> {
    require!(Program::Mktorrent);
    require!(Program::Libtorrent);
    require!(Program::TransmissionDaemon);
    require!(Program::TransmissionRemote);
    let tmp = tempfile::tempdir()?;
    let (seed_dir, leech_dir) = (tmp.path().join("seed"), tmp.path().join("leech"));
    write_file(&seed_dir.join("t.bin"), 200_000, 4)?;
    let torrent = tmp.path().join("t.torrent");
    mktorrent(&seed_dir.join("t.bin"), &torrent, 15, None)?;
    let hash = libtorrent_info_hash(&torrent)?;

    let daemon = Transmission::start(&tmp.path().join("transmission"))?;
    daemon.add(&torrent, &seed_dir)?;
    daemon.wait_complete(&hash, Duration::from_secs(30))?;
    let mut leecher = leech_from(&torrent, &leech_dir, daemon.addr())?;
    leecher.wait_done(TRANSFER_TIMEOUT)?;
    assert_same_bytes(&seed_dir, &leech_dir);
    Ok(())
}
