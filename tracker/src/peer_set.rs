//! A compact set of peers of one address family: a dense `Vec` of packed entries plus, once it
//! holds more than [`SMALL`] peers, a hash index from address to slot (smaller sets are scanned,
//! which saves the index's memory in the many tiny swarms a tracker holds). Removal is `swap_remove` with one index fix-up; random selection
//! is a random start in the dense `Vec` and a wrapping scan.
//!
//! An entry packs the address, a seeder bit and a 15-bit "last seen" tick (see `store.rs`);
//! an IPv4 entry is one `u64`, so with the index a peer costs about 8 + 5 bytes plus growth slack.

use std::hash::BuildHasher;
use std::net::{Ipv6Addr, SocketAddrV4, SocketAddrV6};

use hashbrown::HashTable;

/// Sets up to this size have no index; lookups scan the dense `Vec`.
const SMALL: usize = 16;

/// Seeder flag in an entry's 16-bit meta word.
const SEEDER: u16 = 0x8000;
/// Tick bits in an entry's 16-bit meta word.
pub(crate) const TICK_MASK: u16 = 0x7fff;

/// A packed peer of one family.
pub(crate) trait Entry: Copy {
    /// The peer's address.
    type Addr: Copy + Eq;
    /// Packs an address with a meta word.
    fn pack(addr: Self::Addr, meta: u16) -> Self;
    /// The address.
    fn addr(&self) -> Self::Addr;
    /// True when this entry is `addr` (cheaper than unpacking).
    fn is(&self, addr: &Self::Addr) -> bool;
    /// Hashes an address for the index.
    fn hash(addr: &Self::Addr, s: &impl BuildHasher) -> u64;
    /// The seeder bit and tick.
    fn meta(&self) -> u16;
    /// Replaces the seeder bit and tick.
    fn set_meta(&mut self, meta: u16);
}

/// An IPv4 peer: ip (32 bits), port (16), meta (16) in one `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer4(u64);

fn key4(a: &SocketAddrV4) -> u64 {
    (u64::from(a.ip().to_bits()) << 32) | (u64::from(a.port()) << 16)
}

impl Entry for Peer4 {
    type Addr = SocketAddrV4;
    fn pack(addr: SocketAddrV4, meta: u16) -> Peer4 {
        Peer4(key4(&addr) | u64::from(meta))
    }
    fn addr(&self) -> SocketAddrV4 {
        SocketAddrV4::new(((self.0 >> 32) as u32).into(), (self.0 >> 16) as u16)
    }
    fn is(&self, addr: &SocketAddrV4) -> bool {
        self.0 & !0xffff == key4(addr)
    }
    fn hash(addr: &SocketAddrV4, s: &impl BuildHasher) -> u64 {
        s.hash_one(key4(addr))
    }
    fn meta(&self) -> u16 {
        self.0 as u16
    }
    fn set_meta(&mut self, meta: u16) {
        self.0 = (self.0 & !0xffff) | u64::from(meta);
    }
}

/// An IPv6 peer: 16 address bytes, port and meta; 20 bytes, no padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer6 {
    ip: [u8; 16],
    port: u16,
    meta: u16,
}

impl Entry for Peer6 {
    type Addr = SocketAddrV6;
    fn pack(addr: SocketAddrV6, meta: u16) -> Peer6 {
        Peer6 {
            ip: addr.ip().octets(),
            port: addr.port(),
            meta,
        }
    }
    fn addr(&self) -> SocketAddrV6 {
        SocketAddrV6::new(Ipv6Addr::from(self.ip), self.port, 0, 0)
    }
    fn is(&self, addr: &SocketAddrV6) -> bool {
        self.port == addr.port() && self.ip == addr.ip().octets()
    }
    fn hash(addr: &SocketAddrV6, s: &impl BuildHasher) -> u64 {
        s.hash_one((addr.ip().to_bits(), addr.port()))
    }
    fn meta(&self) -> u16 {
        self.meta
    }
    fn set_meta(&mut self, meta: u16) {
        self.meta = meta;
    }
}

/// The meta word for a seeder flag and tick.
pub(crate) fn meta(seeder: bool, tick: u16) -> u16 {
    (if seeder { SEEDER } else { 0 }) | (tick & TICK_MASK)
}

/// True when the meta word marks a seeder.
pub(crate) fn is_seeder(meta: u16) -> bool {
    meta & SEEDER != 0
}

/// What [`PeerSet::upsert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upsert {
    /// A new peer was added.
    Added,
    /// A known peer was refreshed; it was a seeder before if `was_seeder`.
    Refreshed {
        /// The peer's previous seeder bit.
        was_seeder: bool,
    },
    /// The peer is new but the set is at its cap; nothing changed.
    Full,
}

/// The peers of one family in one swarm.
#[derive(Debug)]
pub(crate) struct PeerSet<E> {
    dense: Vec<E>,
    index: HashTable<u32>,
    seeders: u32,
}

impl<E> Default for PeerSet<E> {
    fn default() -> Self {
        PeerSet {
            dense: Vec::new(),
            index: HashTable::new(),
            seeders: 0,
        }
    }
}

impl<E: Entry> PeerSet<E> {
    /// Number of peers.
    pub(crate) fn len(&self) -> usize {
        self.dense.len()
    }

    /// Number of seeders.
    pub(crate) fn seeders(&self) -> usize {
        self.seeders as usize
    }

    fn slot_of(&self, addr: &E::Addr, s: &impl BuildHasher) -> Option<usize> {
        let dense = &self.dense;
        if self.index.is_empty() {
            return dense.iter().position(|e| e.is(addr));
        }
        self.index
            .find(E::hash(addr, s), |&i| {
                dense.get(i as usize).is_some_and(|e| e.is(addr))
            })
            .map(|&i| i as usize)
    }

    /// Adds `addr` or refreshes its meta word; refuses a new peer once `cap` peers are held.
    pub(crate) fn upsert(
        &mut self,
        addr: E::Addr,
        meta_word: u16,
        cap: usize,
        s: &impl BuildHasher,
    ) -> Upsert {
        if let Some(i) = self.slot_of(&addr, s) {
            let Some(e) = self.dense.get_mut(i) else {
                return Upsert::Full;
            };
            let was_seeder = is_seeder(e.meta());
            e.set_meta(meta_word);
            match (was_seeder, is_seeder(meta_word)) {
                (false, true) => self.seeders += 1,
                (true, false) => self.seeders -= 1,
                _ => {}
            }
            return Upsert::Refreshed { was_seeder };
        }
        let cap = cap.min(u32::MAX as usize);
        if self.dense.len() >= cap {
            return Upsert::Full;
        }
        let slot = self.dense.len() as u32;
        self.dense.push(E::pack(addr, meta_word));
        if !self.index.is_empty() {
            let dense = &self.dense;
            self.index.insert_unique(E::hash(&addr, s), slot, |&i| {
                dense.get(i as usize).map_or(0, |e| E::hash(&e.addr(), s))
            });
        } else if self.dense.len() > SMALL {
            self.build_index(s);
        }
        if is_seeder(meta_word) {
            self.seeders += 1;
        }
        Upsert::Added
    }

    /// Removes `addr`; returns its meta word if it was present.
    pub(crate) fn remove(&mut self, addr: &E::Addr, s: &impl BuildHasher) -> Option<u16> {
        let slot = self.slot_of(addr, s)?;
        Some(self.remove_slot(slot, s))
    }

    /// Indexes every entry (the index is either empty or complete).
    fn build_index(&mut self, s: &impl BuildHasher) {
        let dense = &self.dense;
        let hasher = |&i: &u32| dense.get(i as usize).map_or(0, |e| E::hash(&e.addr(), s));
        let mut index = HashTable::with_capacity(dense.len());
        for (i, e) in dense.iter().enumerate() {
            index.insert_unique(E::hash(&e.addr(), s), i as u32, hasher);
        }
        self.index = index;
    }

    fn remove_slot(&mut self, slot: usize, s: &impl BuildHasher) -> u16 {
        let Some(gone) = self.dense.get(slot).copied() else {
            return 0;
        };
        if self.index.is_empty() {
            self.dense.swap_remove(slot);
            self.seeders -= u32::from(is_seeder(gone.meta()));
            return gone.meta();
        }
        if let Ok(entry) = self
            .index
            .find_entry(E::hash(&gone.addr(), s), |&i| i as usize == slot)
        {
            entry.remove();
        }
        let last = self.dense.len() - 1;
        self.dense.swap_remove(slot);
        if slot != last
            && let Some(moved) = self.dense.get(slot)
        {
            let h = E::hash(&moved.addr(), s);
            if let Some(i) = self.index.find_mut(h, |&i| i as usize == last) {
                *i = slot as u32;
            }
        }
        self.seeders -= u32::from(is_seeder(gone.meta()));
        if self.dense.len() <= SMALL / 2 {
            // Back to scanning; the gap to SMALL keeps a set near the edge from rebuilding often.
            self.index = HashTable::new();
        }
        gone.meta()
    }

    /// Removes peers for which `expired(meta)` holds; returns (peers, seeders) removed.
    pub(crate) fn sweep(
        &mut self,
        mut expired: impl FnMut(u16) -> bool,
        s: &impl BuildHasher,
    ) -> (usize, usize) {
        let (mut peers, mut seeders) = (0, 0);
        let mut i = 0;
        while let Some(e) = self.dense.get(i) {
            if expired(e.meta()) {
                let m = self.remove_slot(i, s);
                peers += 1;
                seeders += usize::from(is_seeder(m));
            } else {
                i += 1;
            }
        }
        if peers > 0 {
            self.shrink(s);
        }
        (peers, seeders)
    }

    /// Gives memory back once the set has shrunk to a quarter of its capacity.
    fn shrink(&mut self, s: &impl BuildHasher) {
        let len = self.dense.len();
        if self.dense.capacity() > 16 && len < self.dense.capacity() / 4 {
            self.dense.shrink_to(len * 2);
            if !self.index.is_empty() {
                let dense = &self.dense;
                self.index.shrink_to(len * 2, |&i| {
                    dense.get(i as usize).map_or(0, |e| E::hash(&e.addr(), s))
                });
            }
        }
    }

    /// Appends up to `want` addresses, scanning at most `scan` entries from slot `start`
    /// (wrapping), skipping `me` and, when `leechers_only`, seeders.
    pub(crate) fn select(
        &self,
        start: usize,
        want: usize,
        scan: usize,
        me: &E::Addr,
        leechers_only: bool,
        out: &mut Vec<E::Addr>,
    ) {
        let n = self.dense.len();
        if n == 0 || want == 0 {
            return;
        }
        let start = start % n;
        let (tail, head) = self.dense.split_at(start);
        let mut taken = 0;
        for e in head.iter().chain(tail).take(scan.min(n)) {
            if e.is(me) || (leechers_only && is_seeder(e.meta())) {
                continue;
            }
            out.push(e.addr());
            taken += 1;
            if taken == want {
                break;
            }
        }
    }

    /// Heap bytes held (dense storage plus index), for memory reports.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.dense.capacity() * std::mem::size_of::<E>() + self.index.allocation_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hashbrown::DefaultHashBuilder;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    fn a4(i: u32, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(i), port)
    }

    #[test]
    fn packs_and_unpacks() {
        let a = a4(0xfffe_fdfc, 65535);
        let p = Peer4::pack(a, meta(true, 0x1234));
        assert_eq!(p.addr(), a);
        assert!(p.is(&a) && is_seeder(p.meta()) && p.meta() & TICK_MASK == 0x1234);
        let a6 = SocketAddrV6::new(Ipv6Addr::LOCALHOST, 7, 0, 0);
        assert_eq!(Peer6::pack(a6, 0).addr(), a6);
        assert_eq!(std::mem::size_of::<Peer6>(), 20);
    }

    #[test]
    fn cap_and_seeder_counts() {
        let s = DefaultHashBuilder::default();
        let mut set = PeerSet::<Peer4>::default();
        assert_eq!(set.upsert(a4(1, 1), meta(true, 0), 2, &s), Upsert::Added);
        assert_eq!(set.upsert(a4(2, 1), meta(false, 0), 2, &s), Upsert::Added);
        assert_eq!(set.upsert(a4(3, 1), meta(false, 0), 2, &s), Upsert::Full);
        assert_eq!(
            set.upsert(a4(1, 1), meta(false, 1), 2, &s),
            Upsert::Refreshed { was_seeder: true }
        );
        assert_eq!((set.len(), set.seeders()), (2, 0));
    }

    #[test]
    fn select_skips_me_and_wraps() {
        let s = DefaultHashBuilder::default();
        let mut set = PeerSet::<Peer4>::default();
        for i in 0..5 {
            set.upsert(a4(i, 1), meta(i % 2 == 0, 0), 10, &s);
        }
        let mut out = Vec::new();
        set.select(3, 10, 10, &a4(4, 1), false, &mut out);
        assert_eq!(out, vec![a4(3, 1), a4(0, 1), a4(1, 1), a4(2, 1)]);
        out.clear();
        set.select(0, 10, 10, &a4(9, 1), true, &mut out);
        assert_eq!(out, vec![a4(1, 1), a4(3, 1)]);
        out.clear();
        set.select(0, 2, 10, &a4(9, 1), false, &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn index_is_built_and_dropped_at_the_thresholds() {
        let s = DefaultHashBuilder::default();
        let mut set = PeerSet::<Peer4>::default();
        for i in 0..=SMALL as u32 {
            set.upsert(a4(i, 1), meta(false, 0), usize::MAX, &s);
            assert_eq!(set.index.is_empty(), set.len() <= SMALL);
        }
        for i in 0..=SMALL as u32 {
            assert_eq!(
                set.slot_of(&a4(i, 1), &s).map(|j| set.dense[j].addr()),
                Some(a4(i, 1))
            );
        }
        while set.len() > SMALL / 2 {
            let a = set.dense[0].addr();
            assert!(!set.index.is_empty());
            set.remove(&a, &s);
        }
        assert!(set.index.is_empty());
        assert!(set.slot_of(&set.dense[3].addr(), &s) == Some(3));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u8, bool),
        Remove(u8),
        Sweep(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), any::<bool>()).prop_map(|(k, s)| Op::Upsert(k, s)),
            any::<u8>().prop_map(Op::Remove),
            (0u16..50).prop_map(Op::Sweep),
        ]
    }

    proptest! {
        /// The set agrees with a plain map after any sequence of operations.
        #[test]
        fn matches_a_model(ops in proptest::collection::vec(op(), 0..300)) {
            let s = DefaultHashBuilder::default();
            let mut set = PeerSet::<Peer4>::default();
            let mut model: HashMap<SocketAddrV4, u16> = HashMap::new();
            for (t, op) in ops.into_iter().enumerate() {
                let tick = (t % 100) as u16;
                match op {
                    Op::Upsert(k, seed) => {
                        let a = a4(u32::from(k) * 7, u16::from(k));
                        set.upsert(a, meta(seed, tick), usize::MAX, &s);
                        model.insert(a, meta(seed, tick));
                    }
                    Op::Remove(k) => {
                        let a = a4(u32::from(k) * 7, u16::from(k));
                        prop_assert_eq!(set.remove(&a, &s), model.remove(&a));
                    }
                    Op::Sweep(below) => {
                        set.sweep(|m| m & TICK_MASK < below, &s);
                        model.retain(|_, m| *m & TICK_MASK >= below);
                    }
                }
                prop_assert_eq!(set.len(), model.len());
                prop_assert_eq!(set.seeders(), model.values().filter(|m| is_seeder(**m)).count());
            }
            for (a, m) in &model {
                prop_assert_eq!(set.slot_of(a, &s).map(|i| set.dense[i].meta()), Some(*m));
            }
        }
    }
}
