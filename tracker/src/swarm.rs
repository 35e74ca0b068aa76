//! One torrent's swarm: its IPv4 peers, its IPv6 peers (boxed, since most swarms have none) and
//! its completed-download count. Peers are keyed by (ip, port): a client that re-announces from a
//! new port is a second peer until the old entry expires or is stopped.

use std::hash::BuildHasher;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};

use tracker_proto::Event;

use crate::peer_set::{Entry, Peer4, Peer6, PeerSet, Upsert, meta};

/// Peers chosen for one response, per family.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PeerList {
    /// IPv4 peers.
    pub v4: Vec<SocketAddrV4>,
    /// IPv6 peers.
    pub v6: Vec<SocketAddrV6>,
}

/// What one announce needs from a swarm besides the address.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    /// Counted as a seeder (left = 0, or BEP 21 paused).
    pub seeder: bool,
    /// The event.
    pub event: Event,
    /// Peers wanted.
    pub want: usize,
    /// The random slot to start selection from.
    pub start: usize,
    /// The peer's meta tick.
    pub tick: u16,
    /// Most peers this swarm may hold per family right now.
    pub cap: usize,
}

/// What one announce did to a swarm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// The peer is (still) in the swarm.
    pub listed: bool,
    /// Net change of the peer count.
    pub peers: isize,
    /// Net change of the seeder count.
    pub seeders: isize,
}

/// One torrent's peers and counters.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    v4: PeerSet<Peer4>,
    v6: Option<Box<PeerSet<Peer6>>>,
    /// Completed downloads counted (event=completed from a peer not known as a seeder).
    pub downloaded: u64,
}

/// Selection scans a bounded stretch: enough to skip the requester, or a wider window when a
/// seeder asks for leechers only.
fn scan_len(want: usize, leechers_only: bool) -> usize {
    if leechers_only {
        want.saturating_mul(16).max(256)
    } else {
        want.saturating_add(1)
    }
}

fn step_in<E: Entry>(
    set: &mut PeerSet<E>,
    me: E::Addr,
    st: &Step,
    downloaded: &mut u64,
    out: &mut Vec<E::Addr>,
    s: &impl BuildHasher,
) -> Change {
    let (p0, s0) = (set.len() as isize, set.seeders() as isize);
    let listed = if st.event == Event::Stopped {
        set.remove(&me, s);
        false
    } else {
        let r = set.upsert(me, meta(st.seeder, st.tick), st.cap, s);
        let was_seeder = matches!(r, Upsert::Refreshed { was_seeder: true });
        if st.event == Event::Completed && !was_seeder {
            *downloaded += 1;
        }
        set.select(
            st.start,
            st.want,
            scan_len(st.want, st.seeder),
            &me,
            st.seeder,
            out,
        );
        r != Upsert::Full
    };
    Change {
        listed,
        peers: set.len() as isize - p0,
        seeders: set.seeders() as isize - s0,
    }
}

impl Swarm {
    /// Applies one announce from `addr` and appends peers of its family to `out`.
    pub(crate) fn announce(
        &mut self,
        addr: SocketAddr,
        st: &Step,
        out: &mut PeerList,
        s: &impl BuildHasher,
    ) -> Change {
        match addr {
            SocketAddr::V4(a) => step_in(&mut self.v4, a, st, &mut self.downloaded, &mut out.v4, s),
            SocketAddr::V6(a) => {
                if self.v6.is_none() && st.event == Event::Stopped {
                    return Change::default();
                }
                let set = self.v6.get_or_insert_with(Box::default);
                let a = SocketAddrV6::new(*a.ip(), a.port(), 0, 0);
                let c = step_in(set, a, st, &mut self.downloaded, &mut out.v6, s);
                if set.len() == 0 {
                    self.v6 = None;
                }
                c
            }
        }
    }

    /// Drops peers whose meta tick `expired`; returns (peers4, peers6, seeders) removed.
    pub(crate) fn sweep(
        &mut self,
        mut expired: impl FnMut(u16) -> bool,
        s: &impl BuildHasher,
    ) -> (usize, usize, usize) {
        let (p4, s4) = self.v4.sweep(&mut expired, s);
        let (mut p6, mut s6) = (0, 0);
        if let Some(set) = &mut self.v6 {
            (p6, s6) = set.sweep(&mut expired, s);
            if set.len() == 0 {
                self.v6 = None;
            }
        }
        (p4, p6, s4 + s6)
    }

    /// Peers of one family: IPv4 when `v6` is false.
    pub(crate) fn len_of(&self, v6: bool) -> usize {
        if v6 {
            self.v6.as_ref().map_or(0, |s| s.len())
        } else {
            self.v4.len()
        }
    }

    /// Seeders in both families.
    pub(crate) fn seeders(&self) -> usize {
        self.v4.seeders() + self.v6.as_ref().map_or(0, |s| s.seeders())
    }

    /// Peers in both families.
    pub(crate) fn len(&self) -> usize {
        self.len_of(false) + self.len_of(true)
    }

    /// True when no peer is left.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held by the peer sets.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes()
            + self.v6.as_ref().map_or(0, |s| {
                s.heap_bytes() + std::mem::size_of::<PeerSet<Peer6>>()
            })
    }
}
