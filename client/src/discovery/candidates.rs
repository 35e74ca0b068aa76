//! Peer addresses we may dial, from every source, retried with backoff, bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most addresses remembered per torrent; past it new ones are dropped.
pub const MAX_CANDIDATES: usize = 2_000;
/// Dials in flight per torrent.
pub const MAX_DIALING: usize = 16;
/// Failed dials before an address is forgotten.
const MAX_FAILURES: u32 = 6;
/// A connection closed sooner than this counts as a failed dial: the peer took the handshake
/// and then hung up (full, a duplicate of a connection it still holds, not serving this
/// torrent after all), so it is retried on the failure backoff, not after the full minute an
/// ended connection waits, and forgotten like an address that never answers.
pub const USEFUL_CONNECTION: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Candidate {
    failures: u32,
    next_try: Instant,
    connected: bool,
}

/// The addresses one torrent may dial.
#[derive(Debug, Default)]
pub struct Candidates {
    map: HashMap<SocketAddr, Candidate>,
}

impl Candidates {
    /// Adds addresses; known ones keep their state.
    pub fn add(&mut self, addrs: impl IntoIterator<Item = SocketAddr>, now: Instant) {
        for a in addrs {
            let a = SocketAddr::new(a.ip().to_canonical(), a.port());
            if a.port() == 0 || a.ip().is_unspecified() || a.ip().is_multicast() {
                continue;
            }
            if self.map.len() >= MAX_CANDIDATES && !self.map.contains_key(&a) {
                break;
            }
            self.map.entry(a).or_insert(Candidate {
                failures: 0,
                next_try: now,
                connected: false,
            });
        }
    }

    /// Up to `n` addresses due for a dial; they are marked as connecting.
    pub fn take_due(
        &mut self,
        n: usize,
        now: Instant,
        skip: impl Fn(SocketAddr) -> bool,
    ) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for (a, c) in self.map.iter_mut() {
            if out.len() >= n {
                break;
            }
            if !c.connected && c.next_try <= now && !skip(*a) {
                c.connected = true;
                out.push(*a);
            }
        }
        out
    }

    /// A dial or a connection to `a` ended; `ok` if it got past the handshake and lasted
    /// [`USEFUL_CONNECTION`].
    pub fn finished(&mut self, a: SocketAddr, ok: bool, now: Instant) {
        let Some(c) = self.map.get_mut(&a) else {
            return;
        };
        c.connected = false;
        if ok {
            c.failures = 0;
            c.next_try = now + Duration::from_secs(60);
        } else {
            c.failures += 1;
            if c.failures >= MAX_FAILURES {
                self.map.remove(&a);
                return;
            }
            c.next_try = now + Duration::from_secs(15 << c.failures.min(6));
        }
    }

    /// When the next address not in flight is due for a dial.
    pub fn next_due(&self) -> Option<Instant> {
        self.map
            .values()
            .filter(|c| !c.connected)
            .map(|c| c.next_try)
            .min()
    }

    /// Addresses known.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no address is known.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_and_forget() {
        let t0 = Instant::now();
        let a: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut c = Candidates::default();
        c.add(
            [
                a,
                "0.0.0.0:1".parse().unwrap(),
                "127.0.0.1:0".parse().unwrap(),
            ],
            t0,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c.take_due(10, t0, |_| false), vec![a]);
        assert!(c.take_due(10, t0, |_| false).is_empty(), "in flight");
        c.finished(a, false, t0);
        assert!(c.take_due(10, t0, |_| false).is_empty(), "backing off");
        assert_eq!(c.next_due(), Some(t0 + Duration::from_secs(30)));
        assert_eq!(
            c.take_due(10, t0 + Duration::from_secs(31), |_| false),
            vec![a]
        );
        for _ in 0..MAX_FAILURES {
            c.finished(a, false, t0);
        }
        assert!(c.is_empty());
    }

    #[test]
    fn bounded() {
        let t0 = Instant::now();
        let mut c = Candidates::default();
        c.add(
            (1..=5000u16).map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            t0,
        );
        assert_eq!(c.len(), MAX_CANDIDATES);
    }
}
