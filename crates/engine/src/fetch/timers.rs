//! Timers of the fetch: keep-alives, idle peers, metadata requests that time out.

use std::time::Instant;

use wire::Message;

use super::{MAX_STALLS, METADATA_REQUEST_TIMEOUT, MetadataFetch};
use crate::peer::PeerKey;
use crate::torrent::PeerError;

impl MetadataFetch {
    /// Timers due at `now`: keep-alives to peers we have not written to for
    /// `keepalive_interval`, peers silent for `idle_timeout` dropped, requests unanswered for
    /// [`METADATA_REQUEST_TIMEOUT`] given to other peers (a peer whose requests time out
    /// [`MAX_STALLS`] rounds in a row is dropped).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        let idle = self.config.idle_timeout;
        let keepalive = self.config.keepalive_interval;
        let mut gone = Vec::new();
        let mut quiet = Vec::new();
        for (k, p) in &self.peers {
            if p.doomed {
                continue;
            }
            if now.saturating_duration_since(p.last_recv) >= idle {
                gone.push(*k);
            } else if now.saturating_duration_since(p.last_sent) >= keepalive {
                quiet.push(*k);
            }
        }
        gone.sort_unstable();
        quiet.sort_unstable();
        for k in gone {
            self.doom(k, PeerError::Idle);
        }
        for k in quiet {
            if let Some(p) = self.peers.get_mut(&k) {
                p.send(&Message::KeepAlive);
                p.last_sent = now;
                self.wake(k);
            }
        }
        let expired = match &self.assembly {
            Some(a) if self.metadata.is_none() => a.expired(now, METADATA_REQUEST_TIMEOUT),
            _ => Vec::new(),
        };
        let mut stalled: Vec<PeerKey> = Vec::new();
        for (piece, by) in expired {
            if let Some(a) = &mut self.assembly {
                a.set(piece, super::assembly::Slot::Missing);
            }
            if let Some(p) = self.peers.get_mut(&by) {
                p.in_flight = p.in_flight.saturating_sub(1);
                p.refused.insert(piece);
                tracing::debug!(peer = %p.addr, piece, "metadata request timed out");
            }
            if !stalled.contains(&by) {
                stalled.push(by);
            }
        }
        stalled.sort_unstable();
        for k in stalled {
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            p.stalls += 1;
            if p.stalls >= MAX_STALLS {
                self.doom(k, PeerError::NoMetadata("stalls on our metadata requests"));
            }
        }
        self.after_loss();
    }

    /// When [`Self::handle_timeout`] next has something to do: the earliest keep-alive,
    /// idle drop or request timeout; `None` without peers. O(peers + metadata pieces).
    #[must_use = "the shell must call handle_timeout at this time"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.config.idle_timeout;
        let keepalive = self.config.keepalive_interval;
        let peers = self
            .peers
            .values()
            .filter(|p| !p.doomed)
            .filter_map(|p| {
                let drop = p.last_recv.checked_add(idle);
                let ping = p.last_sent.checked_add(keepalive);
                drop.into_iter().chain(ping).min()
            })
            .min();
        let requests = match &self.assembly {
            Some(a) if self.metadata.is_none() => a.next_expiry(METADATA_REQUEST_TIMEOUT),
            _ => None,
        };
        peers.into_iter().chain(requests).min()
    }
}
