//! One iterative lookup: candidates ordered by distance to the target, at most `alpha` requests
//! in flight, finished when the `k` closest candidates that have not failed have all answered.

use std::net::SocketAddrV4;

use crate::compact::{NodeInfo, is_routable};
use crate::id::{Distance, NodeId};

/// Requests sent to one node within a lookup before it counts as failed.
const MAX_ATTEMPTS: u8 = 2;

/// Identifies a lookup in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight,
    Responded { token: Option<Vec<u8>> },
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    info: NodeInfo,
    dist: Distance,
    state: State,
    /// 0 for nodes from our table or a bootstrap node; 1 + the hop of whoever told us.
    hop: u32,
    /// Requests sent to it.
    attempts: u8,
}

/// The progress of one lookup.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub target: NodeId,
    own: NodeId,
    candidates: Vec<Candidate>,
    k: usize,
    alpha: usize,
    max_candidates: usize,
    in_flight: usize,
    /// Requests to bootstrap addresses whose ids we do not know yet.
    pub seeds_in_flight: usize,
    /// Requests sent.
    pub queries: u32,
    /// Answers received.
    pub responses: u32,
}

impl Lookup {
    /// An empty lookup for `target`; feed it candidates with [`Lookup::add`].
    pub fn new(target: NodeId, own: NodeId, k: usize, alpha: usize, max_candidates: usize) -> Self {
        Lookup {
            target,
            own,
            candidates: Vec::new(),
            k: k.max(1),
            alpha: alpha.max(1),
            max_candidates: max_candidates.max(k),
            in_flight: 0,
            seeds_in_flight: 0,
            queries: 0,
            responses: 0,
        }
    }

    /// Adds nodes learned at `hop`; ignores ourselves, unroutable addresses and known ids, and
    /// keeps only the closest `max_candidates` (plus any in flight).
    pub fn add(&mut self, nodes: &[NodeInfo], hop: u32) {
        for n in nodes {
            if n.id == self.own || !is_routable(&n.addr) {
                continue;
            }
            let dist = n.id.distance(&self.target);
            let pos = match self.candidates.binary_search_by_key(&dist, |c| c.dist) {
                Ok(_) => continue,
                Err(pos) => pos,
            };
            if pos >= self.max_candidates {
                continue;
            }
            self.candidates.insert(
                pos,
                Candidate {
                    info: *n,
                    dist,
                    state: State::Fresh,
                    hop,
                    attempts: 0,
                },
            );
        }
        let mut i = self.candidates.len();
        while self.candidates.len() > self.max_candidates && i > self.max_candidates {
            i -= 1;
            if self
                .candidates
                .get(i)
                .is_some_and(|c| c.state != State::InFlight)
            {
                self.candidates.remove(i);
            }
        }
    }

    /// The next node to query, if the parallelism limit allows one and a fresh candidate is
    /// among the `k` closest that have not failed. Marks it in flight.
    pub fn next(&mut self) -> Option<NodeInfo> {
        if self.in_flight >= self.alpha {
            return None;
        }
        let mut rank = 0;
        for c in &mut self.candidates {
            if rank >= self.k {
                break;
            }
            match c.state {
                State::Failed => continue,
                State::Fresh => {
                    c.state = State::InFlight;
                    c.attempts = c.attempts.saturating_add(1);
                    self.in_flight += 1;
                    self.queries += 1;
                    return Some(c.info);
                }
                _ => rank += 1,
            }
        }
        None
    }

    /// True when the `k` closest non-failed candidates have all answered and no bootstrap
    /// request is pending.
    pub fn is_done(&self) -> bool {
        if self.seeds_in_flight > 0 {
            return false;
        }
        self.candidates
            .iter()
            .filter(|c| c.state != State::Failed)
            .take(self.k)
            .all(|c| matches!(c.state, State::Responded { .. }))
    }

    fn find(&mut self, id: &NodeId, addr: &SocketAddrV4) -> Option<&mut Candidate> {
        let dist = id.distance(&self.target);
        let pos = self
            .candidates
            .binary_search_by_key(&dist, |c| c.dist)
            .ok()?;
        self.candidates
            .get_mut(pos)
            .filter(|c| c.info.addr == *addr)
    }

    /// Records an answer from `from` (a candidate, or a bootstrap node when `seed`) carrying
    /// `nodes` and maybe a `token`.
    pub fn responded(
        &mut self,
        from: NodeInfo,
        seed: bool,
        nodes: &[NodeInfo],
        token: Option<Vec<u8>>,
    ) {
        self.responses += 1;
        if seed {
            self.seeds_in_flight = self.seeds_in_flight.saturating_sub(1);
            self.add(&[from], 0);
        } else {
            self.in_flight = self.in_flight.saturating_sub(1);
        }
        let hop = match self.find(&from.id, &from.addr) {
            Some(c) => {
                c.state = State::Responded { token };
                c.hop + 1
            }
            None => 1,
        };
        self.add(nodes, hop);
    }

    /// Records that a request to `node` (or to a bootstrap node when `seed`) failed. With
    /// `retry` (a timeout: the packet may just have been lost) a node asked only once is
    /// asked once more; otherwise it is out of the lookup.
    pub fn failed(&mut self, node: Option<NodeInfo>, seed: bool, retry: bool) {
        if seed {
            self.seeds_in_flight = self.seeds_in_flight.saturating_sub(1);
            return;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(n) = node
            && let Some(c) = self.find(&n.id, &n.addr)
        {
            c.state = if retry && c.attempts < MAX_ATTEMPTS {
                State::Fresh
            } else {
                State::Failed
            };
        }
    }

    /// The `n` closest nodes that answered, with the token each gave (if any).
    pub fn closest_responded(&self, n: usize) -> Vec<(NodeInfo, Option<&[u8]>)> {
        self.candidates
            .iter()
            .filter_map(|c| match &c.state {
                State::Responded { token } => Some((c.info, token.as_deref())),
                _ => None,
            })
            .take(n)
            .collect()
    }

    /// Sequential round trips that led to the closest answers: 1 + the deepest hop among the
    /// `k` closest responders.
    pub fn rounds(&self) -> u32 {
        self.candidates
            .iter()
            .filter(|c| matches!(c.state, State::Responded { .. }))
            .take(self.k)
            .map(|c| c.hop + 1)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "lookup_tests.rs"]
mod tests;
