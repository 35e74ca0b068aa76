//! Messages from a peer during the fetch: its extension handshake and `ut_metadata` messages
//! drive the fetch; PEX and PORT are heard as the torrent hears them; everything else is
//! recorded for the handover ([`super::handover::Told`]) or refused (we have no piece).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use sha1::{Digest, Sha1};
use wire::extension::{HANDSHAKE_ID, UT_METADATA, UT_METADATA_ID, UT_PEX_ID};
use wire::metadata::MAX_METADATA_SIZE;
use wire::{ExtendedHandshake, Message, MetadataMsg, PexMsg, WireError};

use super::assembly::{Assembly, Slot};
use super::{FetchEvent, MAX_BANNED, MAX_REJECTS, MAX_STRIKES, MetadataFetch};
use crate::peer::PeerKey;
use crate::torrent::{MAX_DHT_PORTS, MAX_METADATA_REQUESTS, MAX_PEX_EARLY, PEX_MIN_GAP, PeerError};
use metainfo::InfoHash;

impl MetadataFetch {
    /// One message from `key`. An error means: disconnect it (then `remove_peer`).
    pub fn handle_message(
        &mut self,
        key: PeerKey,
        msg: Message,
        now: Instant,
    ) -> Result<(), PeerError> {
        self.observe(now);
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        peer.last_recv = now;
        if peer.doomed {
            // A disconnect is pending; nothing it says matters any more.
            return Ok(());
        }
        let r = self.dispatch(key, msg, now);
        if let Err(e) = &r {
            tracing::debug!(key = key.0, error = %e, "metadata peer error");
        }
        r
    }

    fn dispatch(&mut self, key: PeerKey, msg: Message, now: Instant) -> Result<(), PeerError> {
        let bound = self.piece_bound();
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        match msg {
            Message::KeepAlive
            | Message::Suggest(_)
            | Message::AllowedFast(_)
            | Message::Cancel(_) => Ok(()),
            Message::Choke => {
                peer.told.choking = true;
                Ok(())
            }
            Message::Unchoke => {
                peer.told.choking = false;
                Ok(())
            }
            Message::Interested => {
                peer.told.interested = true;
                Ok(())
            }
            Message::NotInterested => {
                peer.told.interested = false;
                Ok(())
            }
            Message::Have(i) => peer.told.pieces.have(i, bound),
            Message::Bitfield(bytes) => peer.told.pieces.bitfield(&bytes, bound),
            Message::HaveAll | Message::HaveNone => {
                if !peer.reserved.fast() {
                    return Err(PeerError::Protocol("HAVE ALL/NONE without Fast".into()));
                }
                if msg == Message::HaveAll {
                    peer.told.pieces.have_all();
                } else {
                    peer.told.pieces.have_none();
                }
                Ok(())
            }
            Message::Request(spec) => {
                // We told it we have nothing (HAVE NONE, or no bitfield).
                if peer.reserved.fast() {
                    peer.send(&Message::Reject(spec));
                    self.wake(key);
                }
                self.violation(key, "REQUEST for a piece we do not have")
            }
            Message::Piece { .. } => self.violation(key, "PIECE we did not request"),
            Message::Reject(_) => self.violation(key, "REJECT of a block we never request"),
            Message::Unknown { .. } => self.violation(key, "unknown message id"),
            Message::Port(port) => self.on_port(key, port),
            Message::Extended { id, payload } => match id {
                HANDSHAKE_ID => self.on_handshake(key, &payload, now),
                UT_METADATA_ID => self.on_metadata(key, &payload, now),
                UT_PEX_ID if !self.config.private => self.on_pex(key, &payload, now),
                // An id we never advertised: ignored, as the torrent does.
                _ => Ok(()),
            },
        }
    }

    fn on_handshake(
        &mut self,
        key: PeerKey,
        payload: &[u8],
        now: Instant,
    ) -> Result<(), PeerError> {
        let Ok(hs) = ExtendedHandshake::decode(payload) else {
            return self.violation(key, "bad extension handshake");
        };
        let agreed = self.agreed_size();
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        // A later handshake updates the extensions it names; id 0 disables one (BEP 10).
        if hs.m.iter().any(|(n, _)| n == UT_METADATA) {
            peer.ut_metadata = hs.id_of(UT_METADATA);
        }
        let size = hs.metadata_size;
        peer.told.handshake(hs);
        if peer.ut_metadata.is_none() {
            return self.fail(key, PeerError::NoMetadata("no ut_metadata"));
        }
        let Some(size) = size else {
            // It may not have the metadata yet (a magnet leecher too); a later handshake
            // can bring the size.
            return Ok(());
        };
        if size == 0 || size > MAX_METADATA_SIZE {
            return self.fail(key, PeerError::NoMetadata("metadata size out of bounds"));
        }
        match agreed {
            Some(agreed) if agreed != size => {
                return self.fail(
                    key,
                    PeerError::NoMetadata("announces a metadata size other than the agreed one"),
                );
            }
            Some(_) => {}
            None => {
                tracing::debug!(size, key = key.0, "metadata size agreed");
                self.assembly = Some(Assembly::new(size));
            }
        }
        if let Some(p) = self.peers.get_mut(&key) {
            p.size = Some(size);
        }
        self.fill(key, now);
        Ok(())
    }

    fn on_metadata(
        &mut self,
        key: PeerKey,
        payload: &Bytes,
        now: Instant,
    ) -> Result<(), PeerError> {
        let msg = match MetadataMsg::decode(payload) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(e @ WireError::MetadataPieceLength { .. }) => {
                return self.fail(key, PeerError::Protocol(e.to_string()));
            }
            Err(_) => return self.violation(key, "bad ut_metadata message"),
        };
        match msg {
            MetadataMsg::Request { piece } => {
                let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
                if peer.ut_metadata.is_none() {
                    return self.violation(key, "ut_metadata request without ut_metadata in m");
                }
                if peer.requests.len() >= MAX_METADATA_REQUESTS {
                    return self.violation(key, "ut_metadata request flood");
                }
                peer.requests.push_back(piece);
                self.wake(key);
                Ok(())
            }
            MetadataMsg::Reject { piece } => self.on_reject(key, piece, now),
            MetadataMsg::Data {
                piece,
                total_size,
                data,
            } => self.on_data(key, piece, total_size, &data, now),
        }
    }

    fn on_reject(&mut self, key: PeerKey, piece: u32, now: Instant) -> Result<(), PeerError> {
        let done = self.metadata.is_some();
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if !peer.asked.remove(piece) {
            return self.violation(key, "ut_metadata reject of a piece not asked for");
        }
        if done {
            return Ok(());
        }
        peer.refused.insert(piece);
        peer.rejects += 1;
        let rejects = peer.rejects;
        if let Some(a) = &mut self.assembly
            && matches!(a.slot(piece), Some(Slot::Requested { by, .. }) if by == key)
        {
            a.set(piece, Slot::Missing);
            peer.in_flight = peer.in_flight.saturating_sub(1);
        }
        tracing::debug!(key = key.0, piece, rejects, "metadata piece rejected");
        if rejects >= MAX_REJECTS {
            return self.fail(key, PeerError::NoMetadata("rejects our metadata requests"));
        }
        self.refill_all(now);
        Ok(())
    }

    fn on_data(
        &mut self,
        key: PeerKey,
        piece: u32,
        total_size: u32,
        data: &[u8],
        now: Instant,
    ) -> Result<(), PeerError> {
        if self.agreed_size().is_some_and(|s| s != total_size) {
            return self.fail(key, PeerError::Protocol("metadata size changed".into()));
        }
        let done = self.metadata.is_some();
        let duplicate = done
            || self
                .assembly
                .as_ref()
                .is_some_and(|a| matches!(a.slot(piece), Some(Slot::Have { .. })));
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if !peer.asked.remove(piece) {
            if duplicate {
                // A second answer to a request we repeated, or one after the copy was done.
                return Ok(());
            }
            return self.violation(key, "ut_metadata piece not asked for");
        }
        if done {
            return Ok(());
        }
        peer.rejects = 0;
        peer.stalls = 0;
        peer.refused.clear();
        let Some(a) = &mut self.assembly else {
            return Ok(());
        };
        // Whoever was asked for it (this peer, or another after a timeout) holds one request
        // fewer.
        let holder = match a.slot(piece) {
            Some(Slot::Requested { by, .. }) => Some(by),
            _ => None,
        };
        let fresh = a.store(piece, data, key);
        let complete = a.is_complete();
        if let Some(by) = holder
            && let Some(p) = self.peers.get_mut(&by)
        {
            p.in_flight = p.in_flight.saturating_sub(1);
        }
        tracing::trace!(key = key.0, piece, fresh, "metadata piece received");
        if complete {
            self.verify();
            return Ok(());
        }
        self.fill(key, now);
        if let Some(by) = holder.filter(|&b| b != key) {
            self.fill(by, now);
        }
        Ok(())
    }

    /// Every piece is in: the copy is the metadata if its SHA-1 is the info-hash; else it is
    /// thrown away, its contributors blamed, and the fetch starts over.
    fn verify(&mut self) {
        let Some(a) = &mut self.assembly else {
            return;
        };
        let count = a.count();
        let contributors = a.contributors();
        let bytes = a.take_bytes();
        if InfoHash(Sha1::digest(&bytes).into()) == self.info_hash {
            tracing::debug!(size = bytes.len(), "metadata verified");
            self.metadata = Some(Bytes::from(bytes));
            self.assembly = None;
            for p in self.peers.values_mut() {
                p.in_flight = 0;
            }
            self.events.push_back(FetchEvent::Complete);
            return;
        }
        tracing::info!(
            contributors = contributors.len(),
            "metadata does not match the info-hash; starting over"
        );
        for (k, n) in contributors {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            p.strikes += 1;
            let liar = n == count;
            if liar && self.banned.len() < MAX_BANNED {
                self.banned.insert(p.addr.ip());
            }
            if liar || p.strikes >= MAX_STRIKES {
                self.doom(k, PeerError::Banned);
            }
        }
        self.after_loss();
    }

    /// A PORT message: the peer runs a DHT node on its IP at `port`.
    fn on_port(&mut self, key: PeerKey, port: u16) -> Result<(), PeerError> {
        let private = self.config.private;
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if private || port == 0 || peer.told.dht_port == Some(port) {
            return Ok(());
        }
        if peer.told.dht_ports_seen >= MAX_DHT_PORTS {
            return self.violation(key, "PORT changed too often");
        }
        peer.told.dht_ports_seen += 1;
        peer.told.dht_port = Some(port);
        let node = SocketAddr::new(peer.addr.ip(), port);
        self.events.push_back(FetchEvent::DhtNode(node));
        Ok(())
    }

    /// A `ut_pex` message, with the torrent's limits (one per [`PEX_MIN_GAP`]).
    fn on_pex(&mut self, key: PeerKey, payload: &[u8], now: Instant) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if peer
            .told
            .pex_heard
            .is_some_and(|t| now.saturating_duration_since(t) < PEX_MIN_GAP)
        {
            peer.told.pex_early += 1;
            if peer.told.pex_early > MAX_PEX_EARLY {
                return self.violation(key, "ut_pex messages too often");
            }
            return Ok(());
        }
        peer.told.pex_heard = Some(now);
        let Ok(msg) = PexMsg::decode(payload) else {
            return self.violation(key, "bad ut_pex message");
        };
        let found = crate::torrent::pex_candidates(&msg);
        if !found.encrypted.is_empty() {
            self.events
                .push_back(FetchEvent::PrefersEncryption(found.encrypted));
        }
        if !found.addrs.is_empty() {
            self.events.push_back(FetchEvent::Peers(found.addrs));
        }
        Ok(())
    }
}
