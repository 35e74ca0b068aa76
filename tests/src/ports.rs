//! Loopback port numbers for programs that take a port on their command line.
//!
//! Prefer binding `127.0.0.1:0` and passing the listener; these helpers are for processes that
//! must be told a number. The OS picks the port; a port is never handed out twice per process.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How many OS-picked ports to try before giving up on finding one not handed out before.
const ATTEMPTS: usize = 64;
/// Pause between connection attempts in [`wait_listening`].
const PROBE_INTERVAL: Duration = Duration::from_millis(25);

/// A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, drop the socket).
pub fn free_port() -> Result<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    for _ in 0..ATTEMPTS {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
        let port = listener.local_addr().context("local_addr")?.port();
        drop(listener);
        let mut seen = HANDED_OUT
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(port) {
            return Ok(port);
        }
    }
    bail!("no fresh loopback port after {ATTEMPTS} attempts")
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`, at most `timeout`.
///
/// The probe connection is closed at once; BitTorrent peers treat it as a peer that hung up.
pub fn wait_listening(port: u16, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let max_probes = timeout.as_millis() / PROBE_INTERVAL.as_millis() + 1;
    for _ in 0..max_probes {
        if TcpStream::connect_timeout(&loopback(port), PROBE_INTERVAL).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(PROBE_INTERVAL);
    }
    bail!("nothing listening on 127.0.0.1:{port} after {timeout:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_bindable() {
        let a = free_port().unwrap();
        let b = free_port().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, 0);
        TcpListener::bind(loopback(a)).expect("a free port can be bound");
    }

    #[test]
    fn wait_listening_sees_a_listener() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        wait_listening(port, Duration::from_secs(2)).unwrap();
    }

    #[test]
    fn wait_listening_gives_up_on_a_closed_port() {
        let port = free_port().unwrap();
        let err = wait_listening(port, Duration::from_millis(100)).unwrap_err();
        assert!(err.to_string().contains("nothing listening"), "{err}");
    }
}
