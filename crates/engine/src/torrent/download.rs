//! Downloading: blocks arriving, pieces assembled and verified, interest, requests.

use std::net::IpAddr;
use std::time::Instant;

use metainfo::{BlockRef, PieceIndex};
use wire::{BlockSpec, Message};

use super::{Event, MAX_TRACKED_IPS, PeerError, PieceBuf, PieceOutcome, Torrent, timers};
use crate::buffer::PieceData;
use crate::peer::PeerKey;
use crate::picker::BlockReceived;

impl Torrent {
    pub(super) fn on_block(
        &mut self,
        key: PeerKey,
        piece: u32,
        begin: u32,
        data: &[u8],
        now: Instant,
    ) -> Result<(), PeerError> {
        let Some(b) = self.geometry.block(piece, begin, data.len() as u32) else {
            return self.violation(key, "PIECE that is not one of our blocks");
        };
        let peer = self.peers.get_mut(&key).ok_or(PeerError::Unknown)?;
        let len = u64::from(b.len());
        // Every byte received counts in the totals, wasted ones included.
        self.stats.downloaded += len;
        if !peer.outstanding.remove(&b) {
            // Not asked of this peer. It may answer a request we dropped since (at its choke,
            // or cancelled): no fault, but the data is not used either -- a block accepted
            // from a peer we did not ask could fill a piece another peer is fetching, and a
            // liar would then get the honest peer blamed for the hash failure.
            if peer.late_answer() {
                return Ok(());
            }
            return self.violation(key, "PIECE we did not request");
        }
        peer.downloaded += len;
        peer.pipeline.on_block(now, b.len());
        peer.snubbed = false;
        peer.waiting_since = (!peer.outstanding.is_empty()).then_some(now);
        let ip = peer.addr.ip();
        self.choker.on_received(key, len, now);
        match self.picker.block_received(b) {
            // Fetched from another peer first (end-game), or given up on since.
            BlockReceived::Duplicate | BlockReceived::NotRequested => {}
            BlockReceived::Fresh { piece_complete } => {
                self.store_block(b, data, ip);
                if self.picker.in_endgame() {
                    self.cancel_elsewhere(key, b, now);
                }
                if piece_complete && let Some(buf) = self.pieces.remove(&b.piece()) {
                    self.checking.insert(b.piece(), buf.contributors);
                    self.events.push_back(Event::PieceReady {
                        piece: b.piece(),
                        data: buf.data,
                    });
                }
            }
        }
        self.fill_requests(key, now);
        Ok(())
    }

    pub(super) fn store_block(&mut self, b: BlockRef, data: &[u8], from: IpAddr) {
        let plen = self.geometry.piece_len(b.piece()) as usize;
        let spare = &mut self.spare;
        let buf = self.pieces.entry(b.piece()).or_insert_with(|| {
            // A recycled buffer keeps its old bytes: every one of them is overwritten before the
            // piece is complete (it is hashed only once all its blocks are in).
            let mut data = spare.pop().unwrap_or_default();
            data.reset(plen);
            PieceBuf {
                data,
                contributors: Vec::new(),
            }
        });
        let start = b.begin() as usize;
        if let Some(dst) = buf.data.get_mut(start..start + data.len()) {
            dst.copy_from_slice(data);
        }
        if !buf.contributors.contains(&from) {
            buf.contributors.push(from);
        }
    }

    /// End-game: `b` arrived from `from`; cancel it at every other peer that has it outstanding.
    /// Those peers are not refilled here; the fill retry timer gets to them.
    pub(super) fn cancel_elsewhere(&mut self, from: PeerKey, b: BlockRef, now: Instant) {
        let spec = BlockSpec::from(b);
        let mut woken = Vec::new();
        for (k, p) in self.peers.iter_mut() {
            if *k != from && p.outstanding.remove(&b) {
                p.dropped_requests(1);
                p.send(&Message::Cancel(spec));
                woken.push(*k);
            }
        }
        if !woken.is_empty() {
            timers::retry_fill(&mut self.refill_at, now);
        }
        for k in woken {
            self.picker.request_dropped(b);
            self.wake(k);
        }
    }

    /// Gives back the buffer of a piece handed out by `PieceReady`, once the shell is done with
    /// it, for the next piece to reuse (no allocation, no zeroing); at most
    /// [`SPARE_BYTES`](super::SPARE_BYTES) of them are kept (at least
    /// [`SPARE_MIN_BUFFERS`](super::SPARE_MIN_BUFFERS)), none once the download is complete.
    pub fn recycle(&mut self, buf: PieceData) {
        let nominal = self.geometry.nominal_piece_len() as usize;
        let keep = (super::SPARE_BYTES / nominal.max(1)).max(super::SPARE_MIN_BUFFERS);
        if !self.completed_sent && self.spare.len() < keep && buf.capacity() >= nominal {
            self.spare.push(buf);
        }
    }

    /// Piece buffers in use now: pieces being assembled plus pieces handed to the shell and
    /// not yet reported back.
    pub fn piece_buffers(&self) -> usize {
        self.pieces.len() + self.checking.len()
    }

    /// Piece buffers held for reuse now.
    pub fn spare_buffers(&self) -> usize {
        self.spare.len()
    }

    /// The shell verified (or failed to verify or write) a piece handed out by `PieceReady`.
    pub fn piece_written(&mut self, piece: PieceIndex, outcome: PieceOutcome, now: Instant) {
        let contributors = self.checking.remove(&piece).unwrap_or_default();
        if (self.checking.len() + 1) * 2 >= self.config.max_checking {
            // The request budget was in force (see `fill_requests`) and just grew: peers held
            // back by it, or starved at the cap, may request more.
            self.refill_all();
        }
        match outcome {
            PieceOutcome::Written => {
                self.picker.piece_verified(piece);
                self.events.push_back(Event::PieceDone(piece));
                let have = Message::Have(piece.get());
                let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
                for k in &keys {
                    let Some(p) = self.peers.get_mut(k) else {
                        continue;
                    };
                    if p.bitfield.has(piece) {
                        p.interesting = p.interesting.saturating_sub(1);
                    }
                    // Also to peers that have the piece (libtorrent's `send_redundant_have`,
                    // on by default): a super-seeder learns from it that a piece it revealed
                    // to us reached us from someone else, and reveals the next one. Without
                    // it, a leecher whose revealed pieces all came from other peers waited
                    // for the super-seeder forever once those peers had left.
                    p.send(&have);
                    self.wake(*k);
                    self.update_interest(*k, now);
                }
                if self.picker.is_complete() && !self.completed_sent {
                    self.completed_sent = true;
                    // A seed downloads nothing more: give the pool's memory back.
                    self.spare = Vec::new();
                    self.choker.set_seeding(true);
                    self.events.push_back(Event::Completed);
                    for k in keys {
                        self.check_both_seeds(k);
                    }
                }
            }
            PieceOutcome::HashFailed => {
                self.stats.wasted += u64::from(self.geometry.piece_len(piece));
                self.picker.piece_failed(piece);
                tracing::debug!(
                    piece = piece.get(),
                    contributors = contributors.len(),
                    "hash failed"
                );
                let sole = contributors.len() == 1;
                for ip in contributors {
                    let n = self.strikes.entry(ip).or_insert(0);
                    *n += 1;
                    if sole || *n >= self.config.ban_strikes {
                        self.ban(ip);
                    }
                }
                if self.strikes.len() > MAX_TRACKED_IPS {
                    self.strikes.retain(|_, n| *n > 1);
                }
                self.refill_all();
            }
            PieceOutcome::WriteFailed => {
                self.picker.piece_failed(piece);
            }
        }
    }

    pub(super) fn ban(&mut self, ip: IpAddr) {
        if self.banned.len() < MAX_TRACKED_IPS {
            self.banned.insert(ip);
        }
        tracing::info!(%ip, "peer banned after hash failures");
        for (k, p) in &self.peers {
            if p.addr.ip() == ip {
                self.events
                    .push_back(Event::Disconnect(*k, PeerError::Banned));
            }
        }
    }

    /// Sends INTERESTED / NOT INTERESTED when our interest in `key` changes.
    pub(super) fn update_interest(&mut self, key: PeerKey, now: Instant) {
        let complete = self.picker.is_complete();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let want = !complete && p.interesting > 0;
        if want != p.am_interested {
            p.am_interested = want;
            p.send(if want {
                &Message::Interested
            } else {
                &Message::NotInterested
            });
            self.choker.set_we_interested(key, want, now);
            self.wake(key);
        }
    }

    /// Tops up the requests outstanding at `key` to its pipeline target.
    pub(super) fn fill_requests(&mut self, key: PeerKey, now: Instant) {
        self.fill_requests_counted(key, now, &mut None);
    }

    /// [`Self::fill_requests`] with the requests outstanding at all peers, once counted, kept
    /// in `in_flight` (None: not counted yet) and updated with what this call sends, so one
    /// pass over every peer counts them once, not once per peer.
    fn fill_requests_counted(&mut self, key: PeerKey, now: Instant, in_flight: &mut Option<usize>) {
        if self.checking.len() >= self.config.max_checking {
            return;
        }
        let Torrent {
            peers,
            picker,
            rng,
            scratch,
            geometry,
            config,
            checking,
            refill_at,
            timer_due,
            ..
        } = self;
        let Some(p) = peers.get(&key) else { return };
        if p.peer_choking || !p.am_interested {
            return;
        }
        let target = if p.snubbed {
            1
        } else {
            p.pipeline.target(p.reqq)
        };
        let have = p.outstanding.len();
        if have >= target {
            return;
        }
        // Once the disk falls behind (half of `max_checking` pieces waiting to be hashed and
        // written), the pieces checking and the blocks in flight share one budget of
        // `max_checking` pieces: every block in flight lands in a piece buffer soon, so fewer
        // requests go out instead of more buffers piling up behind the disk. While the disk
        // keeps up, every peer gets its full pipeline.
        let target = if checking.len() * 2 < config.max_checking {
            target
        } else {
            let per_piece = geometry.nominal_piece_len().div_ceil(metainfo::BLOCK_SIZE) as usize;
            let budget = (config.max_checking - checking.len()) * per_piece;
            let all =
                *in_flight.get_or_insert_with(|| peers.values().map(|q| q.outstanding.len()).sum());
            target.min(have + budget.saturating_sub(all))
        };
        let Some(p) = peers.get_mut(&key) else { return };
        if have >= target {
            return;
        }
        scratch.clear();
        let outstanding = &p.outstanding;
        picker.pick(
            &p.bitfield,
            &|b| outstanding.contains(&b),
            target - have,
            rng,
            scratch,
        );
        if scratch.len() < target - have {
            // The picker had nothing more for this peer now; something may free up without
            // an input that fills it again (see `timers::REFILL_RETRY`).
            timers::retry_fill(refill_at, now);
        }
        if scratch.is_empty() {
            return;
        }
        if let Some(all) = in_flight {
            *all += scratch.len();
        }
        for &b in scratch.iter() {
            p.outstanding.insert(b);
            p.send(&Message::Request(b.into()));
        }
        if p.waiting_since.is_none() {
            p.waiting_since = Some(now);
            *timer_due = timers::earliest(*timer_due, timers::peer_deadline(p, config));
        }
        self.wake(key);
    }

    pub(super) fn refill_all(&mut self) {
        let Some(now) = self.peers.values().map(|p| p.last_recv).max() else {
            return;
        };
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.peer_choking && p.am_interested)
            .map(|(k, _)| *k)
            .collect();
        let mut in_flight = None;
        for k in keys {
            self.fill_requests_counted(k, now, &mut in_flight);
        }
        debug_assert!(
            in_flight.is_none_or(|n| n == self.peers.values().map(|p| p.outstanding.len()).sum())
        );
    }
}
