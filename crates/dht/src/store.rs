//! The peer store: who announced which info-hash, forgotten after [`crate::Config::peer_ttl`]
//! (30 min), with caps on info-hashes and on peers per info-hash.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use metainfo::InfoHash;
use rand::Rng;
use rand::seq::SliceRandom;

/// Why an announce was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreFull {
    /// [`PeerStore`] already tracks its maximum number of info-hashes.
    InfoHashes,
}

/// Peers announced to us, per info-hash.
#[derive(Debug)]
pub struct PeerStore {
    swarms: HashMap<InfoHash, Vec<(SocketAddrV4, Instant)>>,
    max_info_hashes: usize,
    max_peers: usize,
    ttl: Duration,
}

impl PeerStore {
    /// An empty store with the given caps and expiry.
    pub fn new(max_info_hashes: usize, max_peers: usize, ttl: Duration) -> Self {
        PeerStore {
            swarms: HashMap::new(),
            max_info_hashes,
            max_peers: max_peers.max(1),
            ttl,
        }
    }

    /// Records `peer` for `info_hash` at `now`. A known peer is refreshed; when the info-hash
    /// is at its peer cap the stalest entry is replaced; a new info-hash past the cap is refused.
    pub fn announce(
        &mut self,
        info_hash: InfoHash,
        peer: SocketAddrV4,
        now: Instant,
    ) -> Result<(), StoreFull> {
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= self.max_info_hashes {
            return Err(StoreFull::InfoHashes);
        }
        let peers = self.swarms.entry(info_hash).or_default();
        if let Some(e) = peers.iter_mut().find(|(a, _)| *a == peer) {
            e.1 = now;
        } else if peers.len() < self.max_peers {
            peers.push((peer, now));
        } else if let Some(oldest) = peers.iter_mut().min_by_key(|(_, t)| *t) {
            *oldest = (peer, now);
        }
        Ok(())
    }

    /// Up to `max` live peers for `info_hash`, a random choice when there are more.
    pub fn peers(
        &self,
        info_hash: &InfoHash,
        max: usize,
        now: Instant,
        rng: &mut impl Rng,
    ) -> Vec<SocketAddrV4> {
        let Some(peers) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let live = peers
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(*t) < self.ttl)
            .map(|(a, _)| *a);
        if peers.len() <= max {
            live.collect()
        } else {
            let mut all: Vec<_> = live.collect();
            all.shuffle(rng);
            all.truncate(max);
            all
        }
    }

    /// Forgets entries older than the expiry, and info-hashes left without peers.
    pub fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.swarms.retain(|_, peers| {
            peers.retain(|(_, t)| now.saturating_duration_since(*t) < ttl);
            !peers.is_empty()
        });
    }

    /// Number of info-hashes held.
    pub fn len(&self) -> usize {
        self.swarms.len()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.swarms.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::net::Ipv4Addr;

    fn peer(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 6881)
    }

    #[test]
    fn expiry_after_ttl() {
        let mut rng = StdRng::seed_from_u64(0);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(1800);
        let mut s = PeerStore::new(10, 10, ttl);
        let h = InfoHash([1; 20]);
        s.announce(h, peer(1), t0).unwrap();
        s.announce(h, peer(2), t0 + Duration::from_secs(600))
            .unwrap();
        assert_eq!(
            s.peers(&h, 50, t0 + ttl - Duration::from_secs(1), &mut rng)
                .len(),
            2
        );
        assert_eq!(s.peers(&h, 50, t0 + ttl, &mut rng), vec![peer(2)]);
        s.expire(t0 + ttl);
        assert_eq!(s.len(), 1);
        s.expire(t0 + ttl + Duration::from_secs(600));
        assert!(s.is_empty());
    }

    #[test]
    fn reannounce_refreshes() {
        let mut rng = StdRng::seed_from_u64(0);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(100);
        let mut s = PeerStore::new(10, 10, ttl);
        let h = InfoHash([1; 20]);
        s.announce(h, peer(1), t0).unwrap();
        s.announce(h, peer(1), t0 + Duration::from_secs(90))
            .unwrap();
        assert_eq!(
            s.peers(&h, 50, t0 + Duration::from_secs(150), &mut rng),
            vec![peer(1)]
        );
    }

    #[test]
    fn caps() {
        let mut rng = StdRng::seed_from_u64(0);
        let t0 = Instant::now();
        let mut s = PeerStore::new(2, 3, Duration::from_secs(1800));
        let h = InfoHash([1; 20]);
        for n in 1..=4 {
            s.announce(h, peer(n), t0 + Duration::from_secs(u64::from(n)))
                .unwrap();
        }
        let mut got = s.peers(&h, 50, t0 + Duration::from_secs(5), &mut rng);
        got.sort();
        assert_eq!(got, vec![peer(2), peer(3), peer(4)], "stalest replaced");
        assert_eq!(s.peers(&h, 2, t0, &mut rng).len(), 2, "reply cap");
        s.announce(InfoHash([2; 20]), peer(1), t0).unwrap();
        assert_eq!(
            s.announce(InfoHash([3; 20]), peer(1), t0),
            Err(StoreFull::InfoHashes)
        );
        assert!(
            s.announce(h, peer(9), t0).is_ok(),
            "known info-hash still accepted"
        );
    }
}
