//! MSE/PE (`--encryption`) end to end on 127.0.0.1: every pair of our own policies through a
//! recording TCP relay (which pairs connect, and what the bytes on the wire look like), and
//! libtorrent with encryption forced (RC4 only) as seeder and as leecher.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use metainfo::TorrentBuilder;
use tests::bins;
use tests::fake_tracker::{ScriptedTracker, peers_body};
use tests::files::{compare_paths, write_file};
use tests::peers::{LibtorrentPeer, LtOptions};
use tests::ports::{free_port, loopback};
use tests::process::{Proc, Stream};
use tests::tracker::LocalTracker;
use tests::{Program, require};

const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a refused pair has to show the refusal in the seeder's log.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(60);
const LOG_FILTER: &str = "debug,hyper=info,hyper_util=info,reqwest=info,h2=info";
const PIECE_LEN: u32 = 256 * 1024;
/// 2.5 MiB in 10 pieces, the last one short.
const SIZE: u64 = 2_621_000;
/// Bytes recorded per direction of one relayed connection.
const RECORD_CAP: usize = 16 << 20;
const PLAIN: &[u8] = b"BitTorrent protocol";

/// One relayed connection's bytes: dialer to listener, and back.
#[derive(Debug, Default)]
struct Recorded {
    up: Vec<u8>,
    down: Vec<u8>,
}

impl Recorded {
    fn carries(&self, needle: &[u8]) -> bool {
        [&self.up, &self.down]
            .iter()
            .any(|d| d.windows(needle.len()).any(|w| w == needle))
    }
}

/// A TCP relay on 127.0.0.1 to `target`, recording every connection; stops on drop.
struct Relay {
    addr: SocketAddrV4,
    conns: Arc<Mutex<Vec<Arc<Mutex<Recorded>>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, rec: Arc<Mutex<Recorded>>, up: bool) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut r = rec.lock().expect("relay lock");
            let d = if up { &mut r.up } else { &mut r.down };
            let keep = n.min(RECORD_CAP.saturating_sub(d.len()));
            d.extend_from_slice(&buf[..keep]);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

impl Relay {
    fn start(target: SocketAddr) -> Result<Relay> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let conns: Arc<Mutex<Vec<Arc<Mutex<Recorded>>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (list, stopped) = (conns.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((a, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = a.set_nonblocking(false);
                let Ok(b) = TcpStream::connect(target) else {
                    continue;
                };
                let rec = Arc::new(Mutex::new(Recorded::default()));
                list.lock().expect("relay lock").push(rec.clone());
                let (a2, b2) = match (a.try_clone(), b.try_clone()) {
                    (Ok(a2), Ok(b2)) => (a2, b2),
                    _ => continue,
                };
                let r2 = rec.clone();
                std::thread::spawn(move || pump(a, b, rec, true));
                std::thread::spawn(move || pump(b2, a2, r2, false));
            }
        });
        Ok(Relay {
            addr: SocketAddrV4::new(Ipv4Addr::LOCALHOST, port),
            conns,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn swarm(args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(bins::swarm()?);
    cmd.args(args);
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", LOG_FILTER);
    }
    Ok(cmd)
}

fn s(p: &Path) -> Result<&str> {
    p.to_str().context("path is not UTF-8")
}

/// A file and its torrent announcing to `announce`.
fn payload(dir: &Path, announce: &str) -> Result<(PathBuf, PathBuf)> {
    let data = dir.join("seed").join("data.bin");
    std::fs::create_dir_all(data.parent().context("parent")?)?;
    write_file(&data, SIZE, 7)?;
    let meta = TorrentBuilder::new(&data)
        .piece_length(PIECE_LEN)
        .trackers(vec![vec![announce.to_owned()]])
        .build(&|_| {})?;
    let torrent = dir.join("data.torrent");
    std::fs::write(&torrent, meta.as_bytes())?;
    Ok((data, torrent))
}

fn our_seeder(torrent: &Path, data: &Path, port: u16, policy: &str, log: &Path) -> Result<Proc> {
    let cmd = swarm(&[
        "seed",
        s(torrent)?,
        "--data",
        s(data)?,
        "--listen",
        &loopback(port).to_string(),
        "--encryption",
        policy,
        "--no-dht",
    ])?;
    let mut p = Proc::spawn(cmd, &format!("swarm-seed-{policy}-{port}"), log)?;
    p.wait_for_line(Stream::Stdout, START_TIMEOUT, |l| {
        l.starts_with("listening on port")
    })
    .context("our seeder did not start")?;
    Ok(p)
}

fn our_leecher(torrent: &Path, dir: &Path, policy: &str, log: &Path) -> Result<Proc> {
    let port = free_port()?;
    let cmd = swarm(&[
        "fetch",
        s(torrent)?,
        "-o",
        s(dir)?,
        "--listen",
        &loopback(port).to_string(),
        "--encryption",
        policy,
        "--no-dht",
        "-q",
    ])?;
    Proc::spawn(cmd, &format!("swarm-fetch-{policy}-{port}"), log)
}

/// Our seeder with `seed` and our leecher with `fetch`, the leecher reaching the seeder only
/// through a recording relay. `Some(recorded)` if the download completed, `None` if the
/// seeder refused the leecher (and the leecher did not complete).
fn our_pair(seed: &str, fetch: &str) -> Result<Option<Vec<Recorded>>> {
    let tmp = tempfile::Builder::new().prefix("encryption-").tempdir()?;
    let t = tmp.path();
    let seed_port = free_port()?;
    let relay = Relay::start(loopback(seed_port))?;
    let relay_addr = relay.addr;
    // The seeder learns of nobody (it would dial itself through the relay); the leecher of the
    // relay only.
    let own = format!("port={seed_port}&");
    let tracker = ScriptedTracker::start(move |q| {
        if q.contains(&own) {
            peers_body(&[], 60)
        } else {
            peers_body(&[relay_addr], 60)
        }
    })?;
    let (data, torrent) = payload(t, &tracker.announce_url())?;
    let mut seeder = our_seeder(&torrent, &data, seed_port, seed, t)?;
    let out = t.join("out");
    let mut leecher = our_leecher(&torrent, &out, fetch, t)?;
    let refused = |l: &str| l.contains("incoming handshake failed") && l.contains("refused");
    let result = match (seed, fetch) {
        ("off", "require") | ("require", "off") => {
            seeder
                .wait_for_line(Stream::Stderr, REFUSAL_TIMEOUT, refused)
                .with_context(|| format!("seed {seed} / fetch {fetch}: no refusal logged"))?;
            ensure!(
                leecher.try_status()?.is_none(),
                "seed {seed} / fetch {fetch}: the leecher ended:\n{}",
                leecher.describe()
            );
            ensure!(
                compare_paths(&data, &out.join("data.bin")).is_err(),
                "seed {seed} / fetch {fetch}: downloaded anyway"
            );
            None
        }
        _ => {
            leecher
                .wait_success(TRANSFER_TIMEOUT)
                .with_context(|| format!("seed {seed} / fetch {fetch}: no download"))?;
            compare_paths(&data, &out.join("data.bin"))?;
            Some(())
        }
    };
    leecher.terminate(Duration::from_secs(10))?;
    seeder.terminate(Duration::from_secs(10))?;
    drop(tracker);
    let conns = std::mem::take(&mut *relay.conns.lock().expect("relay lock"));
    drop(relay);
    Ok(result.map(|()| {
        conns
            .into_iter()
            .map(|c| std::mem::take(&mut *c.lock().expect("relay lock")))
            .collect()
    }))
}

/// Checks one pair: whether it connected, and whether the connection that carried the
/// download was plaintext (`want_plain`) or not.
fn check_pair(seed: &str, fetch: &str, want_plain: Option<bool>) -> Result<()> {
    let got = our_pair(seed, fetch)?;
    let Some(want_plain) = want_plain else {
        ensure!(
            got.is_none(),
            "seed {seed} / fetch {fetch} should be refused"
        );
        return Ok(());
    };
    let conns = got.context("should connect")?;
    let transfer = conns
        .iter()
        .filter(|c| c.down.len() as u64 >= SIZE)
        .collect::<Vec<_>>();
    ensure!(
        !transfer.is_empty(),
        "seed {seed} / fetch {fetch}: the download did not go through the relay ({} connections)",
        conns.len()
    );
    for c in &transfer {
        ensure!(
            c.carries(PLAIN) == want_plain,
            "seed {seed} / fetch {fetch}: plaintext {} on the wire, wanted {want_plain}",
            c.carries(PLAIN)
        );
    }
    if seed == "require" && fetch == "require" {
        ensure!(
            conns.iter().all(|c| !c.carries(PLAIN)),
            "require <-> require: some connection carried a plaintext handshake"
        );
    }
    Ok(())
}

#[test]
fn seeder_off_with_each_policy() -> Result<()> {
    check_pair("off", "off", Some(true))?;
    check_pair("off", "allow", Some(true))?;
    check_pair("off", "require", None)
}

#[test]
fn seeder_allow_with_each_policy() -> Result<()> {
    check_pair("allow", "off", Some(true))?;
    check_pair("allow", "allow", Some(true))?;
    check_pair("allow", "require", Some(false))
}

#[test]
fn seeder_require_with_each_policy() -> Result<()> {
    check_pair("require", "off", None)?;
    // `allow` dials plaintext, is refused, and falls back to MSE (which then carries RC4).
    check_pair("require", "allow", Some(false))?;
    check_pair("require", "require", Some(false))
}

#[test]
fn libtorrent_forced_seeder_to_our_fetch_require() -> Result<()> {
    require!(Program::Libtorrent);
    let tracker = LocalTracker::start()?;
    let tmp = tempfile::Builder::new()
        .prefix("encryption-lt-")
        .tempdir()?;
    let t = tmp.path();
    let (data, torrent) = payload(t, &tracker.announce_url())?;
    let opts = LtOptions {
        encryption: Some(true),
        ..LtOptions::default()
    };
    let lt_dir = data.parent().context("parent")?;
    let _lt = LibtorrentPeer::seed_with(&torrent, lt_dir, free_port()?, &opts)?;
    let meta = metainfo::Metainfo::from_bytes(&std::fs::read(&torrent)?)?;
    tracker.wait_for_scrape(&meta.info_hash, START_TIMEOUT, |s| s.complete == 1)?;
    let out = t.join("out");
    let mut leecher = our_leecher(&torrent, &out, "require", t)?;
    leecher
        .wait_success(TRANSFER_TIMEOUT)
        .context("our require leecher did not complete from libtorrent pe_forced")?;
    compare_paths(&data, &out.join("data.bin"))
}

#[test]
fn our_seed_require_to_libtorrent_forced_leecher() -> Result<()> {
    require!(Program::Libtorrent);
    let tracker = LocalTracker::start()?;
    let tmp = tempfile::Builder::new()
        .prefix("encryption-lt-")
        .tempdir()?;
    let t = tmp.path();
    let (data, torrent) = payload(t, &tracker.announce_url())?;
    let _seeder = our_seeder(&torrent, &data, free_port()?, "require", t)?;
    let meta = metainfo::Metainfo::from_bytes(&std::fs::read(&torrent)?)?;
    tracker.wait_for_scrape(&meta.info_hash, START_TIMEOUT, |s| s.complete == 1)?;
    let opts = LtOptions {
        encryption: Some(true),
        ..LtOptions::default()
    };
    let dir = t.join("lt");
    let mut lt = LibtorrentPeer::leech_with(&torrent, &dir, free_port()?, &opts)?;
    lt.wait_done(TRANSFER_TIMEOUT)?;
    compare_paths(&data, &dir.join("data.bin"))
}
