//! Two peers that dial each other at once: both sides keep the same one of the two
//! connections.

use std::net::SocketAddr;
use std::time::Instant;

use metainfo::{Bitfield, Geometry, PeerId};
use wire::Reserved;

use super::{Config, Event, PeerError, Torrent};

fn torrent(own: Option<PeerId>) -> Torrent {
    let g = Geometry::new(100_000, 32_768).unwrap();
    let config = Config {
        peer_id: own,
        ..Config::default()
    };
    Torrent::new(g, Bitfield::new(g.piece_count()), config, 1, Instant::now())
}

fn disconnects(t: &mut Torrent) -> Vec<super::PeerKey> {
    let mut out = Vec::new();
    while let Some(e) = t.poll_event() {
        if let Event::Disconnect(k, _) = e {
            out.push(k);
        }
    }
    out
}

const SMALL: PeerId = PeerId([1; 20]);
const LARGE: PeerId = PeerId([9; 20]);

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 6881))
}

#[test]
fn smaller_id_side_keeps_its_outgoing_connection_whatever_the_order() {
    let now = Instant::now();
    let r = Reserved::default();
    // The side with the smaller id: its own dial wins, whichever handshake finished first.
    for outgoing_first in [true, false] {
        let mut a = torrent(Some(SMALL));
        let (first, second) = if outgoing_first {
            let o = a.add_peer_outgoing(addr(2), r, LARGE, now).unwrap();
            let i = a.add_peer(addr(2), r, LARGE, now);
            assert_eq!(
                i,
                Err(PeerError::Refused("already connected to this peer id"))
            );
            (o, None)
        } else {
            let i = a.add_peer(addr(2), r, LARGE, now).unwrap();
            let o = a.add_peer_outgoing(addr(2), r, LARGE, now).unwrap();
            (o, Some(i))
        };
        assert_eq!(a.peer_addrs().count(), 1);
        assert!(a.is_connected(first));
        assert_eq!(disconnects(&mut a), second.into_iter().collect::<Vec<_>>());
    }
    // The side with the larger id keeps the connection the other side opened (its incoming).
    for incoming_first in [true, false] {
        let mut b = torrent(Some(LARGE));
        if incoming_first {
            let i = b.add_peer(addr(1), r, SMALL, now).unwrap();
            assert!(b.add_peer_outgoing(addr(1), r, SMALL, now).is_err());
            assert!(b.is_connected(i));
            assert!(disconnects(&mut b).is_empty());
        } else {
            let o = b.add_peer_outgoing(addr(1), r, SMALL, now).unwrap();
            let i = b.add_peer(addr(1), r, SMALL, now).unwrap();
            assert!(b.is_connected(i) && !b.is_connected(o));
            assert_eq!(disconnects(&mut b), vec![o]);
        }
        assert_eq!(b.peer_addrs().count(), 1);
    }
}

#[test]
fn same_direction_duplicates_and_unknown_own_id_are_refused() {
    let now = Instant::now();
    let r = Reserved::default();
    let mut a = torrent(Some(SMALL));
    a.add_peer_outgoing(addr(2), r, LARGE, now).unwrap();
    assert!(a.add_peer_outgoing(addr(3), r, LARGE, now).is_err());
    let mut b = torrent(None);
    b.add_peer(addr(1), r, SMALL, now).unwrap();
    assert!(b.add_peer_outgoing(addr(1), r, SMALL, now).is_err());
    assert_eq!(b.peer_addrs().count(), 1);
    // An incoming duplicate from another address is refused: it cannot take over a peer's
    // connection by naming its id.
    assert_eq!(
        b.add_peer(addr(7), r, SMALL, now),
        Err(PeerError::Refused("already connected to this peer id"))
    );
    assert_eq!(b.peer_addrs().count(), 1);
}

#[test]
fn a_peer_that_dials_again_from_its_address_replaces_its_old_connection() {
    let now = Instant::now();
    let r = Reserved::default();
    let mut t = torrent(Some(SMALL));
    let old = t.add_peer(addr(2), r, LARGE, now).unwrap();
    let again = SocketAddr::from(([127, 0, 0, 2], 40_000));
    let new = t.add_peer(again, r, LARGE, now).unwrap();
    assert!(t.is_connected(new) && !t.is_connected(old));
    assert_eq!(disconnects(&mut t), vec![old]);
    assert_eq!(t.peer_addrs().count(), 1);
}
