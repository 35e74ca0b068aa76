//! The LSD service of one session as a state machine, without sockets or a clock: which
//! torrents to announce and when ([`LsdState::poll_transmit`], [`LsdState::poll_timeout`]),
//! and what a received datagram says ([`LsdState::handle_datagram`]) once it passed the size
//! check, the rate limits, the parser and our-own-cookie filter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use metainfo::InfoHash;

use super::message::{self, Announce, MAX_DATAGRAM, MAX_HASHES_SENT, ParseError};

/// Announce interval per torrent (libtorrent's default).
pub const INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Never two announces of one torrent closer than this (BEP 14).
pub const MIN_INTERVAL: Duration = Duration::from_secs(60);
/// Datagrams considered per source address and second; the rest are dropped unread.
pub const PER_SOURCE: u32 = 5;
/// Datagrams considered per second from all sources together.
pub const PER_SECOND: u32 = 50;
/// Source addresses whose rate is tracked; a new source past it is dropped until a tracked
/// one has been quiet for a second.
pub const MAX_SOURCES: usize = 256;
/// The length of a rate window.
const WINDOW: Duration = Duration::from_secs(1);

/// Why a datagram brought no peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Dropped {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("oversize")]
    Oversize,
    /// Over [`PER_SOURCE`] or [`PER_SECOND`], or a new source with [`MAX_SOURCES`] tracked.
    #[error("rate limited")]
    RateLimited,
    /// Not a valid announce.
    #[error("malformed: {0}")]
    Malformed(ParseError),
    /// One of ours (our cookie), looped back.
    #[error("our own")]
    Own,
    /// None of the torrents announced is one of ours.
    #[error("no torrent of ours")]
    NotOurs,
}

/// Peers for our torrents: the sender's address with `port`, for each of `info_hashes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The sender's TCP port.
    pub port: u16,
    /// Our torrents it announced.
    pub info_hashes: Vec<InfoHash>,
}

#[derive(Debug, Clone)]
struct Torrent {
    /// Its next announce.
    next: Instant,
    /// Its last announce.
    last_sent: Option<Instant>,
    /// Removed, kept only to hold [`MIN_INTERVAL`] should it come back.
    gone: bool,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    /// Counts one datagram; false if the window already holds `cap`.
    fn admit(&mut self, now: Instant, cap: u32) -> bool {
        if now.saturating_duration_since(self.start) >= WINDOW {
            *self = Window {
                start: now,
                count: 0,
            };
        }
        if self.count >= cap {
            return false;
        }
        self.count += 1;
        true
    }
}

/// One session's LSD: our cookie and port, the torrents announced, the senders' rates.
#[derive(Debug)]
pub struct LsdState {
    cookie: String,
    port: u16,
    torrents: HashMap<InfoHash, Torrent>,
    sources: HashMap<IpAddr, Window>,
    all: Option<Window>,
}

impl LsdState {
    /// A service announcing TCP `port`, marking its datagrams with `cookie` (random per
    /// process, so that two processes on one host tell theirs apart).
    pub fn new(cookie: u32, port: u16) -> LsdState {
        LsdState {
            cookie: format!("{cookie:x}"),
            port,
            torrents: HashMap::new(),
            sources: HashMap::new(),
            all: None,
        }
    }

    /// Starts announcing `ih`: at once, or as soon as [`MIN_INTERVAL`] since its last
    /// announce allows. Adding a torrent announced already changes nothing.
    pub fn add(&mut self, ih: InfoHash, now: Instant) {
        let t = self.torrents.entry(ih).or_insert(Torrent {
            next: now,
            last_sent: None,
            gone: false,
        });
        if t.gone {
            t.gone = false;
            t.next = t.last_sent.map_or(now, |s| (s + MIN_INTERVAL).max(now));
        }
    }

    /// Stops announcing `ih` and taking peers for it.
    pub fn remove(&mut self, ih: InfoHash, now: Instant) {
        let recent = self
            .torrents
            .get(&ih)
            .and_then(|t| t.last_sent)
            .is_some_and(|s| now < s + MIN_INTERVAL);
        if recent {
            if let Some(t) = self.torrents.get_mut(&ih) {
                t.gone = true;
            }
        } else {
            self.torrents.remove(&ih);
        }
    }

    /// Is `ih` announced (and taking peers)?
    pub fn contains(&self, ih: &InfoHash) -> bool {
        self.torrents.get(ih).is_some_and(|t| !t.gone)
    }

    /// The torrents due for an announce now, at most [`MAX_HASHES_SENT`] (one datagram); they
    /// count as announced at `now`. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<InfoHash>> {
        self.torrents
            .retain(|_, t| !t.gone || t.last_sent.is_some_and(|s| now < s + MIN_INTERVAL));
        let mut due: Vec<(Instant, InfoHash)> = self
            .torrents
            .iter()
            .filter(|(_, t)| !t.gone && t.next <= now)
            .map(|(ih, t)| (t.next, *ih))
            .collect();
        if due.is_empty() {
            return None;
        }
        due.sort_unstable();
        due.truncate(MAX_HASHES_SENT);
        let hashes: Vec<InfoHash> = due.into_iter().map(|(_, ih)| ih).collect();
        for ih in &hashes {
            if let Some(t) = self.torrents.get_mut(ih) {
                t.last_sent = Some(now);
                t.next = now + INTERVAL;
            }
        }
        Some(hashes)
    }

    /// When the next announce is due (`None`: nothing to announce).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.torrents
            .values()
            .filter(|t| !t.gone)
            .map(|t| t.next)
            .min()
    }

    /// Our datagram announcing `hashes`, for the group `host` ([`message::HOST_V4`] or
    /// [`message::HOST_V6`]).
    pub fn datagram(&self, host: &str, hashes: &[InfoHash]) -> Vec<u8> {
        message::encode(host, self.port, hashes, &self.cookie)
    }

    /// A datagram from `from`: the peers it gives our torrents, or why none.
    pub fn handle_datagram(
        &mut self,
        from: IpAddr,
        data: &[u8],
        now: Instant,
    ) -> Result<Found, Dropped> {
        if data.len() > MAX_DATAGRAM {
            return Err(Dropped::Oversize);
        }
        if !self.admit(from.to_canonical(), now) {
            return Err(Dropped::RateLimited);
        }
        let Announce {
            port,
            info_hashes,
            cookie,
        } = message::parse(data).map_err(Dropped::Malformed)?;
        if cookie.is_some_and(|c| c.eq_ignore_ascii_case(&self.cookie)) {
            return Err(Dropped::Own);
        }
        let ours: Vec<InfoHash> = info_hashes
            .into_iter()
            .filter(|ih| self.contains(ih))
            .collect();
        if ours.is_empty() {
            return Err(Dropped::NotOurs);
        }
        Ok(Found {
            port,
            info_hashes: ours,
        })
    }

    /// Counts a datagram from `ip` against its window and the global one.
    fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.sources.contains_key(&ip) && self.sources.len() >= MAX_SOURCES {
            // Sources quiet for a whole window hold nothing worth keeping.
            self.sources
                .retain(|_, w| now.saturating_duration_since(w.start) < WINDOW);
            if self.sources.len() >= MAX_SOURCES {
                return false;
            }
        }
        let all = self.all.get_or_insert(Window {
            start: now,
            count: 0,
        });
        if !all.admit(now, PER_SECOND) {
            return false;
        }
        self.sources
            .entry(ip)
            .or_insert(Window {
                start: now,
                count: 0,
            })
            .admit(now, PER_SOURCE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::lsd::message::HOST_V4;

    fn ih(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn from(last: u8) -> IpAddr {
        IpAddr::from([10, 1, 0, last])
    }

    /// An announce of `hashes` from another process.
    fn theirs(hashes: &[InfoHash]) -> Vec<u8> {
        message::encode(HOST_V4, 7000, hashes, "0ther")
    }

    #[test]
    fn announced_at_start_then_every_five_minutes() {
        let t0 = Instant::now();
        let mut s = LsdState::new(0xbeef, 6881);
        assert_eq!(s.poll_timeout(), None);
        assert_eq!(s.poll_transmit(t0), None);
        s.add(ih(1), t0);
        assert_eq!(s.poll_timeout(), Some(t0));
        assert_eq!(s.poll_transmit(t0), Some(vec![ih(1)]));
        assert_eq!(s.poll_transmit(t0), None, "one announce per round");
        assert_eq!(s.poll_timeout(), Some(t0 + INTERVAL));
        s.add(ih(1), t0 + secs(1));
        assert_eq!(
            s.poll_transmit(t0 + secs(1)),
            None,
            "adding again changes nothing"
        );
        assert_eq!(s.poll_transmit(t0 + INTERVAL - secs(1)), None);
        assert_eq!(s.poll_transmit(t0 + INTERVAL), Some(vec![ih(1)]));
        let d = s.datagram(HOST_V4, &[ih(1)]);
        let a = message::parse(&d).unwrap();
        assert_eq!((a.port, a.cookie.as_deref()), (6881, Some("beef")));
    }

    #[test]
    fn never_twice_a_minute_even_when_removed_and_added_back() {
        let t0 = Instant::now();
        let mut s = LsdState::new(1, 6881);
        s.add(ih(1), t0);
        assert!(s.poll_transmit(t0).is_some());
        s.remove(ih(1), t0 + secs(5));
        assert!(!s.contains(&ih(1)));
        assert_eq!(s.poll_timeout(), None);
        s.add(ih(1), t0 + secs(10));
        assert_eq!(s.poll_transmit(t0 + secs(10)), None);
        assert_eq!(s.poll_timeout(), Some(t0 + MIN_INTERVAL));
        assert_eq!(s.poll_transmit(t0 + MIN_INTERVAL), Some(vec![ih(1)]));
        // Gone for longer than the floor: forgotten, and announced at once when back.
        s.remove(ih(1), t0 + MIN_INTERVAL + secs(1));
        assert_eq!(s.poll_transmit(t0 + 3 * MIN_INTERVAL), None);
        s.add(ih(1), t0 + 3 * MIN_INTERVAL);
        assert!(s.poll_transmit(t0 + 3 * MIN_INTERVAL).is_some());
    }

    #[test]
    fn many_torrents_share_datagrams() {
        let t0 = Instant::now();
        let mut s = LsdState::new(1, 6881);
        for b in 1..=45u8 {
            s.add(ih(b), t0);
        }
        let mut sizes = Vec::new();
        while let Some(h) = s.poll_transmit(t0) {
            assert!(s.datagram(HOST_V4, &h).len() <= MAX_DATAGRAM);
            sizes.push(h.len());
        }
        assert_eq!(sizes, vec![MAX_HASHES_SENT, MAX_HASHES_SENT, 5]);
    }

    #[test]
    fn announces_become_peers_of_our_torrents_only() {
        let t0 = Instant::now();
        let mut s = LsdState::new(0xc0ffee, 6881);
        s.add(ih(1), t0);
        s.add(ih(2), t0);
        let found = s
            .handle_datagram(from(1), &theirs(&[ih(2), ih(3)]), t0)
            .unwrap();
        assert_eq!(
            found,
            Found {
                port: 7000,
                info_hashes: vec![ih(2)]
            }
        );
        assert_eq!(
            s.handle_datagram(from(1), &theirs(&[ih(3)]), t0),
            Err(Dropped::NotOurs)
        );
        let own = s.datagram(HOST_V4, &[ih(1)]);
        assert_eq!(s.handle_datagram(from(2), &own, t0), Err(Dropped::Own));
        // A torrent removed takes no more peers.
        s.remove(ih(2), t0);
        assert_eq!(
            s.handle_datagram(from(3), &theirs(&[ih(2)]), t0),
            Err(Dropped::NotOurs)
        );
    }

    #[test]
    fn garbage_and_oversize_are_dropped() {
        let t0 = Instant::now();
        let mut s = LsdState::new(1, 6881);
        s.add(ih(1), t0);
        assert_eq!(
            s.handle_datagram(from(1), &[b'x'; MAX_DATAGRAM + 1], t0),
            Err(Dropped::Oversize)
        );
        assert!(matches!(
            s.handle_datagram(from(1), b"GET / HTTP/1.1\r\n\r\n", t0),
            Err(Dropped::Malformed(ParseError::Method))
        ));
        // Random bytes from many senders: never a peer, never a panic.
        let mut x: u32 = 12345;
        for i in 0..2000u32 {
            let len = (i as usize * 7) % 300;
            let d: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let at = t0 + Duration::from_millis(u64::from(i) * 25);
            assert!(s.handle_datagram(from(i as u8), &d, at).is_err());
        }
    }

    #[test]
    fn a_flooding_source_is_limited_per_second() {
        let t0 = Instant::now();
        let mut s = LsdState::new(1, 6881);
        s.add(ih(1), t0);
        let d = theirs(&[ih(1)]);
        for _ in 0..PER_SOURCE {
            assert!(s.handle_datagram(from(1), &d, t0).is_ok());
        }
        assert_eq!(
            s.handle_datagram(from(1), &d, t0),
            Err(Dropped::RateLimited)
        );
        // Garbage counts too: it cost us the look.
        assert_eq!(
            s.handle_datagram(from(1), b"junk", t0 + secs(1) / 2),
            Err(Dropped::RateLimited)
        );
        assert!(s.handle_datagram(from(2), &d, t0).is_ok(), "others go on");
        assert!(s.handle_datagram(from(1), &d, t0 + secs(1)).is_ok());
    }

    #[test]
    fn all_sources_together_are_limited() {
        let t0 = Instant::now();
        let mut s = LsdState::new(1, 6881);
        s.add(ih(1), t0);
        let d = theirs(&[ih(1)]);
        let ok = (0..=255u8)
            .filter(|b| s.handle_datagram(from(*b), &d, t0).is_ok())
            .count();
        assert_eq!(ok, PER_SECOND as usize);
        assert!(s.handle_datagram(from(9), &d, t0 + secs(1)).is_ok());
    }

    #[test]
    fn tracked_sources_are_bounded() {
        let t0 = Instant::now();
        let mut s = LsdState::new(1, 6881);
        s.add(ih(1), t0);
        let d = theirs(&[ih(1)]);
        // 2,000 senders, 40 a second (under the global cap): each is heard, and only the
        // recent ones are remembered.
        for i in 0..2000u32 {
            let ip = IpAddr::from([10, 2, (i / 256) as u8, (i % 256) as u8]);
            let at = t0 + Duration::from_millis(u64::from(i) * 25);
            assert!(s.handle_datagram(ip, &d, at).is_ok(), "sender {i}");
            assert!(s.sources.len() <= MAX_SOURCES);
        }
    }
}
