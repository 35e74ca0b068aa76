//! Where a swarm's peers come from and who dials them: every source -- trackers
//! ([`announce`]), the DHT ([`dht_lookup`]), peer exchange (the engine's `Event::Peers`), a
//! magnet link's `x.pe` addresses, local service discovery ([`lsd`]) -- sends addresses into one bounded
//! channel; one task per swarm owns the [`Candidates`](candidates::Candidates), the dialer and
//! the count of dials in flight, and hands each connection that gets through its handshake to
//! the swarm's current [`Driver`].
//!
//! The driver can change under it (a magnet link's metadata fetch, then the torrent): the
//! candidate list and the trackers' state carry over.

pub mod announce;
pub mod candidates;
pub mod dht_lookup;
pub mod lsd;
pub mod scrape;
pub mod udp_tracker;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metainfo::InfoHash;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::candidates::{Candidates, USEFUL_CONNECTION};
use crate::net::encryption::{CryptoMemory, Encryption};
use crate::net::handshake::{self, Ours};
use crate::net::limit::Limits;
use crate::peer::{Driver, PeerSink, connection};

/// Dials in flight per swarm.
pub const MAX_DIALING: usize = 16;
/// Batches of addresses waiting for the discovery task; a full channel drops new batches.
const FOUND_QUEUE: usize = 64;
/// With fewer connections than wanted, candidates are looked at again at least this often (a
/// peer that left is noticed by then).
const RECHECK: Duration = Duration::from_secs(5);
/// The discovery task never wakes more often than this for candidates that are due but
/// skipped (already connected, our own address).
const MIN_SLEEP: Duration = Duration::from_millis(200);
/// Below this many connections a download asks its trackers for more peers early.
pub const FEW_PEERS: usize = 5;

/// The addresses that are ours (dialing them would reach ourselves).
#[derive(Debug, Clone)]
pub struct OwnAddrs {
    /// Our listening port.
    pub port: u16,
    /// The addresses we listen on.
    pub local: Vec<SocketAddr>,
}

impl OwnAddrs {
    /// Is `a` one of our own listening addresses?
    pub fn contains(&self, a: SocketAddr) -> bool {
        a.port() == self.port
            && (a.ip().is_loopback()
                || a.ip().is_unspecified()
                || self.local.iter().any(|l| l.ip() == a.ip()))
    }
}

/// What the dialer of one swarm works with.
#[derive(Debug, Clone)]
pub struct DialContext {
    /// The swarm.
    pub info_hash: InfoHash,
    /// Our handshake.
    pub ours: Ours,
    /// The process's rate limits.
    pub limits: Arc<Limits>,
    /// Never dialed.
    pub own: OwnAddrs,
    /// Connections wanted (dialing stops there).
    pub max_outgoing: usize,
    /// `--encryption`: how peers are dialed.
    pub encryption: Encryption,
    /// Which peers were reached encrypted or not (process-wide).
    pub crypto_memory: Arc<CryptoMemory>,
    /// Stops the swarm.
    pub cancel: CancellationToken,
}

/// The last thing a tracker said, for displays and for giving up.
#[derive(Debug, Clone, Default)]
pub struct TrackerStatus {
    /// Some tracker answered at least once.
    pub ok: bool,
    /// One line for people.
    pub line: String,
}

/// A swarm's discovery: where its sources send addresses; cheap to clone.
#[derive(Debug, Clone)]
pub struct Discovery {
    found: PeerSink,
    announce_now: Arc<Notify>,
    tracker: Arc<Mutex<TrackerStatus>>,
}

/// The receiving end of a swarm's candidate channel, until [`Discovery::run`] takes it.
#[derive(Debug)]
pub struct Inbox(mpsc::Receiver<Vec<SocketAddr>>);

impl Discovery {
    /// A swarm's discovery, not yet running: sources may send to it at once (the torrent's
    /// peer exchange needs its sink before the discovery task knows the torrent).
    pub fn new() -> (Discovery, Inbox) {
        let (tx, rx) = mpsc::channel(FOUND_QUEUE);
        let d = Discovery {
            found: tx,
            announce_now: Arc::new(Notify::new()),
            tracker: Arc::new(Mutex::new(TrackerStatus {
                ok: false,
                line: "tracker: not yet contacted".into(),
            })),
        };
        (d, Inbox(rx))
    }

    /// Starts the discovery task on `tasks`; it ends when `ctx.cancel` fires, after every
    /// connection it made has ended.
    pub fn run(
        &self,
        inbox: Inbox,
        ctx: DialContext,
        driver: watch::Receiver<Arc<dyn Driver>>,
        tasks: &tokio_util::task::TaskTracker,
    ) {
        tasks.spawn(run(ctx, inbox.0, driver, self.announce_now.clone()));
    }

    /// Where sources send the addresses they find.
    pub fn sink(&self) -> PeerSink {
        self.found.clone()
    }

    /// Adds addresses (dropped if the channel is full).
    pub fn add(&self, addrs: Vec<SocketAddr>) {
        if !addrs.is_empty() {
            let _ = self.found.try_send(addrs);
        }
    }

    /// The last thing a tracker said.
    pub fn tracker_status(&self) -> TrackerStatus {
        self.tracker.lock().clone()
    }
}

async fn run(
    ctx: DialContext,
    mut found: mpsc::Receiver<Vec<SocketAddr>>,
    driver: watch::Receiver<Arc<dyn Driver>>,
    announce_now: Arc<Notify>,
) {
    let mut candidates = Candidates::default();
    let mut dials: JoinSet<(SocketAddr, bool)> = JoinSet::new();
    let dialing = Arc::new(AtomicUsize::new(0));
    let mut sources_open = true;
    loop {
        let now = Instant::now();
        let short = dial_more(&ctx, &driver, &mut candidates, &mut dials, &dialing, now);
        if short.asked_tracker {
            announce_now.notify_one();
        }
        let next = if short.want > 0 {
            candidates
                .next_due()
                .map_or(now + RECHECK, |d| d.min(now + RECHECK))
        } else {
            now + RECHECK
        };
        let next = next.max(now + MIN_SLEEP);
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            batch = found.recv(), if sources_open => match batch {
                Some(addrs) => candidates.add(addrs, Instant::now()),
                None => sources_open = false,
            },
            Some(r) = dials.join_next() => {
                if let Ok((a, ok)) = r {
                    candidates.finished(a, ok, Instant::now());
                }
            }
            _ = tokio::time::sleep_until(next.into()) => {}
        }
    }
    // Every connection ends with its driver's cancel (a child of ours): wait for them.
    while dials.join_next().await.is_some() {}
}

/// What one round of dialing saw.
struct Round {
    /// More connections wanted.
    want: usize,
    /// Short of peers with nothing to dial: the trackers should be asked early.
    asked_tracker: bool,
}

/// Starts dials until the swarm has enough connections (or runs out of addresses).
fn dial_more(
    ctx: &DialContext,
    driver: &watch::Receiver<Arc<dyn Driver>>,
    candidates: &mut Candidates,
    dials: &mut JoinSet<(SocketAddr, bool)>,
    dialing: &Arc<AtomicUsize>,
    now: Instant,
) -> Round {
    let d = driver.borrow().clone();
    let connected = d.connected();
    let in_flight = dialing.load(Ordering::Relaxed);
    let want = ctx
        .max_outgoing
        .saturating_sub(connected.len() + in_flight)
        .min(MAX_DIALING.saturating_sub(in_flight));
    if want == 0 {
        return Round {
            want,
            asked_tracker: false,
        };
    }
    // Banned addresses are refused by the engine after the handshake.
    let addrs = candidates.take_due(want, now, |a| connected.contains(&a) || ctx.own.contains(a));
    if addrs.is_empty() {
        let seed = d.transfer().left == 0;
        return Round {
            want,
            asked_tracker: connected.len() < FEW_PEERS && !seed,
        };
    }
    for a in addrs {
        dialing.fetch_add(1, Ordering::Relaxed);
        let (ctx, driver, dialing) = (ctx.clone(), driver.clone(), dialing.clone());
        dials.spawn(async move {
            let ok = dial(&ctx, &driver, &dialing, a).await;
            (a, ok)
        });
    }
    Round {
        want,
        asked_tracker: false,
    }
}

/// Dials `a` and runs the connection; true if it got past the handshake and lasted
/// [`USEFUL_CONNECTION`].
async fn dial(
    ctx: &DialContext,
    driver: &watch::Receiver<Arc<dyn Driver>>,
    dialing: &AtomicUsize,
    a: SocketAddr,
) -> bool {
    let attempt = handshake::connect(
        a,
        ctx.info_hash,
        ctx.ours,
        ctx.encryption,
        &ctx.crypto_memory,
    );
    let r = tokio::select! {
        r = attempt => Some(r),
        _ = ctx.cancel.cancelled() => None,
    };
    dialing.fetch_sub(1, Ordering::Relaxed);
    match r {
        Some(Ok(peer)) => {
            let d = driver.borrow().clone();
            connection::run(d, peer, ctx.limits.clone())
                .await
                .is_some_and(|lasted| lasted >= USEFUL_CONNECTION)
        }
        Some(Err(e)) => {
            tracing::debug!(peer = %a, error = %e, "dial failed");
            false
        }
        None => false,
    }
}
