//! Peer exchange (BEP 11, `ut_pex`), never on a private torrent.
//!
//! Sending: every peer that advertised `ut_pex` gets, [`PEX_FIRST_DELAY`] after its extension
//! handshake and then every [`PEX_INTERVAL`], the connected peers' listen addresses it has not
//! been told about (`added`, at most 50) and those told about that are gone (`dropped`, at most
//! 50). A peer's listen address is the address we dialed, or for an incoming peer its IP with
//! the port from its handshake `p` (unknown: not told). Nobody is told about itself.
//!
//! Receiving: a PEX message's added peers become candidates for the shell to dial
//! ([`Event::Peers`]). Messages closer together than [`PEX_MIN_GAP`] are ignored, and past
//! [`MAX_PEX_EARLY`] of them each counts as invalid, as does an undecodable one.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use wire::pex::{MAX_PEX_SEND, flags};
use wire::{PexMsg, PexPeer};

use super::{PeerError, Torrent};
use crate::peer::PeerKey;

/// Delay between a peer's extension handshake and our first PEX message to it.
pub const PEX_FIRST_DELAY: Duration = Duration::from_secs(5);
/// Time between two PEX messages to one peer (BEP 11: at most one a minute).
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);
/// PEX messages from a peer closer together than this are ignored.
pub const PEX_MIN_GAP: Duration = Duration::from_secs(45);
/// Early PEX messages from one peer ignored for free; each one after counts as invalid.
pub const MAX_PEX_EARLY: u32 = 3;
/// Most addresses remembered as told to one peer (bounds what `dropped` can name).
pub const MAX_PEX_TOLD: usize = 1_000;

impl Torrent {
    /// The peer's extension handshake said whether it takes `ut_pex`: schedule or stop our
    /// messages to it.
    pub(super) fn schedule_pex(&mut self, key: PeerKey, now: Instant) {
        let private = self.config.private;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if private || p.ut_pex.is_none() {
            p.pex_due = None;
        } else if p.pex_due.is_none() {
            p.pex_due = Some(now + PEX_FIRST_DELAY);
        }
    }

    /// Sends the PEX messages that are due at `now`.
    pub(super) fn send_pex(&mut self, now: Instant) {
        if self.config.private {
            return;
        }
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.ut_pex.is_some() && p.pex_due.is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        if due.is_empty() {
            return;
        }
        let connected: Vec<(PeerKey, PexPeer)> = self
            .peers
            .iter()
            .filter_map(|(k, p)| {
                let addr = p.listen_addr()?;
                let mut f = 0;
                if p.is_seed() || p.upload_only {
                    f |= flags::SEED;
                }
                if p.outgoing {
                    f |= flags::REACHABLE;
                }
                Some((*k, PexPeer { addr, flags: f }))
            })
            .collect();
        for key in due {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            p.pex_due = Some(now + PEX_INTERVAL);
            let (Some(id), own) = (p.ut_pex, p.listen_addr()) else {
                continue;
            };
            let now_connected: HashSet<SocketAddr> = connected
                .iter()
                .filter(|(k, c)| *k != key && Some(c.addr) != own)
                .map(|(_, c)| c.addr)
                .collect();
            let room = MAX_PEX_TOLD.saturating_sub(p.pex_told.len());
            let mut fresh = HashSet::new();
            let added: Vec<PexPeer> = connected
                .iter()
                .filter(|(k, c)| {
                    *k != key
                        && Some(c.addr) != own
                        && !p.pex_told.contains(&c.addr)
                        && fresh.insert(c.addr)
                })
                .map(|(_, c)| *c)
                .take(MAX_PEX_SEND.min(room))
                .collect();
            let dropped: Vec<SocketAddr> = p
                .pex_told
                .iter()
                .filter(|a| !now_connected.contains(a))
                .copied()
                .take(MAX_PEX_SEND)
                .collect();
            if added.is_empty() && dropped.is_empty() {
                continue;
            }
            for a in &dropped {
                p.pex_told.remove(a);
            }
            p.pex_told.extend(added.iter().map(|c| c.addr));
            p.send(&PexMsg { added, dropped }.to_message(id));
            self.wake(key);
        }
    }

    /// A `ut_pex` message from `key`.
    pub(super) fn on_pex_message(
        &mut self,
        key: PeerKey,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if peer
            .pex_heard
            .is_some_and(|t| now.saturating_duration_since(t) < PEX_MIN_GAP)
        {
            peer.pex_early += 1;
            if peer.pex_early > MAX_PEX_EARLY {
                return self.violation(key, "ut_pex messages too often");
            }
            return Ok(());
        }
        peer.pex_heard = Some(now);
        let Ok(msg) = PexMsg::decode(payload) else {
            return self.violation(key, "bad ut_pex message");
        };
        let found = candidates(&msg);
        if !found.encrypted.is_empty() {
            // Before the addresses, so the dialer knows how to reach them.
            self.events
                .push_back(super::Event::PrefersEncryption(found.encrypted));
        }
        if !found.addrs.is_empty() {
            self.events.push_back(super::Event::Peers(found.addrs));
        }
        Ok(())
    }
}

/// The added peers worth dialing: at most [`MAX_PEX_SEND`] IPv4 and as many IPv6 addresses,
/// without zero ports, unspecified addresses or repeats.
pub(crate) fn candidates(msg: &PexMsg) -> Candidates {
    let mut seen = HashSet::new();
    let (mut v4, mut v6) = (0, 0);
    let mut out = Candidates::default();
    for p in &msg.added {
        let a = p.addr;
        if a.port() == 0 || a.ip().is_unspecified() || !seen.insert(a) {
            continue;
        }
        let n = if a.is_ipv4() { &mut v4 } else { &mut v6 };
        if *n < MAX_PEX_SEND {
            *n += 1;
            out.addrs.push(a);
            if p.flags & wire::pex::flags::ENCRYPTION != 0 {
                out.encrypted.push(a);
            }
        }
    }
    out
}

/// The peers of one `ut_pex` message worth dialing, and those of them flagged as preferring
/// encrypted connections (flag 0x01: MSE/PE).
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) encrypted: Vec<SocketAddr>,
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use bytes::Bytes;
    use metainfo::{Bitfield, Geometry, PeerId};
    use wire::extension::{UT_PEX, UT_PEX_ID};
    use wire::pex::MAX_PEX_RECEIVE;
    use wire::{ExtendedHandshake, Message, Reserved};

    use super::*;
    use crate::torrent::{Config, Event};

    /// A torrent and one peer that advertised `ut_pex`.
    fn torrent(config: Config) -> (Torrent, PeerKey, Instant) {
        let g = Geometry::new(100_000, 32_768).unwrap();
        let now = Instant::now();
        let mut t = Torrent::new(g, Bitfield::new(g.piece_count()), config, 1, now);
        let mut r = Reserved::default();
        r.set_extension_protocol(true);
        let addr = SocketAddr::from(([10, 0, 0, 2], 40_000));
        let k = t.add_peer(addr, r, PeerId([2; 20]), now).unwrap();
        let hs = ExtendedHandshake {
            m: vec![(UT_PEX.to_owned(), 5)],
            p: Some(6881),
            ..ExtendedHandshake::default()
        };
        t.handle_message(k, hs.to_message(), now).unwrap();
        (t, k, now)
    }

    fn pex(msg: &PexMsg) -> Message {
        msg.to_message(UT_PEX_ID)
    }

    fn heard(t: &mut Torrent) -> Vec<Vec<SocketAddr>> {
        let mut out = Vec::new();
        while let Some(ev) = t.poll_event() {
            if let Event::Peers(a) = ev {
                out.push(a);
            }
        }
        out
    }

    fn added(addrs: impl IntoIterator<Item = SocketAddr>) -> PexMsg {
        PexMsg {
            added: addrs
                .into_iter()
                .map(|addr| PexPeer { addr, flags: 0 })
                .collect(),
            dropped: vec![],
        }
    }

    #[test]
    fn big_message_yields_at_most_50_of_each_family_and_no_junk() {
        let (mut t, k, now) = torrent(Config::default());
        // Full lists (the most a message may carry), built by hand: our encoder stops at 50.
        let mut a4 = Vec::new();
        a4.extend_from_slice(&[0, 0, 0, 0, 0x1a, 0xe1]); // unspecified
        a4.extend_from_slice(&[10, 9, 9, 9, 0, 0]); // port 0
        for i in 0..MAX_PEX_RECEIVE as u32 - 2 {
            a4.extend_from_slice(&(0x0a01_0000 + i).to_be_bytes());
            a4.extend_from_slice(&[0x1a, 0xe1]);
        }
        let mut a6 = Vec::new();
        a6.extend_from_slice(&[0; 16]); // unspecified
        a6.extend_from_slice(&[0x1a, 0xe1]);
        for i in 0..MAX_PEX_RECEIVE as u16 - 1 {
            let ip = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i + 1);
            a6.extend_from_slice(&ip.octets());
            a6.extend_from_slice(&[0, 1]);
        }
        let mut payload = format!("d5:added{}:", a4.len()).into_bytes();
        payload.extend_from_slice(&a4);
        payload.extend_from_slice(format!("6:added6{}:", a6.len()).as_bytes());
        payload.extend_from_slice(&a6);
        payload.push(b'e');
        let full = PexMsg::decode(&payload).unwrap();
        assert_eq!(full.added.len(), 2 * MAX_PEX_RECEIVE);
        let msg = Message::Extended {
            id: UT_PEX_ID,
            payload: payload.into(),
        };
        t.handle_message(k, msg, now).unwrap();
        let got = heard(&mut t);
        let [one] = &got[..] else { panic!("{got:?}") };
        assert_eq!(one.iter().filter(|a| a.is_ipv4()).count(), MAX_PEX_SEND);
        assert_eq!(one.iter().filter(|a| a.is_ipv6()).count(), MAX_PEX_SEND);
        assert!(
            one.iter()
                .all(|a| a.port() != 0 && !a.ip().is_unspecified())
        );
    }

    #[test]
    fn peers_flagged_as_preferring_encryption_are_named_first() {
        let (mut t, k, now) = torrent(Config::default());
        let (plain, enc) = (
            SocketAddr::from(([10, 0, 0, 7], 6881)),
            SocketAddr::from(([10, 0, 0, 8], 6881)),
        );
        let msg = PexMsg {
            added: vec![
                PexPeer {
                    addr: plain,
                    flags: wire::pex::flags::SEED,
                },
                PexPeer {
                    addr: enc,
                    flags: wire::pex::flags::ENCRYPTION | wire::pex::flags::REACHABLE,
                },
            ],
            dropped: vec![],
        };
        t.handle_message(k, pex(&msg), now).unwrap();
        let mut events = Vec::new();
        while let Some(ev) = t.poll_event() {
            match ev {
                Event::PrefersEncryption(a) => events.push(("encrypted", a)),
                Event::Peers(a) => events.push(("peers", a)),
                _ => {}
            }
        }
        assert_eq!(
            events,
            vec![("encrypted", vec![enc]), ("peers", vec![plain, enc])]
        );
    }

    #[test]
    fn too_frequent_messages_are_ignored_then_invalid() {
        let config = Config {
            max_invalid: 2,
            ..Config::default()
        };
        let (mut t, k, start) = torrent(config);
        let msg = added([SocketAddr::from(([10, 0, 0, 7], 6881))]);
        t.handle_message(k, pex(&msg), start).unwrap();
        assert_eq!(heard(&mut t).len(), 1);
        let soon = start + PEX_MIN_GAP - Duration::from_secs(1);
        for _ in 0..MAX_PEX_EARLY + 2 {
            t.handle_message(k, pex(&msg), soon).unwrap();
        }
        assert!(heard(&mut t).is_empty(), "early messages were used");
        // Past the gap a message is heard again (and resets nothing: early ones still count).
        let later = start + PEX_MIN_GAP;
        t.handle_message(k, pex(&msg), later).unwrap();
        assert_eq!(heard(&mut t).len(), 1);
        assert!(t.handle_message(k, pex(&msg), later).is_err());
    }

    #[test]
    fn garbage_and_oversized_payloads_are_invalid() {
        let config = Config {
            max_invalid: 1,
            ..Config::default()
        };
        let (mut t, k, start) = torrent(config);
        let n = (MAX_PEX_RECEIVE + 1) * 6;
        let mut big = format!("d5:added{n}:").into_bytes();
        big.resize(big.len() + n, 1);
        big.push(b'e');
        let oversized = Message::Extended {
            id: UT_PEX_ID,
            payload: big.into(),
        };
        t.handle_message(k, oversized, start).unwrap();
        let garbage = Message::Extended {
            id: UT_PEX_ID,
            payload: Bytes::from_static(b"d5:added3:ab"),
        };
        let later = start + PEX_MIN_GAP;
        assert!(t.handle_message(k, garbage, later).is_err());
        assert!(heard(&mut t).is_empty());
    }

    #[test]
    fn private_torrent_ignores_pex() {
        let config = Config {
            private: true,
            max_invalid: 0,
            ..Config::default()
        };
        let (mut t, k, now) = torrent(config);
        let msg = added([SocketAddr::from(([10, 0, 0, 7], 6881))]);
        for i in 0..10 {
            t.handle_message(k, pex(&msg), now + Duration::from_secs(i))
                .unwrap();
        }
        assert!(heard(&mut t).is_empty());
        assert_eq!(t.peers[&k].pex_due, None);
    }

    #[test]
    fn sent_under_the_peers_id_once_due() {
        let (mut t, k, now) = torrent(Config::default());
        let mut r = Reserved::default();
        r.set_extension_protocol(true);
        let other = SocketAddr::from(([10, 0, 0, 3], 6881));
        t.add_peer_outgoing(other, r, PeerId([3; 20]), now).unwrap();
        let pex_sent = |t: &mut Torrent, at: Instant| {
            t.handle_timeout(at);
            let mut buf = t.take_outgoing(k, at).unwrap().unwrap_or_default();
            let mut out = Vec::new();
            while let Some(m) = wire::Decoder::default().decode(&mut buf).unwrap() {
                if let Message::Extended { id, payload } = m {
                    if id == 0 {
                        continue; // our extension handshake
                    }
                    assert_eq!(id, 5, "not the peer's ut_pex id");
                    out.push(PexMsg::decode(&payload).unwrap());
                }
            }
            out
        };
        assert!(pex_sent(&mut t, now + PEX_FIRST_DELAY / 2).is_empty());
        let got = pex_sent(&mut t, now + PEX_FIRST_DELAY);
        let expected = PexMsg {
            added: vec![PexPeer {
                addr: other,
                flags: flags::REACHABLE,
            }],
            dropped: vec![],
        };
        assert_eq!(got, vec![expected]);
    }

    #[test]
    fn the_next_pex_message_is_a_deadline() {
        let (mut t, _, now) = torrent(Config::default());
        assert_eq!(t.poll_timeout(), Some(now + PEX_FIRST_DELAY));
        t.handle_timeout(now + PEX_FIRST_DELAY);
        // The choking round at 10 s comes before the next PEX message, a minute later.
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(10)));
        let (t, _, now) = torrent(Config {
            private: true,
            ..Config::default()
        });
        assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(10)));
    }

    #[test]
    fn told_addresses_are_capped() {
        let (mut t, k, now) = torrent(Config {
            max_peers: 2 * MAX_PEX_TOLD,
            ..Config::default()
        });
        let mut r = Reserved::default();
        r.set_extension_protocol(true);
        for i in 0..MAX_PEX_TOLD as u32 + 20 {
            let addr = SocketAddr::from(((0x0b00_0000 + i).to_be_bytes(), 6881));
            let mut id = [0u8; 20];
            id[..4].copy_from_slice(&i.to_be_bytes());
            id[19] = 0xff;
            t.add_peer_outgoing(addr, r, PeerId(id), now).unwrap();
        }
        let mut at = now;
        let mut sizes = Vec::new();
        for _ in 0..30 {
            at += PEX_INTERVAL;
            t.handle_timeout(at);
            sizes.push(t.peers[&k].pex_told.len());
        }
        assert_eq!(sizes.last(), Some(&MAX_PEX_TOLD), "{sizes:?}");
        assert!(sizes.windows(2).all(|w| w[1] - w[0] <= MAX_PEX_SEND));
    }
}
