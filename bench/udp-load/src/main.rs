//! `udp-load`: announces per second a UDP tracker (BEP 15) serves, and their latency.
//!
//! Many sockets (each its own source port) on one thread run closed loops: connect once, then
//! announce (one in flight per socket) with the id until it is a minute old, reconnecting after.
//! Announces name random torrents among a fixed set (hash `i`: bytes 0-1 = `i` big-endian, byte
//! `j` = (i*j*37 + j*11) mod 256, as `tracker/bench/announce.lua`), random peer ids and ports,
//! 70% leechers, numwant 50. Only announces sent after the warm-up and answered before the end
//! count. Bounded in time (`--seconds`) and count (`--max-announces`); latencies go to a fixed
//! histogram (10 us buckets up to the request timeout).
//!
//! `udp-load --target 127.0.0.1:6969 [--sockets 128] [--seconds 10] [--warmup 2]`;
//! `udp-load --print-hashes` prints the torrents' hashes in hex, one a line (a whitelist).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use metainfo::{InfoHash, PeerId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;
use tracker_proto::Event;
use tracker_proto::udp::{
    ConnectRequest, ConnectResponse, PeerFamily, UdpAnnounce, UdpError, decode_announce_response,
};

/// Width of one latency bucket.
const BUCKET_US: u64 = 10;
/// A connection id is used for this long, then renewed (BEP 15's client rule).
const ID_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
struct Args {
    /// The tracker's UDP address.
    #[arg(long, required_unless_present = "print_hashes")]
    target: Option<SocketAddr>,
    /// Sockets (source ports), each with one request in flight.
    #[arg(long, default_value_t = 128)]
    sockets: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Torrents announced to (the first N of the fixed set).
    #[arg(long, default_value_t = 1000)]
    swarms: u32,
    /// Peers asked for in each announce.
    #[arg(long, default_value_t = 50)]
    numwant: i32,
    /// Milliseconds before a request is given up (and counted as lost).
    #[arg(long, default_value_t = 1000)]
    timeout_ms: u64,
    /// Stop after this many announces in all.
    #[arg(long, default_value_t = 100_000_000)]
    max_announces: u64,
    /// Print the torrents' info-hashes in hex and exit.
    #[arg(long)]
    print_hashes: bool,
}

/// Info-hash `i` of the fixed set.
fn info_hash(i: u32) -> InfoHash {
    let mut h = [0u8; 20];
    h[0] = (i >> 8) as u8;
    h[1] = i as u8;
    for (j, b) in h.iter_mut().enumerate().skip(2) {
        *b = ((i as usize * j * 37 + j * 11) % 256) as u8;
    }
    InfoHash(h)
}

/// What every socket adds to.
struct Totals {
    announces: AtomicU64,
    /// Announces started, against `--max-announces`.
    started: AtomicU64,
    lost: AtomicU64,
    errors: AtomicU64,
    connects: AtomicU64,
    peers: AtomicU64,
    histogram: Vec<AtomicU64>,
}

/// One socket's closed loop.
struct Flow {
    sock: UdpSocket,
    target: SocketAddr,
    rng: SmallRng,
    buf: Vec<u8>,
    tid: u32,
    timeout: Duration,
}

impl Flow {
    /// Sends `req` and waits for the answer with transaction id `tid`; None when lost.
    async fn exchange(&mut self, req: &[u8], tid: u32, family: PeerFamily) -> Result<Reply> {
        self.sock.send_to(req, self.target).await?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let got = tokio::time::timeout_at(deadline, self.sock.recv_from(&mut self.buf)).await;
            let Ok(got) = got else { return Ok(Reply::Lost) };
            let (n, _) = got?;
            let b = self.buf.get(..n).unwrap_or_default();
            if b.len() < 8 || b[4..8] != tid.to_be_bytes() {
                continue; // a late answer to an earlier request
            }
            if b[..4] == 0u32.to_be_bytes() {
                return Ok(match ConnectResponse::decode(b, tid) {
                    Ok(c) => Reply::Connected(c.connection_id),
                    Err(_) => Reply::Error,
                });
            }
            return Ok(match decode_announce_response(b, tid, family) {
                Ok(r) => Reply::Peers(r.peers.len()),
                Err(UdpError::Tracker(_)) | Err(_) => Reply::Error,
            });
        }
    }

    fn next_tid(&mut self) -> u32 {
        self.tid = self.tid.wrapping_add(1);
        self.tid
    }
}

enum Reply {
    Connected(u64),
    Peers(usize),
    Error,
    Lost,
}

async fn run_flow(
    mut flow: Flow,
    args: Arc<Args>,
    totals: Arc<Totals>,
    measure_from: Instant,
    end: Instant,
) -> Result<()> {
    let family = PeerFamily::of(&flow.target);
    let mut id: Option<(u64, Instant)> = None;
    while Instant::now() < end {
        let cid = match id {
            Some((cid, at)) if at.elapsed() < ID_LIFETIME => cid,
            _ => {
                let tid = flow.next_tid();
                let req = ConnectRequest {
                    transaction_id: tid,
                }
                .encode();
                totals.connects.fetch_add(1, Ordering::Relaxed);
                match flow.exchange(&req, tid, family).await? {
                    Reply::Connected(cid) => {
                        id = Some((cid, Instant::now()));
                        cid
                    }
                    _ => continue,
                }
            }
        };
        if totals.started.fetch_add(1, Ordering::Relaxed) >= args.max_announces {
            break;
        }
        let tid = flow.next_tid();
        let a = UdpAnnounce {
            connection_id: cid,
            transaction_id: tid,
            info_hash: info_hash(flow.rng.gen_range(0..args.swarms)),
            peer_id: PeerId(flow.rng.r#gen()),
            downloaded: 0,
            left: if flow.rng.gen_bool(0.7) {
                flow.rng.gen_range(1..1_000_000)
            } else {
                0
            },
            uploaded: 0,
            event: Event::None,
            ip: 0,
            key: flow.rng.r#gen(),
            num_want: args.numwant,
            port: flow.rng.gen_range(1024..=65535),
        };
        let sent = Instant::now();
        let reply = flow.exchange(&a.encode(), tid, family).await?;
        let done = Instant::now();
        if sent < measure_from || done > end {
            continue;
        }
        match reply {
            Reply::Peers(n) => {
                totals.announces.fetch_add(1, Ordering::Relaxed);
                totals.peers.fetch_add(n as u64, Ordering::Relaxed);
                let bucket = (done - sent).as_micros() as u64 / BUCKET_US;
                let last = totals.histogram.len() - 1;
                totals.histogram[(bucket as usize).min(last)].fetch_add(1, Ordering::Relaxed);
            }
            Reply::Lost => {
                totals.lost.fetch_add(1, Ordering::Relaxed);
                id = None; // the id may be what the tracker refused silently
            }
            Reply::Error | Reply::Connected(_) => {
                totals.errors.fetch_add(1, Ordering::Relaxed);
                id = None;
            }
        }
    }
    Ok(())
}

fn percentile(hist: &[u64], total: u64, p: f64) -> f64 {
    let want = ((total as f64) * p).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want {
            return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
        }
    }
    f64::NAN
}

fn main() -> Result<()> {
    let args = Arc::new(Args::parse());
    if args.print_hashes {
        for i in 0..args.swarms {
            println!("{}", info_hash(i));
        }
        return Ok(());
    }
    let Some(target) = args.target else {
        bail!("--target is required");
    };
    if args.swarms == 0 || args.sockets == 0 {
        bail!("--swarms and --sockets must be positive");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let buckets = (args.timeout_ms * 1000 / BUCKET_US + 1) as usize;
    let totals = Arc::new(Totals {
        announces: AtomicU64::new(0),
        started: AtomicU64::new(0),
        lost: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        connects: AtomicU64::new(0),
        peers: AtomicU64::new(0),
        histogram: (0..buckets).map(|_| AtomicU64::new(0)).collect(),
    });
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(args.warmup);
    let end = measure_from + Duration::from_secs(args.seconds);
    runtime.block_on(async {
        let local: SocketAddr = if target.is_ipv4() {
            "0.0.0.0:0".parse()?
        } else {
            "[::]:0".parse()?
        };
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..args.sockets {
            let sock = UdpSocket::bind(local)
                .await
                .context("bind a client socket")?;
            let flow = Flow {
                sock,
                target,
                rng: SmallRng::seed_from_u64(i as u64 ^ rand::random::<u64>()),
                buf: vec![0; 4096],
                tid: rand::random(),
                timeout: Duration::from_millis(args.timeout_ms),
            };
            tasks.spawn(run_flow(
                flow,
                args.clone(),
                totals.clone(),
                measure_from,
                end,
            ));
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        anyhow::Ok(())
    })?;
    let elapsed = end
        .min(Instant::now())
        .saturating_duration_since(measure_from);
    let hist: Vec<u64> = totals
        .histogram
        .iter()
        .map(|b| b.load(Ordering::Relaxed))
        .collect();
    let n = totals.announces.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!("target: {target}, {} sockets", args.sockets);
    println!(
        "announces: {n} in {secs:.2} s; lost {}, errors {}, connects {}, peers/announce {:.1}",
        totals.lost.load(Ordering::Relaxed),
        totals.errors.load(Ordering::Relaxed),
        totals.connects.load(Ordering::Relaxed),
        totals.peers.load(Ordering::Relaxed) as f64 / n.max(1) as f64,
    );
    println!("announces/s: {:.0}", n as f64 / secs);
    println!(
        "latency ms: p50 {:.2} p90 {:.2} p99 {:.2} p99.9 {:.2}",
        percentile(&hist, n, 0.50),
        percentile(&hist, n, 0.90),
        percentile(&hist, n, 0.99),
        percentile(&hist, n, 0.999),
    );
    Ok(())
}
