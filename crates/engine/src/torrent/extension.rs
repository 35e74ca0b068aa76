//! The extension protocol (BEP 10) and PORT (BEP 5): our extended handshake, what we remember
//! from a peer's, routing extended messages by the ids we advertised, and DHT ports.
//!
//! We receive `ut_metadata` under [`wire::extension::UT_METADATA_ID`] (1) and `ut_pex` under
//! [`wire::extension::UT_PEX_ID`] (2); a private torrent does not advertise `ut_pex`. Messages
//! under any other id are ignored.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use wire::ExtendedHandshake;
use wire::extension::{HANDSHAKE_ID, UT_METADATA, UT_METADATA_ID, UT_PEX, UT_PEX_ID};

use super::{Event, PeerError, Torrent};
use crate::peer::PeerKey;

/// Most changes of DHT port one peer may announce with PORT messages; more count as invalid.
pub const MAX_DHT_PORTS: u32 = 4;

impl Torrent {
    /// The extended handshake we send: our extensions, client, `reqq`, listen port, and the
    /// metadata size once we have the metadata.
    pub(super) fn our_handshake(&self) -> ExtendedHandshake {
        let mut m = vec![(UT_METADATA.to_owned(), UT_METADATA_ID)];
        if !self.config.private {
            m.push((UT_PEX.to_owned(), UT_PEX_ID));
        }
        ExtendedHandshake {
            m,
            v: Some(self.config.client_version.clone()),
            reqq: Some(self.config.reqq),
            p: self.config.listen_port,
            metadata_size: self.metadata_size(),
            upload_only: (self.is_complete() && self.super_seed.is_none()).then_some(true),
            ..ExtendedHandshake::default()
        }
    }

    /// An extended message (BEP 10) from `key`.
    pub(super) fn on_extended(
        &mut self,
        key: PeerKey,
        id: u8,
        payload: Bytes,
        now: Instant,
    ) -> Result<(), PeerError> {
        match id {
            HANDSHAKE_ID => self.on_extended_handshake(key, &payload, now),
            UT_METADATA_ID => self.on_metadata_message(key, &payload),
            UT_PEX_ID if !self.config.private => self.on_pex_message(key, &payload, now),
            // An id we never advertised (or ut_pex on a private torrent): ignored.
            _ => Ok(()),
        }
    }

    fn on_extended_handshake(
        &mut self,
        key: PeerKey,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), PeerError> {
        let Ok(hs) = ExtendedHandshake::decode(payload) else {
            return self.violation(key, "bad extension handshake");
        };
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        peer.reqq = hs.reqq;
        if hs.upload_only == Some(true) {
            peer.upload_only = true;
        }
        if hs.p.is_some() {
            peer.listen_port = hs.p;
        }
        // A later handshake updates the extensions it names; id 0 disables one (BEP 10).
        if hs.m.iter().any(|(n, _)| n == UT_METADATA) {
            peer.ut_metadata = hs.id_of(UT_METADATA);
        }
        if hs.m.iter().any(|(n, _)| n == UT_PEX) {
            peer.ut_pex = hs.id_of(UT_PEX);
        }
        self.schedule_pex(key, now);
        self.check_both_seeds(key);
        Ok(())
    }

    /// A PORT message: the peer runs a DHT node on its IP at `port`.
    pub(super) fn on_port(&mut self, key: PeerKey, port: u16) -> Result<(), PeerError> {
        let private = self.config.private;
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if private || port == 0 || peer.dht_port == Some(port) {
            return Ok(());
        }
        if peer.dht_ports_seen >= MAX_DHT_PORTS {
            return self.violation(key, "PORT changed too often");
        }
        peer.dht_ports_seen += 1;
        peer.dht_port = Some(port);
        let node = SocketAddr::new(peer.addr.ip(), port);
        self.events.push_back(Event::DhtNode(node));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use metainfo::{Bitfield, Geometry, PeerId};
    use wire::{Decoder, ExtendedHandshake, Message, Reserved};

    use super::*;
    use crate::torrent::Config;

    fn reserved(dht: bool) -> Reserved {
        let mut r = Reserved::default();
        r.set_extension_protocol(true);
        r.set_fast(true);
        r.set_dht(dht);
        r
    }

    fn torrent(config: Config) -> (Torrent, Instant) {
        let g = Geometry::new(100_000, 32_768).unwrap();
        let now = Instant::now();
        let t = Torrent::new(g, Bitfield::new(g.piece_count()), config, 1, now);
        (t, now)
    }

    fn sent(t: &mut Torrent, k: PeerKey, now: Instant) -> Vec<Message> {
        let mut buf = t.take_outgoing(k, now).unwrap().unwrap_or_default();
        let mut out = Vec::new();
        while let Some(m) = Decoder::default().decode(&mut buf).unwrap() {
            out.push(m);
        }
        out
    }

    fn handshake_in(msgs: &[Message]) -> ExtendedHandshake {
        msgs.iter()
            .find_map(|m| match m {
                Message::Extended { id: 0, payload } => ExtendedHandshake::decode(payload).ok(),
                _ => None,
            })
            .unwrap()
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 2], 40_000))
    }

    #[test]
    fn handshake_advertises_our_extensions() {
        let (mut t, now) = torrent(Config::default());
        let k = t
            .add_peer(addr(), reserved(false), PeerId([2; 20]), now)
            .unwrap();
        let hs = handshake_in(&sent(&mut t, k, now));
        assert_eq!(hs.id_of(UT_METADATA), Some(UT_METADATA_ID));
        assert_eq!(hs.id_of(UT_PEX), Some(UT_PEX_ID));
        assert_eq!(hs.metadata_size, None);
    }

    #[test]
    fn private_torrent_does_not_advertise_pex() {
        let config = Config {
            private: true,
            ..Config::default()
        };
        let (mut t, now) = torrent(config);
        let k = t
            .add_peer(addr(), reserved(false), PeerId([2; 20]), now)
            .unwrap();
        let hs = handshake_in(&sent(&mut t, k, now));
        assert_eq!(hs.id_of(UT_METADATA), Some(UT_METADATA_ID));
        assert_eq!(hs.id_of(UT_PEX), None);
    }

    #[test]
    fn remembers_the_peers_ids_and_port() {
        let (mut t, now) = torrent(Config::default());
        let k = t
            .add_peer(addr(), reserved(false), PeerId([2; 20]), now)
            .unwrap();
        let hs = ExtendedHandshake {
            m: vec![(UT_METADATA.to_owned(), 7), (UT_PEX.to_owned(), 9)],
            p: Some(6881),
            ..ExtendedHandshake::default()
        };
        t.handle_message(k, hs.to_message(), now).unwrap();
        let p = &t.peers[&k];
        assert_eq!(
            (p.ut_metadata, p.ut_pex, p.listen_port),
            (Some(7), Some(9), Some(6881))
        );
        assert_eq!(
            p.listen_addr(),
            Some(SocketAddr::from(([10, 0, 0, 2], 6881)))
        );
        // A later handshake disables ut_pex and leaves the rest.
        let update = ExtendedHandshake {
            m: vec![(UT_PEX.to_owned(), 0)],
            ..ExtendedHandshake::default()
        };
        t.handle_message(k, update.to_message(), now).unwrap();
        let p = &t.peers[&k];
        assert_eq!(
            (p.ut_metadata, p.ut_pex, p.listen_port),
            (Some(7), None, Some(6881))
        );
    }

    #[test]
    fn port_sent_only_when_both_sides_do_dht() {
        let with_dht = Config {
            dht_port: Some(7000),
            ..Config::default()
        };
        let ports = |config: Config, peer_dht: bool| {
            let (mut t, now) = torrent(config);
            let k = t
                .add_peer(addr(), reserved(peer_dht), PeerId([2; 20]), now)
                .unwrap();
            sent(&mut t, k, now)
                .into_iter()
                .filter(|m| matches!(m, Message::Port(_)))
                .collect::<Vec<_>>()
        };
        assert_eq!(ports(with_dht.clone(), true), vec![Message::Port(7000)]);
        assert!(ports(with_dht.clone(), false).is_empty());
        assert!(ports(Config::default(), true).is_empty());
        let private = Config {
            private: true,
            ..with_dht
        };
        assert!(ports(private, true).is_empty());
    }

    #[test]
    fn private_torrent_hears_no_dht_nodes() {
        let config = Config {
            private: true,
            max_invalid: 0,
            ..Config::default()
        };
        let (mut t, now) = torrent(config);
        let k = t
            .add_peer(addr(), reserved(true), PeerId([2; 20]), now)
            .unwrap();
        for p in 1..100 {
            t.handle_message(k, Message::Port(p), now).unwrap();
        }
        assert!(std::iter::from_fn(|| t.poll_event()).all(|e| !matches!(e, Event::DhtNode(_))));
    }

    #[test]
    fn port_changes_are_bounded() {
        let config = Config {
            max_invalid: 1,
            ..Config::default()
        };
        let (mut t, now) = torrent(config);
        let k = t
            .add_peer(addr(), reserved(true), PeerId([2; 20]), now)
            .unwrap();
        t.handle_message(k, Message::Port(7000), now).unwrap();
        let nodes: Vec<SocketAddr> = std::iter::from_fn(|| t.poll_event())
            .filter_map(|e| match e {
                Event::DhtNode(a) => Some(a),
                _ => None,
            })
            .collect();
        assert_eq!(nodes, vec![SocketAddr::from(([10, 0, 0, 2], 7000))]);
        // Repeats and zero ports cost nothing.
        for _ in 0..100 {
            t.handle_message(k, Message::Port(7000), now).unwrap();
            t.handle_message(k, Message::Port(0), now).unwrap();
        }
        for p in 1..MAX_DHT_PORTS as u16 {
            t.handle_message(k, Message::Port(7000 + p), now).unwrap();
        }
        // Two more changes: the first is invalid, the second one too many.
        t.handle_message(k, Message::Port(1), now).unwrap();
        assert!(t.handle_message(k, Message::Port(2), now).is_err());
    }
}
