//! One announce to a UDP tracker (BEP 15): resolve, connect, announce, over one socket of the
//! tracker's address family on an ephemeral port.
//!
//! BEP 15 retransmits after 15 * 2^n seconds, up to n = 8; we keep its doubling but start at
//! [`FIRST_WAIT`], retry each step at most [`RETRIES`] times and give the whole announce
//! [`TOTAL_TIMEOUT`] (the HTTP client's timeout), so a dead tracker does not stall the announce
//! loop. The socket is connected to the tracker, so the kernel drops datagrams from anyone else;
//! datagrams with another transaction id are ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout_at};
use tracker_proto::udp::{
    ANNOUNCE_RESPONSE_HEADER, ConnectRequest, ConnectResponse, PeerFamily, UdpAnnounce, UdpError,
    decode_announce_response,
};
use tracker_proto::{AnnounceRequest, AnnounceResponse, MAX_DECODED_PEERS};

/// The whole announce: name lookup, connect and announce with their retries.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest name lookup.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first try of each step waits for its answer; doubled at each retry.
pub const FIRST_WAIT: Duration = Duration::from_secs(2);
/// Retransmissions of each step after the first try.
pub const RETRIES: u32 = 2;
/// The receive buffer: room for a header, the peers we keep at the largest size, and slack.
const RECV_BUF: usize = 2048 + ANNOUNCE_RESPONSE_HEADER + 18 * MAX_DECODED_PEERS;

/// Why a UDP announce failed.
#[derive(Debug, thiserror::Error)]
pub enum UdpTrackerError {
    /// Not `udp://host:port[/...]`.
    #[error("bad UDP tracker URL")]
    BadUrl,
    /// The host name did not resolve (in time).
    #[error("cannot resolve {host}: {reason}")]
    Lookup {
        /// The name.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// A socket error (including ICMP port unreachable, seen as connection refused).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer after every retry, or past the total time.
    #[error("no answer to the {0} request")]
    TimedOut(&'static str),
    /// The tracker answered with an error message.
    #[error("{0}")]
    Tracker(String),
    /// A datagram with our transaction id that is not a valid answer.
    #[error("bad response: {0}")]
    Protocol(UdpError),
}

/// The host (an IP literal without brackets, or a name) and port of
/// `udp://host:port[/path][?query]`.
fn host_port(url: &str) -> Result<(String, u16), UdpTrackerError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| UdpTrackerError::BadUrl)?;
    if parsed.scheme() != "udp" {
        return Err(UdpTrackerError::BadUrl);
    }
    let host = parsed.host_str().ok_or(UdpTrackerError::BadUrl)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match parsed.port() {
        Some(p) if p != 0 && !host.is_empty() => Ok((host.to_owned(), p)),
        _ => Err(UdpTrackerError::BadUrl),
    }
}

/// Resolves the tracker, taking the first address the resolver gives.
async fn resolve(url: &str, deadline: Instant) -> Result<SocketAddr, UdpTrackerError> {
    let (name, port) = host_port(url)?;
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let until = deadline.min(Instant::now() + LOOKUP_TIMEOUT);
    let failed = |reason: String| UdpTrackerError::Lookup {
        host: name.clone(),
        reason,
    };
    match timeout_at(until, tokio::net::lookup_host((name.as_str(), port))).await {
        Err(_) => Err(failed("timed out".into())),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Ok(Ok(mut addrs)) => addrs.next().ok_or_else(|| failed("no address".into())),
    }
}

/// One announce to the UDP tracker at `url`; the answer in the HTTP path's form.
pub async fn announce(
    url: &str,
    req: &AnnounceRequest,
) -> Result<AnnounceResponse, UdpTrackerError> {
    let deadline = Instant::now() + TOTAL_TIMEOUT;
    let tracker = resolve(url, deadline).await?;
    let local: SocketAddr = match tracker {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(tracker).await?;
    let mut buf = vec![0u8; RECV_BUF];

    let tid = rand::random::<u32>();
    let connect = ConnectRequest {
        transaction_id: tid,
    }
    .encode();
    let conn = exchange(&sock, &connect, &mut buf, deadline, "connect", |b| {
        ConnectResponse::decode(b, tid)
    })
    .await?;

    let tid = rand::random::<u32>();
    let announce = UdpAnnounce::from_request(req, conn.connection_id, tid, key_of(req)).encode();
    let family = PeerFamily::of(&tracker);
    exchange(&sock, &announce, &mut buf, deadline, "announce", |b| {
        // A datagram that filled the buffer may have been cut: keep its whole peers only.
        let b = if b.len() == RECV_BUF {
            let peers = b.len().saturating_sub(ANNOUNCE_RESPONSE_HEADER);
            b.get(..b.len() - peers % family.peer_size()).unwrap_or(b)
        } else {
            b
        };
        decode_announce_response(b, tid, family)
    })
    .await
}

/// The announce loop's key (8 hex digits) as BEP 15's 32-bit key.
fn key_of(req: &AnnounceRequest) -> u32 {
    req.key
        .as_ref()
        .and_then(|k| std::str::from_utf8(k.as_bytes()).ok())
        .and_then(|s| u32::from_str_radix(s, 16).ok())
        .unwrap_or(0)
}

/// Sends `payload` and waits for the datagram `parse` accepts, retransmitting after
/// [`FIRST_WAIT`] * 2^n up to [`RETRIES`] times, never past `deadline`. Datagrams for another
/// transaction (or too short to name one) are ignored.
async fn exchange<T>(
    sock: &UdpSocket,
    payload: &[u8],
    buf: &mut [u8],
    deadline: Instant,
    step: &'static str,
    parse: impl Fn(&[u8]) -> Result<T, UdpError>,
) -> Result<T, UdpTrackerError> {
    let mut wait = FIRST_WAIT;
    for _ in 0..=RETRIES {
        if Instant::now() >= deadline {
            break;
        }
        sock.send(payload).await?;
        let until = deadline.min(Instant::now() + wait);
        loop {
            let n = match timeout_at(until, sock.recv(buf)).await {
                Err(_) => break,
                Ok(r) => r?,
            };
            match parse(buf.get(..n).unwrap_or_default()) {
                Ok(v) => return Ok(v),
                Err(UdpError::WrongTransaction(_) | UdpError::Short { need: 8, .. }) => {}
                Err(UdpError::Tracker(msg)) => return Err(UdpTrackerError::Tracker(msg)),
                Err(e) => return Err(UdpTrackerError::Protocol(e)),
            }
        }
        wait = wait.saturating_mul(2);
    }
    Err(UdpTrackerError::TimedOut(step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::{InfoHash, PeerId};
    use tracker_proto::udp::{UdpPeers, encode_announce_response, encode_error};
    use tracker_proto::{Event, ParamBytes};

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

    #[test]
    fn parses_urls() {
        let (h, p) = host_port("udp://tracker.example.org:1337/announce").unwrap();
        assert_eq!(h, "tracker.example.org");
        assert_eq!(p, 1337);
        let (h, p) = host_port("udp://[::1]:80").unwrap();
        assert_eq!(h, "::1");
        assert_eq!(p, 80);
        for bad in [
            "udp://host",
            "udp://host:0/",
            "http://host:1/",
            "udp://:1",
            "udp:x",
        ] {
            assert!(host_port(bad).is_err(), "{bad}");
        }
        assert_eq!(key_of(&request()), 0xcafe);
    }

    /// A tracker on a loopback socket that ignores the first `drop` datagrams, answers a
    /// stray transaction first, then answers properly; `error` makes it refuse the announce.
    async fn fake_tracker(drop: usize, error: bool) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let mut seen = 0;
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                seen += 1;
                if seen <= drop {
                    continue;
                }
                let b = &buf[..n];
                let mut out = Vec::new();
                if let Ok(c) = ConnectRequest::decode(b) {
                    let stray = ConnectResponse {
                        transaction_id: c.transaction_id ^ 1,
                        connection_id: 1,
                    };
                    sock.send_to(&stray.encode(), from).await.unwrap();
                    let r = ConnectResponse {
                        transaction_id: c.transaction_id,
                        connection_id: 42,
                    };
                    out.extend_from_slice(&r.encode());
                } else if let Ok(a) = UdpAnnounce::decode(b) {
                    assert_eq!(a.connection_id, 42);
                    assert_eq!(a.key, 0xcafe);
                    assert_eq!(a.event, Event::Started);
                    if error {
                        encode_error(a.transaction_id, "not whitelisted", &mut out);
                    } else {
                        let peers = [std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9)];
                        encode_announce_response(
                            a.transaction_id,
                            900,
                            3,
                            4,
                            UdpPeers::V4(&peers),
                            &mut out,
                        );
                    }
                }
                sock.send_to(&out, from).await.unwrap();
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn announces_past_strays_and_a_lost_datagram() {
        let (addr, task) = fake_tracker(1, false).await;
        let r = announce(&format!("udp://{addr}/announce"), &request())
            .await
            .unwrap();
        assert_eq!(r.interval, Some(900));
        assert_eq!((r.complete, r.incomplete), (Some(4), Some(3)));
        assert_eq!(r.peers, vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 9))]);
        task.abort();
    }

    #[tokio::test]
    async fn the_trackers_error_is_reported() {
        let (addr, task) = fake_tracker(0, true).await;
        let e = announce(&format!("udp://{addr}"), &request())
            .await
            .unwrap_err();
        assert!(
            matches!(&e, UdpTrackerError::Tracker(m) if m == "not whitelisted"),
            "{e:?}"
        );
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_tracker_times_out_within_the_bound() {
        let (addr, task) = fake_tracker(usize::MAX, false).await;
        let started = Instant::now();
        let e = announce(&format!("udp://{addr}"), &request())
            .await
            .unwrap_err();
        assert!(matches!(e, UdpTrackerError::TimedOut("connect")), "{e:?}");
        assert!(
            started.elapsed() <= TOTAL_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
        task.abort();
    }
}
