//! Magnet downloads end to end on a virtual clock: a leecher that knows only the info-hash
//! fetches the info dictionary from seeds with a `MetadataFetch`, builds its `Torrent` from
//! it, adopts the same connections and downloads every piece over them. No second handshake:
//! each seed is connected once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::{content, info_dict, reserved};
use engine::{Config, Event, FetchEvent, MetadataFetch, PeerKey, PieceOutcome, Torrent};
use metainfo::{Bitfield, Geometry, Info, PeerId};
use wire::{Decoder, ExtendedHandshake, Message};

/// The leecher: fetching the metadata, then downloading.
enum Leecher {
    Fetch(Box<MetadataFetch>),
    Torrent(Box<Torrent>),
}

impl Leecher {
    fn take_outgoing(&mut self, k: PeerKey, now: Instant) -> Option<BytesMut> {
        match self {
            Leecher::Fetch(f) => f.take_outgoing(k, now).unwrap(),
            Leecher::Torrent(t) => t.take_outgoing(k, now).unwrap(),
        }
    }

    fn handle_message(&mut self, k: PeerKey, m: Message, now: Instant) {
        match self {
            Leecher::Fetch(f) => f.handle_message(k, m, now).unwrap(),
            Leecher::Torrent(t) => t.handle_message(k, m, now).unwrap(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Leecher::Fetch(f) => f.handle_timeout(now),
            Leecher::Torrent(t) => t.handle_timeout(now),
        }
    }
}

struct Seed {
    t: Torrent,
    /// The seed's key for the leecher: set once, never replaced.
    key: PeerKey,
    /// Connections the seed accepted from the leecher.
    connections: usize,
    /// Disconnect events for the leecher before it completed.
    early_disconnects: usize,
}

struct MagnetSim {
    g: Geometry,
    truth: Vec<u8>,
    info: Bytes,
    seeds: Vec<Seed>,
    leecher: Leecher,
    /// The leecher's key for each seed (a fetch key, then a torrent key).
    keys: Vec<PeerKey>,
    /// Pieces the leecher has on disk before it starts (resume data).
    resumed: Bitfield,
    disk: Vec<u8>,
    completed: bool,
    now: Instant,
    /// Every message the leecher sent each seed, in order.
    sent: Vec<Vec<Message>>,
    /// When the connections moved to the torrent: the length of each `sent` log then.
    adopted_at: Option<Vec<usize>>,
}

const LEECHER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 100)),
    6881,
);

impl MagnetSim {
    /// `seeds` seeds serving the metadata of a torrent of `g`; a leecher with only the
    /// info-hash and the `resumed` pieces on disk, connected to every seed (it dialed them).
    fn new(g: Geometry, seeds: usize, pad: usize, resumed: &[u32]) -> MagnetSim {
        let truth = content(&g);
        let info = info_dict(&g, &truth, pad);
        let ih = Info::from_shared(info.clone()).unwrap().info_hash();
        let now = Instant::now();
        let config = Config::default();
        let mut fetch = MetadataFetch::new(ih, &config, 1, now);
        let mut keys = Vec::new();
        let seeds = (0..seeds)
            .map(|i| {
                let mut t = Torrent::new(
                    g,
                    Bitfield::full(g.piece_count()),
                    config.clone(),
                    7 + i as u64,
                    now,
                );
                t.set_metadata(info.clone());
                let seed_addr = SocketAddr::from(([127, 0, 0, 1 + i as u8], 6881));
                let key = t
                    .add_peer(LEECHER, reserved(true), PeerId([100; 20]), now)
                    .unwrap();
                keys.push(
                    fetch
                        .add_peer(seed_addr, reserved(true), PeerId([i as u8; 20]), true, now)
                        .unwrap(),
                );
                Seed {
                    t,
                    key,
                    connections: 1,
                    early_disconnects: 0,
                }
            })
            .collect::<Vec<_>>();
        let mut have = Bitfield::new(g.piece_count());
        let mut disk = vec![0; g.total_len() as usize];
        for &i in resumed {
            let p = g.piece(i).unwrap();
            have.set(p);
            let off = g.piece_offset(p) as usize;
            let len = g.piece_len(p) as usize;
            disk[off..off + len].copy_from_slice(&truth[off..off + len]);
        }
        let n = seeds.len();
        MagnetSim {
            g,
            truth,
            info,
            seeds,
            leecher: Leecher::Fetch(Box::new(fetch)),
            keys,
            resumed: have,
            disk,
            completed: false,
            now,
            sent: vec![Vec::new(); n],
            adopted_at: None,
        }
    }

    /// The metadata is in: build the torrent from it, as the shell does, and move every
    /// connection over.
    fn adopt(&mut self) {
        let Leecher::Fetch(f) = &mut self.leecher else {
            panic!("adopting twice");
        };
        let metadata = f.metadata().unwrap();
        assert_eq!(metadata, self.info, "not the exact info bytes");
        let info = Info::from_shared(metadata.clone()).unwrap();
        assert_eq!(info.info_hash(), f.info_hash());
        assert_eq!(info.geometry(), self.g);
        let mut t = Torrent::new(
            info.geometry(),
            self.resumed.clone(),
            Config::default(),
            99,
            self.now,
        );
        t.set_metadata(metadata);
        for k in &mut self.keys {
            let h = f.take_peer(*k).unwrap();
            *k = t.adopt_peer(h, self.now).unwrap();
        }
        assert_eq!(f.peer_count(), 0);
        self.adopted_at = Some(self.sent.iter().map(Vec::len).collect());
        self.leecher = Leecher::Torrent(Box::new(t));
    }

    /// The leecher's events.
    fn leecher_events(&mut self) {
        loop {
            match &mut self.leecher {
                Leecher::Fetch(f) => match f.poll_event() {
                    None => return,
                    Some(FetchEvent::Complete) => self.adopt(),
                    Some(FetchEvent::Disconnect(k, why)) => panic!("fetch dropped {k}: {why}"),
                    Some(_) => {}
                },
                Leecher::Torrent(t) => match t.poll_event() {
                    None => return,
                    Some(Event::PieceReady { piece, data }) => {
                        let off = self.g.piece_offset(piece) as usize;
                        assert_eq!(data[..], self.truth[off..off + data.len()]);
                        self.disk[off..off + data.len()].copy_from_slice(&data);
                        t.piece_written(piece, PieceOutcome::Written, self.now);
                    }
                    Some(Event::Completed) => self.completed = true,
                    Some(Event::Disconnect(k, why)) => {
                        assert!(self.completed, "torrent dropped {k}: {why}");
                    }
                    Some(_) => {}
                },
            }
        }
    }

    /// Moves everything queued one hop each way; whether anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        self.leecher_events();
        for i in 0..self.seeds.len() {
            while let Some(ev) = self.seeds[i].t.poll_event() {
                if matches!(ev, Event::Disconnect(..)) && !self.completed {
                    self.seeds[i].early_disconnects += 1;
                }
            }
            // Leecher -> seed.
            if let Some(out) = self.leecher.take_outgoing(self.keys[i], self.now) {
                moved = true;
                let mut buf = out;
                while let Some(m) = Decoder::default().decode(&mut buf).unwrap() {
                    self.sent[i].push(m.clone());
                    let seed = &mut self.seeds[i];
                    seed.t.handle_message(seed.key, m, self.now).unwrap();
                }
            }
            // Seed -> leecher: its messages and the blocks asked of it.
            let seed = &mut self.seeds[i];
            let mut bytes = seed
                .t
                .take_outgoing(seed.key, self.now)
                .unwrap()
                .unwrap_or_default();
            while let Some(u) = seed.t.next_upload(seed.key) {
                let off = (self.g.piece_offset(u.piece) + u64::from(u.begin)) as usize;
                bytes.put_slice(&wire::piece_header(u.piece.get(), u.begin, u.len));
                bytes.put_slice(&self.truth[off..off + u.len as usize]);
                seed.t.on_uploaded(seed.key, u64::from(u.len), self.now);
            }
            moved |= !bytes.is_empty();
            // A whole batch goes to whichever stage is current, as a shell's reader hands it
            // over under one lock; events (the handover among them) come after: frames
            // after the last metadata piece reach the fetch and are replayed at adoption.
            while let Some(m) = Decoder::default().decode(&mut bytes).unwrap() {
                self.leecher.handle_message(self.keys[i], m, self.now);
            }
        }
        moved
    }

    fn run(&mut self, max_secs: u32) {
        for _ in 0..max_secs {
            let mut spins = 0;
            while self.step() && spins < 100_000 {
                spins += 1;
            }
            if self.completed {
                return;
            }
            self.now += Duration::from_secs(1);
            self.leecher.handle_timeout(self.now);
            for s in &mut self.seeds {
                s.t.handle_timeout(self.now);
            }
        }
    }

    /// What the leecher sent seed `i` before and after the handover.
    fn sent_split(&self, i: usize) -> (&[Message], &[Message]) {
        let at = self.adopted_at.as_ref().unwrap()[i];
        self.sent[i].split_at(at)
    }
}

/// The extension handshakes among `msgs`.
fn handshakes(msgs: &[Message]) -> Vec<ExtendedHandshake> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Extended { id: 0, payload } => {
                Some(ExtendedHandshake::decode(payload).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// Messages that say what the sender has wholesale: allowed once, first.
fn openings(msgs: &[Message]) -> usize {
    msgs.iter()
        .filter(|m| {
            matches!(
                m,
                Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
            )
        })
        .count()
}

fn geometry() -> Geometry {
    // 9 pieces of 32 KiB and a short last piece with a short last block.
    Geometry::new(9 * 32_768 + 20_000, 32_768).unwrap()
}

#[test]
fn magnet_leecher_downloads_over_the_connection_that_gave_it_the_metadata() {
    // Metadata of three 16 KiB pieces.
    let mut sim = MagnetSim::new(geometry(), 1, 40_000, &[]);
    sim.run(60);
    assert!(sim.adopted_at.is_some(), "metadata never completed");
    assert!(sim.completed, "download did not complete");
    assert_eq!(sim.disk, sim.truth);
    let seed = &sim.seeds[0];
    assert_eq!(seed.connections, 1);
    assert_eq!(seed.early_disconnects, 0, "the seed dropped the leecher");
    assert_eq!(seed.t.stats().uploaded, sim.g.total_len());
    // One opening (HAVE NONE: nothing yet, Fast), first; one handshake in each stage, the
    // torrent's with the metadata size.
    let (fetching, downloading) = sim.sent_split(0);
    assert_eq!(fetching.first(), Some(&Message::HaveNone));
    assert_eq!(openings(&sim.sent[0]), 1, "{:?}", &sim.sent[0]);
    let before = handshakes(fetching);
    let after = handshakes(downloading);
    assert_eq!((before.len(), after.len()), (1, 1));
    assert_eq!(before[0].metadata_size, None);
    assert_eq!(after[0].metadata_size, Some(sim.info.len() as u32));
    // The fetch asked for each metadata piece once.
    let asked = fetching
        .iter()
        .filter(|m| matches!(m, Message::Extended { id, .. } if *id != 0))
        .count();
    assert_eq!(asked, 3);
    assert!(downloading.iter().any(|m| matches!(m, Message::Request(_))));
}

#[test]
fn resumed_magnet_leecher_sends_haves_not_a_bitfield() {
    let resumed = [1, 4, 7];
    let mut sim = MagnetSim::new(geometry(), 1, 0, &resumed);
    sim.run(60);
    assert!(sim.completed, "download did not complete");
    assert_eq!(sim.disk, sim.truth);
    let (_, downloading) = sim.sent_split(0);
    assert_eq!(
        openings(&sim.sent[0]),
        1,
        "a second opening: {:?}",
        &sim.sent[0]
    );
    let haves: Vec<u32> = downloading
        .iter()
        .take(resumed.len())
        .filter_map(|m| match m {
            Message::Have(i) => Some(*i),
            _ => None,
        })
        .collect();
    assert_eq!(haves, resumed, "{downloading:?}");
    // The seed knew: it sent only the rest.
    let resumed_bytes: u64 = resumed
        .iter()
        .map(|&i| u64::from(sim.g.piece_len(sim.g.piece(i).unwrap())))
        .sum();
    assert_eq!(
        sim.seeds[0].t.stats().uploaded,
        sim.g.total_len() - resumed_bytes
    );
    assert_eq!(sim.seeds[0].connections, 1);
}

#[test]
fn magnet_leecher_adopts_every_peer_and_each_seed_is_connected_once() {
    let g = Geometry::new(40 * 32_768, 32_768).unwrap();
    // Metadata of ten pieces from three seeds (four at a time from each).
    let mut sim = MagnetSim::new(g, 3, 150_000, &[]);
    sim.run(120);
    assert!(sim.completed, "download did not complete");
    assert_eq!(sim.disk, sim.truth);
    let mut uploaded = 0;
    for (i, s) in sim.seeds.iter().enumerate() {
        assert_eq!((s.connections, s.early_disconnects), (1, 0), "seed {i}");
        assert!(s.t.stats().uploaded > 0, "seed {i} served nothing");
        uploaded += s.t.stats().uploaded;
        assert_eq!(openings(&sim.sent[i]), 1, "seed {i}");
    }
    assert!(uploaded >= g.total_len());
    // The metadata came from more than one of them.
    let asked_of: Vec<usize> = (0..3)
        .filter(|&i| {
            sim.sent_split(i)
                .0
                .iter()
                .any(|m| matches!(m, Message::Extended { id, .. } if *id != 0))
        })
        .collect();
    assert!(asked_of.len() > 1, "only {asked_of:?} asked");
}
