//! The routing table (BEP 5): buckets of at most `k` nodes by shared id prefix with our own id,
//! where only the bucket holding our own id is ever split, a replacement cache of `k` per bucket,
//! the good / questionable / bad rules, and at most one entry per IP address.
//!
//! Bucket `i < last` holds the nodes sharing exactly `i` leading bits with us; the last bucket
//! holds every node sharing at least `last` bits (it is the one that contains our id and splits).
//! A node is *good* if it answered us within [`GOOD_FOR`] (15 min), or answered us once and
//! queried us within that time; *bad* after [`BAD_AFTER_FAILURES`] failures in a row; otherwise
//! *questionable*. A full bucket takes a new node only in place of a bad one; otherwise the
//! newcomer waits in the replacement cache while the table asks the caller to ping the least
//! recently seen questionable node, which is evicted after failing twice.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::compact::{NodeInfo, is_routable};
use crate::id::{ID_BITS, NodeId};

/// How long a response keeps a node good.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Failures in a row that make a node bad.
pub const BAD_AFTER_FAILURES: u8 = 2;
/// A ping still unanswered after this is forgotten (the request timed out or was never sent).
const PING_STALE: Duration = Duration::from_secs(30);

/// How a node was heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// It answered one of our queries.
    Response,
    /// It sent us a query.
    Query,
}

/// A node's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Answered recently.
    Good,
    /// Not heard from lately; ping before trusting or evicting.
    Questionable,
    /// Failed repeatedly; replace.
    Bad,
}

#[derive(Debug, Clone)]
struct Entry {
    info: NodeInfo,
    last_response: Option<Instant>,
    last_query: Option<Instant>,
    failures: u8,
}

impl Entry {
    fn new(info: NodeInfo, how: Heard, now: Instant) -> Self {
        let mut e = Entry {
            info,
            last_response: None,
            last_query: None,
            failures: 0,
        };
        e.touch(how, now);
        e
    }

    fn touch(&mut self, how: Heard, now: Instant) {
        match how {
            Heard::Response => {
                self.last_response = Some(now);
                self.failures = 0;
            }
            Heard::Query => self.last_query = Some(now),
        }
    }

    fn status(&self, now: Instant) -> Status {
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < GOOD_FOR);
        if self.failures >= BAD_AFTER_FAILURES {
            Status::Bad
        } else if recent(self.last_response)
            || (self.last_response.is_some() && recent(self.last_query))
        {
            Status::Good
        } else {
            Status::Questionable
        }
    }

    fn last_seen(&self) -> Option<Instant> {
        self.last_response.max(self.last_query)
    }
}

#[derive(Debug)]
struct Bucket {
    live: Vec<Entry>,
    replacements: Vec<Entry>,
    last_changed: Instant,
    pinging: Option<(NodeId, Instant)>,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Bucket {
            live: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
            pinging: None,
        }
    }

    /// The least recently seen questionable node, to ping (unless a ping is already out).
    fn next_ping(&mut self, now: Instant) -> Option<NodeInfo> {
        if self.replacements.is_empty() {
            return None;
        }
        if let Some((_, at)) = self.pinging
            && now.saturating_duration_since(at) < PING_STALE
        {
            return None;
        }
        let e = self
            .live
            .iter()
            .filter(|e| e.status(now) == Status::Questionable)
            .min_by_key(|e| e.last_seen())?;
        self.pinging = Some((e.info.id, now));
        Some(e.info)
    }
}

/// The routing table of one node.
#[derive(Debug)]
pub struct RoutingTable {
    own: NodeId,
    k: usize,
    buckets: Vec<Bucket>,
    /// Every IP in the table (live or replacement) and the id it holds.
    ips: HashMap<Ipv4Addr, NodeId>,
}

impl RoutingTable {
    /// An empty table for `own` with buckets of `k`.
    pub fn new(own: NodeId, k: usize, now: Instant) -> Self {
        RoutingTable {
            own,
            k: k.max(1),
            buckets: vec![Bucket::new(now)],
            ips: HashMap::new(),
        }
    }

    fn index(&self, id: &NodeId) -> usize {
        self.own
            .common_prefix_len(id)
            .min(self.buckets.len().saturating_sub(1))
    }

    /// Number of good or questionable nodes in the buckets (replacements not counted).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.live.len()).sum()
    }

    /// True when no node is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of buckets (1 to 160).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// The standing of a live node, if it is in the table.
    pub fn status(&self, id: &NodeId, now: Instant) -> Option<Status> {
        let b = self.buckets.get(self.index(id))?;
        b.live
            .iter()
            .find(|e| e.info.id == *id)
            .map(|e| e.status(now))
    }

    /// Records that `info` was heard from. Returns a node the caller should ping (a
    /// questionable node standing in the way of a newcomer), if any.
    pub fn heard(&mut self, info: NodeInfo, how: Heard, now: Instant) -> Option<NodeInfo> {
        if info.id == self.own || !is_routable(&info.addr) {
            return None;
        }
        let ip = *info.addr.ip();
        if let Some(holder) = self.ips.get(&ip)
            && *holder != info.id
        {
            return None; // one entry per IP: the first holder keeps it
        }
        loop {
            let idx = self.index(&info.id);
            let last = self.buckets.len() - 1;
            let splittable = idx == last && self.buckets.len() < ID_BITS;
            let k = self.k;
            let bucket = self.buckets.get_mut(idx)?;
            if let Some(e) = bucket.live.iter_mut().find(|e| e.info.id == info.id) {
                if e.info.addr != info.addr {
                    return None; // an id does not move without proof; keep the old address
                }
                e.touch(how, now);
                if how == Heard::Response {
                    bucket.last_changed = now;
                    if bucket.pinging.is_some_and(|(id, _)| id == info.id) {
                        bucket.pinging = None;
                        return bucket.next_ping(now);
                    }
                }
                return None;
            }
            if let Some(e) = bucket
                .replacements
                .iter_mut()
                .find(|e| e.info.id == info.id)
            {
                if e.info.addr == info.addr {
                    e.touch(how, now);
                }
                return None;
            }
            if bucket.live.len() < k {
                bucket.live.push(Entry::new(info, how, now));
                bucket.last_changed = now;
                self.ips.insert(ip, info.id);
                return None;
            }
            if splittable {
                self.split();
                continue;
            }
            if how == Heard::Response
                && let Some(pos) = bucket
                    .live
                    .iter()
                    .position(|e| e.status(now) == Status::Bad)
            {
                let old = std::mem::replace(&mut bucket.live[pos], Entry::new(info, how, now));
                bucket.last_changed = now;
                self.ips.remove(old.info.addr.ip());
                self.ips.insert(ip, info.id);
                return None;
            }
            if bucket.replacements.len() >= k {
                // Drop the replacement heard from longest ago.
                let oldest = bucket
                    .replacements
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.last_seen())
                    .map(|(i, _)| i)?;
                let old = bucket.replacements.swap_remove(oldest);
                self.ips.remove(old.info.addr.ip());
            }
            bucket.replacements.push(Entry::new(info, how, now));
            self.ips.insert(ip, info.id);
            return bucket.next_ping(now);
        }
    }

    /// Splits the last bucket: nodes sharing more bits with us move to a new last bucket.
    fn split(&mut self) {
        let own = self.own;
        let depth = self.buckets.len();
        let Some(old) = self.buckets.last_mut() else {
            return;
        };
        let mut new = Bucket::new(old.last_changed);
        let moves = |e: &Entry| own.common_prefix_len(&e.info.id) >= depth;
        let (go, stay): (Vec<_>, Vec<_>) = old.live.drain(..).partition(moves);
        old.live = stay;
        new.live = go;
        let (go, stay): (Vec<_>, Vec<_>) = old.replacements.drain(..).partition(moves);
        old.replacements = stay;
        new.replacements = go;
        // Promote replacements into room the split made.
        for b in [&mut *old, &mut new] {
            while b.live.len() < self.k && !b.replacements.is_empty() {
                let e = b.replacements.remove(0);
                b.live.push(e);
            }
        }
        self.buckets.push(new);
    }

    /// Records a failed request to `id`. After [`BAD_AFTER_FAILURES`] the node is bad and is
    /// replaced by the freshest replacement, if any. Returns a node to ping: the same node again
    /// after its first failed ping (BEP 5: try twice), or the next questionable one.
    pub fn failed(&mut self, id: &NodeId, now: Instant) -> Option<NodeInfo> {
        let idx = self.index(id);
        let bucket = self.buckets.get_mut(idx)?;
        let pos = bucket.live.iter().position(|e| e.info.id == *id)?;
        let was_pinged = bucket.pinging.is_some_and(|(p, _)| p == *id);
        let e = bucket.live.get_mut(pos)?;
        e.failures = e.failures.saturating_add(1);
        if e.status(now) != Status::Bad {
            if was_pinged {
                bucket.pinging = Some((*id, now));
                return Some(e.info);
            }
            return None;
        }
        if was_pinged {
            bucket.pinging = None;
        }
        // Prefer a replacement that has answered us, then the most recently seen.
        let best = bucket
            .replacements
            .iter()
            .enumerate()
            .max_by_key(|(_, e)| (e.last_response.is_some(), e.last_seen()))
            .map(|(i, _)| i);
        if let Some(r) = best {
            let fresh = bucket.replacements.swap_remove(r);
            let old = std::mem::replace(&mut bucket.live[pos], fresh);
            bucket.last_changed = now;
            self.ips.remove(old.info.addr.ip());
        }
        bucket.next_ping(now)
    }

    /// Up to `n` good or questionable nodes closest to `target`, closest first.
    pub fn closest(&self, target: &NodeId, n: usize, now: Instant) -> Vec<NodeInfo> {
        let mut all: Vec<(crate::id::Distance, NodeInfo)> = self
            .buckets
            .iter()
            .flat_map(|b| b.live.iter())
            .filter(|e| e.status(now) != Status::Bad)
            .map(|e| (e.info.id.distance(target), e.info))
            .collect();
        if all.len() > n && n > 0 {
            all.select_nth_unstable_by_key(n - 1, |(d, _)| *d);
            all.truncate(n);
        }
        all.sort_unstable_by_key(|(d, _)| *d);
        all.truncate(n);
        all.into_iter().map(|(_, i)| i).collect()
    }

    /// Buckets unchanged for `idle`: their indices, marked as refreshed at `now`. The caller
    /// looks up a random id in each (see [`NodeId::random_with_prefix`]).
    pub fn take_stale(&mut self, idle: Duration, now: Instant) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, b) in self.buckets.iter_mut().enumerate() {
            if now.saturating_duration_since(b.last_changed) >= idle {
                b.last_changed = now;
                out.push(i);
            }
        }
        out
    }

    /// Questionable nodes to ping in buckets that have newcomers waiting.
    pub fn pings_due(&mut self, now: Instant) -> Vec<NodeInfo> {
        self.buckets
            .iter_mut()
            .filter_map(|b| b.next_ping(now))
            .collect()
    }
}

#[cfg(test)]
#[path = "routing_tests.rs"]
mod tests;
