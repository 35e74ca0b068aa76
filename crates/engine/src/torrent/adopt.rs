//! Adopting a connection that began in a metadata fetch ([`crate::fetch`]): the peer joins
//! the torrent without a new handshake, and what it told the fetch is applied as if it had
//! just arrived.

use std::time::Instant;

use wire::Message;
use wire::extension::UT_PEX;

use super::{PeerError, Torrent};
use crate::fetch::Handover;
use crate::peer::PeerKey;

impl Torrent {
    /// Takes over a live connection from a [`MetadataFetch`](crate::MetadataFetch)
    /// ([`MetadataFetch::take_peer`](crate::MetadataFetch::take_peer)), with the checks of
    /// [`Torrent::add_peer`] (banned, full, duplicate peer id).
    ///
    /// Our opening went out during the fetch (HAVE NONE or nothing, an extension handshake
    /// without `metadata_size`), so no BITFIELD, HAVE ALL or HAVE NONE follows it (BEP 3 and 6
    /// allow one, first): the peer gets a HAVE for each piece we have, a fresh extension
    /// handshake (with `metadata_size` once [`Torrent::set_metadata`] was called: call it
    /// first), and PORT if applicable and not sent yet. What the peer told the fetch (its
    /// extension handshake, pieces, interest, unchoke) then goes through the normal message
    /// handling, so a bitfield of the wrong length is the same protocol error as ever (the
    /// peer is not admitted) and requests go out at once if it unchoked us.
    pub fn adopt_peer(&mut self, h: Handover, now: Instant) -> Result<PeerKey, PeerError> {
        self.check_admission(h.addr, h.id, h.outgoing)?;
        let mut peer = self.new_peer(h.addr, h.reserved, h.id, h.outgoing, now);
        let replay = h.replay(self.geometry.piece_count());
        // What the fetch queued and its writer has not taken yet goes out first.
        peer.out = h.unsent;
        if self.super_seed.is_none() {
            // A super-seed reveals pieces one by one instead (`insert_peer`).
            for i in self.picker.have().iter_ones() {
                peer.send(&Message::Have(i));
            }
        }
        if peer.extended {
            let mut hs = self.our_handshake();
            if self.config.private {
                // The fetch offered ut_pex before it could know; a later handshake only
                // disables what it names with id 0 (BEP 10).
                hs.m.push((UT_PEX.to_owned(), 0));
            }
            peer.send(&hs.to_message());
        }
        if let Some(port) = self.port_for(&peer).filter(|&p| h.port_sent != Some(p)) {
            peer.send(&Message::Port(port));
        }
        peer.invalid = h.invalid;
        peer.metadata_requests = h.metadata_requests;
        peer.pex_heard = h.told.pex_heard;
        peer.pex_early = h.told.pex_early;
        peer.dht_port = h.told.dht_port;
        peer.dht_ports_seen = h.told.dht_ports_seen;
        let addr = peer.addr;
        let key = self.insert_peer(peer, now);
        for msg in replay {
            if let Err(e) = self.handle_message(key, msg, now) {
                self.remove_peer(key);
                return Err(e);
            }
        }
        if let Some(p) = self.peers.get_mut(&key) {
            p.last_recv = h.last_recv;
            p.last_sent = h.last_sent;
        }
        self.wake(key);
        tracing::debug!(peer = %addr, key = key.0, "peer adopted from the metadata fetch");
        Ok(key)
    }
}
