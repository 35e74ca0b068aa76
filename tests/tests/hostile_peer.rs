//! A scripted hostile peer against a real `swarm seed`: wrong info-hashes, garbage, absurd length
//! prefixes, malformed and out-of-range messages, request floods and a crowd of idle
//! connections. Each scenario checks what the fake peer sees (closed or answered) and that the
//! seeder still serves a real `swarm fetch` afterwards.
//!
//! The fake peer connects from its own 127.x address (not 127.0.0.1), so a ban by IP it earns
//! cannot touch the real leecher. All waits are bounded; all traffic stays on 127.0.0.0/8.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::BytesMut;
use metainfo::{InfoHash, Metainfo, PeerId};
use tempfile::TempDir;
use tests::client::{fetch_command, seed_command, start_seeder};
use tests::files::{assert_same_bytes, pseudo_random_bytes, write_file};
use tests::process::Proc;
use tests::tracker::LocalTracker;
use wire::{BlockSpec, Handshake, Message, Reserved};

/// Longest a seeder may take to hash its data and start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the seeder's first announce may take to reach the tracker.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest the real leecher's download may take (a bound; alone it takes under a second).
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the seeder may take to drop a peer that broke the protocol.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one expected answer may take to arrive.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Piece size of the torrent.
const PIECE: u32 = 32 * 1024;
/// Size of the seeded file: 31 pieces, the last one short.
const FILE_LEN: u64 = 1_000_003;
/// Largest frame the fake peer accepts from the seeder.
const MAX_FRAME: usize = 1 << 20;

/// A seeder of one file, announced to a tracker of its own.
struct Seeded {
    tmp: TempDir,
    _tracker: LocalTracker,
    seeder: Proc,
    port: u16,
    torrent: PathBuf,
    data: PathBuf,
    meta: Metainfo,
}

impl Seeded {
    /// `swarm seed` as users run it: super-seeding.
    fn start() -> Result<Seeded> {
        Seeded::start_with(&[])
    }

    /// `swarm seed ... ARGS`.
    fn start_with(args: &[&str]) -> Result<Seeded> {
        let tmp = tempfile::tempdir()?;
        let data = tmp.path().join("seed/file.bin");
        write_file(&data, FILE_LEN, 61)?;
        let tracker = LocalTracker::start()?;
        let torrent = tmp.path().join("file.torrent");
        let mut cmd = seed_command(&data, &torrent, &tracker.announce_url(), "32K")?;
        cmd.args(args);
        let (seeder, port) = start_seeder(cmd, "seeder", &tmp.path().join("logs"), START_TIMEOUT)?;
        let bytes = std::fs::read(&torrent)?;
        let meta = Metainfo::from_bytes(&bytes)?;
        tracker.wait_for_scrape(&meta.info_hash, ANNOUNCE_TIMEOUT, |s| s.complete == 1)?;
        Ok(Seeded {
            tmp,
            _tracker: tracker,
            seeder,
            port,
            torrent,
            data,
            meta,
        })
    }

    fn hash(&self) -> InfoHash {
        self.meta.info_hash
    }

    fn piece_count(&self) -> u32 {
        self.meta.info.geometry().piece_count()
    }

    /// A TCP connection to the seeder from `source` (a 127.x address other than 127.0.0.1).
    fn connect_from(&self, source: Ipv4Addr) -> Result<TcpStream> {
        connect_many(source, self.port, 1)?
            .pop()
            .context("no connection")
    }

    /// Connects from `source` and exchanges handshakes (Fast bit as given).
    fn handshaken(&self, source: Ipv4Addr, fast: bool) -> Result<TcpStream> {
        let mut s = self.connect_from(source)?;
        send_handshake(&mut s, self.hash(), fast)?;
        let mut reply = [0u8; wire::HANDSHAKE_LEN];
        s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        s.read_exact(&mut reply).context("handshake reply")?;
        let hs = Handshake::parse(&reply)?.context("short handshake")?;
        ensure!(hs.info_hash == self.hash(), "reply for another torrent");
        Ok(s)
    }

    /// Checks the seeder is running, then that a real leecher downloads the file from it.
    fn serves_a_real_leecher(&mut self) -> Result<()> {
        ensure!(
            self.seeder.try_status()?.is_none(),
            "the seeder died\n{}",
            self.seeder.describe()
        );
        let out = self.tmp.path().join("leech");
        let logs = self.tmp.path().join("logs");
        let mut leecher = Proc::spawn(fetch_command(&self.torrent, &out)?, "leecher", &logs)?;
        leecher.wait_success(FETCH_TIMEOUT)?;
        assert_same_bytes(&self.data, &out.join("file.bin"));
        Ok(())
    }

    /// The seeder's resident memory in bytes.
    fn rss(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.seeder.pid()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .context("no VmRSS")?;
        Ok(kb.parse::<u64>()? * 1024)
    }
}

/// `n` TCP connections to `127.0.0.1:port`, each bound to `source` first.
fn connect_many(source: Ipv4Addr, port: u16, n: usize) -> Result<Vec<TcpStream>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let target = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
    rt.block_on(async {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
            let stream = tokio::time::timeout(ANSWER_TIMEOUT, socket.connect(target))
                .await
                .context("connect timed out")??;
            let std = stream.into_std()?;
            std.set_nonblocking(false)?;
            out.push(std);
        }
        Ok(out)
    })
}

fn peer_id() -> PeerId {
    let mut id = *b"-HP0001-000000000000";
    id[8..].copy_from_slice(&pseudo_random_bytes(7, 12));
    PeerId(id)
}

fn send_handshake(s: &mut TcpStream, hash: InfoHash, fast: bool) -> Result<()> {
    let mut reserved = Reserved::NONE;
    reserved.set_fast(fast);
    let hs = Handshake {
        reserved,
        info_hash: hash,
        peer_id: peer_id(),
    };
    s.write_all(&hs.encode())?;
    Ok(())
}

fn send(s: &mut TcpStream, msgs: &[Message]) -> Result<()> {
    let mut buf = BytesMut::new();
    for m in msgs {
        m.encode(&mut buf);
    }
    s.write_all(&buf)?;
    Ok(())
}

/// Reads the next frame within `timeout`: `Some(body)` (empty for a keep-alive), `None` at EOF.
fn read_frame(s: &mut TcpStream, timeout: Duration) -> Result<Option<Vec<u8>>> {
    s.set_read_timeout(Some(timeout))?;
    let mut len = [0u8; 4];
    match s.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if is_closed(&e) => return Ok(None),
        Err(e) => return Err(e).context("read frame length"),
    }
    let len = u32::from_be_bytes(len) as usize;
    ensure!(len <= MAX_FRAME, "frame of {len} bytes");
    let mut body = vec![0u8; len];
    match s.read_exact(&mut body) {
        Ok(()) => Ok(Some(body)),
        Err(e) if is_closed(&e) => Ok(None),
        Err(e) => Err(e).context("read frame body"),
    }
}

/// Reads frames until one with message id `id` arrives (within `timeout` overall).
fn wait_for_id(s: &mut TcpStream, id: u8, timeout: Duration) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure!(!left.is_zero(), "no message {id} within {timeout:?}");
        match read_frame(s, left)? {
            None => bail!("closed while waiting for message {id}"),
            Some(body) if body.first() == Some(&id) => return Ok(body),
            Some(_) => {}
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

/// Reads (and discards) until the seeder closes the connection, at most `timeout`; returns how
/// many bytes arrived before the close.
fn expect_closed(s: &mut TcpStream, timeout: Duration) -> Result<usize> {
    let deadline = Instant::now() + timeout;
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        ensure!(
            !left.is_zero(),
            "still open after {timeout:?} ({got} bytes received)"
        );
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got += n,
            Err(e) if is_closed(&e) => return Ok(got),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e).context("read"),
        }
    }
}

fn request(piece: u32, begin: u32, len: u32) -> Message {
    Message::Request(BlockSpec { piece, begin, len })
}

#[test]
fn a_wrong_info_hash_is_closed_without_a_reply() -> Result<()> {
    let mut seeded = Seeded::start()?;
    let mut s = seeded.connect_from(Ipv4Addr::new(127, 0, 0, 2))?;
    send_handshake(&mut s, InfoHash([0x5a; 20]), true)?;
    let got = expect_closed(&mut s, CLOSE_TIMEOUT)?;
    assert_eq!(
        got, 0,
        "the seeder answered a handshake for a torrent it lacks"
    );
    seeded.serves_a_real_leecher()
}

#[test]
fn garbage_after_the_handshake_is_closed() -> Result<()> {
    let mut seeded = Seeded::start()?;
    let mut s = seeded.handshaken(Ipv4Addr::new(127, 0, 0, 3), false)?;
    // The seeder may close mid-write; what matters is what the read sees.
    let _ = s.write_all(&pseudo_random_bytes(99, 64 * 1024));
    expect_closed(&mut s, CLOSE_TIMEOUT)?;
    seeded.serves_a_real_leecher()
}

#[test]
fn a_4_gib_length_prefix_is_closed_promptly() -> Result<()> {
    let mut seeded = Seeded::start()?;
    let mut s = seeded.handshaken(Ipv4Addr::new(127, 0, 0, 4), false)?;
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0, 0])?;
    expect_closed(&mut s, CLOSE_TIMEOUT)?;
    seeded.serves_a_real_leecher()
}

#[test]
fn a_bitfield_of_the_wrong_size_is_closed() -> Result<()> {
    let mut seeded = Seeded::start()?;
    let len = seeded.meta.info.geometry().bitfield_len();
    let mut s = seeded.handshaken(Ipv4Addr::new(127, 0, 0, 5), false)?;
    send(&mut s, &[Message::Bitfield(vec![0u8; len + 1].into())])?;
    expect_closed(&mut s, CLOSE_TIMEOUT)?;
    seeded.serves_a_real_leecher()
}

#[test]
fn a_have_out_of_range_is_closed() -> Result<()> {
    let mut seeded = Seeded::start()?;
    let mut s = seeded.handshaken(Ipv4Addr::new(127, 0, 0, 6), false)?;
    send(&mut s, &[Message::Have(seeded.piece_count())])?;
    expect_closed(&mut s, CLOSE_TIMEOUT)?;
    seeded.serves_a_real_leecher()
}

#[test]
fn a_request_out_of_range_is_closed_but_one_over_16_kib_is_rejected() -> Result<()> {
    let mut seeded = Seeded::start()?;
    let pieces = seeded.piece_count();

    let mut s = seeded.handshaken(Ipv4Addr::new(127, 0, 0, 7), true)?;
    send(&mut s, &[Message::Interested, request(pieces, 0, 16384)])?;
    expect_closed(&mut s, CLOSE_TIMEOUT)?;

    let mut s = seeded.handshaken(Ipv4Addr::new(127, 0, 0, 8), true)?;
    // The seeder super-seeds: it shows pieces one HAVE at a time, and serves only those.
    let have = wait_for_id(&mut s, 4, ANSWER_TIMEOUT).context("have")?;
    let shown: [u8; 4] = have
        .get(1..5)
        .and_then(|b| b.try_into().ok())
        .context("short HAVE")?;
    let shown_piece = u32::from_be_bytes(shown);
    send(&mut s, &[Message::Interested])?;
    wait_for_id(&mut s, 1, ANSWER_TIMEOUT).context("unchoke")?;
    send(&mut s, &[request(shown_piece, 0, PIECE)])?;
    let reject = wait_for_id(&mut s, 16, ANSWER_TIMEOUT).context("reject")?;
    let mut want = BytesMut::new();
    Message::Reject(BlockSpec {
        piece: shown_piece,
        begin: 0,
        len: PIECE,
    })
    .encode(&mut want);
    assert_eq!(reject, want[4..]);
    // Still open and serving: a proper request gets its block.
    send(&mut s, &[request(shown_piece, 16384, 16384)])?;
    let piece = wait_for_id(&mut s, 7, ANSWER_TIMEOUT).context("piece")?;
    assert_eq!(piece.len(), 9 + 16384);
    assert_eq!(piece[1..5], shown);
    assert_eq!(piece[5..9], [0, 0, 0x40, 0]);
    seeded.serves_a_real_leecher()
}

#[test]
fn a_flood_of_requests_is_bounded() -> Result<()> {
    // An ordinary seed, which has every piece to serve: the queue cap is what bounds the flood
    // (a super-seed closes the connection sooner, at the requests for pieces it never showed).
    let mut seeded = Seeded::start_with(&["--no-super-seed"])?;
    let before = seeded.rss()?;
    let pieces = seeded.piece_count();
    let mut s = seeded.handshaken(Ipv4Addr::new(127, 0, 0, 9), true)?;
    send(&mut s, &[Message::Interested])?;
    wait_for_id(&mut s, 1, ANSWER_TIMEOUT).context("unchoke")?;

    const FLOOD: u32 = 10_000;
    let mut reader = s.try_clone()?;
    let counter = std::thread::spawn(move || -> Result<(u32, u32, bool)> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut blocks, mut rejects) = (0u32, 0u32);
        while blocks + rejects < FLOOD {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(
                !left.is_zero(),
                "neither closed nor answered: {blocks} blocks, {rejects} rejects"
            );
            match read_frame(&mut reader, left)? {
                None => return Ok((blocks, rejects, true)),
                Some(b) if b.first() == Some(&7) => blocks += 1,
                Some(b) if b.first() == Some(&16) => rejects += 1,
                Some(_) => {}
            }
        }
        Ok((blocks, rejects, false))
    });
    // Whole blocks below the short last piece, cycling through the torrent.
    let flood: Vec<Message> = (0..FLOOD)
        .map(|i| request(i % (pieces - 1), (i / (pieces - 1)) % 2 * 16384, 16384))
        .collect();
    let _ = send(&mut s, &flood);
    let (blocks, rejects, closed) = counter.join().expect("counter thread")?;
    let after = seeded.rss()?;
    eprintln!(
        "flood: {blocks} blocks, {rejects} rejects, closed {closed}; RSS {} -> {} KiB",
        before / 1024,
        after / 1024
    );
    assert!(
        closed || rejects >= FLOOD - 2000 - blocks.min(FLOOD),
        "{blocks} blocks, {rejects} rejects"
    );
    assert!(
        after < before + 64 * 1024 * 1024,
        "RSS {before} -> {after} bytes"
    );
    drop(s);
    seeded.serves_a_real_leecher()
}

#[test]
fn a_thousand_idle_connections_do_not_stop_the_seeder() -> Result<()> {
    let mut seeded = Seeded::start()?;
    let opened = Instant::now();
    let mut conns = connect_many(Ipv4Addr::new(127, 0, 0, 10), seeded.port, 500)?;
    let mut partial = connect_many(Ipv4Addr::new(127, 0, 0, 11), seeded.port, 500)?;
    let hs = Handshake::new(seeded.hash(), peer_id()).encode();
    for s in &mut partial {
        // A socket closed at accept may fail the write; the watcher's read sees it.
        let _ = s.write_all(&hs[..20]);
    }
    conns.append(&mut partial);
    let watcher = std::thread::spawn(move || watch_until_closed(conns, IDLE_DEADLINE));

    // Each flooding address holds at most 8 handshake slots (the rest are closed at accept), so
    // the real leecher, from another address, gets in at its first dial.
    let leech_start = Instant::now();
    seeded.serves_a_real_leecher()?;
    eprintln!("leecher done in {:?}", leech_start.elapsed());

    let still_open = watcher.join().expect("watcher thread")?;
    ensure!(
        still_open == 0,
        "{still_open} of 1000 idle connections still open after {IDLE_DEADLINE:?}"
    );
    eprintln!(
        "all 1000 idle connections closed after {:?}",
        opened.elapsed()
    );
    ensure!(
        seeded.seeder.try_status()?.is_none(),
        "the seeder died\n{}",
        seeded.seeder.describe()
    );
    Ok(())
}

/// How long idle handshakes may stay open: the seeder's 10 s handshake timeout, with slack.
const IDLE_DEADLINE: Duration = Duration::from_secs(20);

/// Polls `conns` until the seeder has closed every one or `within` has passed; returns how
/// many are still open.
fn watch_until_closed(conns: Vec<TcpStream>, within: Duration) -> Result<usize> {
    let deadline = Instant::now() + within;
    for s in &conns {
        s.set_nonblocking(true)?;
    }
    let mut open = conns;
    let mut buf = [0u8; 128];
    while !open.is_empty() && Instant::now() < deadline {
        open.retain_mut(|s| {
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(open.len())
}
