//! Serving the torrent's metadata (BEP 9, `ut_metadata`) to peers that ask for it, as magnet
//! downloads need.
//!
//! Requests are queued per peer (at most [`MAX_METADATA_REQUESTS`]; past that they are dropped
//! and counted as invalid) and answered when the shell takes the peer's outgoing bytes, so a
//! peer that does not read cannot make us buffer more than a few 16 KiB pieces beyond what
//! `max_outgoing` allows. The engine does not check the metadata against the info-hash: the
//! shell hands over the exact bytes it hashed.

use bytes::Bytes;
use metainfo::StoredBytes;
use wire::MetadataMsg;
use wire::metadata::{MAX_METADATA_SIZE, METADATA_PIECE_LEN, metadata_piece_len};

use super::{PeerError, Torrent};
use crate::peer::PeerKey;

/// Most `ut_metadata` requests queued from one peer; more are dropped and counted as invalid.
pub const MAX_METADATA_REQUESTS: usize = 8;

impl Torrent {
    /// Gives the engine the raw bencoded info dictionary (the bytes whose SHA-1 is the
    /// info-hash), to serve to peers over `ut_metadata` and advertise as `metadata_size`:
    /// in memory, or in a file (each request answered is then one positioned read of at most
    /// 16 KiB, normally from the page cache). Metadata over 8 MiB (BEP 9's practical limit)
    /// or empty is not served. Peers already connected get a fresh extension handshake with
    /// the size.
    pub fn set_metadata(&mut self, info: impl Into<StoredBytes>) {
        let info = info.into();
        let fits = u32::try_from(info.len()).is_ok_and(|n| n > 0 && n <= MAX_METADATA_SIZE);
        if !fits {
            tracing::warn!(len = info.len(), "metadata too large to serve");
            return;
        }
        self.metadata = Some(info);
        let hs = self.our_handshake().to_message();
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.extended)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(p) = self.peers.get_mut(&k) {
                p.send(&hs);
            }
            self.wake(k);
        }
    }

    /// Size of the metadata we serve, if we have it.
    pub(super) fn metadata_size(&self) -> Option<u32> {
        self.metadata
            .as_ref()
            .and_then(|m| u32::try_from(m.len()).ok())
    }

    /// A `ut_metadata` message from `key`: requests are queued, data and rejects ignored (the
    /// engine never requests metadata).
    pub(super) fn on_metadata_message(
        &mut self,
        key: PeerKey,
        payload: &Bytes,
    ) -> Result<(), PeerError> {
        let msg = match MetadataMsg::decode(payload) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(_) => return self.violation(key, "bad ut_metadata message"),
        };
        let MetadataMsg::Request { piece } = msg else {
            return Ok(());
        };
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if peer.ut_metadata.is_none() {
            // It never told us where to send the answer.
            return self.violation(key, "ut_metadata request without ut_metadata in m");
        }
        if peer.metadata_requests.len() >= MAX_METADATA_REQUESTS {
            return self.violation(key, "ut_metadata request flood");
        }
        peer.metadata_requests.push_back(piece);
        self.wake(key);
        Ok(())
    }

    /// Encodes the answers to `key`'s queued metadata requests into its outgoing bytes.
    pub(super) fn answer_metadata_requests(&mut self, key: PeerKey) {
        let Torrent {
            peers, metadata, ..
        } = self;
        let Some(p) = peers.get_mut(&key) else {
            return;
        };
        let Some(id) = p.ut_metadata else {
            p.metadata_requests.clear();
            return;
        };
        while let Some(piece) = p.metadata_requests.pop_front() {
            let answer = metadata
                .as_ref()
                .and_then(|m| metadata_piece(m, piece))
                .map_or(MetadataMsg::Reject { piece }, |(total_size, data)| {
                    MetadataMsg::Data {
                        piece,
                        total_size,
                        data,
                    }
                });
            p.send(&answer.to_message(id));
        }
    }
}

/// Metadata piece `piece` of `info` and the total size; `None` past the end (or when a file
/// holding the metadata could not be read: the peer gets a reject).
fn metadata_piece(info: &StoredBytes, piece: u32) -> Option<(u32, Bytes)> {
    let total = u32::try_from(info.len()).ok()?;
    let len = metadata_piece_len(total, piece)?;
    let start = usize::try_from(piece.checked_mul(METADATA_PIECE_LEN)?).ok()?;
    Some((total, info.read(start, usize::try_from(len).ok()?)?))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use metainfo::{Bitfield, Geometry, PeerId};
    use wire::extension::{UT_METADATA, UT_METADATA_ID};
    use wire::{Decoder, ExtendedHandshake, Message, Reserved};

    use super::*;
    use crate::torrent::Config;

    /// Three and a bit pieces of metadata.
    fn info() -> Bytes {
        (0..3 * METADATA_PIECE_LEN + 100)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    /// A torrent and a peer that advertised `ut_metadata` under id 3.
    fn torrent(
        metadata: Option<impl Into<StoredBytes>>,
        max_invalid: u32,
    ) -> (Torrent, PeerKey, Instant) {
        let g = Geometry::new(100_000, 32_768).unwrap();
        let now = Instant::now();
        let config = Config {
            max_invalid,
            ..Config::default()
        };
        let mut t = Torrent::new(g, Bitfield::new(g.piece_count()), config, 1, now);
        if let Some(m) = metadata {
            t.set_metadata(m);
        }
        let mut r = Reserved::default();
        r.set_extension_protocol(true);
        let addr = SocketAddr::from(([10, 0, 0, 2], 40_000));
        let k = t.add_peer(addr, r, PeerId([2; 20]), now).unwrap();
        let hs = ExtendedHandshake {
            m: vec![(UT_METADATA.to_owned(), 3)],
            ..ExtendedHandshake::default()
        };
        t.handle_message(k, hs.to_message(), now).unwrap();
        (t, k, now)
    }

    fn request(piece: u32) -> Message {
        MetadataMsg::Request { piece }.to_message(UT_METADATA_ID)
    }

    /// The ut_metadata answers `t` sent to `k` (under the peer's id 3).
    fn answers(t: &mut Torrent, k: PeerKey, now: Instant) -> Vec<MetadataMsg> {
        let mut buf = t.take_outgoing(k, now).unwrap().unwrap_or_default();
        let mut out = Vec::new();
        while let Some(m) = Decoder::default().decode(&mut buf).unwrap() {
            if let Message::Extended { id, payload } = m
                && id != 0
            {
                assert_eq!(id, 3, "sent under an id the peer did not give");
                out.push(MetadataMsg::decode(&payload).unwrap().unwrap());
            }
        }
        out
    }

    #[test]
    fn serves_every_piece_and_they_make_the_info_dict() {
        let info = info();
        let in_file = StoredBytes::to_file(&info, tempfile::tempfile().unwrap()).unwrap();
        for stored in [StoredBytes::from(info.clone()), in_file] {
            assert_eq!(served(stored), info);
        }
    }

    /// Every metadata piece a peer gets from a torrent serving `stored`, end to end.
    fn served(stored: StoredBytes) -> Vec<u8> {
        let len = stored.len();
        let (mut t, k, now) = torrent(Some(stored), 64);
        let mut whole = Vec::new();
        for piece in 0..4 {
            t.handle_message(k, request(piece), now).unwrap();
            let got = answers(&mut t, k, now);
            let [
                MetadataMsg::Data {
                    piece: p,
                    total_size,
                    data,
                },
            ] = &got[..]
            else {
                panic!("piece {piece}: {got:?}");
            };
            assert_eq!((*p, *total_size as usize), (piece, len));
            whole.extend_from_slice(data);
        }
        whole
    }

    #[test]
    fn handshake_carries_the_size() {
        let info = info();
        let (mut t, k, now) = torrent(None::<Bytes>, 64);
        t.take_outgoing(k, now).unwrap();
        t.set_metadata(info.clone());
        let mut buf = t.take_outgoing(k, now).unwrap().unwrap();
        let Some(Message::Extended { id: 0, payload }) =
            Decoder::default().decode(&mut buf).unwrap()
        else {
            panic!("no fresh handshake");
        };
        let hs = ExtendedHandshake::decode(&payload).unwrap();
        assert_eq!(hs.metadata_size, Some(info.len() as u32));
    }

    #[test]
    fn out_of_range_and_missing_metadata_are_rejected() {
        let (mut t, k, now) = torrent(Some(info()), 64);
        t.handle_message(k, request(4), now).unwrap();
        t.handle_message(k, request(511), now).unwrap();
        assert_eq!(
            answers(&mut t, k, now),
            vec![
                MetadataMsg::Reject { piece: 4 },
                MetadataMsg::Reject { piece: 511 }
            ]
        );
        let (mut t, k, now) = torrent(None::<Bytes>, 64);
        t.handle_message(k, request(0), now).unwrap();
        assert_eq!(
            answers(&mut t, k, now),
            vec![MetadataMsg::Reject { piece: 0 }]
        );
        // Oversized metadata is not served either.
        let huge = Bytes::from(vec![0u8; MAX_METADATA_SIZE as usize + 1]);
        let (mut t, k, now) = torrent(Some(huge), 64);
        t.handle_message(k, request(0), now).unwrap();
        assert_eq!(
            answers(&mut t, k, now),
            vec![MetadataMsg::Reject { piece: 0 }]
        );
    }

    #[test]
    fn a_flood_is_bounded_and_counted() {
        let max_invalid = 10;
        let (mut t, k, now) = torrent(Some(info()), max_invalid);
        let mut accepted = 0;
        let mut failed = false;
        for _ in 0..1_000 {
            match t.handle_message(k, request(0), now) {
                Ok(()) => accepted += 1,
                Err(PeerError::Protocol(_)) => {
                    failed = true;
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(failed, "flood never disconnected");
        assert_eq!(accepted, MAX_METADATA_REQUESTS + max_invalid as usize);
        assert_eq!(answers(&mut t, k, now).len(), MAX_METADATA_REQUESTS);
    }

    #[test]
    fn requests_answered_as_read_are_not_a_flood() {
        let (mut t, k, now) = torrent(Some(info()), 0);
        for i in 0..100 {
            for piece in 0..4 {
                t.handle_message(k, request(piece), now).unwrap();
            }
            assert_eq!(answers(&mut t, k, now).len(), 4, "round {i}");
        }
    }

    #[test]
    fn garbage_is_invalid_and_unsolicited_data_ignored() {
        let (mut t, k, now) = torrent(Some(info()), 1);
        let data = MetadataMsg::Data {
            piece: 0,
            total_size: 3,
            data: Bytes::from_static(b"abc"),
        };
        for _ in 0..10 {
            t.handle_message(k, data.to_message(UT_METADATA_ID), now)
                .unwrap();
            t.handle_message(
                k,
                MetadataMsg::Reject { piece: 0 }.to_message(UT_METADATA_ID),
                now,
            )
            .unwrap();
        }
        let garbage = Message::Extended {
            id: UT_METADATA_ID,
            payload: Bytes::from_static(b"d8:msg_type"),
        };
        t.handle_message(k, garbage.clone(), now).unwrap();
        assert!(t.handle_message(k, garbage, now).is_err());
    }
}
