//! Talking to HTTP and UDP trackers: started / periodic / completed / stopped announces over a
//! swarm's tiers (BEP 12), with backoff on failure and an early announce when short of peers.
//! The peers they return go to the swarm's discovery.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metainfo::{InfoHash, PeerId};
use rand::seq::SliceRandom;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracker_proto::{AnnounceRequest, AnnounceResponse, Event, ParamBytes};

use super::Discovery;
use super::udp_tracker::{UdpTrackerConfig, UdpTrackerError, UdpTrackers};
use crate::net::encryption::Encryption;
use crate::peer::Driver;

/// Most bytes read from a tracker response.
const MAX_RESPONSE: usize = 2 << 20;
/// Used when a tracker gives no interval.
const DEFAULT_INTERVAL: u64 = 1800;
/// The shortest re-announce we allow ourselves when short of peers and the tracker set no
/// `min interval`.
const DEFAULT_MIN_INTERVAL: u64 = 30;
/// How long a stopped announce may take at shutdown.
const STOP_TIMEOUT: Duration = Duration::from_secs(3);

/// Why one announce failed.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The tracker answered `failure reason`.
    #[error("tracker says: {0}")]
    Failure(String),
    /// HTTP or network trouble.
    #[error("{0}")]
    Http(String),
    /// The body is not a tracker response.
    #[error("bad response: {0}")]
    Response(#[from] tracker_proto::ResponseError),
    /// A UDP tracker (BEP 15) did not answer or answered badly.
    #[error("UDP tracker: {0}")]
    Udp(UdpTrackerError),
    /// A tracker URL of another scheme.
    #[error("unsupported tracker URL {0}")]
    Unsupported(String),
    /// An HTTP tracker whose announce URL gives no scrape URL (BEP 48).
    #[error("no scrape URL (the announce URL does not end in /announce)")]
    NoScrape,
    /// A scrape response without the torrent asked for.
    #[error("the tracker does not list this torrent")]
    NotListed,
}

/// The HTTP client used for every tracker.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(10))
        // "swarm/0.1.0", the product/version form of HTTP.
        .user_agent(metainfo::CLIENT_VERSION.replacen(' ', "/", 1))
        .build()
        .unwrap_or_default()
}

/// The session's tracker clients: HTTP(S), and UDP with its connection ids; shared by every
/// swarm, cheap to clone.
#[derive(Debug, Clone)]
pub struct Trackers {
    /// For `http://` and `https://` trackers.
    pub http: reqwest::Client,
    /// For `udp://` trackers.
    pub udp: UdpTrackers,
}

impl Trackers {
    /// Clients with the session's UDP settings.
    pub fn new(udp: UdpTrackerConfig) -> Trackers {
        Trackers {
            http: http_client(),
            udp: UdpTrackers::new(udp),
        }
    }
}

impl From<UdpTrackerError> for AnnounceError {
    /// A UDP tracker's error message (action 3) is its `failure reason`.
    fn from(e: UdpTrackerError) -> Self {
        match e.tracker_message() {
            Some(m) => AnnounceError::Failure(m.to_owned()),
            None => AnnounceError::Udp(e),
        }
    }
}

/// One announce to one URL: HTTP(S), or UDP (BEP 15, in `udp_tracker`); `crypto` is appended
/// to an HTTP query (`Encryption::announce_param`; BEP 15 has no field for it).
pub async fn announce_once(
    trackers: &Trackers,
    url: &str,
    req: &AnnounceRequest,
    crypto: &str,
) -> Result<AnnounceResponse, AnnounceError> {
    if url.starts_with("udp://") {
        return Ok(trackers.udp.announce(url, req).await?);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(AnnounceError::Unsupported(url.to_owned()));
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let body = get_body(trackers, &format!("{url}{sep}{}{crypto}", req.to_query())).await?;
    match AnnounceResponse::decode(&body) {
        Err(tracker_proto::ResponseError::Failure(reason)) => Err(AnnounceError::Failure(reason)),
        r => Ok(r?),
    }
}

/// The body of `GET url`, at most [`MAX_RESPONSE`] bytes.
pub(super) async fn get_body(trackers: &Trackers, url: &str) -> Result<Vec<u8>, AnnounceError> {
    let mut resp = trackers
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| AnnounceError::Http(error_chain(&e.without_url())))?;
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| AnnounceError::Http(error_chain(&e.without_url())))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(AnnounceError::Http("response too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// An error and its sources on one line (reqwest's own message names only the outer layer).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        src = inner.source();
    }
    s
}

/// Who we are to trackers.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// The swarm.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port peers reach us on.
    pub port: u16,
    /// `--encryption`, said to HTTP trackers (`supportcrypto` / `requirecrypto`).
    pub encryption: Encryption,
}

/// The announce loop of one swarm; ends with a `stopped` announce when `cancel` fires. Its
/// transfer counters and completion come from the swarm's current driver.
pub async fn run(
    trackers: Trackers,
    mut tiers: Vec<Vec<String>>,
    me: Identity,
    mut driver: watch::Receiver<Arc<dyn Driver>>,
    discovery: Discovery,
    cancel: CancellationToken,
) {
    tiers.retain(|tier| !tier.is_empty());
    if tiers.is_empty() {
        return;
    }
    {
        let mut rng = rand::thread_rng();
        for tier in &mut tiers {
            tier.shuffle(&mut rng);
        }
    }
    let key = ParamBytes::new(format!("{:08x}", rand::random::<u32>()).as_bytes());
    let mut done_rx = driver.borrow().done();
    let mut event = Event::Started;
    let mut next = Instant::now();
    let mut last: Option<Instant> = None;
    let mut min_interval = Duration::from_secs(DEFAULT_MIN_INTERVAL);
    let mut failures = 0u32;
    let mut was_done = *done_rx.borrow();
    loop {
        let sleep = tokio::time::sleep(next.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = sleep => {}
            _ = discovery.announce_now.notified() => {
                // Early announce: only past the minimum interval, and never inside a backoff.
                if failures > 0 {
                    continue;
                }
                if let Some(l) = last
                    && l.elapsed() < min_interval {
                        next = next.min(l + min_interval);
                        continue;
                    }
            }
            changed = driver.changed() => {
                // The metadata arrived: the torrent now answers for the swarm.
                if changed.is_err() { break; }
                done_rx = driver.borrow().done();
                was_done = *done_rx.borrow();
                continue;
            }
            changed = done_rx.changed() => {
                if changed.is_err() { break; }
                let now_done = *done_rx.borrow();
                if now_done && !was_done {
                    event = Event::Completed;
                }
                was_done = now_done;
            }
        }
        let req = request(&me, &**driver.borrow(), event, key);
        // A stop does not wait for a slow tracker: the stopped announce below has its own bound.
        let answer = tokio::select! {
            r = announce_tiers(&trackers, &mut tiers, &req, me.encryption.announce_param()) => r,
            _ = cancel.cancelled() => {
                last = Some(Instant::now());
                break;
            }
        };
        match answer {
            Ok(resp) => {
                failures = 0;
                let n = resp.peers.len();
                discovery.add(resp.peers.clone());
                let interval = resp
                    .interval
                    .map_or(DEFAULT_INTERVAL, u64::from)
                    .clamp(30, 4 * 3600);
                min_interval = Duration::from_secs(
                    resp.min_interval
                        .map_or(DEFAULT_MIN_INTERVAL, u64::from)
                        .clamp(10, interval),
                );
                let mut line = format!(
                    "tracker ok: {} peers, {} seeds, {} leechers",
                    n,
                    resp.complete.unwrap_or(0),
                    resp.incomplete.unwrap_or(0)
                );
                if let Some(w) = &resp.warning {
                    line.push_str(&format!(" (warning: {w})"));
                    tracing::warn!(info_hash = %me.info_hash, warning = %w, "tracker warning");
                }
                tracing::debug!(info_hash = %me.info_hash, peers = n, interval, "announced");
                *discovery.tracker.lock() = super::TrackerStatus { ok: true, line };
                event = Event::None;
                next = Instant::now() + Duration::from_secs(interval);
            }
            Err(e) => {
                failures += 1;
                let backoff = Duration::from_secs((15u64 << failures.min(7)).min(1800));
                tracing::warn!(error = %e, retry_in = backoff.as_secs(), "announce failed");
                let mut st = discovery.tracker.lock();
                st.line = format!("tracker error: {e} (retry in {}s)", backoff.as_secs());
                next = Instant::now() + backoff;
            }
        }
        last = Some(Instant::now());
    }
    if last.is_some() {
        // Completed just before the stop (the loop saw the cancel first), or its announce failed:
        // tell the tracker before leaving, so its download count stays exact.
        let unreported = (*done_rx.borrow() && !was_done) || event == Event::Completed;
        let d = driver.borrow().clone();
        if unreported {
            let req = request(&me, &*d, Event::Completed, key);
            let _ = tokio::time::timeout(
                STOP_TIMEOUT,
                announce_tiers(&trackers, &mut tiers, &req, me.encryption.announce_param()),
            )
            .await;
        }
        let req = request(&me, &*d, Event::Stopped, key);
        let _ = tokio::time::timeout(
            STOP_TIMEOUT,
            announce_tiers(&trackers, &mut tiers, &req, me.encryption.announce_param()),
        )
        .await;
    }
}

fn request(
    me: &Identity,
    driver: &dyn Driver,
    event: Event,
    key: Option<ParamBytes>,
) -> AnnounceRequest {
    let st = driver.transfer();
    AnnounceRequest {
        info_hash: me.info_hash,
        peer_id: me.peer_id,
        port: me.port.max(1),
        uploaded: st.uploaded,
        downloaded: st.downloaded,
        left: st.left,
        event,
        compact: true,
        no_peer_id: true,
        numwant: Some(if event == Event::Stopped { 0 } else { 50 }),
        key,
        trackerid: None,
        ip: None,
    }
}

/// BEP 12: try each tier in order, each URL of a tier in order, HTTP and UDP alike; a URL that
/// answers moves to the front of its tier.
async fn announce_tiers(
    trackers: &Trackers,
    tiers: &mut [Vec<String>],
    req: &AnnounceRequest,
    crypto: &str,
) -> Result<AnnounceResponse, AnnounceError> {
    let mut last_err = None;
    for tier in tiers.iter_mut() {
        for i in 0..tier.len() {
            let url = tier[i].clone();
            match announce_once(trackers, &url, req, crypto).await {
                Ok(r) => {
                    let u = tier.remove(i);
                    tier.insert(0, u);
                    return Ok(r);
                }
                Err(e) => {
                    tracing::debug!(%url, error = %e, "tracker failed");
                    last_err = Some(e);
                }
            }
        }
    }
    Err(last_err.unwrap_or_else(|| AnnounceError::Http("no trackers".into())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::udp_tracker::UdpTrackerConfig;
    use metainfo::{InfoHash, PeerId};
    use std::net::{Ipv4Addr, SocketAddr};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};
    use tracker_proto::udp::{
        ConnectResponse, UdpPeers, UdpRequest, encode_announce_response, encode_error,
    };
    use tracker_proto::udp_client::Retransmit;

    fn req() -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([1; 20]),
            peer_id: PeerId([2; 20]),
            port: 6881,
            uploaded: 0,
            downloaded: 0,
            left: 5,
            event: Event::Started,
            compact: true,
            no_peer_id: true,
            numwant: Some(50),
            key: None,
            trackerid: None,
            ip: None,
        }
    }

    /// Quick to give up on a silent UDP tracker (in real time: reqwest runs beside it).
    fn trackers() -> Trackers {
        Trackers::new(UdpTrackerConfig {
            retransmit: Retransmit {
                first: Duration::from_millis(100),
                max_n: 1,
            },
            timeout: Duration::from_millis(400),
            ..UdpTrackerConfig::default()
        })
    }

    /// An HTTP tracker answering every request with `body`.
    async fn http_tracker(body: &'static [u8]) -> (String, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/announce", l.local_addr().unwrap());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body).await;
            }
        });
        (url, task)
    }

    /// A UDP tracker: silent, or answering with one peer, or refusing with `error`.
    async fn udp_tracker(
        answer: bool,
        error: Option<&'static str>,
    ) -> (String, tokio::task::JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("udp://{}/announce", sock.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                let mut out = Vec::new();
                match UdpRequest::decode(&buf[..n]) {
                    _ if !answer => continue,
                    Ok(UdpRequest::Connect(c)) => out.extend_from_slice(
                        &ConnectResponse {
                            transaction_id: c.transaction_id,
                            connection_id: 5,
                        }
                        .encode(),
                    ),
                    Ok(UdpRequest::Announce(a)) => match error {
                        Some(e) => encode_error(a.transaction_id, e, &mut out),
                        None => {
                            let p = [std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 7)];
                            encode_announce_response(
                                a.transaction_id,
                                900,
                                0,
                                1,
                                UdpPeers::V4(&p),
                                &mut out,
                            );
                        }
                    },
                    _ => continue,
                }
                let _ = sock.send_to(&out, from).await;
            }
        });
        (url, task)
    }

    #[tokio::test]
    async fn mixed_tiers_move_whichever_answers_to_the_front() {
        let t = trackers();
        let (silent_udp, a) = udp_tracker(false, None).await;
        let (http_ok, b) =
            http_tracker(b"d8:intervali900e5:peers6:\x7f\x00\x00\x01\x00\x07e").await;
        let mut tiers = vec![vec![silent_udp.clone(), http_ok.clone()]];
        let r = announce_tiers(&t, &mut tiers, &req(), "").await.unwrap();
        assert_eq!(r.peers, vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 7))]);
        assert_eq!(tiers[0], vec![http_ok, silent_udp], "HTTP answered: first");

        let (udp_ok, c) = udp_tracker(true, None).await;
        let dead_http = "http://127.0.0.1:9/announce".to_owned();
        let mut tiers = vec![
            vec![dead_http.clone()],
            vec![dead_http.clone(), udp_ok.clone()],
        ];
        let r = announce_tiers(&t, &mut tiers, &req(), "").await.unwrap();
        assert_eq!(r.complete, Some(1));
        assert_eq!(tiers[1], vec![udp_ok, dead_http], "UDP answered: first");
        for task in [a, b, c] {
            task.abort();
        }
    }

    #[tokio::test]
    async fn a_udp_error_reads_like_an_http_failure_reason() {
        let t = trackers();
        let (udp, a) = udp_tracker(true, Some("torrent not whitelisted")).await;
        let (http, b) = http_tracker(b"d14:failure reason23:torrent not whitelistede").await;
        for url in [udp, http] {
            let e = announce_once(&t, &url, &req(), "").await.unwrap_err();
            assert!(matches!(e, AnnounceError::Failure(_)), "{url}: {e:?}");
            assert_eq!(
                e.to_string(),
                "tracker says: torrent not whitelisted",
                "{url}"
            );
        }
        a.abort();
        b.abort();
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn error_chain_names_every_layer_once() {
        let e = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer("Connection refused (os error 111)", None))),
            ))),
        );
        assert_eq!(
            error_chain(&e),
            "error sending request: tcp connect error: Connection refused (os error 111)"
        );
        let dup = Layer(
            "tcp connect error: refused",
            Some(Box::new(Layer("refused", None))),
        );
        assert_eq!(error_chain(&dup), "tcp connect error: refused");
    }
}
