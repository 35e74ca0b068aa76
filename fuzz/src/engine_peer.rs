//! A hostile peer against `engine::Torrent::handle_message`.
//!
//! The input scripts up to three peers talking to a seeder or a leecher of a small fixed torrent
//! (4 pieces of 32 KiB, the last one 5,000 bytes): each step is an opcode byte naming a peer and a
//! message (or a raw frame decoded by the wire decoder), a timer tick, draining a peer's outgoing
//! bytes, an upload, or the shell finishing a piece. The engine may refuse and disconnect, but it
//! must not panic, everything it sends must be valid wire frames within the geometry, the blocks
//! it asks us to upload must be pieces we have, and it never loses a verified piece.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use engine::{Config, Event, PeerKey, PieceOutcome, Torrent};
use metainfo::{Bitfield, Geometry, PeerId, PieceIndex};
use wire::{BlockSpec, Decoder, Message, Reserved};

const PIECE_LEN: u64 = 32 * 1024;
const TOTAL_LEN: u64 = 3 * PIECE_LEN + 5000;
const MAX_STEPS: usize = 4096;
const PEERS: usize = 3;

/// Reads the script a byte at a time; past the end it reads zeros.
struct Script<'a> {
    data: &'a [u8],
}

impl Script<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.data.split_first() else {
            return 0;
        };
        self.data = rest;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn bytes(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A piece index: mostly one of ours or just past the end, sometimes anything.
    fn piece(&mut self) -> u32 {
        match self.byte() {
            b @ 0..=239 => u32::from(b % 5),
            _ => self.u32(),
        }
    }

    /// A block offset: mostly a block boundary, sometimes anything.
    fn begin(&mut self) -> u32 {
        match self.byte() {
            b @ 0..=199 => u32::from(b % 3) * 16384,
            200..=239 => u32::from(self.byte()),
            _ => self.u32(),
        }
    }

    /// A block length: mostly a real block's, sometimes anything.
    fn len(&mut self) -> u32 {
        match self.byte() {
            0..=149 => 16384,
            150..=199 => 5000,
            200..=239 => u32::from(self.byte()),
            _ => self.u32() % (1 << 20),
        }
    }

    fn spec(&mut self) -> BlockSpec {
        BlockSpec {
            piece: self.piece(),
            begin: self.begin(),
            len: self.len(),
        }
    }
}

struct Harness {
    torrent: Torrent,
    peers: [Option<PeerKey>; PEERS],
    ready: Vec<PieceIndex>,
    now: Instant,
    next_id: u8,
    have_before: Bitfield,
}

/// Runs one script.
pub fn run(data: &[u8]) {
    let mut s = Script { data };
    let setup = s.byte();
    let geometry = Geometry::new(TOTAL_LEN, PIECE_LEN).expect("fixed geometry");
    let n = geometry.piece_count();
    let have = if setup & 1 == 1 {
        Bitfield::full(n)
    } else {
        let mut bf = Bitfield::new(n);
        for p in geometry.pieces() {
            if setup >> (4 + p.get()) & 1 == 1 {
                bf.set(p);
            }
        }
        bf
    };
    let config = Config {
        max_invalid: 8,
        max_checking: 2,
        max_outgoing: 64 * 1024,
        ..Config::default()
    };
    let now = Instant::now();
    let mut h = Harness {
        torrent: Torrent::new(geometry, have.clone(), config, u64::from(setup), now),
        peers: [None; PEERS],
        ready: Vec::new(),
        now,
        next_id: 0,
        have_before: have,
    };
    for i in 0..PEERS {
        h.connect(i, s.byte());
    }
    for _ in 0..MAX_STEPS {
        if s.data.is_empty() {
            break;
        }
        h.step(&mut s);
        h.drain_events();
        h.check();
    }
}

impl Harness {
    fn connect(&mut self, slot: usize, flags: u8) {
        let mut reserved = Reserved::NONE;
        reserved.set_fast(flags & 1 == 1);
        reserved.set_extension_protocol(flags & 2 == 2);
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, slot as u8 + 1)), 6881);
        self.next_id = self.next_id.wrapping_add(1);
        let id = PeerId([self.next_id; 20]);
        self.peers[slot] = self.torrent.add_peer(addr, reserved, id, self.now).ok();
    }

    fn step(&mut self, s: &mut Script<'_>) {
        let op = s.byte();
        let slot = usize::from(op >> 5) % PEERS;
        let Some(key) = self.peers[slot] else {
            self.connect(slot, op >> 3);
            return;
        };
        let msg = match op & 0x1f {
            0 => Message::KeepAlive,
            1 => Message::Choke,
            2 => Message::Unchoke,
            3 => Message::Interested,
            4 => Message::NotInterested,
            5 => Message::Have(s.piece()),
            6 => {
                let n = usize::from(s.byte() % 3);
                Message::Bitfield(Bytes::copy_from_slice(s.bytes(n)))
            }
            7 => Message::Request(s.spec()),
            8 => {
                let (piece, begin, len) = (s.piece(), s.begin(), s.len());
                let fill = s.byte();
                Message::Piece {
                    piece,
                    begin,
                    data: Bytes::from(vec![fill; len.min(17 * 1024) as usize]),
                }
            }
            9 => Message::Cancel(s.spec()),
            10 => Message::Port(u16::from(s.byte())),
            11 => Message::Suggest(s.piece()),
            12 => Message::HaveAll,
            13 => Message::HaveNone,
            14 => Message::Reject(s.spec()),
            15 => Message::AllowedFast(s.piece()),
            16 => {
                let id = s.byte() % 3;
                let n = usize::from(s.byte());
                Message::Extended {
                    id,
                    payload: Bytes::copy_from_slice(s.bytes(n)),
                }
            }
            17 => Message::Unknown { id: s.byte() },
            18 => {
                // A raw frame, as the connection's decoder would hand it over.
                let n = usize::from(s.byte());
                let mut buf = BytesMut::from(s.bytes(n));
                match Decoder::default().decode(&mut buf) {
                    Ok(Some(m)) => m,
                    _ => return,
                }
            }
            19 => {
                let secs = u64::from(s.byte() % 200);
                self.now += Duration::from_secs(secs);
                self.torrent.handle_timeout(self.now);
                return;
            }
            20 | 21 => {
                self.drain_outgoing(slot, key);
                return;
            }
            22 | 23 => {
                self.upload(key, s.byte());
                return;
            }
            24 | 25 => {
                self.finish_piece(s.byte());
                return;
            }
            26 => {
                self.torrent.remove_peer(key);
                self.peers[slot] = None;
                return;
            }
            _ => {
                self.now += Duration::from_millis(u64::from(s.byte()) * 10);
                return;
            }
        };
        if self.torrent.handle_message(key, msg, self.now).is_err() {
            self.torrent.remove_peer(key);
            self.peers[slot] = None;
        }
    }

    /// What the shell's writer does: take the bytes and send them. They must be valid frames.
    fn drain_outgoing(&mut self, slot: usize, key: PeerKey) {
        match self.torrent.take_outgoing(key, self.now) {
            Ok(Some(mut out)) => {
                let decoder = Decoder::default();
                let g = *self.torrent.geometry();
                while !out.is_empty() {
                    let m = decoder
                        .decode(&mut out)
                        .expect("the engine sends valid frames")
                        .expect("the engine sends whole frames");
                    match m {
                        // (A REJECT echoes the peer's own request, whatever it named.)
                        Message::Request(b) | Message::Cancel(b) => assert!(
                            g.block(b.piece, b.begin, b.len).is_some(),
                            "the engine names a block outside the geometry: {b:?}"
                        ),
                        Message::Have(p) => assert!(g.piece(p).is_some(), "HAVE {p} out of range"),
                        Message::Bitfield(bf) => {
                            assert!(Bitfield::from_bytes(&bf, g.piece_count()).is_ok());
                        }
                        _ => {}
                    }
                }
            }
            Ok(None) => {}
            Err(_) => {
                self.torrent.remove_peer(key);
                self.peers[slot] = None;
            }
        }
    }

    fn upload(&mut self, key: PeerKey, n: u8) {
        for _ in 0..=n % 4 {
            let Some(u) = self.torrent.next_upload(key) else {
                return;
            };
            let g = self.torrent.geometry();
            assert!(
                u.len > 0 && u.begin + u.len <= g.piece_len(u.piece),
                "upload outside its piece"
            );
            assert!(
                self.torrent.have().has(u.piece),
                "asked to upload a piece we lack"
            );
            self.torrent.on_uploaded(key, u64::from(u.len), self.now);
        }
    }

    fn finish_piece(&mut self, b: u8) {
        if self.ready.is_empty() {
            return;
        }
        let piece = self.ready.remove(usize::from(b) % self.ready.len());
        let outcome = match b % 4 {
            0 => PieceOutcome::HashFailed,
            1 => PieceOutcome::WriteFailed,
            _ => PieceOutcome::Written,
        };
        self.torrent.piece_written(piece, outcome, self.now);
    }

    fn drain_events(&mut self) {
        let mut budget = 10_000;
        while let Some(e) = self.torrent.poll_event() {
            budget -= 1;
            assert!(budget > 0, "the event queue does not drain");
            match e {
                Event::Disconnect(key, _) => {
                    self.torrent.remove_peer(key);
                    for p in &mut self.peers {
                        if *p == Some(key) {
                            *p = None;
                        }
                    }
                }
                Event::PieceReady { piece, data } => {
                    let g = self.torrent.geometry();
                    assert_eq!(data.len(), g.piece_len(piece) as usize);
                    assert!(
                        !self.torrent.have().has(piece),
                        "a piece we have came again"
                    );
                    assert!(!self.ready.contains(&piece), "a piece handed out twice");
                    self.ready.push(piece);
                }
                Event::Wake(_)
                | Event::PieceDone(_)
                | Event::Completed
                | Event::Peers(_)
                | Event::PrefersEncryption(_)
                | Event::DhtNode(_) => {}
            }
        }
    }

    fn check(&mut self) {
        let have = self.torrent.have().clone();
        for i in self.have_before.iter_ones() {
            assert!(have.get(i), "verified piece {i} lost");
        }
        self.have_before = have;
        let stats = self.torrent.stats();
        let connected = self.peers.iter().flatten().count();
        assert_eq!(
            stats.peers, connected,
            "engine and shell disagree on the peers"
        );
        assert!(stats.have <= stats.pieces);
        assert_eq!(stats.left == 0, self.torrent.is_complete());
        // `max_checking` stops new requests, but blocks already requested may still complete
        // pieces past it; each piece is handed out at most once (checked in drain_events).
        assert!(self.ready.len() <= stats.pieces as usize);
    }
}
