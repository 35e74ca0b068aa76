//! Timers: choking rounds, keep-alives, idle and snubbing peers, peer exchange, and retrying
//! request fills that found nothing to ask for.
//!
//! Deadlines, not sweeps: [`Torrent::poll_timeout`] answers the next instant anything here is
//! due, in O(1). Per-peer deadlines (keep-alive, idle, request timeout, PEX) are summarised by
//! one cached instant that every input able to create an earlier deadline lowers (a peer added,
//! a message received, requests sent, PEX scheduled) and that [`Torrent::handle_timeout`]
//! recomputes exactly in the pass it makes over the peers anyway. Inputs that only move a
//! deadline later (bytes sent, blocks received) leave it alone: the cache may then be early,
//! never late, and an early run finds nothing due and recomputes it.

use std::time::{Duration, Instant};

use metainfo::BlockRef;
use wire::Message;

use super::{Config, Event, PeerError, Torrent};
use crate::peer::{Peer, PeerKey};

/// How long after a request fill that left a peer short of its pipeline target (the picker had
/// nothing more for it) `handle_timeout` tries again. Most changes that free blocks fill at
/// once; this catches the rest (end-game duplicates for a peer that became idle, a growing cap
/// on pieces in progress) as the one-second timer sweep used to.
pub(super) const REFILL_RETRY: Duration = Duration::from_secs(1);

/// `start + after`, if representable (a huge configured timeout never fires).
fn deadline(start: Instant, after: Duration) -> Option<Instant> {
    start.checked_add(after)
}

/// Is `start + after` reached at `now`?
fn due(start: Instant, after: Duration, now: Instant) -> bool {
    deadline(start, after).is_some_and(|at| now >= at)
}

/// The earliest instant `handle_timeout` has something to do for `p`: keep-alive, idle drop,
/// request timeout, PEX message.
pub(super) fn peer_deadline(p: &Peer, config: &Config) -> Option<Instant> {
    // Past its idle deadline a peer gets no keep-alive; once reported idle, nothing more.
    let idle = (!p.idle_reported)
        .then(|| {
            let idle = deadline(p.last_recv, config.idle_timeout);
            let keepalive = deadline(p.last_sent, config.keepalive_interval);
            earliest(idle, keepalive)
        })
        .flatten();
    let request = p
        .waiting_since
        .and_then(|t| deadline(t, config.request_timeout));
    let pex = p.pex_due.filter(|_| !config.private && p.ut_pex.is_some());
    earliest(earliest(idle, request), pex)
}

/// The earlier of two optional instants (`None` is "never").
pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Torrent {
    /// Runs every timer due at `now`: choking rounds and snubs, keep-alives, idle peers,
    /// request timeouts, PEX messages, and request fills to retry. Called early it does only
    /// what is due; called late it catches up (each timer fires once, not once per period
    /// missed).
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.choker.poll_timeout() {
            self.choker.handle_timeout(now, &mut self.rng);
            self.apply_choker();
        }
        let mut gone = Vec::new();
        let mut snubbed = Vec::new();
        let mut keepalive = Vec::new();
        let config = &self.config;
        for (k, p) in &self.peers {
            if due(p.last_recv, config.idle_timeout, now) {
                if !p.idle_reported {
                    gone.push(*k);
                }
            } else if due(p.last_sent, config.keepalive_interval, now) {
                keepalive.push(*k);
            }
            if p.waiting_since
                .is_some_and(|t| due(t, config.request_timeout, now))
            {
                snubbed.push(*k);
            }
        }
        for k in gone {
            if let Some(p) = self.peers.get_mut(&k) {
                p.idle_reported = true;
            }
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
            for &b in &dropped {
                p.send(&Message::Cancel(b.into()));
            }
            for b in dropped {
                self.picker.request_dropped(b);
            }
            self.wake(k);
        }
        self.send_pex(now);
        // Every peer is filled now; those still short schedule the next retry.
        self.refill_at = None;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill_requests(k, now);
        }
        self.timer_due = self
            .peers
            .values()
            .filter_map(|p| peer_deadline(p, &self.config))
            .min();
    }

    /// When [`Torrent::handle_timeout`] must next run; `None` when nothing is scheduled (no
    /// peers). Ask again after every call into the torrent: inputs can bring it forward.
    ///
    /// Contract: never later than the earliest real deadline (a keep-alive, an idle peer, a
    /// request timeout, a PEX message, a choking round or snub, a request fill to retry); it
    /// may be earlier, and a run that finds nothing due is harmless. O(1).
    #[must_use = "handle_timeout must run by this instant"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.peers.is_empty() {
            // Nothing to time out; an idle torrent (a seed among thousands) sleeps.
            return None;
        }
        let due = earliest(self.timer_due, self.refill_at);
        earliest(due, Some(self.choker.poll_timeout()))
    }

    /// A timer of `key` may have been set earlier than the cached deadline: lower it.
    pub(super) fn note_timers(&mut self, key: PeerKey) {
        if let Some(p) = self.peers.get(&key) {
            self.timer_due = earliest(self.timer_due, peer_deadline(p, &self.config));
        }
    }
}

/// A fill at `now` left a peer short of its target: try again [`REFILL_RETRY`] later.
pub(super) fn retry_fill(refill_at: &mut Option<Instant>, now: Instant) {
    *refill_at = earliest(*refill_at, now.checked_add(REFILL_RETRY));
}
