//! A scripted fake seeder (this test speaking the wire protocol on its own 127.0.0.x address)
//! beside a real `swarm seed`, both announced to one tracker, and a real `swarm fetch` that
//! dials both. The fake sends blocks nobody asked for, sends corrupt blocks, takes requests and
//! never answers, or trickles a frame a byte at a time; every scenario ends with the leecher
//! holding the seeder's exact bytes. A last scenario trickles a handshake at a real `swarm seed`.
//!
//! The leecher runs with `-v`, so its log says when a piece failed its hash check and when a peer
//! was banned. All traffic stays on 127.0.0.0/8; every wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::BytesMut;
use metainfo::{InfoHash, PeerId};
use tests::files::{assert_same_bytes, pseudo_random_bytes};
use tests::http::http_get;
use tests::process::{Proc, Stream};
use tests::seeded::{SeedSpec, Seeded};
use tracker_proto::{AnnounceRequest, AnnounceResponse, Event, ParamBytes};
use wire::{Handshake, Message, Reserved};

/// Longest a leecher's download may take (a bound; rate-limited it takes a few seconds).
const FETCH_TIMEOUT: Duration = Duration::from_secs(40);
/// How long the fake waits for one read before looking at its stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Longest one handshake or answer may take to arrive.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame the fake accepts from the leecher.
const MAX_FRAME: usize = 1 << 20;
/// Bytes in a block.
const BLOCK: u32 = 16 * 1024;
/// The leecher's log line for a piece whose SHA-1 did not match.
const HASH_FAILED: &str = "failed its hash check";
/// The leecher's log line for a ban.
const BANNED: &str = "peer banned after hash failures";

/// What the fake peer knows of the torrent.
#[derive(Debug, Clone, Copy)]
struct Torrent {
    hash: InfoHash,
    pieces: u32,
    piece_len: u32,
    total: u64,
}

impl Torrent {
    fn of(seeded: &Seeded) -> Torrent {
        Torrent {
            hash: seeded.meta.info_hash,
            pieces: seeded.piece_count(),
            piece_len: seeded.meta.info.piece_length(),
            total: seeded.meta.info.total_length(),
        }
    }

    /// Every block of the torrent as (piece, begin, len), in order.
    fn blocks(&self) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        for p in 0..self.pieces {
            let start = u64::from(p) * u64::from(self.piece_len);
            let len = (self.total - start).min(u64::from(self.piece_len)) as u32;
            let mut begin = 0;
            while begin < len {
                out.push((p, begin, BLOCK.min(len - begin)));
                begin += BLOCK;
            }
        }
        out
    }

    /// A full bitfield (spare bits zero).
    fn full_bitfield(&self) -> Vec<u8> {
        let mut bits = vec![0xffu8; self.pieces.div_ceil(8) as usize];
        let spare = (8 - self.pieces % 8) % 8;
        if let Some(last) = bits.last_mut() {
            *last = 0xffu8 << spare;
        }
        bits
    }
}

/// What the fake saw, over all its connections.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    cancels: AtomicUsize,
    blocks_sent: AtomicUsize,
    /// Connections the leecher closed (the fake never closes one itself).
    closed_by_leecher: AtomicUsize,
}

/// One accepted connection, past the handshake and our full bitfield.
struct Conn {
    stream: TcpStream,
    torrent: Torrent,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    frames: FrameReader,
}

/// A scenario's behaviour on one connection.
type Behaviour = fn(&mut Conn) -> Result<()>;

/// The fake seeder: listens on its own 127.0.0.x address and runs a [`Behaviour`] on every
/// connection; stops on drop.
struct FakeSeeder {
    addr: SocketAddrV4,
    seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSeeder {
    fn start(ip: Ipv4Addr, torrent: Torrent, behaviour: Behaviour) -> Result<FakeSeeder> {
        let listener = TcpListener::bind((ip, 0)).with_context(|| format!("bind {ip}"))?;
        listener.set_nonblocking(true)?;
        let addr = match listener.local_addr()? {
            SocketAddr::V4(a) => a,
            other => bail!("not IPv4: {other}"),
        };
        let seen = Arc::new(Seen::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut handlers = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(POLL);
                    continue;
                };
                seen2.connections.fetch_add(1, Ordering::Relaxed);
                let (seen, stop) = (seen2.clone(), stop2.clone());
                handlers.push(std::thread::spawn(move || {
                    let run = || -> Result<()> {
                        let mut conn = Conn::accept(stream, torrent, seen, stop)?;
                        behaviour(&mut conn)
                    };
                    if let Err(e) = run() {
                        eprintln!("fake seeder: {e:#}");
                    }
                }));
            }
            for h in handlers {
                let _ = h.join();
            }
        });
        Ok(FakeSeeder {
            addr,
            seen,
            stop,
            thread: Some(thread),
        })
    }

    /// Announces the fake to the tracker as a seeder at its address (the tracker must accept the
    /// `ip` parameter).
    fn announce(&self, seeded: &Seeded) -> Result<AnnounceResponse> {
        announce_as(seeded, *self.addr.ip(), self.addr.port())
    }

    fn count(&self, what: impl Fn(&Seen) -> &AtomicUsize) -> usize {
        what(&self.seen).load(Ordering::Relaxed)
    }
}

impl Drop for FakeSeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An announce for `seeded`'s torrent from a seeder at `ip:port`.
fn announce_as(seeded: &Seeded, ip: Ipv4Addr, port: u16) -> Result<AnnounceResponse> {
    let req = AnnounceRequest {
        info_hash: seeded.meta.info_hash,
        peer_id: fake_peer_id(),
        port,
        uploaded: 0,
        downloaded: 0,
        left: 0,
        event: Event::Started,
        compact: true,
        no_peer_id: true,
        numwant: Some(50),
        key: None,
        trackerid: None,
        ip: ParamBytes::new(ip.to_string().as_bytes()),
    };
    let path = format!("/announce?{}", req.to_query());
    let resp = http_get(seeded.tracker.addr(), &path, ANSWER_TIMEOUT)?;
    AnnounceResponse::decode(&resp.body).map_err(|e| anyhow::anyhow!("announce: {e}"))
}

fn fake_peer_id() -> PeerId {
    let mut id = *b"-FS0001-000000000000";
    id[8..].copy_from_slice(&pseudo_random_bytes(3, 12));
    PeerId(id)
}

/// Splits frames off what arrives, so a read timeout never cuts one in half.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
}

/// One read's outcome.
enum Frame {
    /// A whole frame's body (empty for a keep-alive).
    Body(Vec<u8>),
    /// Nothing whole within the poll interval.
    Nothing,
    /// The leecher closed the connection.
    Closed,
}

impl FrameReader {
    fn next(&mut self, s: &mut TcpStream) -> Result<Frame> {
        loop {
            if let Some(len) = self.buf.first_chunk::<4>().map(|l| u32::from_be_bytes(*l)) {
                let len = len as usize;
                ensure!(len <= MAX_FRAME, "frame of {len} bytes from the leecher");
                if self.buf.len() >= 4 + len {
                    let body = self.buf[4..4 + len].to_vec();
                    self.buf.drain(..4 + len);
                    return Ok(Frame::Body(body));
                }
            }
            s.set_read_timeout(Some(POLL))?;
            let mut chunk = [0u8; 32 * 1024];
            match s.read(&mut chunk) {
                Ok(0) => return Ok(Frame::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(Frame::Nothing);
                }
                Err(e) if is_closed(&e) => return Ok(Frame::Closed),
                Err(e) => return Err(e).context("read from the leecher"),
            }
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
    )
}

impl Conn {
    /// Reads the leecher's handshake, answers it and sends a full bitfield.
    fn accept(
        mut stream: TcpStream,
        torrent: Torrent,
        seen: Arc<Seen>,
        stop: Arc<AtomicBool>,
    ) -> Result<Conn> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.set_write_timeout(Some(ANSWER_TIMEOUT))?;
        let mut theirs = [0u8; wire::HANDSHAKE_LEN];
        stream
            .read_exact(&mut theirs)
            .context("leecher handshake")?;
        let hs = Handshake::parse(&theirs)?.context("short handshake")?;
        ensure!(
            hs.info_hash == torrent.hash,
            "handshake for another torrent"
        );
        let ours = Handshake {
            reserved: Reserved::NONE,
            info_hash: torrent.hash,
            peer_id: fake_peer_id(),
        };
        stream.write_all(&ours.encode())?;
        let mut conn = Conn {
            stream,
            torrent,
            seen,
            stop,
            frames: FrameReader::default(),
        };
        conn.send(&[Message::Bitfield(torrent.full_bitfield().into())])?;
        Ok(conn)
    }

    fn send(&mut self, msgs: &[Message]) -> Result<()> {
        let mut buf = BytesMut::new();
        for m in msgs {
            m.encode(&mut buf);
        }
        self.stream.write_all(&buf)?;
        Ok(())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The next message from the leecher: `Ok(None)` when nothing came within the poll interval,
    /// an error once the leecher closed (counted) or the test stopped.
    fn poll(&mut self) -> Result<Option<Vec<u8>>> {
        if self.stopped() {
            bail!("stopped");
        }
        match self.frames.next(&mut self.stream)? {
            Frame::Body(b) => Ok(Some(b)),
            Frame::Nothing => Ok(None),
            // The fake never closes a connection itself: EOF or a reset is the leecher's doing.
            Frame::Closed => {
                self.closed_by_leecher();
                bail!("closed by the leecher")
            }
        }
    }

    fn closed_by_leecher(&self) {
        self.seen.closed_by_leecher.fetch_add(1, Ordering::Relaxed);
    }

    /// Serves the leecher's messages with `on_request` answering each REQUEST, until it closes
    /// or the test stops; unchokes it when it is interested.
    fn serve(&mut self, mut on_request: impl FnMut(&mut Conn, u32, u32, u32) -> Result<()>) {
        loop {
            let body = match self.poll() {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(_) => return,
            };
            let field = |i: usize| {
                body.get(1 + 4 * i..5 + 4 * i)
                    .and_then(|b| b.first_chunk::<4>())
                    .map(|b| u32::from_be_bytes(*b))
            };
            let answered = match body.first() {
                Some(2) => self.send(&[Message::Unchoke]),
                Some(6) => {
                    self.seen.requests.fetch_add(1, Ordering::Relaxed);
                    match (field(0), field(1), field(2)) {
                        (Some(p), Some(b), Some(l)) => on_request(self, p, b, l),
                        _ => Ok(()),
                    }
                }
                Some(8) => {
                    self.seen.cancels.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                _ => Ok(()),
            };
            if answered.is_err() {
                // A write failed: the leecher closed (or reset) the connection mid-answer.
                if !self.stopped() {
                    self.closed_by_leecher();
                }
                return;
            }
        }
    }

    /// Sends a PIECE of `len` bytes that are not the torrent's.
    fn send_garbage(&mut self, piece: u32, begin: u32, len: u32) -> Result<()> {
        let seed = u64::from(piece) << 32 | u64::from(begin);
        let data = pseudo_random_bytes(seed ^ 0xbad, len as usize);
        self.send(&[Message::Piece {
            piece,
            begin,
            data: data.into(),
        }])?;
        self.seen.blocks_sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The stage of every scenario: a seeder, a tracker that takes the `ip` parameter (so the fake
/// can announce its own address), and the fake announced beside the seeder.
struct Stage {
    seeded: Seeded,
    fake: FakeSeeder,
}

impl Stage {
    fn start(name: &'static str, fake_ip: Ipv4Addr, behaviour: Behaviour) -> Result<Stage> {
        let mut spec = SeedSpec::new(name, 4 * 1024 * 1024 + 1_001, 71);
        spec.tracker.accept_ip_param = true;
        let seeded = Seeded::start(spec)?;
        let fake = FakeSeeder::start(fake_ip, Torrent::of(&seeded), behaviour)?;
        fake.announce(&seeded)?;
        seeded
            .tracker
            .wait_for_scrape(&seeded.meta.info_hash, ANSWER_TIMEOUT, |s| s.complete == 2)?;
        Ok(Stage { seeded, fake })
    }

    /// Starts `swarm fetch -v --download-limit LIMIT` into `<tmp>/leech`.
    fn leecher(&self, limit: &str) -> Result<Proc> {
        let mut cmd = self.seeded.fetch_command(&self.out())?;
        cmd.args(["-v", "--download-limit", limit]);
        Proc::spawn(cmd, "leecher", &self.seeded.logs)
    }

    fn out(&self) -> std::path::PathBuf {
        self.seeded.dir().join("leech")
    }

    /// Waits for the leecher to finish and checks it has the seeder's bytes; returns its log.
    fn completes(&self, leecher: &mut Proc) -> Result<String> {
        leecher.wait_success(FETCH_TIMEOUT)?;
        assert_same_bytes(&self.seeded.data, &self.seeded.fetched(&self.out()));
        Ok(leecher.output(Stream::Stderr))
    }
}

/// Blocks nobody requested, sprayed over the whole torrent while the fake keeps the leecher
/// choked: the leecher must not take them as data (they are counted as invalid, and past the
/// invalid-message cap the fake is dropped), so no piece ever fails its hash check.
fn spray_unsolicited(conn: &mut Conn) -> Result<()> {
    let blocks = conn.torrent.blocks();
    // A stride coprime with the block count visits every block, spread over the torrent.
    let stride = 37;
    for i in 0.. {
        let (p, b, l) = blocks[(i * stride) % blocks.len()];
        conn.send_garbage(p, b, l)?;
        // About 10 blocks a second, a fraction of the leecher's rate limit; drain meanwhile.
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            conn.poll()?;
        }
    }
    Ok(())
}

#[test]
fn unsolicited_blocks_are_ignored() -> Result<()> {
    let stage = Stage::start(
        "unsolicited.bin",
        Ipv4Addr::new(127, 0, 0, 21),
        spray_unsolicited,
    )?;
    let mut leecher = stage.leecher("1M")?;
    let log = stage.completes(&mut leecher)?;
    let sent = stage.fake.count(|s| &s.blocks_sent);
    eprintln!(
        "unsolicited: {sent} blocks sent; fake closed by the leecher: {}",
        stage.fake.count(|s| &s.closed_by_leecher)
    );
    ensure!(sent > 0, "the fake sent nothing\n{}", leecher.describe());
    ensure!(
        !log.contains(HASH_FAILED),
        "unsolicited garbage was taken into a piece:\n{}",
        grep(&log, &[HASH_FAILED, BANNED])
    );
    Ok(())
}

/// Unchokes and answers every request with bytes that are not the torrent's.
fn serve_corrupt(conn: &mut Conn) -> Result<()> {
    conn.serve(|c, p, b, l| c.send_garbage(p, b, l));
    Ok(())
}

#[test]
fn a_peer_sending_corrupt_pieces_is_banned() -> Result<()> {
    let fake_ip = Ipv4Addr::new(127, 0, 0, 22);
    let stage = Stage::start("corrupt.bin", fake_ip, serve_corrupt)?;
    let mut leecher = stage.leecher("512K")?;
    // The leecher drops the fake once a piece only it sent fails the hash check.
    let deadline = Instant::now() + FETCH_TIMEOUT;
    while stage.fake.count(|s| &s.closed_by_leecher) == 0 {
        ensure!(
            Instant::now() < deadline && leecher.try_status()?.is_none(),
            "the fake was never dropped ({} blocks sent)\n{}",
            stage.fake.count(|s| &s.blocks_sent),
            leecher.describe()
        );
        std::thread::sleep(POLL);
    }
    // Banned: a connection from the fake's address is closed before any handshake reply.
    let leecher_port = leecher_port(&stage)?;
    let refused = handshake_reply_len(fake_ip, leecher_port, stage.seeded.meta.info_hash)?;
    let log = stage.completes(&mut leecher)?;
    ensure!(
        log.contains(BANNED) && log.contains(&fake_ip.to_string()),
        "no ban of {fake_ip} in the leecher's log:\n{}",
        grep(&log, &[HASH_FAILED, BANNED])
    );
    ensure!(
        refused == 0,
        "the leecher answered {refused} handshake bytes to a banned address"
    );
    let conns = stage.fake.count(|s| &s.connections);
    ensure!(
        conns == 1,
        "the leecher dialed the banned fake {conns} times"
    );
    Ok(())
}

/// The leecher's listening port, from the tracker (the only peer that is not a seeder).
fn leecher_port(stage: &Stage) -> Result<u16> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        let resp = stage.fake.announce(&stage.seeded)?;
        let found = resp
            .peers
            .iter()
            .find(|a| a.ip() == Ipv4Addr::LOCALHOST && a.port() != stage.seeded.port);
        if let Some(a) = found {
            return Ok(a.port());
        }
        ensure!(Instant::now() < deadline, "the leecher never announced");
        std::thread::sleep(POLL);
    }
}

/// Connects to `127.0.0.1:port` from `source`, sends a handshake and returns how many bytes
/// came back before the connection closed (at most a handshake's worth are read).
fn handshake_reply_len(source: Ipv4Addr, port: u16, hash: InfoHash) -> Result<usize> {
    let mut s = connect_from(source, port)?;
    s.write_all(&Handshake::new(hash, fake_peer_id()).encode())?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut got = 0;
    let mut buf = [0u8; wire::HANDSHAKE_LEN];
    while got < buf.len() {
        match s.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if is_closed(&e) => break,
            Err(e) => return Err(e).context("read the handshake reply"),
        }
    }
    Ok(got)
}

/// A TCP connection to `127.0.0.1:port` bound to `source` first.
fn connect_from(source: Ipv4Addr, port: u16) -> Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
        let target = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port));
        let stream = tokio::time::timeout(ANSWER_TIMEOUT, socket.connect(target))
            .await
            .context("connect timed out")??;
        let std = stream.into_std()?;
        std.set_nonblocking(false)?;
        Ok(std)
    })
}

/// Unchokes and takes requests, and never answers one.
fn stall(conn: &mut Conn) -> Result<()> {
    conn.serve(|_, _, _, _| Ok(()));
    Ok(())
}

#[test]
fn requests_stuck_at_a_stalling_peer_move_to_the_seeder() -> Result<()> {
    let stage = Stage::start("stall.bin", Ipv4Addr::new(127, 0, 0, 23), stall)?;
    let mut leecher = stage.leecher("1M")?;
    stage.completes(&mut leecher)?;
    let (requests, cancels) = (
        stage.fake.count(|s| &s.requests),
        stage.fake.count(|s| &s.cancels),
    );
    eprintln!("stall: {requests} requests taken, {cancels} cancelled");
    // The download finished although the fake answered none of the requests it took: they
    // were taken back (CANCEL, after the 10 s request timeout or in end-game) and sent to the
    // seeder.
    ensure!(
        requests > 0,
        "the leecher never asked the fake\n{}",
        leecher.describe()
    );
    ensure!(
        cancels > 0,
        "the leecher never took its requests back from the stalling fake"
    );
    Ok(())
}

/// Starts a 1 MiB frame (the largest the leecher accepts) and sends its body a byte a second,
/// forever.
fn trickle_a_frame(conn: &mut Conn) -> Result<()> {
    let len = (MAX_FRAME as u32) - 1;
    conn.stream.write_all(&len.to_be_bytes())?;
    conn.stream.write_all(&[20])?;
    loop {
        conn.stream.write_all(&[0])?;
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            conn.poll()?;
        }
    }
}

#[test]
fn a_frame_trickled_forever_does_not_hold_up_the_download() -> Result<()> {
    // The engine drops a peer after 120 s without a whole message (`idle_timeout`), which the
    // engine's simulation checks on virtual time (`silent_peer_is_dropped_after_idle_timeout`
    // in crates/engine/tests/sim.rs). Here, on real time, the trickled frame must cost no more
    // than its buffer, and the download beside it must go on.
    let stage = Stage::start("trickle.bin", Ipv4Addr::new(127, 0, 0, 24), trickle_a_frame)?;
    let mut leecher = stage.leecher("1M")?;
    let mut rss = Vec::new();
    while leecher.try_status()?.is_none() {
        if stage.fake.count(|s| &s.connections) > 0 {
            rss.extend(rss_of(leecher.pid()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    stage.completes(&mut leecher)?;
    // Once as a rule; under load (the whole suite at once) the leecher was seen to close the
    // fake and dial it again.
    let connections = stage.fake.count(|s| &s.connections);
    eprintln!("trickle: the leecher connected to the fake {connections} times");
    ensure!(connections >= 1, "the leecher never connected to the fake");
    let (first, peak) = (
        rss.first().copied().unwrap_or(0),
        rss.iter().copied().max().unwrap_or(0),
    );
    eprintln!(
        "trickle: leecher RSS {} -> peak {} KiB over {} samples",
        first / 1024,
        peak / 1024,
        rss.len()
    );
    ensure!(
        peak < first + 32 * 1024 * 1024,
        "the leecher grew from {first} to {peak} bytes"
    );
    Ok(())
}

#[test]
fn a_handshake_trickled_a_byte_at_a_time_is_closed_by_the_seeder() -> Result<()> {
    let mut seeded = Seeded::start(SeedSpec::new("slow.bin", 300_000, 73))?;
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 25), seeded.port)?;
    let hs = Handshake::new(seeded.meta.info_hash, fake_peer_id()).encode();
    // One byte every 2 s: the whole handshake would take over two minutes; the seeder allows
    // 10 s for it. Bounded: give up (and fail) after 30 s.
    let started = Instant::now();
    let mut sent = 0;
    let closed = loop {
        if started.elapsed() > Duration::from_secs(30) {
            break false;
        }
        if s.write_all(&hs[sent..=sent]).is_err() {
            break true;
        }
        sent += 1;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut buf = [0u8; 128];
        match s.read(&mut buf) {
            Ok(0) => break true,
            Err(e) if is_closed(&e) => break true,
            Ok(_) | Err(_) => {}
        }
    };
    eprintln!(
        "slow handshake: {sent} of {} bytes sent; closed after {:?}",
        hs.len(),
        started.elapsed()
    );
    ensure!(
        closed,
        "the seeder kept a trickling handshake open for 30 s"
    );
    ensure!(sent < hs.len(), "the whole handshake went through");
    // The seeder still serves a real leecher.
    let out = seeded.dir().join("leech");
    let mut leecher = Proc::spawn(seeded.fetch_command(&out)?, "leecher", &seeded.logs)?;
    leecher.wait_success(FETCH_TIMEOUT)?;
    assert_same_bytes(&seeded.data, &seeded.fetched(&out));
    ensure!(seeded.seeder.try_status()?.is_none(), "the seeder died");
    Ok(())
}

/// Resident memory of process `pid` in bytes.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?;
    kb.parse::<u64>().ok().map(|k| k * 1024)
}

/// The lines of `log` that contain any of `needles`.
fn grep(log: &str, needles: &[&str]) -> String {
    log.lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .collect::<Vec<_>>()
        .join("\n")
}
