//! Local Service Discovery (BEP 14) between real processes on a LAN the test makes: hosts in
//! network namespaces on one bridge (`tests::netns::Lan`, addresses 10.199.1.x), no tracker
//! and no DHT, so the only way peers can find each other is the multicast announce.
//!
//! 1. Two `swarm` processes trade a file; a listener on a third host sees the announces on the
//!    wire, and never one for a private torrent or from a process run with `--no-lsd`.
//! 2. The same over IPv6 only (the ff15::efc0:988f group, ULA addresses).
//! 3. libtorrent (LSD on) leeches from `swarm seed`, and `swarm fetch` leeches from libtorrent.
//!
//! Needs root for the namespaces: without it each test prints `SKIPPED ...` and passes, except
//! under `CI=true`, where it fails. Every wait is bounded.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use metainfo::{InfoHash, Metainfo, TorrentBuilder};
use tests::bins;
use tests::client::start_seeder;
use tests::files::{assert_same_bytes, write_file};
use tests::netns::Lan;
use tests::peers::{LibtorrentPeer, LtOptions};
use tests::process::{Proc, Stream};
use tests::{Program, require};

/// One download of a couple of MB, from start to exit; also the bound on any one wait.
const TIMEOUT: Duration = Duration::from_secs(60);
/// A seeder hashing its data and listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// The file traded: 2 MiB and a short last piece.
const FILE_LEN: u64 = 2 * 1024 * 1024 + 4_321;
/// Our processes log LSD decisions (and the rest at info) beside their data.
const LOG_FILTER: &str = "info,client::discovery::lsd=trace";
/// The LSD group and port.
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
const LSD_PORT: u16 = 6771;

/// The LAN for `test`, or `None` after printing why it is skipped (an error under CI=true).
fn lan(test: &str, tag: char, hosts: usize) -> Result<Option<Lan>> {
    match Lan::create(tag, hosts)? {
        Ok(lan) => Ok(Some(lan)),
        Err(why) => {
            skip(test, &format!("cannot make network namespaces: {}", why.0))?;
            Ok(None)
        }
    }
}

/// Prints why `test` is skipped; an error under CI=true, where everything it needs is meant
/// to be there.
fn skip(test: &str, why: &str) -> Result<()> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!("{test}: {why} (CI=true)");
    }
    // Straight to the process's stderr: libtest captures `eprintln!`, and a skip must be seen.
    let line = format!("SKIPPED {test}: {why}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    Ok(())
}

/// `swarm ARGS` on host `i` of `lan`, with LSD on and our log filter.
fn swarm_on(lan: &Lan, i: usize, args: &[&str]) -> Result<Command> {
    let mut cmd = lan.on(i, &bins::swarm()?);
    cmd.args(args).env("SWARM_NO_LSD", "0");
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", LOG_FILTER);
    }
    Ok(cmd)
}

fn s(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{} is not UTF-8", p.display()))
}

/// `host`'s listening address with a port the OS picks.
fn listen(host: usize) -> String {
    format!("{}:0", Lan::addr(host))
}

/// A torrent without trackers for `data`, written to `out`.
fn torrent_for(data: &Path, out: &Path, private: bool) -> Result<Metainfo> {
    let meta = TorrentBuilder::new(data)
        .piece_length(32 * 1024)
        .private(private)
        .build(&|_| {})?;
    std::fs::write(out, meta.as_bytes())?;
    Ok(meta)
}

/// What a listener on the LSD group heard: the sender and the datagram, as text.
type Heard = Arc<Mutex<Vec<(SocketAddr, String)>>>;

/// A listener on port 6771 of host `i`, joined to the group, collecting datagrams on a thread
/// until dropped.
struct Listener {
    heard: Heard,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start(lan: &Lan, i: usize) -> Result<Listener> {
        let socket = lan.within(i, || {
            let s = socket2::Socket::new(
                socket2::Domain::IPV4,
                socket2::Type::DGRAM,
                Some(socket2::Protocol::UDP),
            )?;
            // Shared with the processes on this host, as every LSD client shares it.
            s.set_reuse_address(true)?;
            s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, LSD_PORT)).into())?;
            let s: UdpSocket = s.into();
            s.join_multicast_v4(&GROUP, &Lan::addr(i))?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            Ok(s)
        })?;
        let heard: Heard = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (heard.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, from)) = socket.recv_from(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    if let Ok(mut v) = h.lock() {
                        v.push((from, text));
                    }
                }
            }
        });
        Ok(Listener {
            heard,
            stop,
            thread: Some(thread),
        })
    }

    /// Everything heard so far.
    fn heard(&self) -> Vec<(SocketAddr, String)> {
        self.heard.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Waits at most [`TIMEOUT`] for a datagram that `pred` accepts.
    fn wait_for(&self, what: &str, pred: impl Fn(&SocketAddr, &str) -> bool) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < TIMEOUT {
            if self.heard().iter().any(|(a, t)| pred(a, t)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!("never heard {what}; heard {:#?}", self.heard())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Does this datagram announce `ih`?
fn announces(text: &str, ih: &InfoHash) -> bool {
    text.to_ascii_lowercase()
        .contains(&format!("infohash: {}\r\n", ih.to_hex()))
}

/// The value of the `cookie` header of a datagram.
fn cookie(text: &str) -> Option<&str> {
    text.split("\r\n")
        .find_map(|l| l.strip_prefix("cookie: "))
        .map(str::trim)
}

#[test]
fn two_swarm_peers_find_each_other_by_lsd() -> Result<()> {
    let test = "two_swarm_peers_find_each_other_by_lsd";
    let Some(lan) = lan(test, 'l', 3)? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let listener = Listener::start(&lan, 2)?;

    // Host 0: one process seeds a public torrent, another a private one (both on port 6771).
    let public = tmp.path().join("seed/public.bin");
    write_file(&public, FILE_LEN, 141)?;
    let public_torrent = tmp.path().join("public.torrent");
    let public_meta = torrent_for(&public, &public_torrent, false)?;
    let private = tmp.path().join("seed/private.bin");
    write_file(&private, 100_000, 142)?;
    let private_torrent = tmp.path().join("private.torrent");
    let private_meta = torrent_for(&private, &private_torrent, true)?;
    let seed = swarm_on(
        &lan,
        0,
        &[
            "seed",
            s(&public_torrent)?,
            "--data",
            s(&public)?,
            "--listen",
            &listen(0),
        ],
    )?;
    let (_seeder, _) = start_seeder(seed, "public-seeder", &logs, START_TIMEOUT)?;
    let seed = swarm_on(
        &lan,
        0,
        &[
            "seed",
            s(&private_torrent)?,
            "--data",
            s(&private)?,
            "--listen",
            &listen(0),
        ],
    )?;
    let (private_seeder, _) = start_seeder(seed, "private-seeder", &logs, START_TIMEOUT)?;
    // Host 1: a seeder with --no-lsd, which must stay silent.
    let quiet = tmp.path().join("seed/quiet.bin");
    write_file(&quiet, 50_000, 143)?;
    let quiet_torrent = tmp.path().join("quiet.torrent");
    let quiet_meta = torrent_for(&quiet, &quiet_torrent, false)?;
    let seed = swarm_on(
        &lan,
        1,
        &[
            "seed",
            s(&quiet_torrent)?,
            "--data",
            s(&quiet)?,
            "--listen",
            &listen(1),
            "--no-lsd",
        ],
    )?;
    let (_quiet_seeder, _) = start_seeder(seed, "quiet-seeder", &logs, START_TIMEOUT)?;
    let seeder_ip = Lan::addr(0);
    listener.wait_for("the seeder's announce", |a, t| {
        a.ip() == seeder_ip && announces(t, &public_meta.info_hash)
    })?;

    // Host 1: the download, which only LSD can bring a peer to.
    let out = tmp.path().join("fetched");
    let fetch = swarm_on(
        &lan,
        1,
        &[
            "fetch",
            s(&public_torrent)?,
            "-o",
            s(&out)?,
            "--listen",
            &listen(1),
        ],
    )?;
    let mut fetcher = Proc::spawn(fetch, "fetcher", &logs)?;
    fetcher.wait_success(TIMEOUT)?;
    assert_same_bytes(&public, &out.join("public.bin"));

    let fetcher_ip = Lan::addr(1);
    listener.wait_for("the fetcher's announce", |a, t| {
        a.ip() == fetcher_ip && announces(t, &public_meta.info_hash)
    })?;
    let heard = listener.heard();
    for (from, text) in &heard {
        ensure!(
            text.starts_with("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: "),
            "from {from}: {text:?}"
        );
        ensure!(text.ends_with("\r\n\r\n\r\n"), "from {from}: {text:?}");
        ensure!(
            !announces(text, &private_meta.info_hash),
            "a private torrent was announced: {text:?}"
        );
        ensure!(
            !announces(text, &quiet_meta.info_hash),
            "a --no-lsd process announced: {text:?}"
        );
    }
    let cookie_of = |ip: Ipv4Addr| {
        heard
            .iter()
            .find(|(a, _)| a.ip() == ip)
            .and_then(|(_, t)| cookie(t).map(str::to_owned))
    };
    let (c0, c1) = (cookie_of(seeder_ip), cookie_of(fetcher_ip));
    ensure!(
        c0.is_some() && c1.is_some() && c0 != c1,
        "each process has its own cookie: {c0:?} {c1:?}"
    );
    ensure!(
        private_seeder
            .output(Stream::Stdout)
            .contains("listening on port"),
        "{}",
        private_seeder.describe()
    );
    Ok(())
}

#[test]
fn two_swarm_peers_find_each_other_over_ipv6() -> Result<()> {
    let test = "two_swarm_peers_find_each_other_over_ipv6";
    let Some(lan) = lan(test, 'o', 2)? else {
        return Ok(());
    };
    if !lan.has_ipv6() {
        skip(test, "IPv6 is off on this machine")?;
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let (data, torrent) = payload(tmp.path(), 153)?;
    // Listening on one IPv6 address each: only the IPv6 group is used.
    let listen6 = |i: usize| format!("[{}]:0", Lan::addr6(i));
    let seed = swarm_on(
        &lan,
        0,
        &[
            "seed",
            s(&torrent)?,
            "--data",
            s(&data)?,
            "--listen",
            &listen6(0),
        ],
    )?;
    let (_seeder, _) = start_seeder(seed, "seeder", &logs, START_TIMEOUT)?;
    let out = tmp.path().join("fetched");
    let fetch = swarm_on(
        &lan,
        1,
        &[
            "fetch",
            s(&torrent)?,
            "-o",
            s(&out)?,
            "--listen",
            &listen6(1),
        ],
    )?;
    let mut fetcher = Proc::spawn(fetch, "fetcher", &logs)?;
    fetcher.wait_success(TIMEOUT)?;
    assert_same_bytes(&data, &out.join("lan.bin"));
    Ok(())
}

/// Data for libtorrent tests: one file and its torrent (no tracker) under `tmp`.
fn payload(tmp: &Path, seed: u64) -> Result<(PathBuf, PathBuf)> {
    let data = tmp.join("seed/lan.bin");
    write_file(&data, FILE_LEN, seed)?;
    let torrent = tmp.join("lan.torrent");
    torrent_for(&data, &torrent, false)?;
    Ok((data, torrent))
}

fn lt_options(lan: &Lan, host: usize, logs: &Path) -> LtOptions {
    LtOptions {
        timeout: Duration::from_secs(120),
        log_dir: Some(logs.to_path_buf()),
        listen_ip: Some(Lan::addr(host)),
        lsd: true,
        netns: Some(lan.netns(host).to_owned()),
        ..LtOptions::default()
    }
}

#[test]
fn libtorrent_finds_our_seed_by_lsd() -> Result<()> {
    require!(Program::Libtorrent);
    let Some(lan) = lan("libtorrent_finds_our_seed_by_lsd", 'm', 2)? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let (data, torrent) = payload(tmp.path(), 151)?;
    let seed = swarm_on(
        &lan,
        0,
        &[
            "seed",
            s(&torrent)?,
            "--data",
            s(&data)?,
            "--listen",
            &listen(0),
        ],
    )?;
    let (_seeder, _) = start_seeder(seed, "seeder", &logs, START_TIMEOUT)?;
    let dir = tmp.path().join("lt");
    let mut leecher =
        LibtorrentPeer::leech_with(&torrent, &dir, 7001, &lt_options(&lan, 1, &logs))?;
    leecher.wait_done(TIMEOUT)?;
    leecher.stop()?;
    assert_same_bytes(&data, &dir.join("lan.bin"));
    Ok(())
}

#[test]
fn we_find_a_libtorrent_seed_by_lsd() -> Result<()> {
    require!(Program::Libtorrent);
    let Some(lan) = lan("we_find_a_libtorrent_seed_by_lsd", 'n', 2)? else {
        return Ok(());
    };
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let (data, torrent) = payload(tmp.path(), 152)?;
    let seed_dir = data.parent().context("no parent")?;
    let seeder = LibtorrentPeer::seed_with(&torrent, seed_dir, 7001, &lt_options(&lan, 0, &logs))?;
    let out = tmp.path().join("fetched");
    let fetch = swarm_on(
        &lan,
        1,
        &[
            "fetch",
            s(&torrent)?,
            "-o",
            s(&out)?,
            "--listen",
            &listen(1),
        ],
    )?;
    let mut fetcher = Proc::spawn(fetch, "fetcher", &logs)?;
    fetcher.wait_success(TIMEOUT)?;
    assert_same_bytes(&data, &out.join("lan.bin"));
    let moved = seeder.stop()?;
    ensure!(moved.uploaded >= FILE_LEN, "libtorrent sent only {moved:?}");
    Ok(())
}
