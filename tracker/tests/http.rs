//! The tracker over real HTTP on 127.0.0.1: announces, scrapes, bad input, oversized and garbage
//! requests, slow clients, and shutdown.

// Helpers outside #[test] fns count as non-test code to clippy; this whole file is a test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use metainfo::{InfoHash, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracker::Config;
use tracker_proto::{
    AnnounceRequest, AnnounceResponse, Event, ResponseError, ScrapeRequest, ScrapeResponse,
};

/// Bound on any single wait, so a broken server fails the test instead of hanging it.
const LIMIT: Duration = Duration::from_secs(20);

struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tracker::Error>>,
}

async fn start(config: Config) -> Server {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(tracker::run(vec![l], config, async move {
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
        let r = tokio::time::timeout(LIMIT, self.task).await;
        r.expect("shutdown finished").unwrap().unwrap();
    }
}

/// Sends one GET on `s` and reads one response: (status, body).
async fn get_on(s: &mut TcpStream, target: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(LIMIT, s.read(&mut chunk)).await??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + len {
        let n = tokio::time::timeout(LIMIT, s.read(&mut chunk)).await??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, buf[head_end..head_end + len].to_vec()))
}

async fn get(addr: SocketAddr, target: &str) -> (u16, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    get_on(&mut s, target).await.unwrap()
}

fn announce(ih: u8, port: u16, left: u64) -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([ih; 20]),
        peer_id: PeerId([port as u8; 20]),
        port,
        uploaded: 0,
        downloaded: 0,
        left,
        event: Event::Started,
        compact: true,
        no_peer_id: false,
        numwant: None,
        key: None,
        trackerid: None,
        ip: None,
    }
}

fn target(r: &AnnounceRequest) -> String {
    format!("/announce?{}", r.to_query())
}

async fn failure(addr: SocketAddr, query: &str) -> String {
    let (status, body) = get(addr, &format!("/announce?{query}")).await;
    assert_eq!(status, 200);
    match AnnounceResponse::decode(&body) {
        Err(ResponseError::Failure(f)) => f,
        other => panic!("expected a failure reason, got {other:?}"),
    }
}

#[tokio::test]
async fn peers_meet_over_keep_alive_and_scrape_counts_them() {
    let srv = start(Config::default()).await;
    let mut a = TcpStream::connect(srv.addr).await.unwrap();
    let (_, body) = get_on(&mut a, &target(&announce(1, 1111, 100)))
        .await
        .unwrap();
    let first = AnnounceResponse::decode(&body).unwrap();
    assert!(first.peers.is_empty());
    assert_eq!(first.interval, Some(1800));

    let (_, body) = get(srv.addr, &target(&announce(1, 2222, 0))).await;
    let second = AnnounceResponse::decode(&body).unwrap();
    assert_eq!(second.peers, vec!["127.0.0.1:1111".parse().unwrap()]);
    assert_eq!((second.complete, second.incomplete), (Some(1), Some(1)));

    // Same connection again (keep-alive): the seeder is offered, never ourselves.
    let mut done = announce(1, 1111, 0);
    done.event = Event::Completed;
    let (_, body) = get_on(&mut a, &target(&done)).await.unwrap();
    let third = AnnounceResponse::decode(&body).unwrap();
    assert_eq!(
        third.peers,
        Vec::<SocketAddr>::new(),
        "seeders get leechers only"
    );

    let scrape = ScrapeRequest {
        info_hashes: vec![InfoHash([1; 20]), InfoHash([9; 20])],
    };
    let (_, body) = get(srv.addr, &format!("/scrape?{}", scrape.to_query())).await;
    let s = ScrapeResponse::decode(&body).unwrap();
    let one = s
        .files
        .iter()
        .find(|(h, _)| *h == InfoHash([1; 20]))
        .unwrap()
        .1;
    assert_eq!((one.complete, one.incomplete, one.downloaded), (2, 0, 1));
    assert_eq!(s.files.len(), 2);

    let mut stop = announce(1, 2222, 0);
    stop.event = Event::Stopped;
    get(srv.addr, &target(&stop)).await;
    let (status, page) = get(srv.addr, "/stats").await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("swarms:     1"), "{page}");
    assert!(page.contains("peers:      1 (IPv4 1, IPv6 0)"), "{page}");
    let (_, metrics) = get(srv.addr, "/metrics").await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("swarm_tracker_announces_total 4"),
        "{metrics}"
    );
    assert!(
        metrics.contains("swarm_tracker_scrapes_total 1"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn malformed_announces_get_a_failure_reason_naming_the_problem() {
    let srv = start(Config::default()).await;
    let ok = announce(1, 1, 0).to_query();
    let ih = ok.split('&').next().unwrap().to_owned();
    let pid = "peer_id=-SW0001-abcdefghijkl";
    let cases = [
        ("", "missing info_hash".to_owned()),
        (
            &format!("info_hash=abc&{pid}&port=1&left=0") as &str,
            "info_hash must be 20 bytes, got 3".to_owned(),
        ),
        (
            &format!("{ih}&{pid}&port=0&left=0"),
            "port must not be 0".into(),
        ),
        (
            &format!("{ih}&{pid}&port=65536&left=0"),
            "port must be at most 65535".into(),
        ),
        (
            &format!("{ih}&{pid}&port=x&left=0"),
            "port is not a number".into(),
        ),
        (
            &format!("{ih}&{pid}&port=1&left=-1"),
            "left must not be negative".into(),
        ),
        (
            &format!("{ih}&{pid}&port=1&left=0&uploaded=1e3"),
            "uploaded is not a number".into(),
        ),
        (
            &format!("{ih}%G1&{pid}&port=1&left=0"),
            "invalid percent-encoding in info_hash".into(),
        ),
        (&format!("{ih}&{pid}&port=1"), "missing left".into()),
    ];
    for (q, want) in cases {
        assert_eq!(failure(srv.addr, q).await, want, "query {q:?}");
    }
    let many = ScrapeRequest {
        info_hashes: (0..101u8).map(|i| InfoHash([i; 20])).collect(),
    };
    let (status, body) = get(srv.addr, &format!("/scrape?{}", many.to_query())).await;
    assert_eq!(status, 200);
    assert_eq!(
        ScrapeResponse::decode(&body),
        Err(ResponseError::Failure(
            "too many info_hash parameters (at most 100)".into()
        ))
    );
    srv.stop().await;
}

#[tokio::test]
async fn oversized_and_garbage_requests_do_not_hurt_the_listener() {
    let srv = start(Config::default()).await;
    // A query over the length cap but within the byte budget: a bencoded failure.
    let long = format!("/announce?x={}", "a".repeat(9000));
    let (status, body) = get(srv.addr, &long).await;
    assert_eq!(status, 200);
    assert_eq!(body, b"d14:failure reason16:request too longe");

    // A 10 MB URL: the connection is dropped once the byte budget is spent.
    let mut s = TcpStream::connect(srv.addr).await.unwrap();
    let huge = format!(
        "GET /announce?x={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(10 << 20)
    );
    let _ = s.write_all(huge.as_bytes()).await; // may fail part-way: the server hung up
    let mut sink = [0u8; 1024];
    let closed = tokio::time::timeout(LIMIT, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "server must close an endless request");

    // Garbage bytes: hyper answers 400 or hangs up; either way the listener keeps serving.
    let mut g = TcpStream::connect(srv.addr).await.unwrap();
    g.write_all(b"\x16\x03\x01\x00\xff garbage \x00\r\n\r\n")
        .await
        .unwrap();
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(LIMIT, g.read_to_end(&mut resp))
        .await
        .unwrap();
    assert!(
        resp.is_empty() || resp.starts_with(b"HTTP/1.1 400"),
        "{resp:?}"
    );

    let (status, body) = get(srv.addr, &target(&announce(3, 3, 0))).await;
    assert_eq!(status, 200);
    assert!(AnnounceResponse::decode(&body).is_ok());
    srv.stop().await;
}

#[tokio::test]
async fn silent_and_slow_clients_are_disconnected() {
    let config = Config {
        request_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let srv = start(config).await;
    // Silent: never sends a byte.
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(LIMIT, silent.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "silent client must be dropped"
    );
    // Slow: dribbles a request line that never ends.
    let mut slow = TcpStream::connect(srv.addr).await.unwrap();
    let dribble = async {
        for b in b"GET /announce?info_hash=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if slow.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(LIMIT, dribble).await.unwrap();
    let r = tokio::time::timeout(LIMIT, slow.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "slow client must be dropped"
    );
    // Still serving.
    let (status, _) = get(srv.addr, "/stats").await;
    assert_eq!(status, 200);
    srv.stop().await;
}

#[tokio::test]
async fn shutdown_returns_with_idle_keep_alive_connections_open() {
    let srv = start(Config::default()).await;
    let mut idle = TcpStream::connect(srv.addr).await.unwrap();
    get_on(&mut idle, "/stats").await.unwrap();
    srv.stop().await;
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(LIMIT, idle.read(&mut buf))
        .await
        .unwrap();
    assert!(
        matches!(r, Ok(0) | Err(_)),
        "idle connection closed on shutdown"
    );
}

#[tokio::test]
async fn run_refuses_bad_config_and_no_listener() {
    let r = tracker::run(Vec::new(), Config::default(), async {}).await;
    assert!(matches!(r, Err(tracker::Error::NoListener)));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bad = Config {
        interval: 0,
        ..Config::default()
    };
    let r = tracker::run(vec![l], bad, async {}).await;
    assert!(matches!(r, Err(tracker::Error::Config(_))));
}

#[tokio::test]
async fn ipv4_and_ipv6_listeners_keep_families_apart() {
    let l4 = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let l6 = TcpListener::bind("[::1]:0").await.unwrap();
    let (a4, a6) = (l4.local_addr().unwrap(), l6.local_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(tracker::run(vec![l4, l6], Config::default(), async move {
        let _ = rx.await;
    }));
    get(a4, &target(&announce(5, 4444, 10))).await;
    get(a6, &target(&announce(5, 6666, 10))).await;
    let (_, body) = get(a6, &target(&announce(5, 6667, 10))).await;
    let r = AnnounceResponse::decode(&body).unwrap();
    assert_eq!(r.peers, vec!["[::1]:6666".parse::<SocketAddr>().unwrap()]);
    assert_eq!(r.incomplete, Some(3));
    let (_, body) = get(a4, &target(&announce(5, 4445, 10))).await;
    let r = AnnounceResponse::decode(&body).unwrap();
    assert_eq!(
        r.peers,
        vec!["127.0.0.1:4444".parse::<SocketAddr>().unwrap()]
    );
    let _ = tx.send(());
    tokio::time::timeout(LIMIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
