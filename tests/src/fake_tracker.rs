//! A scripted HTTP tracker on 127.0.0.1: every announce gets the body a test's closure returns
//! for its request target (`/announce?info_hash=...&left=...`), so a test can answer one client
//! `failure reason`, then peers.
//! Bodies are built with [`failure_body`] and [`peers_body`].

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// Longest request head read.
const MAX_HEAD: usize = 16 * 1024;
/// How long one client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// The tracker; stops on drop.
#[derive(Debug)]
pub struct ScriptedTracker {
    port: u16,
    announces: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedTracker {
    /// Starts serving; `body(target)` is the bencoded answer to an announce.
    pub fn start(body: impl Fn(&str) -> Vec<u8> + Send + 'static) -> Result<ScriptedTracker> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind tracker")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let announces = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (announces.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("scripted-tracker-{port}"))
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
                            if let Some(target) = read_target(&mut stream) {
                                let answer = if target.starts_with("/announce") {
                                    count.fetch_add(1, Ordering::Relaxed);
                                    body(&target)
                                } else {
                                    b"d14:failure reason9:not founde".to_vec()
                                };
                                let _ = respond(&mut stream, &answer);
                            }
                        }
                        Err(_) => std::thread::sleep(POLL),
                    }
                }
            })
            .context("spawn tracker thread")?;
        Ok(ScriptedTracker {
            port,
            announces,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:<port>/announce`.
    pub fn announce_url(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    /// Announces answered so far.
    pub fn announces(&self) -> usize {
        self.announces.load(Ordering::Relaxed)
    }
}

impl Drop for ScriptedTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `d14:failure reason<len>:<reason>e`.
pub fn failure_body(reason: &str) -> Vec<u8> {
    let mut b = format!("d14:failure reason{}:", reason.len()).into_bytes();
    b.extend_from_slice(reason.as_bytes());
    b.push(b'e');
    b
}

/// A compact (BEP 23) answer listing `peers`, with `interval` seconds.
pub fn peers_body(peers: &[SocketAddrV4], interval: u32) -> Vec<u8> {
    let mut compact = Vec::with_capacity(peers.len() * 6);
    for p in peers {
        compact.extend_from_slice(&p.ip().octets());
        compact.extend_from_slice(&p.port().to_be_bytes());
    }
    let mut b = format!("d8:intervali{interval}e5:peers{}:", compact.len()).into_bytes();
    b.extend_from_slice(&compact);
    b.push(b'e');
    b
}

/// The request target of an HTTP request (`/announce?...`), once its head has arrived.
fn read_target(stream: &mut impl Read) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next()?;
    let line = String::from_utf8_lossy(line);
    line.split_whitespace().nth(1).map(str::to_owned)
}

/// Writes the whole response, then half-closes and waits for the client to close, so no
/// unread byte on our side can turn the close into a reset that loses the response.
fn respond(stream: &mut TcpStream, body: &[u8]) -> std::io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    stream.write_all(&response)?;
    stream.flush()?;
    stream.shutdown(Shutdown::Write)?;
    let mut rest = [0u8; 1024];
    while matches!(stream.read(&mut rest), Ok(n) if n > 0) {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::http_get;

    #[test]
    fn answers_each_announce_with_its_script() {
        let t = ScriptedTracker::start(|target| {
            if target.ends_with("x=1") {
                failure_body("go away")
            } else {
                peers_body(
                    &[SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 0x1234)],
                    60,
                )
            }
        })
        .unwrap();
        let addr = (Ipv4Addr::LOCALHOST, t.port).into();
        let first = http_get(addr, "/announce?x=1", READ_TIMEOUT).unwrap();
        assert_eq!(first.body, b"d14:failure reason7:go awaye");
        let second = http_get(addr, "/announce?x=2", READ_TIMEOUT).unwrap();
        assert_eq!(
            second.body,
            b"d8:intervali60e5:peers6:\x7f\0\0\x01\x12\x34e"
        );
        assert_eq!(t.announces(), 2);
    }
}
