//! Compact encodings (BEP 5): node info is 26 bytes (id, IPv4, port), peer info 6 bytes.

use std::net::{Ipv4Addr, SocketAddrV4};

use crate::id::NodeId;

/// Bytes in one compact node info: 20-byte id, 4-byte IPv4 address, 2-byte port.
pub const COMPACT_NODE_LEN: usize = 26;
/// Bytes in one compact peer info: 4-byte IPv4 address, 2-byte port.
pub const COMPACT_PEER_LEN: usize = 6;

/// A DHT node: its id and its UDP address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// Where it listens.
    pub addr: SocketAddrV4,
}

/// Appends the 6-byte compact form of `addr`.
pub fn put_peer(out: &mut Vec<u8>, addr: &SocketAddrV4) {
    out.extend_from_slice(&addr.ip().octets());
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Reads a compact peer; `None` unless `b` is exactly 6 bytes.
pub fn peer_from_bytes(b: &[u8]) -> Option<SocketAddrV4> {
    let b: [u8; COMPACT_PEER_LEN] = b.try_into().ok()?;
    let [a, b2, c, d, p0, p1] = b;
    Some(SocketAddrV4::new(
        Ipv4Addr::new(a, b2, c, d),
        u16::from_be_bytes([p0, p1]),
    ))
}

/// Appends the 26-byte compact forms of `nodes`, one after another.
pub fn put_nodes(out: &mut Vec<u8>, nodes: &[NodeInfo]) {
    for n in nodes {
        out.extend_from_slice(n.id.as_bytes());
        put_peer(out, &n.addr);
    }
}

/// Reads a concatenation of compact nodes; `None` unless the length is a multiple of 26.
pub fn nodes_from_bytes(b: &[u8]) -> Option<Vec<NodeInfo>> {
    if !b.len().is_multiple_of(COMPACT_NODE_LEN) {
        return None;
    }
    b.chunks_exact(COMPACT_NODE_LEN)
        .map(|c| {
            let (id, addr) = c.split_at(20);
            Some(NodeInfo {
                id: NodeId::from_slice(id)?,
                addr: peer_from_bytes(addr)?,
            })
        })
        .collect()
}

/// True for an address worth sending to: a unicast IPv4 address and a non-zero port.
pub fn is_routable(addr: &SocketAddrV4) -> bool {
    let ip = addr.ip();
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn peer_layout() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 6881);
        let mut out = Vec::new();
        put_peer(&mut out, &a);
        assert_eq!(out, [10, 0, 0, 1, 0x1a, 0xe1]);
        assert_eq!(peer_from_bytes(&out), Some(a));
        assert_eq!(peer_from_bytes(&out[..5]), None);
    }

    #[test]
    fn nodes_need_whole_records() {
        assert_eq!(nodes_from_bytes(&[]), Some(vec![]));
        assert_eq!(nodes_from_bytes(&[0; 25]), None);
        assert_eq!(nodes_from_bytes(&[0; 27]), None);
        assert_eq!(nodes_from_bytes(&[0; 52]).map(|v| v.len()), Some(2));
    }

    #[test]
    fn routable_addresses() {
        assert!(is_routable(&SocketAddrV4::new(
            Ipv4Addr::new(1, 2, 3, 4),
            1
        )));
        assert!(!is_routable(&SocketAddrV4::new(
            Ipv4Addr::new(1, 2, 3, 4),
            0
        )));
        assert!(!is_routable(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1)));
        assert!(!is_routable(&SocketAddrV4::new(Ipv4Addr::BROADCAST, 1)));
    }

    proptest! {
        #[test]
        fn nodes_round_trip(raw in proptest::collection::vec((any::<[u8; 20]>(), any::<[u8; 4]>(), any::<u16>()), 0..20)) {
            let nodes: Vec<NodeInfo> = raw
                .into_iter()
                .map(|(id, ip, port)| NodeInfo { id: NodeId(id), addr: SocketAddrV4::new(ip.into(), port) })
                .collect();
            let mut out = Vec::new();
            put_nodes(&mut out, &nodes);
            prop_assert_eq!(out.len(), nodes.len() * COMPACT_NODE_LEN);
            prop_assert_eq!(nodes_from_bytes(&out), Some(nodes));
        }
    }
}
