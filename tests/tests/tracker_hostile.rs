//! The `swarm-tracker` binary under hostile clients on 127.0.0.1: malformed, duplicated and
//! over-long parameters, bad percent-encoding and a 10 MB URL; a million fake info-hashes
//! against a swarm cap; 10,000 idle connections; and the spoofing and flood controls over real
//! HTTP (`ip`, `X-Forwarded-For`, per-address rate limit, caps on peers per swarm, request bytes
//! and connections).
//!
//! The tracker runs as its own process so its memory can be read from `/proc/<pid>/status`
//! (VmRSS now, VmHWM the peak). Clients are small async loops over raw HTTP/1.1 (keep-alive,
//! pipelined), so a million announces take seconds. Every wait is bounded.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tempfile::TempDir;
use tests::bins;
use tests::http::http_get;
use tests::ports::{free_port, loopback, wait_listening};
use tests::process::Proc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tracker_proto::{AnnounceResponse, ResponseError};

/// Longest the tracker may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest one expected answer (or close) may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an answer that must not come is waited for.
const QUIET: Duration = Duration::from_secs(2);

/// A `swarm-tracker` process on a loopback port.
struct Tracker {
    proc: Proc,
    addr: SocketAddr,
    _logs: TempDir,
}

/// Resident memory of a process, in bytes.
#[derive(Debug, Clone, Copy)]
struct Mem {
    /// VmRSS: resident now.
    rss: u64,
    /// VmHWM: the peak so far.
    hwm: u64,
}

impl Tracker {
    /// Starts the tracker with `flags` (besides `--listen`) and waits until it listens.
    fn start(flags: &[&str]) -> Result<Tracker> {
        let logs = tempfile::tempdir()?;
        let port = free_port()?;
        let mut cmd = Command::new(bins::swarm_tracker()?);
        cmd.args([
            "--listen",
            &loopback(port).to_string(),
            "--log-level",
            "warn",
        ])
        .args(flags);
        let proc = Proc::spawn(cmd, "swarm-tracker", logs.path())?;
        wait_listening(port, START_TIMEOUT)?;
        Ok(Tracker {
            proc,
            addr: loopback(port),
            _logs: logs,
        })
    }

    fn mem(&self) -> Result<Mem> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.pid()))?;
        let field = |name: &str| -> Result<u64> {
            let kb = status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .with_context(|| format!("no {name} in /proc status"))?;
            Ok(kb.parse::<u64>()? * 1024)
        };
        Ok(Mem {
            rss: field("VmRSS:")?,
            hwm: field("VmHWM:")?,
        })
    }

    /// One number from `/stats`, e.g. `stat("swarms")`.
    fn stat(&self, name: &str) -> Result<u64> {
        let page = http_get(self.addr, "/stats", ANSWER_TIMEOUT)?.text();
        let value = page
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .with_context(|| format!("no {name} in:\n{page}"))?;
        Ok(value
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .parse()?)
    }

    /// Fails unless the process is still running.
    fn alive(&mut self) -> Result<()> {
        ensure!(
            self.proc.try_status()?.is_none(),
            "the tracker died\n{}",
            self.proc.describe()
        );
        Ok(())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn pct(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// The 20-byte info-hash number `n` (its first 8 bytes, little-endian so that the first byte
/// varies; the rest fixed).
fn info_hash(n: u64) -> [u8; 20] {
    let mut h = [0xA5; 20];
    h[..8].copy_from_slice(&n.to_le_bytes());
    h
}

/// An announce query for `hash` from `port` (a leecher, no peers wanted unless `extra` says).
fn announce_query(hash: &[u8; 20], port: u16, extra: &str) -> String {
    format!(
        "info_hash={}&peer_id=-HT0001-{port:012}&port={port}&uploaded=0&downloaded=0&left=1&compact=1{extra}",
        pct(hash)
    )
}

fn get_request(target: &str, headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n").into_bytes()
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A bencoded `failure reason`.
    Failure(String),
    /// A bencoded announce answer: the peers it lists, and its warning if any.
    Peers(Vec<SocketAddr>, Option<String>),
    /// Another body with status 200 (scrape, stats).
    Other(Vec<u8>),
    /// An HTTP error status (from the HTTP layer, before the tracker's code).
    Status(u16),
    /// The connection closed (or reset) before a whole response.
    Closed,
}

fn classify(status: u16, body: &[u8]) -> Outcome {
    if status != 200 {
        return Outcome::Status(status);
    }
    match AnnounceResponse::decode(body) {
        Ok(r) => Outcome::Peers(r.peers, r.warning),
        Err(ResponseError::Failure(why)) => Outcome::Failure(why),
        Err(_) => Outcome::Other(body.to_vec()),
    }
}

/// A keep-alive HTTP/1.1 connection reading `Content-Length` framed responses.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn> {
        Self::connect_from(addr, Ipv4Addr::LOCALHOST).await
    }

    /// Connects from `source` (any 127.x address).
    async fn connect_from(addr: SocketAddr, source: Ipv4Addr) -> Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::V4(SocketAddrV4::new(source, 0)))?;
        let stream = tokio::time::timeout(ANSWER_TIMEOUT, socket.connect(addr))
            .await
            .context("connect timed out")??;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// Writes raw bytes; a server that hung up part-way is not an error here.
    async fn send(&mut self, raw: &[u8]) -> bool {
        self.stream.write_all(raw).await.is_ok()
    }

    /// The next response, or [`Outcome::Closed`]; fails if nothing comes within `timeout`.
    async fn next(&mut self, timeout: Duration) -> Result<Outcome> {
        match tokio::time::timeout(timeout, self.read_response()).await {
            Ok(r) => Ok(r.map_or(Outcome::Closed, |(status, body)| classify(status, &body))),
            Err(_) => bail!("no response within {timeout:?}"),
        }
    }

    /// Reads until a whole response is buffered; `None` when the connection ends first.
    async fn read_response(&mut self) -> Option<(u16, Vec<u8>)> {
        loop {
            if let Some(r) = self.take_response() {
                return Some(r);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(chunk.get(..n)?),
            }
        }
    }

    fn take_response(&mut self) -> Option<(u16, Vec<u8>)> {
        let head_end = self.buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(self.buf.get(..head_end)?).to_ascii_lowercase();
        let status: u16 = head.get(9..12)?.parse().ok()?;
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(Some(0), |v| v.trim().parse().ok())?;
        let body = self.buf.get(head_end..head_end + len)?.to_vec();
        self.buf.drain(..head_end + len);
        Some((status, body))
    }

    /// One GET with extra header lines (each ending in `\r\n`).
    async fn get(&mut self, target: &str, headers: &str) -> Result<Outcome> {
        if !self.send(&get_request(target, headers)).await {
            return Ok(Outcome::Closed);
        }
        self.next(ANSWER_TIMEOUT).await
    }
}

/// One GET on a fresh connection.
async fn get_once(addr: SocketAddr, target: &str) -> Result<Outcome> {
    Conn::connect(addr).await?.get(target, "").await
}

/// The peers of an announce answer, failing on anything else.
fn peers(o: Outcome) -> Result<Vec<SocketAddr>> {
    match o {
        Outcome::Peers(p, _) => Ok(p),
        other => bail!("expected an announce answer, got {other:?}"),
    }
}

#[test]
fn malformed_requests_get_a_failure_or_a_closed_connection() -> Result<()> {
    let mut tracker = Tracker::start(&[])?;
    let ih = pct(&info_hash(1));
    let pid = "peer_id=-HT0001-000000000001";
    let base = format!("info_hash={ih}&{pid}&port=1&left=0");
    let long = |n: usize| "9".repeat(n);
    let failures: Vec<(String, &str)> = vec![
        // Missing.
        (String::new(), "missing info_hash"),
        (format!("{pid}&port=1&left=0"), "missing info_hash"),
        (format!("info_hash={ih}&port=1&left=0"), "missing peer_id"),
        (format!("info_hash={ih}&{pid}&left=0"), "missing port"),
        // Duplicated.
        (
            format!("{base}&info_hash={ih}"),
            "duplicate parameter info_hash",
        ),
        (format!("{base}&port=2"), "duplicate parameter port"),
        (format!("{base}&{pid}"), "duplicate parameter peer_id"),
        (format!("{base}&left=0"), "duplicate parameter left"),
        (
            format!("{base}&event=started&event=stopped"),
            "duplicate parameter event",
        ),
        // Over-long values.
        (
            format!("info_hash={ih}%00&{pid}&port=1&left=0"),
            "info_hash must be 20 bytes",
        ),
        (
            format!("info_hash={ih}&peer_id={}&port=1&left=0", "p".repeat(1000)),
            "peer_id",
        ),
        (
            format!("info_hash={ih}&{pid}&port={}&left=0", long(100)),
            "port",
        ),
        (
            format!("info_hash={ih}&{pid}&port=1&left={}", long(100)),
            "left",
        ),
        (format!("{base}&numwant={}", long(40)), "numwant"),
        (format!("{base}&event={}", "e".repeat(4000)), "event"),
        (format!("{base}&x={}", "a".repeat(9000)), "request too long"),
        // Invalid percent-encoding.
        (
            format!("info_hash=%&{pid}&port=1&left=0"),
            "percent-encoding",
        ),
        (
            format!("info_hash=%4&{pid}&port=1&left=0"),
            "percent-encoding",
        ),
        (
            format!("info_hash={ih}%G1&{pid}&port=1&left=0"),
            "percent-encoding",
        ),
        (
            format!("info_hash={ih}&{pid}&port=%31%&left=0"),
            "percent-encoding",
        ),
    ];
    let rt = runtime()?;
    rt.block_on(async {
        for (query, want) in &failures {
            let got = get_once(tracker.addr, &format!("/announce?{query}")).await?;
            let Outcome::Failure(why) = &got else {
                bail!(
                    "{}...: {got:?}",
                    query.get(..query.len().min(80)).unwrap_or("")
                );
            };
            ensure!(why.contains(want), "{why:?} does not name {want:?}");
        }
        // A 10 MB URL: closed once the request byte budget is spent.
        let mut c = Conn::connect(tracker.addr).await?;
        let huge = get_request(&format!("/announce?x={}", "a".repeat(10 << 20)), "");
        c.send(&huge).await;
        ensure!(
            c.next(ANSWER_TIMEOUT).await? == Outcome::Closed,
            "10 MB URL"
        );
        // A 1 MB header: closed too.
        let mut c = Conn::connect(tracker.addr).await?;
        let header = format!("X-Junk: {}\r\n", "j".repeat(1 << 20));
        c.send(&get_request(&format!("/announce?{base}"), &header))
            .await;
        let got = c.next(ANSWER_TIMEOUT).await?;
        ensure!(
            matches!(got, Outcome::Closed | Outcome::Status(431)),
            "1 MB header: {got:?}"
        );
        // Raw bytes that are not HTTP: the HTTP layer refuses them.
        let mut c = Conn::connect(tracker.addr).await?;
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n")
            .await;
        let got = c.next(ANSWER_TIMEOUT).await?;
        ensure!(
            matches!(got, Outcome::Closed | Outcome::Status(400)),
            "garbage: {got:?}"
        );
        // Still serving: a valid announce is answered.
        peers(get_once(tracker.addr, &format!("/announce?{base}")).await?)?;
        Ok(())
    })?;
    tracker.alive()?;
    assert_eq!(tracker.stat("failures")?, failures.len() as u64);
    assert_eq!(tracker.stat("swarms")?, 1);
    Ok(())
}

/// Announces info-hashes `from..to` over `conns` keep-alive connections, `batch` requests
/// pipelined at a time; returns (accepted, refused as "too many torrents").
async fn announce_range(
    addr: SocketAddr,
    from: u64,
    to: u64,
    conns: u64,
    batch: u64,
) -> Result<(u64, u64)> {
    let mut tasks = tokio::task::JoinSet::new();
    let per = (to - from).div_ceil(conns);
    for c in 0..conns {
        let (start, end) = (from + c * per, (from + (c + 1) * per).min(to));
        tasks.spawn(async move {
            let mut conn = Conn::connect(addr).await?;
            let (mut ok, mut full) = (0u64, 0u64);
            let mut next = start;
            let mut raw = Vec::new();
            while next < end {
                let stop = (next + batch).min(end);
                raw.clear();
                for n in next..stop {
                    let q = announce_query(&info_hash(n), 6881, "&numwant=0");
                    raw.extend_from_slice(&get_request(&format!("/announce?{q}"), ""));
                }
                ensure!(conn.send(&raw).await, "connection closed mid-flood");
                for _ in next..stop {
                    match conn.next(ANSWER_TIMEOUT).await? {
                        Outcome::Peers(..) => ok += 1,
                        Outcome::Failure(f) if f.contains("too many torrents") => full += 1,
                        other => bail!("flood answer: {other:?}"),
                    }
                }
                next = stop;
            }
            Ok::<_, anyhow::Error>((ok, full))
        });
    }
    let (mut ok, mut full) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (o, f) = r??;
        ok += o;
        full += f;
    }
    Ok((ok, full))
}

#[test]
fn a_million_fake_info_hashes_stop_at_the_swarm_cap() -> Result<()> {
    const CAP: u64 = 100_000;
    const TOTAL: u64 = 1_000_000;
    let cap = CAP.to_string();
    let mut tracker = Tracker::start(&["--max-swarms", &cap, "--request-timeout", "60"])?;
    let rt = runtime()?;
    let before = tracker.mem()?;
    let started = std::time::Instant::now();
    // Up to the cap, then the other 900,000.
    let (ok1, full1) = rt.block_on(announce_range(tracker.addr, 0, CAP, 32, 100))?;
    let at_cap = tracker.mem()?;
    let (ok2, full2) = rt.block_on(announce_range(tracker.addr, CAP, TOTAL, 32, 100))?;
    let after = tracker.mem()?;
    let took = started.elapsed();
    let swarms = tracker.stat("swarms")?;
    let per_swarm = at_cap.rss.saturating_sub(before.rss) as f64 / CAP as f64;
    println!(
        "{TOTAL} announces in {took:.1?}: {} accepted, {} refused; swarms {swarms}; \
         RSS {} KiB -> {} KiB at the cap ({per_swarm:.0} B/swarm) -> {} KiB after; peak {} KiB",
        ok1 + ok2,
        full1 + full2,
        before.rss / 1024,
        at_cap.rss / 1024,
        after.rss / 1024,
        after.hwm / 1024
    );
    assert_eq!((ok1, full1), (CAP, 0), "every swarm up to the cap is taken");
    assert_eq!(
        (ok2, full2),
        (0, TOTAL - CAP),
        "every swarm past the cap is refused"
    );
    assert_eq!(swarms, CAP);
    assert_eq!(tracker.stat("peers")?, CAP);
    // A swarm of one peer costs about 250 bytes of map and peer set (store.rs); allow 1 KiB
    // each on top of the starting size, for the allocator and the connections' buffers.
    let bound = before.rss + CAP * 1024;
    assert!(after.hwm <= bound, "peak {} > bound {bound}", after.hwm);
    // The refused 900,000 did not grow memory beyond the connections' buffers.
    assert!(
        after.rss <= at_cap.rss + 16 * 1024 * 1024,
        "RSS grew from {} to {} while refusing",
        at_cap.rss,
        after.rss
    );
    // Existing swarms still work and announces to them are answered.
    let p = rt.block_on(get_once(
        tracker.addr,
        &format!("/announce?{}", announce_query(&info_hash(7), 7000, "")),
    ))?;
    assert_eq!(peers(p)?, vec!["127.0.0.1:6881".parse::<SocketAddr>()?]);
    tracker.alive()?;
    Ok(())
}

/// Raises this process's open-file limit to at least `want` (children inherit it).
fn raise_nofile(want: u64) -> Result<()> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    ensure!(
        hard >= want,
        "this test needs {want} open files; the hard limit is {hard} (raise it with ulimit -Hn)"
    );
    if soft < want {
        setrlimit(Resource::RLIMIT_NOFILE, want, hard)?;
    }
    Ok(())
}

#[test]
fn ten_thousand_idle_connections_do_not_block_a_real_announce() -> Result<()> {
    const IDLE: usize = 10_000;
    raise_nofile(IDLE as u64 + 1000)?;
    // Room for every idle connection; the request timeout closes them.
    let mut tracker = Tracker::start(&["--max-connections", "12000", "--request-timeout", "20"])?;
    let rt = runtime()?;
    let before = tracker.mem()?;
    let (idle, during) = rt.block_on(async {
        let mut idle = Vec::with_capacity(IDLE);
        for i in 0..IDLE {
            // Spread over 127.0.1.x-127.0.40.x so no single source port range runs out.
            let source = Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
            idle.push(Conn::connect_from(tracker.addr, source).await?);
        }
        // A real client is answered at once while all of them are open.
        let q = announce_query(&info_hash(3), 5000, "");
        peers(get_once(tracker.addr, &format!("/announce?{q}")).await?)?;
        Ok::<_, anyhow::Error>((idle, tracker.mem()?))
    })?;
    // Then the tracker closes every idle connection (request timeout 20 s).
    let closed = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for mut c in idle {
            tasks.spawn(async move { c.next(Duration::from_secs(60)).await });
        }
        let mut closed = 0;
        while let Some(r) = tasks.join_next().await {
            if r?? == Outcome::Closed {
                closed += 1;
            }
        }
        Ok::<_, anyhow::Error>(closed)
    })?;
    let after = tracker.mem()?;
    println!(
        "{IDLE} idle connections: RSS {} KiB -> {} KiB with them open ({:.1} KiB each) -> {} KiB \
         after the tracker closed {closed}",
        before.rss / 1024,
        during.rss / 1024,
        during.rss.saturating_sub(before.rss) as f64 / 1024.0 / IDLE as f64,
        after.rss / 1024
    );
    assert_eq!(
        closed, IDLE,
        "every idle connection is closed by the tracker"
    );
    // Each open connection may cost up to 16 KiB (socket wrapper, timer, HTTP state).
    assert!(during.rss <= before.rss + IDLE as u64 * 16 * 1024);
    // And still serving.
    peers(rt.block_on(get_once(
        tracker.addr,
        &format!("/announce?{}", announce_query(&info_hash(3), 5001, "")),
    ))?)?;
    tracker.alive()?;
    Ok(())
}

#[test]
fn ip_parameter_is_ignored_unless_enabled() -> Result<()> {
    let rt = runtime()?;
    for (flags, want) in [
        (&[][..], "127.0.0.1:4001"),
        (&["--accept-ip-param"][..], "192.0.2.7:4001"),
    ] {
        let tracker = Tracker::start(flags)?;
        let h = info_hash(11);
        rt.block_on(async {
            let q = announce_query(&h, 4001, "&ip=192.0.2.7");
            peers(get_once(tracker.addr, &format!("/announce?{q}")).await?)?;
            let q = announce_query(&h, 4002, "");
            let p = peers(get_once(tracker.addr, &format!("/announce?{q}")).await?)?;
            ensure!(p == vec![want.parse::<SocketAddr>()?], "{flags:?}: {p:?}");
            Ok(())
        })?;
    }
    Ok(())
}

#[test]
fn forwarded_for_is_honoured_only_from_trusted_proxies() -> Result<()> {
    let rt = runtime()?;
    // 127.0.0.1 is the trusted proxy; 127.0.0.2 is not.
    let tracker = Tracker::start(&["--trusted-proxy", "127.0.0.1"])?;
    let h = info_hash(12);
    rt.block_on(async {
        let xff = "X-Forwarded-For: 203.0.113.9, 198.51.100.4\r\n";
        let q = announce_query(&h, 4001, "");
        let mut proxy = Conn::connect(tracker.addr).await?;
        peers(proxy.get(&format!("/announce?{q}"), xff).await?)?;
        let q = announce_query(&h, 4002, "");
        let mut direct = Conn::connect_from(tracker.addr, Ipv4Addr::new(127, 0, 0, 2)).await?;
        peers(direct.get(&format!("/announce?{q}"), xff).await?)?;
        // A third peer sees the proxy's client by its last hop, and the direct one by its
        // source address (its header ignored).
        let q = announce_query(&h, 4003, "");
        let mut seen = peers(get_once(tracker.addr, &format!("/announce?{q}")).await?)?;
        seen.sort();
        let want: Vec<SocketAddr> = vec!["127.0.0.2:4002".parse()?, "198.51.100.4:4001".parse()?];
        ensure!(seen == want, "{seen:?}");
        Ok(())
    })
}

#[test]
fn announce_rate_limit_applies_per_address_when_configured() -> Result<()> {
    let rt = runtime()?;
    let tracker = Tracker::start(&["--announce-rate", "6", "--announce-burst", "2"])?;
    rt.block_on(async {
        let mut fast = Conn::connect(tracker.addr).await?;
        let mut outcomes = Vec::new();
        for n in 0..6 {
            let q = announce_query(&info_hash(20 + n), 4001, "");
            outcomes.push(fast.get(&format!("/announce?{q}"), "").await?);
        }
        let allowed = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Peers(..)))
            .count();
        ensure!(allowed == 3, "one plus a burst of two: {outcomes:?}");
        ensure!(
            outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Failure(f) if f.contains("rate limit exceeded"))),
            "{outcomes:?}"
        );
        // Another address is not limited by the first one's flood.
        let mut other = Conn::connect_from(tracker.addr, Ipv4Addr::new(127, 0, 0, 3)).await?;
        let q = announce_query(&info_hash(40), 4002, "");
        peers(other.get(&format!("/announce?{q}"), "").await?)?;
        Ok(())
    })
}

#[test]
fn peers_per_swarm_cap_keeps_newcomers_out_but_answers_them() -> Result<()> {
    let rt = runtime()?;
    let tracker = Tracker::start(&["--max-peers-per-swarm", "3"])?;
    let h = info_hash(50);
    rt.block_on(async {
        let mut warnings = 0;
        for port in 5001..=5006u16 {
            let q = announce_query(&h, port, "");
            match get_once(tracker.addr, &format!("/announce?{q}")).await? {
                Outcome::Peers(p, w) => {
                    ensure!(p.len() <= 3, "{p:?}");
                    if port > 5003 {
                        ensure!(p.len() == 3, "a newcomer still gets peers: {p:?}");
                        ensure!(w.is_some_and(|w| w.contains("tracker is full")));
                        warnings += 1;
                    }
                }
                other => bail!("{other:?}"),
            }
        }
        ensure!(warnings == 3);
        Ok(())
    })?;
    assert_eq!(tracker.stat("peers")?, 3);
    Ok(())
}

#[test]
fn request_byte_cap_closes_the_connection() -> Result<()> {
    let rt = runtime()?;
    let tracker = Tracker::start(&["--max-query-len", "1024", "--max-request-bytes", "4096"])?;
    let h = info_hash(60);
    rt.block_on(async {
        let q = announce_query(&h, 4001, "");
        // Headers under the cap: answered.
        let small = format!("X-Pad: {}\r\n", "p".repeat(2000));
        let mut c = Conn::connect(tracker.addr).await?;
        peers(c.get(&format!("/announce?{q}"), &small).await?)?;
        // Over it: closed, though every line is short.
        let big: String = (0..40)
            .map(|i| format!("X-Pad-{i}: {}\r\n", "p".repeat(150)))
            .collect();
        let mut c = Conn::connect(tracker.addr).await?;
        let got = c.get(&format!("/announce?{q}"), &big).await?;
        ensure!(got == Outcome::Closed, "{got:?}");
        // Pipelined requests are fine as long as each is answered within the budget: ten
        // 300-byte requests on one connection, one at a time.
        let mut c = Conn::connect(tracker.addr).await?;
        for port in 4100..4110u16 {
            let q = announce_query(&h, port, "");
            peers(c.get(&format!("/announce?{q}"), "").await?)?;
        }
        Ok(())
    })
}

#[test]
fn connection_cap_makes_newcomers_wait_for_a_free_slot() -> Result<()> {
    const CAP: usize = 50;
    let rt = runtime()?;
    let cap = CAP.to_string();
    let tracker = Tracker::start(&["--max-connections", &cap, "--request-timeout", "60"])?;
    rt.block_on(async {
        // CAP keep-alive clients, each answered once (so each holds a slot), then idle.
        let mut held = Vec::new();
        for _ in 0..CAP {
            let mut c = Conn::connect(tracker.addr).await?;
            c.get("/stats", "").await?;
            held.push(c);
        }
        // One more: the kernel completes the connection, the tracker does not serve it.
        let mut late = Conn::connect(tracker.addr).await?;
        let q = announce_query(&info_hash(70), 4001, "");
        ensure!(late.send(&get_request(&format!("/announce?{q}"), "")).await);
        ensure!(
            late.next(QUIET).await.is_err(),
            "answered past the connection cap"
        );
        // A slot frees up: the waiting request is answered.
        drop(held.pop());
        peers(late.next(ANSWER_TIMEOUT).await?)?;
        Ok(())
    })
}
