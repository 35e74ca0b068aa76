//! Uploading: requests from peers, choking decisions, outgoing bytes.

use std::time::Instant;

use bytes::BytesMut;
use metainfo::BLOCK_SIZE;
use wire::{BlockSpec, Message};

use super::{PeerError, Torrent};
use crate::choker::Decision;
use crate::peer::{PeerKey, Upload};

impl Torrent {
    pub(super) fn on_request(&mut self, key: PeerKey, spec: BlockSpec) -> Result<(), PeerError> {
        let reqq = self.config.reqq as usize;
        let Some((piece, begin, len)) = self
            .geometry
            .range_in_piece(spec.piece, spec.begin, spec.len)
        else {
            if spec.len > BLOCK_SIZE && self.geometry.piece(spec.piece).is_some() {
                return self.refuse_request(key, spec, "REQUEST over 16 KiB");
            }
            return Err(PeerError::Protocol(format!(
                "REQUEST out of range: piece {} begin {} len {}",
                spec.piece, spec.begin, spec.len
            )));
        };
        if len > BLOCK_SIZE {
            return self.refuse_request(key, spec, "REQUEST over 16 KiB");
        }
        if !self.picker.have().has(piece) || self.hidden_from(key, piece) {
            return self.refuse_request(key, spec, "REQUEST for a piece we do not have");
        }
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if peer.am_choking {
            // BEP 6: reject; without Fast the request is simply dropped.
            if peer.fast {
                peer.send(&Message::Reject(spec));
                self.wake(key);
            }
            return Ok(());
        }
        if peer.incoming.len() >= reqq {
            return self.refuse_request(key, spec, "request queue full");
        }
        peer.incoming.push_back(Upload { piece, begin, len });
        self.wake(key);
        Ok(())
    }

    /// Ignores (or with Fast rejects) a request we will not serve; counts it as invalid.
    pub(super) fn refuse_request(
        &mut self,
        key: PeerKey,
        spec: BlockSpec,
        what: &str,
    ) -> Result<(), PeerError> {
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        if peer.fast {
            peer.send(&Message::Reject(spec));
            self.wake(key);
        }
        self.violation(key, what)
    }

    /// Sends the choker's decisions.
    pub(super) fn apply_choker(&mut self) {
        while let Some((key, d)) = self.choker.poll_decision() {
            let Some(p) = self.peers.get_mut(&key) else {
                continue;
            };
            match d {
                Decision::Unchoke => {
                    if p.am_choking {
                        p.am_choking = false;
                        p.send(&Message::Unchoke);
                    }
                }
                Decision::Choke => {
                    if !p.am_choking {
                        p.am_choking = true;
                        p.send(&Message::Choke);
                        let dropped: Vec<Upload> = p.incoming.drain(..).collect();
                        if p.fast {
                            for u in dropped {
                                p.send(&Message::Reject(BlockSpec {
                                    piece: u.piece.get(),
                                    begin: u.begin,
                                    len: u.len,
                                }));
                            }
                        }
                    }
                }
            }
            self.wake(key);
        }
    }

    /// Takes the bytes queued for `key` (and marks it as having sent them at `now`).
    #[must_use = "the bytes taken must be written to the peer"]
    pub fn take_outgoing(
        &mut self,
        key: PeerKey,
        now: Instant,
    ) -> Result<Option<BytesMut>, PeerError> {
        let max = self.config.max_outgoing;
        self.answer_metadata_requests(key);
        let p = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        p.wake_pending = false;
        if p.out.is_empty() {
            return Ok(None);
        }
        if p.out.len() > max {
            return Err(PeerError::Stuck);
        }
        p.last_sent = now;
        Ok(Some(p.out.split()))
    }

    /// The next block `key` asked for that we should send now, if any.
    #[must_use = "the block taken must be sent to the peer"]
    pub fn next_upload(&mut self, key: PeerKey) -> Option<Upload> {
        let p = self.peers.get_mut(&key)?;
        if p.am_choking {
            p.incoming.clear();
            return None;
        }
        let u = p.incoming.pop_front()?;
        if let Some(ss) = &mut self.super_seed {
            ss.block_sent(key, u.piece);
        }
        Some(u)
    }

    /// `bytes` of payload were sent to `key`.
    pub fn on_uploaded(&mut self, key: PeerKey, bytes: u64, now: Instant) {
        self.stats.uploaded += bytes;
        self.choker.on_sent(key, bytes);
        if let Some(p) = self.peers.get_mut(&key) {
            p.uploaded += bytes;
            p.last_sent = now;
        }
        self.super_seed_uploaded(key, bytes, now);
    }
}
