//! 160-bit node ids and the XOR metric that orders them.

use std::fmt;

use metainfo::InfoHash;
use rand::Rng;

/// Bits in a node id.
pub const ID_BITS: usize = 160;

/// A node's 160-bit id; info-hashes live in the same space.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 20]);

/// The XOR distance between two ids; compares as a 160-bit big-endian number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; 20]);

impl NodeId {
    /// A uniformly random id.
    pub fn random(rng: &mut impl Rng) -> Self {
        let mut b = [0u8; 20];
        rng.fill(&mut b);
        NodeId(b)
    }

    /// Exactly 20 bytes, or `None`.
    pub fn from_slice(b: &[u8]) -> Option<Self> {
        <[u8; 20]>::try_from(b).ok().map(NodeId)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// XOR distance to `other`.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut d = [0u8; 20];
        for (i, out) in d.iter_mut().enumerate() {
            *out = self.0[i] ^ other.0[i];
        }
        Distance(d)
    }

    /// Number of leading bits shared with `other` (160 when equal).
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        self.distance(other).leading_zeros()
    }

    /// Bit `i` counted from the most significant bit (`i < 160`).
    fn bit(&self, i: usize) -> bool {
        self.0
            .get(i / 8)
            .is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    }

    /// A random id that shares exactly `prefix` leading bits with `self` (all 160 when
    /// `prefix >= 160`): a target inside routing bucket `prefix`.
    pub fn random_with_prefix(&self, prefix: usize, rng: &mut impl Rng) -> Self {
        let mut out = NodeId::random(rng);
        for i in 0..prefix.min(ID_BITS) {
            out.set_bit(i, self.bit(i));
        }
        if prefix < ID_BITS {
            out.set_bit(prefix, !self.bit(prefix));
        }
        out
    }

    fn set_bit(&mut self, i: usize, v: bool) {
        if let Some(b) = self.0.get_mut(i / 8) {
            let mask = 0x80 >> (i % 8);
            if v {
                *b |= mask;
            } else {
                *b &= !mask;
            }
        }
    }
}

impl Distance {
    /// Leading zero bits (160 for distance zero).
    pub fn leading_zeros(&self) -> usize {
        let mut n = 0;
        for b in self.0 {
            if b == 0 {
                n += 8;
            } else {
                return n + b.leading_zeros() as usize;
            }
        }
        n
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

impl From<NodeId> for InfoHash {
    fn from(id: NodeId) -> Self {
        InfoHash(id.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn distance_orders_as_big_endian() {
        let a = NodeId([0; 20]);
        let mut b = [0u8; 20];
        b[19] = 1;
        let mut c = [0u8; 20];
        c[0] = 0x80;
        assert!(a.distance(&NodeId(b)) < a.distance(&NodeId(c)));
        assert_eq!(a.common_prefix_len(&NodeId(c)), 0);
        assert_eq!(a.common_prefix_len(&NodeId(b)), 159);
        assert_eq!(a.common_prefix_len(&a), 160);
    }

    #[test]
    fn display_is_hex() {
        let mut b = [0u8; 20];
        b[0] = 0xab;
        assert!(NodeId(b).to_string().starts_with("ab00"));
        assert_eq!(NodeId(b).to_string().len(), 40);
        assert_eq!(NodeId::from_slice(&[1; 19]), None);
    }

    proptest! {
        #[test]
        fn random_with_prefix_shares_exactly_prefix(seed: u64, own: [u8; 20], prefix in 0usize..=160) {
            let mut rng = StdRng::seed_from_u64(seed);
            let own = NodeId(own);
            let t = own.random_with_prefix(prefix, &mut rng);
            prop_assert_eq!(own.common_prefix_len(&t), prefix);
        }

        #[test]
        fn distance_is_symmetric_and_zero_on_self(a: [u8; 20], b: [u8; 20]) {
            let (a, b) = (NodeId(a), NodeId(b));
            prop_assert_eq!(a.distance(&b), b.distance(&a));
            prop_assert_eq!(a.distance(&a), Distance([0; 20]));
        }
    }
}
