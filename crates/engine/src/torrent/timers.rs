//! Timers: choking rounds, keep-alives, idle and snubbing peers, peer exchange.

use std::time::{Duration, Instant};

use metainfo::BlockRef;
use wire::{BlockSpec, Message};

use super::{Event, PeerError, Torrent};
use crate::peer::PeerKey;

/// How long a torrent with no peers waits between timer runs.
const IDLE_TICK: Duration = Duration::from_secs(5);

impl Torrent {
    /// Timers: choking rounds, keep-alives, idle peers, snubbed peers, PEX messages due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.choker.poll_timeout() {
            self.choker.handle_timeout(now, &mut self.rng);
            self.apply_choker();
        }
        let mut gone = Vec::new();
        let mut snubbed = Vec::new();
        let mut keepalive = Vec::new();
        for (k, p) in &self.peers {
            if now.saturating_duration_since(p.last_recv) > self.config.idle_timeout {
                gone.push(*k);
            } else if now.saturating_duration_since(p.last_sent) > self.config.keepalive_interval {
                keepalive.push(*k);
            }
            if p.waiting_since
                .is_some_and(|t| now.saturating_duration_since(t) > self.config.request_timeout)
            {
                snubbed.push(*k);
            }
        }
        for k in gone {
            self.events.push_back(Event::Disconnect(k, PeerError::Idle));
        }
        for k in keepalive {
            if let Some(p) = self.peers.get_mut(&k) {
                p.send(&Message::KeepAlive);
                p.last_sent = now;
                self.wake(k);
            }
        }
        for k in snubbed {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            tracing::debug!(peer = %p.addr, outstanding = p.outstanding.len(), "peer snubbed us; re-requesting elsewhere");
            p.snubbed = true;
            p.waiting_since = None;
            let dropped: Vec<BlockRef> = p.outstanding.drain().collect();
            p.dropped_requests(dropped.len());
            for b in &dropped {
                p.send(&Message::Cancel(BlockSpec {
                    piece: b.piece().get(),
                    begin: b.begin(),
                    len: b.len(),
                }));
            }
            for b in dropped {
                self.picker.request_dropped(b);
            }
            self.wake(k);
        }
        self.send_pex(now);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill_requests(k, now);
        }
    }

    /// When `handle_timeout` should next run.
    pub fn poll_timeout(&self, now: Instant) -> Instant {
        if self.peers.is_empty() {
            // Nothing to time out; an idle torrent (a seed among thousands) sleeps long.
            return now + IDLE_TICK;
        }
        self.choker.poll_timeout().min(now + Duration::from_secs(1))
    }
}
