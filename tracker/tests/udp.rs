//! The UDP tracker (BEP 15) over real sockets on 127.0.0.1:0 and [::1]:0, sharing its port
//! with HTTP: connect -> announce -> peers, scrapes of 74 torrents, forged ids, the
//! amplification bound for every length, a flood from one address, and shutdown.

// Helpers outside #[test] fns count as non-test code to clippy; this whole file is a test.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use metainfo::{InfoHash, PeerId};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tracker::cli::{bind, bind_udp};
use tracker::rate_limit::RateLimit;
use tracker::{Config, Listeners};
use tracker_proto::Event;
use tracker_proto::udp::{
    ConnectRequest, ConnectResponse, PeerFamily, UdpAnnounce, UdpError, UdpScrape,
    decode_announce_response, decode_scrape_response,
};

/// Bound on any single wait, so a broken server fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tracker::Error>>,
}

/// The tracker on `ip`:0, HTTP and two UDP sockets on one port.
async fn start(ip: IpAddr, config: Config) -> Server {
    let http = bind(SocketAddr::new(ip, 0)).unwrap();
    let addr = http.local_addr().unwrap();
    let udp = bind_udp(addr, 2).unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let listeners = Listeners {
        http: vec![http],
        udp,
    };
    let task = tokio::spawn(tracker::run(listeners, config, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        stop: Some(tx),
        task,
    }
}

impl Server {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        let r = timeout(LIMIT, self.task).await;
        r.expect("shutdown finished").unwrap().unwrap();
    }

    /// The `/metrics` page over HTTP on the same port.
    async fn metrics(&self) -> String {
        let mut s = TcpStream::connect(self.addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut body = String::new();
        timeout(LIMIT, s.read_to_string(&mut body))
            .await
            .unwrap()
            .unwrap();
        body
    }

    async fn metric(&self, line_start: &str) -> u64 {
        let page = self.metrics().await;
        page.lines()
            .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {line_start} in\n{page}"))
    }
}

/// A client socket on `ip`, talking to the server.
struct Client {
    sock: UdpSocket,
    server: SocketAddr,
    buf: Vec<u8>,
}

impl Client {
    async fn new(ip: IpAddr, server: SocketAddr) -> Client {
        Client {
            sock: UdpSocket::bind(SocketAddr::new(ip, 0)).await.unwrap(),
            server,
            buf: vec![0; 4096],
        }
    }

    async fn send(&self, b: &[u8]) {
        self.sock.send_to(b, self.server).await.unwrap();
    }

    async fn recv(&mut self) -> &[u8] {
        let (n, from) = timeout(LIMIT, self.sock.recv_from(&mut self.buf))
            .await
            .expect("an answer")
            .unwrap();
        assert_eq!(from, self.server);
        &self.buf[..n]
    }

    async fn ask(&mut self, b: &[u8]) -> &[u8] {
        self.send(b).await;
        self.recv().await
    }

    async fn connect(&mut self) -> u64 {
        let r = self
            .ask(&ConnectRequest { transaction_id: 1 }.encode())
            .await;
        assert_eq!(r.len(), 16);
        ConnectResponse::decode(r, 1).unwrap().connection_id
    }
}

fn announce(cid: u64, hash: u8, port: u16, left: u64) -> UdpAnnounce {
    UdpAnnounce {
        connection_id: cid,
        transaction_id: 2,
        info_hash: InfoHash([hash; 20]),
        peer_id: PeerId([3; 20]),
        downloaded: 0,
        left,
        uploaded: 0,
        event: Event::Started,
        ip: 0,
        key: 0,
        num_want: 50,
        port,
    }
}

async fn swarm_over(ip: IpAddr, family: PeerFamily) {
    let server = start(ip, Config::default()).await;
    let mut seed = Client::new(ip, server.addr).await;
    let mut leech = Client::new(ip, server.addr).await;
    let cid = seed.connect().await;
    let r = seed.ask(&announce(cid, 1, 6881, 0).encode()).await;
    let r = decode_announce_response(r, 2, family).unwrap();
    assert!(r.peers.is_empty());

    let cid = leech.connect().await;
    let mut b = Vec::new();
    // With BEP 41 URL data, as libtorrent sends it.
    announce(cid, 1, 7000, 5).encode_with_url_data(b"/announce", &mut b);
    let r = leech.ask(&b).await;
    assert_eq!(r.len(), 20 + family.peer_size(), "one peer of the family");
    let r = decode_announce_response(r, 2, family).unwrap();
    assert_eq!(r.peers, vec![SocketAddr::new(ip, 6881)]);
    assert_eq!((r.complete, r.incomplete), (Some(1), Some(1)));

    let hashes: Vec<InfoHash> = (0..74).map(|i| InfoHash([i; 20])).collect();
    let mut b = Vec::new();
    UdpScrape {
        connection_id: cid,
        transaction_id: 3,
        info_hashes: hashes,
    }
    .encode(&mut b)
    .unwrap();
    let r = leech.ask(&b).await;
    let stats = decode_scrape_response(r, 3, 74).unwrap();
    assert_eq!(stats.len(), 74);
    assert_eq!((stats[1].complete, stats[1].incomplete), (1, 1));
    assert_eq!(stats[0].complete + stats[2].complete, 0);

    let connects = "swarm_tracker_udp_requests_total{action=\"connect\"}";
    assert_eq!(server.metric(connects).await, 2);
    assert_eq!(server.metric("swarm_tracker_announces_total").await, 2);
    server.stop().await;
}

#[tokio::test]
async fn connect_announce_scrape_over_ipv4() {
    swarm_over(IpAddr::V4(Ipv4Addr::LOCALHOST), PeerFamily::V4).await;
}

#[tokio::test]
async fn connect_announce_scrape_over_ipv6() {
    swarm_over("::1".parse().unwrap(), PeerFamily::V6).await;
}

#[tokio::test]
async fn forged_ids_are_refused_and_counted() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let server = start(ip, Config::default()).await;
    let mut c = Client::new(ip, server.addr).await;
    let real = c.connect().await;
    for forged in [0, real ^ 1, real ^ (1 << 63), 0x0417_2710_1980] {
        let r = c.ask(&announce(forged, 1, 1, 1).encode()).await;
        assert_eq!(
            ConnectResponse::decode(r, 2),
            Err(UdpError::Tracker("bad connection id".into()))
        );
    }
    // Another address cannot use this client's id.
    let mut thief = Client::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), server.addr).await;
    let r = thief.ask(&announce(real, 1, 1, 1).encode()).await;
    assert!(ConnectResponse::decode(r, 2).is_err());
    let bad = "swarm_tracker_udp_bad_connection_ids_total";
    assert_eq!(server.metric(bad).await, 5);
    assert_eq!(server.metric("swarm_tracker_swarms").await, 0);
    server.stop().await;
}

/// Every datagram length from 0 past the largest the tracker reads, random bytes under seven
/// heads (none, connect magic, a connect, announce, scrape, error and random actions), from an
/// address that never showed a valid id: no answer is longer than its request. Each datagram is
/// followed by a connect with a fresh transaction id as a marker; whatever comes before the
/// marker's answer answers the datagram (one client talks to one of the sockets, in order).
#[tokio::test]
async fn no_answer_outgrows_its_request_from_an_unproven_address() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let server = start(ip, Config::default()).await;
    let mut c = Client::new(ip, server.addr).await;
    let mut rng = SmallRng::seed_from_u64(5);
    let (mut answered, mut marker) = (0u32, 1000u32);
    for len in 0..=tracker::udp::MAX_DATAGRAM + 64 {
        for head in 0..7u8 {
            let mut d: Vec<u8> = (0..len).map(|_| rng.r#gen()).collect();
            let action = match head {
                0 => None,
                1 | 2 => {
                    put(&mut d, 0, &0x0417_2710_1980u64.to_be_bytes());
                    (head == 2).then_some(0)
                }
                3..=5 => Some(u32::from(head) - 2),
                _ => Some(rng.r#gen()),
            };
            if let Some(a) = action {
                put(&mut d, 8, &a.to_be_bytes());
            }
            c.send(&d).await;
            marker += 1;
            c.send(
                &ConnectRequest {
                    transaction_id: marker,
                }
                .encode(),
            )
            .await;
            loop {
                let r = c.recv().await;
                if r.len() == 16 && ConnectResponse::decode(r, marker).is_ok() {
                    break;
                }
                assert!(r.len() <= len, "{} bytes for {len} (head {head})", r.len());
                answered += 1;
            }
        }
    }
    assert!(answered > 1000, "connects and errors that fit: {answered}");
    assert_eq!(server.metric("swarm_tracker_swarms").await, 0);
    server.stop().await;
}

fn put(b: &mut [u8], at: usize, bytes: &[u8]) {
    for (i, x) in bytes.iter().enumerate() {
        if let Some(slot) = b.get_mut(at + i) {
            *slot = *x;
        }
    }
}

/// One announce a minute with a burst of 2: a flood of 200 from one address gets 3 answers
/// and errors after them (the test runs well within the minute); another address is not held
/// back.
#[tokio::test]
async fn a_flood_from_one_address_is_rate_limited() {
    let config = Config {
        rate_limit: Some(RateLimit {
            per_minute: 1,
            burst: 2,
            max_tracked: 1000,
        }),
        ..Config::default()
    };
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let server = start(ip, config).await;
    let mut flood = Client::new(ip, server.addr).await;
    let cid = flood.connect().await;
    let (mut peers, mut limited) = (0, 0);
    for i in 0..200u16 {
        let r = flood.ask(&announce(cid, 1, 1000 + i, 1).encode()).await;
        match decode_announce_response(r, 2, PeerFamily::V4) {
            Ok(_) => peers += 1,
            Err(UdpError::Tracker(m)) if m.starts_with("rate limit") => limited += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!((peers, limited), (3, 197));
    let mut other = Client::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), server.addr).await;
    let cid = other.connect().await;
    let r = other.ask(&announce(cid, 1, 1, 1).encode()).await;
    let r = decode_announce_response(r, 2, PeerFamily::V4).unwrap();
    assert_eq!(r.peers.len(), 3, "the flooder's three listed ports");
    assert_eq!(server.metric("swarm_tracker_udp_errors_total").await, 197);
    server.stop().await;
}

/// More datagrams queued than one batch of the receive loop: every one is answered. (The first
/// loop lost the datagram read after each full batch of 64; the test runtime has one thread,
/// so the server finds all of them queued.) 120 connects stay well within a default 208 KiB
/// receive buffer.
#[tokio::test]
async fn a_burst_longer_than_a_batch_is_answered_in_full() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let server = start(ip, Config::default()).await;
    let mut c = Client::new(ip, server.addr).await;
    const BURST: u32 = 120;
    for tid in 0..BURST {
        c.send(
            &ConnectRequest {
                transaction_id: tid,
            }
            .encode(),
        )
        .await;
    }
    let mut seen = vec![false; BURST as usize];
    for _ in 0..BURST {
        let r = c.recv().await;
        let tid = u32::from_be_bytes(r[4..8].try_into().unwrap());
        assert!(ConnectResponse::decode(r, tid).is_ok());
        seen[tid as usize] = true;
    }
    assert!(seen.iter().all(|&s| s));
    server.stop().await;
}

#[tokio::test]
async fn udp_alone_serves_and_stops() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let udp = bind_udp(SocketAddr::new(ip, 0), 1).unwrap();
    let addr = udp[0].local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let listeners = Listeners {
        http: Vec::new(),
        udp,
    };
    let task = tokio::spawn(tracker::run(listeners, Config::default(), async move {
        let _ = rx.await;
    }));
    let mut c = Client::new(ip, addr).await;
    c.connect().await;
    tx.send(()).unwrap();
    timeout(LIMIT, task).await.unwrap().unwrap().unwrap();
    assert!(matches!(
        tracker::run(Listeners::default(), Config::default(), async {}).await,
        Err(tracker::Error::NoListener)
    ));
}
