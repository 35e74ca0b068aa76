//! Our tracker in-process on `127.0.0.1:<OS-chosen port>`, HTTP and UDP (BEP 15) on that port
//! as `swarm-tracker` serves them, on its own runtime thread, so a blocking test can start it,
//! point torrents at it and ask it for counts.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use metainfo::InfoHash;
use tokio::sync::oneshot;
use tracker_proto::{ScrapeRequest, ScrapeResponse, ScrapeStats};

use crate::http::{HttpResponse, http_get};

/// How long one request to the tracker may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between scrapes in [`wait_for_scrape`].
const SCRAPE_POLL: Duration = Duration::from_millis(50);

/// A running `tracker::run` on loopback; stopped (and awaited) on drop.
#[derive(Debug)]
pub struct LocalTracker {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl LocalTracker {
    /// Starts the tracker with the default configuration.
    pub fn start() -> Result<Self> {
        Self::start_with(tracker::Config::default())
    }

    /// Starts the tracker with `config`; returns once it answers `/stats`.
    pub fn start_with(config: tracker::Config) -> Result<Self> {
        let (listener, udp) = bind_both()?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("tracker-{}", addr.port()))
            .spawn(move || serve(listener, udp, config, stopped))
            .context("spawn tracker thread")?;
        let mut tracker = LocalTracker {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        };
        if let Err(e) = tracker.get("/stats") {
            let why = tracker
                .shutdown()
                .err()
                .map_or_else(String::new, |e| format!("{e:#}"));
            bail!("tracker on {addr} did not answer: {e:#} {why}");
        }
        Ok(tracker)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>/announce`, for a torrent's `announce`.
    pub fn announce_url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }

    /// `GET <path_and_query>`, failing on a status other than 200.
    pub fn get(&self, path_and_query: &str) -> Result<HttpResponse> {
        let response = http_get(self.addr, path_and_query, REQUEST_TIMEOUT)?;
        ensure!(
            response.status == 200,
            "GET {path_and_query}: status {}: {}",
            response.status,
            response.text()
        );
        Ok(response)
    }

    /// `udp://127.0.0.1:<port>/announce`: the same tracker over BEP 15.
    pub fn udp_announce_url(&self) -> String {
        format!("udp://{}/announce", self.addr)
    }

    /// The human-readable `/stats` page.
    pub fn stats(&self) -> Result<String> {
        Ok(self.get("/stats")?.text())
    }

    /// One number from the `/stats` page, e.g. `stat("swarms")`.
    pub fn stat(&self, name: &str) -> Result<u64> {
        let page = self.stats()?;
        let value = page
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .with_context(|| format!("no {name:?} on the stats page:\n{page}"))?;
        let number = value.split_whitespace().next().unwrap_or_default();
        number
            .parse()
            .with_context(|| format!("{name}: {value:?} is not a number"))
    }

    /// The scrape counts for one torrent (zeros when the tracker does not know it).
    pub fn scrape(&self, hash: &InfoHash) -> Result<ScrapeStats> {
        scrape_at(self.addr, hash)
    }

    /// Polls the scrape of `hash` until `ok` holds, at most `timeout`; returns those counts.
    pub fn wait_for_scrape(
        &self,
        hash: &InfoHash,
        timeout: Duration,
        ok: impl Fn(&ScrapeStats) -> bool,
    ) -> Result<ScrapeStats> {
        wait_for_scrape(self.addr, hash, timeout, ok)
    }

    /// Stops the tracker and waits for it; reports whether it ran without error.
    pub fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => bail!("tracker failed: {e}"),
            Some(Err(_)) => bail!("tracker thread panicked"),
        }
    }
}

impl Drop for LocalTracker {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The scrape counts for one torrent from our tracker at `addr` (a [`LocalTracker`], or the one
/// `swarm seed` embeds); zeros when the tracker does not know it.
pub fn scrape_at(addr: SocketAddr, hash: &InfoHash) -> Result<ScrapeStats> {
    let request = ScrapeRequest {
        info_hashes: vec![*hash],
    };
    let path = format!("/scrape?{}", request.to_query());
    let response = http_get(addr, &path, REQUEST_TIMEOUT)?;
    ensure!(
        response.status == 200,
        "GET {path}: status {}: {}",
        response.status,
        response.text()
    );
    let decoded =
        ScrapeResponse::decode(&response.body).map_err(|e| anyhow!("scrape body: {e}"))?;
    Ok(decoded
        .files
        .iter()
        .find(|(h, _)| h == hash)
        .map(|(_, stats)| *stats)
        .unwrap_or_default())
}

/// Polls [`scrape_at`] until `ok` holds, at most `timeout`; returns the counts that passed.
pub fn wait_for_scrape(
    addr: SocketAddr,
    hash: &InfoHash,
    timeout: Duration,
    ok: impl Fn(&ScrapeStats) -> bool,
) -> Result<ScrapeStats> {
    let deadline = Instant::now() + timeout;
    let mut last = ScrapeStats::default();
    for _ in 0..=timeout.as_millis() / SCRAPE_POLL.as_millis() {
        last = scrape_at(addr, hash)?;
        if ok(&last) {
            return Ok(last);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(SCRAPE_POLL);
    }
    bail!("scrape of {hash} at {addr} still {last:?} after {timeout:?}")
}

/// A TCP listener on an OS-chosen loopback port and a UDP socket on the same port (a few tries:
/// another program may hold that UDP port).
fn bind_both() -> Result<(TcpListener, UdpSocket)> {
    let mut last = None;
    for _ in 0..20 {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind tracker")?;
        listener.set_nonblocking(true)?;
        match UdpSocket::bind(listener.local_addr()?) {
            Ok(udp) => {
                udp.set_nonblocking(true)?;
                return Ok((listener, udp));
            }
            Err(e) => last = Some(e),
        }
    }
    bail!("no loopback port free for both TCP and UDP: {last:?}")
}

/// The tracker thread: a current-thread runtime running `tracker::run` until told to stop.
fn serve(
    listener: TcpListener,
    udp: UdpSocket,
    config: tracker::Config,
    stopped: oneshot::Receiver<()>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(async move {
        let listeners = tracker::Listeners {
            http: vec![tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?],
            udp: vec![tokio::net::UdpSocket::from_std(udp).map_err(|e| e.to_string())?],
        };
        let shutdown = async move {
            let _ = stopped.await;
        };
        tracker::run(listeners, config, shutdown)
            .await
            .map_err(|e| e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_stops() {
        let mut t = LocalTracker::start().unwrap();
        assert!(t.announce_url().starts_with("http://127.0.0.1:"));
        assert_eq!(
            t.udp_announce_url(),
            format!("udp://127.0.0.1:{}/announce", t.addr().port())
        );
        assert_eq!(t.stat("swarms").unwrap(), 0);
        let unknown = InfoHash([7; 20]);
        assert_eq!(t.scrape(&unknown).unwrap(), ScrapeStats::default());
        let err = t
            .wait_for_scrape(&unknown, Duration::from_millis(100), |s| s.complete > 0)
            .unwrap_err();
        assert!(err.to_string().contains("still"), "{err}");
        t.shutdown().unwrap();
        assert!(t.get("/stats").is_err(), "still answering after shutdown");
    }
}
