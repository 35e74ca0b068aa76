//! The client against trackers played by the test on loopback sockets, on tokio's paused
//! clock (waits pass at once, in order).

use std::net::{SocketAddrV4, SocketAddrV6};

use metainfo::{InfoHash, PeerId};
use tracker_proto::udp::{
    ConnectRequest, ConnectResponse, UdpAnnounce, UdpError, UdpPeers, UdpRequest,
    encode_announce_response, encode_error, encode_scrape_response,
};
use tracker_proto::{Event, ParamBytes};

use super::*;

fn request() -> AnnounceRequest {
    AnnounceRequest {
        info_hash: InfoHash([7; 20]),
        peer_id: PeerId([8; 20]),
        port: 6881,
        uploaded: 0,
        downloaded: 0,
        left: 10,
        event: Event::Started,
        compact: true,
        no_peer_id: true,
        numwant: Some(50),
        key: ParamBytes::new(b"0000cafe"),
        trackerid: None,
        ip: None,
    }
}

/// Short waits, a long deadline: the schedule decides.
fn fast() -> UdpTrackerConfig {
    UdpTrackerConfig {
        retransmit: Retransmit {
            first: Duration::from_secs(1),
            max_n: 3,
        },
        timeout: Duration::from_secs(3600),
        ..UdpTrackerConfig::default()
    }
}

/// A tracker played by the test: every datagram it gets is kept; `answer` says what to send
/// back to the n-th (from 0).
struct Fake {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fake {
    async fn start(
        bind: &str,
        answer: impl Fn(usize, &[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) -> Option<Fake> {
        let sock = UdpSocket::bind(bind).await.ok()?;
        let addr = sock.local_addr().ok()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let d = buf[..n].to_vec();
                let i = {
                    let mut s = kept.lock();
                    s.push(d.clone());
                    s.len() - 1
                };
                for out in answer(i, &d) {
                    let _ = sock.send_to(&out, from).await;
                }
            }
        });
        Some(Fake { addr, seen, task })
    }

    fn url(&self) -> String {
        format!("udp://{}/announce?passkey=abc", self.addr)
    }

    fn seen(&self) -> Vec<Vec<u8>> {
        self.seen.lock().clone()
    }

    fn connects(&self) -> usize {
        self.seen()
            .iter()
            .filter(|d| ConnectRequest::decode(d).is_ok())
            .count()
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A tracker's proper answer to `d`: connection id 42, one IPv4 or IPv6 peer, counts 3/4/5.
fn proper(d: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match UdpRequest::decode(d) {
        Ok(UdpRequest::Connect(c)) => out.extend_from_slice(
            &ConnectResponse {
                transaction_id: c.transaction_id,
                connection_id: 42,
            }
            .encode(),
        ),
        Ok(UdpRequest::Announce(a)) => {
            assert_eq!(a.connection_id, 42, "the id the tracker gave");
            assert_eq!(a.key, 0xcafe);
            assert_eq!(
                UdpAnnounce::url_data(d).ok().as_deref(),
                Some(&b"/announce?passkey=abc"[..]),
                "BEP 41 URL data"
            );
            let v4 = [SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9)];
            encode_announce_response(a.transaction_id, 900, 3, 4, UdpPeers::V4(&v4), &mut out);
        }
        Ok(UdpRequest::Scrape(s)) => {
            assert_eq!(s.connection_id, 42);
            let st = ScrapeStats {
                complete: 3,
                downloaded: 5,
                incomplete: 4,
            };
            encode_scrape_response(s.transaction_id, [st], &mut out);
        }
        Err(e) => panic!("the client sent a bad request: {e}"),
    }
    out
}

fn tid(d: &[u8]) -> u32 {
    u32::from_be_bytes([d[12], d[13], d[14], d[15]])
}

#[test]
fn parses_urls_and_keys() {
    let t = Target::parse("udp://tracker.example.org:1337/announce?k=v").unwrap();
    assert_eq!((t.host.as_str(), t.port), ("tracker.example.org", 1337));
    assert_eq!(t.url_data, b"/announce?k=v");
    let t = Target::parse("udp://[::1]:80").unwrap();
    assert_eq!((t.host.as_str(), t.port), ("::1", 80));
    assert!(t.url_data.is_empty(), "no path, no URL data");
    for bad in [
        "udp://host",
        "udp://host:0/",
        "http://host:1/",
        "udp://:1",
        "udp:x",
    ] {
        assert!(Target::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(key_of(&request()), 0xcafe);
}

#[tokio::test(start_paused = true)]
async fn a_late_answer_after_a_stray_is_taken() {
    // The first connect is lost; the retransmission is answered by a stray first.
    let fake = Fake::start("127.0.0.1:0", |i, d| match i {
        0 => vec![],
        1 => {
            let mut stray = proper(d);
            stray[4..8].copy_from_slice(&(tid(d) ^ 1).to_be_bytes());
            vec![stray, proper(d)]
        }
        _ => vec![proper(d)],
    })
    .await
    .unwrap();
    let udp = UdpTrackers::new(fast());
    let r = udp.announce(&fake.url(), &request()).await.unwrap();
    assert_eq!(r.interval, Some(900));
    assert_eq!((r.complete, r.incomplete), (Some(4), Some(3)));
    assert_eq!(r.peers, vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 9))]);
    let seen = fake.seen();
    assert_eq!(seen.len(), 3, "connect, its retransmission, announce");
    assert_eq!(seen[0], seen[1], "a retransmission repeats the datagram");
}

#[tokio::test(start_paused = true)]
async fn the_trackers_error_reads_like_a_failure_reason() {
    let fake = Fake::start("127.0.0.1:0", |_, d| match UdpRequest::decode(d) {
        Ok(UdpRequest::Announce(a)) => {
            let mut out = Vec::new();
            encode_error(a.transaction_id, "torrent not whitelisted", &mut out);
            vec![out]
        }
        _ => vec![proper(d)],
    })
    .await
    .unwrap();
    let e = UdpTrackers::new(fast())
        .announce(&fake.url(), &request())
        .await
        .unwrap_err();
    assert_eq!(
        e.tracker_message(),
        Some("torrent not whitelisted"),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_tracker_gets_the_configured_retransmissions() {
    let fake = Fake::start("127.0.0.1:0", |_, _| vec![]).await.unwrap();
    let mut config = fast();
    let e = UdpTrackers::new(config)
        .announce(&fake.url(), &request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            UdpTrackerError::Exchange(ExchangeError::TimedOut {
                step: "connect",
                addresses: 1
            })
        ),
        "{e:?}"
    );
    assert_eq!(fake.connects(), 4, "sends n = 0..=3");
    assert_eq!(fake.seen().len(), 4);

    // The deadline cuts the schedule: sends at 0 s and 1 s, then the 2.5 s deadline.
    let fake = Fake::start("127.0.0.1:0", |_, _| vec![]).await.unwrap();
    config.timeout = Duration::from_millis(2500);
    let e = UdpTrackers::new(config)
        .announce(&fake.url(), &request())
        .await
        .unwrap_err();
    assert!(matches!(e, UdpTrackerError::Exchange(_)), "{e:?}");
    assert_eq!(fake.connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_connection_id_is_reused_for_a_minute_then_renewed() {
    let fake = Fake::start("127.0.0.1:0", |_, d| vec![proper(d)])
        .await
        .unwrap();
    let udp = UdpTrackers::new(fast());
    udp.announce(&fake.url(), &request()).await.unwrap();
    // Another swarm of the session, and a scrape, within the minute: no connect.
    let mut other = request();
    other.info_hash = InfoHash([9; 20]);
    udp.clone().announce(&fake.url(), &other).await.unwrap();
    tokio::time::advance(Duration::from_secs(50)).await;
    let st = udp.scrape(&fake.url(), InfoHash([7; 20])).await.unwrap();
    assert_eq!((st.complete, st.incomplete, st.downloaded), (3, 4, 5));
    assert_eq!(fake.connects(), 1);
    assert_eq!(fake.seen().len(), 4);
    // Past the minute: a new connect first.
    tokio::time::advance(Duration::from_secs(11)).await;
    udp.announce(&fake.url(), &request()).await.unwrap();
    assert_eq!(fake.connects(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_ipv6_tracker_gives_18_byte_peers() {
    let Some(fake) = Fake::start("[::1]:0", |_, d| match UdpRequest::decode(d) {
        Ok(UdpRequest::Announce(a)) => {
            let p6 = [SocketAddrV6::new(Ipv6Addr::LOCALHOST, 51413, 0, 0)];
            let mut out = Vec::new();
            encode_announce_response(a.transaction_id, 60, 0, 1, UdpPeers::V6(&p6), &mut out);
            vec![out]
        }
        _ => vec![proper(d)],
    })
    .await
    else {
        eprintln!("skipped: no IPv6 loopback here");
        return;
    };
    let r = UdpTrackers::new(fast())
        .announce(&fake.url(), &request())
        .await
        .unwrap();
    assert_eq!(
        r.peers,
        vec![SocketAddr::from((Ipv6Addr::LOCALHOST, 51413))]
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_address_is_left_for_the_next() {
    let silent = Fake::start("127.0.0.1:0", |_, _| vec![]).await.unwrap();
    let live = Fake::start("127.0.0.1:0", |_, d| vec![proper(d)])
        .await
        .unwrap();
    let udp = UdpTrackers::new(fast());
    let query = Query::Scrape(vec![InfoHash([7; 20])]);
    let deadline = Instant::now() + Duration::from_secs(3600);
    let o = udp
        .exchange(&[silent.addr, live.addr], query, deadline)
        .await
        .unwrap();
    assert!(
        matches!(o, Outcome::Scraped(ref v) if v.len() == 1),
        "{o:?}"
    );
    assert_eq!(silent.connects(), 1, "one wait, then the next address");
    assert_eq!(live.connects(), 1);
}

#[tokio::test(start_paused = true)]
async fn oversized_answers_keep_their_whole_peers_and_short_ones_fail() {
    let fake = Fake::start("127.0.0.1:0", |_, d| match UdpRequest::decode(d) {
        Ok(UdpRequest::Announce(a)) => {
            let many: Vec<SocketAddrV4> = (0..7000u32)
                .map(|i| SocketAddrV4::new(Ipv4Addr::from(0x0a00_0000 + i), 1))
                .collect();
            let mut out = Vec::new();
            encode_announce_response(a.transaction_id, 60, 0, 1, UdpPeers::V4(&many), &mut out);
            assert!(out.len() > MAX_DATAGRAM);
            vec![out]
        }
        _ => vec![proper(d)],
    })
    .await
    .unwrap();
    let r = UdpTrackers::new(fast())
        .announce(&fake.url(), &request())
        .await
        .unwrap();
    assert_eq!(r.peers.len(), tracker_proto::MAX_DECODED_PEERS);

    let fake = Fake::start("127.0.0.1:0", |_, d| match UdpRequest::decode(d) {
        Ok(UdpRequest::Announce(a)) => {
            let mut out = proper(d);
            out.truncate(12);
            out[4..8].copy_from_slice(&a.transaction_id.to_be_bytes());
            vec![out]
        }
        _ => vec![proper(d)],
    })
    .await
    .unwrap();
    let e = UdpTrackers::new(fast())
        .announce(&fake.url(), &request())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            UdpTrackerError::Exchange(ExchangeError::Protocol(UdpError::Short { .. }))
        ),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_tracker_holds_up_no_other_announce() {
    let silent = Fake::start("127.0.0.1:0", |_, _| vec![]).await.unwrap();
    let live = Fake::start("127.0.0.1:0", |_, d| vec![proper(d)])
        .await
        .unwrap();
    let udp = UdpTrackers::new(fast());
    let (u, url) = (udp.clone(), silent.url());
    let slow = tokio::spawn(async move { u.announce(&url, &request()).await });
    tokio::task::yield_now().await;
    udp.announce(&live.url(), &request()).await.unwrap();
    assert!(
        !slow.is_finished(),
        "the silent tracker is still being waited for"
    );
    slow.abort();
}
