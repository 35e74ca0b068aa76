//! The fetch against serving torrents (their `ut_metadata` side) and against scripted peers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use metainfo::{Bitfield, Geometry, InfoHash, PeerId};
use sha1::{Digest, Sha1};
use wire::extension::{UT_METADATA, UT_METADATA_ID, UT_PEX, UT_PEX_ID};
use wire::metadata::{MAX_METADATA_SIZE, METADATA_PIECE_LEN, metadata_piece_len};
use wire::{Decoder, ExtendedHandshake, Message, MetadataMsg, Reserved};

use super::*;
use crate::torrent::{Config, MAX_METADATA_REQUESTS};
use crate::{PeerKey, Torrent};

/// `pieces` metadata pieces and a bit (the last one short).
fn info(pieces: u32) -> Bytes {
    let len = (pieces - 1) * METADATA_PIECE_LEN + 100;
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect::<Vec<u8>>()
        .into()
}

fn hash(b: &[u8]) -> InfoHash {
    InfoHash(Sha1::digest(b).into())
}

fn reserved(fast: bool, dht: bool) -> Reserved {
    let mut r = Reserved::default();
    r.set_extension_protocol(true);
    r.set_fast(fast);
    r.set_dht(dht);
    r
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 6881))
}

fn fetch_for(info: &[u8], config: &Config) -> (MetadataFetch, Instant) {
    let now = Instant::now();
    (MetadataFetch::new(hash(info), config, 1, now), now)
}

fn decode_all(mut buf: BytesMut) -> Vec<Message> {
    let dec = Decoder::default();
    let mut out = Vec::new();
    while let Some(m) = dec.decode(&mut buf).unwrap() {
        out.push(m);
    }
    out
}

/// Every message the fetch queued for `k`.
fn sent(f: &mut MetadataFetch, k: PeerKey, now: Instant) -> Vec<Message> {
    decode_all(f.take_outgoing(k, now).unwrap().unwrap_or_default())
}

/// The metadata pieces requested in `msgs` (sent under the peer's id 3).
fn requested(msgs: &[Message]) -> Vec<u32> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Extended { id: 3, payload } => match MetadataMsg::decode(payload) {
                Ok(Some(MetadataMsg::Request { piece })) => Some(piece),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A peer's extension handshake: `ut_metadata` under id 3, and a size.
fn their_handshake(size: Option<u32>) -> Message {
    ExtendedHandshake {
        m: vec![(UT_METADATA.to_owned(), 3)],
        metadata_size: size,
        ..ExtendedHandshake::default()
    }
    .to_message()
}

fn data(info: &[u8], piece: u32) -> Message {
    let total = info.len() as u32;
    let len = metadata_piece_len(total, piece).unwrap();
    let start = (piece * METADATA_PIECE_LEN) as usize;
    MetadataMsg::Data {
        piece,
        total_size: total,
        data: Bytes::copy_from_slice(&info[start..start + len as usize]),
    }
    .to_message(UT_METADATA_ID)
}

fn reject(piece: u32) -> Message {
    MetadataMsg::Reject { piece }.to_message(UT_METADATA_ID)
}

/// A scripted peer on 10.0.0.`n` that announced `size`; returns its key and what the fetch
/// sent it (our opening and requests).
fn scripted(
    f: &mut MetadataFetch,
    n: u8,
    size: Option<u32>,
    now: Instant,
) -> (PeerKey, Vec<Message>) {
    let k = f
        .add_peer(addr(n), reserved(true, false), PeerId([n; 20]), true, now)
        .unwrap();
    f.handle_message(k, Message::HaveNone, now).unwrap();
    f.handle_message(k, their_handshake(size), now).unwrap();
    let msgs = sent(f, k, now);
    (k, msgs)
}

fn events(f: &mut MetadataFetch) -> Vec<FetchEvent> {
    std::iter::from_fn(|| f.poll_event()).collect()
}

fn disconnects(f: &mut MetadataFetch) -> Vec<(PeerKey, PeerError)> {
    events(f)
        .into_iter()
        .filter_map(|e| match e {
            FetchEvent::Disconnect(k, why) => Some((k, why)),
            _ => None,
        })
        .collect()
}

/// A seed torrent on 10.0.0.`n` serving `info`, connected to the fetch.
struct Server {
    t: Torrent,
    /// The fetch's key for it, and its key for the fetch.
    fk: PeerKey,
    tk: PeerKey,
    /// Metadata pieces it was asked for.
    asked: Vec<u32>,
}

fn server(f: &mut MetadataFetch, info: &Bytes, n: u8, now: Instant) -> Server {
    let g = Geometry::new(100_000, 32_768).unwrap();
    let mut t = Torrent::new(
        g,
        Bitfield::full(g.piece_count()),
        Config::default(),
        9,
        now,
    );
    t.set_metadata(info.clone());
    let tk = t
        .add_peer(addr(100), reserved(true, false), PeerId([100; 20]), now)
        .unwrap();
    let fk = f
        .add_peer(addr(n), reserved(true, false), PeerId([n; 20]), true, now)
        .unwrap();
    Server {
        t,
        fk,
        tk,
        asked: Vec::new(),
    }
}

/// Moves bytes both ways between the fetch and each server until quiet; the fetch's events.
fn pump(f: &mut MetadataFetch, servers: &mut [Server], now: Instant) -> Vec<FetchEvent> {
    let mut evs = Vec::new();
    loop {
        let mut moved = false;
        for s in servers.iter_mut() {
            if !f.is_connected(s.fk) {
                continue;
            }
            if let Some(out) = f.take_outgoing(s.fk, now).unwrap() {
                moved = true;
                for m in decode_all(out) {
                    if let Message::Extended {
                        id: UT_METADATA_ID,
                        payload,
                    } = &m
                        && let Ok(Some(MetadataMsg::Request { piece })) =
                            MetadataMsg::decode(payload)
                    {
                        s.asked.push(piece);
                    }
                    s.t.handle_message(s.tk, m, now).unwrap();
                }
            }
            while s.t.poll_event().is_some() {}
            if let Some(out) = s.t.take_outgoing(s.tk, now).unwrap() {
                moved = true;
                for m in decode_all(out) {
                    f.handle_message(s.fk, m, now).unwrap();
                }
            }
        }
        evs.extend(events(f));
        if !moved {
            return evs;
        }
    }
}

#[test]
fn opening_is_have_none_then_a_handshake_without_size_then_port() {
    let config = Config {
        dht_port: Some(7000),
        listen_port: Some(6881),
        ..Config::default()
    };
    let (mut f, now) = fetch_for(&info(2), &config);
    let k = f
        .add_peer(addr(2), reserved(true, true), PeerId([2; 20]), true, now)
        .unwrap();
    assert!(matches!(events(&mut f)[..], [FetchEvent::Wake(w)] if w == k));
    let msgs = sent(&mut f, k, now);
    let [
        Message::HaveNone,
        Message::Extended { id: 0, payload },
        Message::Port(7000),
    ] = &msgs[..]
    else {
        panic!("{msgs:?}");
    };
    let hs = ExtendedHandshake::decode(payload).unwrap();
    assert_eq!(hs.id_of(UT_METADATA), Some(UT_METADATA_ID));
    assert_eq!(hs.id_of(UT_PEX), Some(UT_PEX_ID));
    assert_eq!(hs.metadata_size, None);
    assert_eq!(hs.p, Some(6881));
    assert_eq!(hs.reqq, Some(config.reqq));
    assert!(hs.v.is_some());
    // Without Fast no HAVE NONE, without DHT no PORT; private: no ut_pex, no PORT.
    let private = Config {
        private: true,
        ..config
    };
    let (mut f, now) = fetch_for(&info(2), &private);
    let k = f
        .add_peer(addr(2), reserved(false, true), PeerId([2; 20]), true, now)
        .unwrap();
    let msgs = sent(&mut f, k, now);
    let [Message::Extended { id: 0, payload }] = &msgs[..] else {
        panic!("{msgs:?}");
    };
    assert_eq!(
        ExtendedHandshake::decode(payload).unwrap().id_of(UT_PEX),
        None
    );
}

#[test]
fn admission_refuses_no_extension_protocol_full_banned_and_duplicates() {
    let config = Config {
        max_peers: 2,
        ..Config::default()
    };
    let (mut f, now) = fetch_for(&info(2), &config);
    assert_eq!(
        f.add_peer(addr(1), Reserved::default(), PeerId([1; 20]), true, now),
        Err(PeerError::Refused(
            "no extension protocol: it cannot send metadata"
        ))
    );
    f.add_peer(addr(1), reserved(true, false), PeerId([1; 20]), true, now)
        .unwrap();
    assert_eq!(
        f.add_peer(addr(9), reserved(true, false), PeerId([1; 20]), true, now),
        Err(PeerError::Refused("already connected to this peer id"))
    );
    f.add_peer(addr(2), reserved(true, false), PeerId([2; 20]), true, now)
        .unwrap();
    assert_eq!(
        f.add_peer(addr(3), reserved(true, false), PeerId([3; 20]), true, now),
        Err(PeerError::Refused("too many peers"))
    );
    assert_eq!(f.peer_count(), 2);
}

#[test]
fn fetches_from_one_seed_torrent_the_exact_info_bytes() {
    let info = info(5);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let mut servers = [server(&mut f, &info, 1, now)];
    assert_eq!(f.status().metadata_size, None);
    let evs = pump(&mut f, &mut servers, now);
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(e, FetchEvent::Complete))
            .count(),
        1
    );
    assert!(
        !evs.iter().any(|e| matches!(e, FetchEvent::Disconnect(..))),
        "{evs:?}"
    );
    assert_eq!(f.metadata(), Some(info.clone()));
    let status = f.status();
    assert_eq!(
        status,
        FetchStatus {
            peers: 1,
            metadata_size: Some(info.len() as u32),
            pieces_received: 5,
            pieces: 5,
            complete: true,
        }
    );
    // Each piece asked once, never more than the window at a time.
    let mut asked = servers[0].asked.clone();
    asked.sort_unstable();
    assert_eq!(asked, vec![0, 1, 2, 3, 4]);
    // Nothing more to do but keep the connection for the torrent.
    assert!(f.poll_timeout().is_some());
}

#[test]
fn pieces_are_spread_over_three_peers() {
    let info = info(12);
    let (mut f, now) = fetch_for(&info, &Config::default());
    // Handshakes first, so each peer's first window is seen before any piece comes back.
    let mut keys = Vec::new();
    let mut first = Vec::new();
    for n in 1..=3 {
        let (k, msgs) = scripted(&mut f, n, Some(info.len() as u32), now);
        let asked = requested(&msgs);
        assert_eq!(asked.len(), REQUEST_WINDOW, "peer {n}: {msgs:?}");
        keys.push(k);
        first.push(asked);
    }
    let mut all: Vec<u32> = first.concat();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        3 * REQUEST_WINDOW,
        "a piece asked twice: {first:?}"
    );
    for (k, asked) in keys.iter().zip(&first) {
        for &p in asked {
            f.handle_message(*k, data(&info, p), now).unwrap();
        }
    }
    assert!(f.is_complete());
    assert_eq!(f.metadata(), Some(info));
    assert!(
        events(&mut f)
            .iter()
            .any(|e| matches!(e, FetchEvent::Complete))
    );
}

#[test]
fn from_three_seed_torrents_each_serves_some() {
    let info = info(30);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let mut servers: Vec<Server> = (1..=3).map(|n| server(&mut f, &info, n, now)).collect();
    let evs = pump(&mut f, &mut servers, now);
    assert!(evs.iter().any(|e| matches!(e, FetchEvent::Complete)));
    assert_eq!(f.metadata(), Some(info));
    let mut all: Vec<u32> = servers.iter().flat_map(|s| s.asked.clone()).collect();
    assert!(
        servers.iter().all(|s| !s.asked.is_empty()),
        "one served nothing"
    );
    all.sort_unstable();
    assert_eq!(all, (0..30).collect::<Vec<_>>(), "a piece asked twice");
}

#[test]
fn a_rejected_piece_goes_to_another_peer() {
    let info = info(8);
    let size = Some(info.len() as u32);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (a, to_a) = scripted(&mut f, 1, size, now);
    let (b, to_b) = scripted(&mut f, 2, size, now);
    let (asked_a, asked_b) = (requested(&to_a), requested(&to_b));
    assert_eq!((asked_a.len(), asked_b.len()), (4, 4));
    // B answers everything; A rejects its first piece and sends the rest.
    for &p in &asked_b {
        f.handle_message(b, data(&info, p), now).unwrap();
    }
    f.handle_message(a, reject(asked_a[0]), now).unwrap();
    assert_eq!(requested(&sent(&mut f, b, now)), vec![asked_a[0]]);
    assert!(requested(&sent(&mut f, a, now)).is_empty(), "asked again");
    for &p in &asked_a[1..] {
        f.handle_message(a, data(&info, p), now).unwrap();
    }
    assert!(!f.is_complete());
    f.handle_message(b, data(&info, asked_a[0]), now).unwrap();
    assert_eq!(f.metadata(), Some(info));
    assert!(disconnects(&mut f).is_empty());
}

#[test]
fn a_peer_that_rejects_everything_is_dropped_and_its_pieces_move() {
    let info = info(8);
    let size = Some(info.len() as u32);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (a, to_a) = scripted(&mut f, 1, size, now);
    let (b, to_b) = scripted(&mut f, 2, size, now);
    let asked_a = requested(&to_a);
    assert_eq!(requested(&to_b).len(), 4);
    for (i, &p) in asked_a.iter().enumerate() {
        let r = f.handle_message(a, reject(p), now);
        if i + 1 < MAX_REJECTS as usize {
            r.unwrap();
        } else {
            assert_eq!(
                r,
                Err(PeerError::NoMetadata("rejects our metadata requests"))
            );
        }
    }
    f.remove_peer(a);
    // B holds a full window already; as it answers, it gets A's pieces.
    for &p in &requested(&to_b) {
        f.handle_message(b, data(&info, p), now).unwrap();
    }
    let again = requested(&sent(&mut f, b, now));
    let mut a_sorted = asked_a.clone();
    a_sorted.sort_unstable();
    let mut again_sorted = again.clone();
    again_sorted.sort_unstable();
    assert_eq!(again_sorted, a_sorted);
}

#[test]
fn a_lone_peer_is_asked_again_for_what_it_rejected_then_dropped() {
    let info = info(2);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (a, to_a) = scripted(&mut f, 1, Some(info.len() as u32), now);
    let mut first = requested(&to_a);
    first.sort_unstable();
    assert_eq!(first, vec![0, 1]);
    f.handle_message(a, reject(0), now).unwrap();
    f.handle_message(a, reject(1), now).unwrap();
    // Nobody else can serve them: asked again.
    let again = requested(&sent(&mut f, a, now));
    assert_eq!(again.len(), 2, "{again:?}");
    f.handle_message(a, reject(again[0]), now).unwrap();
    assert_eq!(
        f.handle_message(a, reject(again[1]), now),
        Err(PeerError::NoMetadata("rejects our metadata requests"))
    );
}

#[test]
fn a_wrong_length_piece_drops_the_peer() {
    let info = info(3);
    let size = info.len() as u32;
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (a, to_a) = scripted(&mut f, 1, Some(size), now);
    let p = requested(&to_a)[0];
    // The right total size, a piece one byte short.
    let want = metadata_piece_len(size, p).unwrap() as usize;
    let mut payload = format!("d8:msg_typei1e5:piecei{p}e10:total_sizei{size}ee").into_bytes();
    payload.extend(std::iter::repeat_n(0u8, want - 1));
    let short = Message::Extended {
        id: UT_METADATA_ID,
        payload: payload.into(),
    };
    assert!(matches!(
        f.handle_message(a, short, now),
        Err(PeerError::Protocol(_))
    ));
}

#[test]
fn a_size_change_in_a_piece_or_a_handshake_drops_the_peer() {
    let info = info(3);
    let size = info.len() as u32;
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (a, to_a) = scripted(&mut f, 1, Some(size), now);
    let p = requested(&to_a)[0];
    let other = MetadataMsg::Data {
        piece: p,
        total_size: size + 1,
        data: Bytes::from(vec![0u8; metadata_piece_len(size + 1, p).unwrap() as usize]),
    };
    assert_eq!(
        f.handle_message(a, other.to_message(UT_METADATA_ID), now),
        Err(PeerError::Protocol("metadata size changed".into()))
    );
    // A second peer disagreeing with the first credible size is dropped; the first one's
    // size stands.
    let (mut f, now) = fetch_for(&info, &Config::default());
    scripted(&mut f, 1, Some(size), now);
    let b = f
        .add_peer(addr(2), reserved(true, false), PeerId([2; 20]), true, now)
        .unwrap();
    assert!(matches!(
        f.handle_message(b, their_handshake(Some(size + 1)), now),
        Err(PeerError::NoMetadata(_))
    ));
    assert_eq!(f.status().metadata_size, Some(size));
}

#[test]
fn sizes_out_of_bounds_and_peers_without_ut_metadata_are_refused() {
    let info = info(2);
    for bad in [0, MAX_METADATA_SIZE + 1] {
        let (mut f, now) = fetch_for(&info, &Config::default());
        let k = f
            .add_peer(addr(1), reserved(true, false), PeerId([1; 20]), true, now)
            .unwrap();
        assert_eq!(
            f.handle_message(k, their_handshake(Some(bad)), now),
            Err(PeerError::NoMetadata("metadata size out of bounds"))
        );
        assert_eq!(f.status().metadata_size, None, "{bad}");
    }
    let (mut f, now) = fetch_for(&info, &Config::default());
    let k = f
        .add_peer(addr(1), reserved(true, false), PeerId([1; 20]), true, now)
        .unwrap();
    let no_ut_metadata = ExtendedHandshake {
        m: vec![(UT_PEX.to_owned(), 3)],
        metadata_size: Some(info.len() as u32),
        ..ExtendedHandshake::default()
    };
    assert_eq!(
        f.handle_message(k, no_ut_metadata.to_message(), now),
        Err(PeerError::NoMetadata("no ut_metadata"))
    );
    // A peer without the size yet is kept and asked nothing.
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (_, msgs) = scripted(&mut f, 1, None, now);
    assert!(requested(&msgs).is_empty());
    assert_eq!(f.peer_count(), 1);
}

#[test]
fn a_corrupt_copy_restarts_and_the_liar_is_dropped() {
    let info = info(3);
    let size = info.len() as u32;
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (liar, to_liar) = scripted(&mut f, 1, Some(size), now);
    let mut lie = info.to_vec();
    lie[5] ^= 1;
    for p in requested(&to_liar) {
        f.handle_message(liar, data(&lie, p), now).unwrap();
    }
    assert!(!f.is_complete());
    assert_eq!(disconnects(&mut f), vec![(liar, PeerError::Banned)]);
    assert!(f.is_banned(addr(1).ip()));
    assert_eq!(f.status().pieces_received, 0);
    f.remove_peer(liar);
    assert_eq!(
        f.add_peer(addr(1), reserved(true, false), PeerId([7; 20]), true, now),
        Err(PeerError::Refused("banned address"))
    );
    // An honest peer: the fetch starts over and completes.
    let mut servers = [server(&mut f, &info, 2, now)];
    pump(&mut f, &mut servers, now);
    assert_eq!(f.metadata(), Some(info));
}

#[test]
fn a_peer_in_two_bad_copies_is_dropped_at_its_second_strike() {
    let info = info(8);
    let size = Some(info.len() as u32);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (a, to_a) = scripted(&mut f, 1, size, now);
    let (b, to_b) = scripted(&mut f, 2, size, now);
    // A corrupts whatever it sends, B is honest: each sends half of each copy.
    let lie: Vec<u8> = info.iter().map(|x| x ^ 1).collect();
    let (mut asked_a, mut asked_b) = (requested(&to_a), requested(&to_b));
    for round in 1..=2 {
        assert_eq!((asked_a.len(), asked_b.len()), (4, 4), "round {round}");
        for &p in &asked_a {
            f.handle_message(a, data(&lie, p), now).unwrap();
        }
        for &p in &asked_b {
            f.handle_message(b, data(&info, p), now).unwrap();
        }
        assert!(!f.is_complete());
        let mut gone: Vec<PeerKey> = disconnects(&mut f).into_iter().map(|(k, _)| k).collect();
        gone.sort_unstable();
        if round == 1 {
            // One strike each: nobody sent the whole bad copy.
            assert!(gone.is_empty(), "{gone:?}");
            asked_a = requested(&sent(&mut f, a, now));
            asked_b = requested(&sent(&mut f, b, now));
        } else {
            assert_eq!(gone, vec![a, b]);
        }
    }
    assert!(!f.is_banned(addr(1).ip()) && !f.is_banned(addr(2).ip()));
}

#[test]
fn a_stalled_request_goes_elsewhere_and_an_idle_peer_is_dropped_on_timers_alone() {
    let info = info(8);
    let size = Some(info.len() as u32);
    let config = Config::default();
    let (mut f, start) = fetch_for(&info, &config);
    let (slow, to_slow) = scripted(&mut f, 1, size, start);
    let (fast, to_fast) = scripted(&mut f, 2, size, start);
    let asked_slow = requested(&to_slow);
    for p in requested(&to_fast) {
        f.handle_message(fast, data(&info, p), start).unwrap();
    }
    events(&mut f);
    // Nothing happens before the request timeout; the deadline is exactly there.
    let due = f.poll_timeout().unwrap();
    assert_eq!(due, start + METADATA_REQUEST_TIMEOUT);
    f.handle_timeout(due);
    let mut moved = requested(&sent(&mut f, fast, due));
    moved.sort_unstable();
    let mut want = asked_slow.clone();
    want.sort_unstable();
    assert_eq!(moved, want, "the slow peer's pieces did not move");
    for p in moved {
        f.handle_message(fast, data(&info, p), due).unwrap();
    }
    assert_eq!(f.metadata(), Some(info));
    // From here only the timers run; the slow peer says nothing. Keep-alives go out, and it
    // is dropped exactly at idle_timeout after the last thing it sent.
    let mut now = due;
    let mut dropped_at = None;
    for _ in 0..100 {
        let Some(t) = f.poll_timeout() else { break };
        assert!(t >= now, "deadline in the past");
        now = t;
        f.handle_timeout(now);
        for e in events(&mut f) {
            if let FetchEvent::Disconnect(k, why) = e
                && k == slow
            {
                assert_eq!(why, PeerError::Idle);
                dropped_at = Some(now);
                f.remove_peer(slow);
            }
        }
        if dropped_at.is_some() {
            break;
        }
    }
    assert_eq!(dropped_at, Some(start + config.idle_timeout));
    assert!(f.is_connected(fast), "the fast peer spoke later");
}

#[test]
fn a_peer_that_stalls_twice_is_dropped() {
    let info = info(10);
    let (mut f, start) = fetch_for(&info, &Config::default());
    let (slow, _) = scripted(&mut f, 1, Some(info.len() as u32), start);
    let mut now = start;
    let mut why = None;
    for _ in 0..10 {
        now = f.poll_timeout().unwrap();
        f.handle_message(slow, Message::KeepAlive, now).unwrap();
        f.handle_timeout(now);
        if let Some((_, w)) = disconnects(&mut f).pop() {
            why = Some(w);
            break;
        }
        let _ = sent(&mut f, slow, now);
    }
    assert_eq!(
        why,
        Some(PeerError::NoMetadata("stalls on our metadata requests"))
    );
    assert_eq!(now, start + MAX_STALLS * METADATA_REQUEST_TIMEOUT);
}

#[test]
fn poll_timeout_is_the_earliest_deadline() {
    let info = info(2);
    let config = Config {
        keepalive_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(120),
        ..Config::default()
    };
    let (mut f, start) = fetch_for(&info, &config);
    assert_eq!(f.poll_timeout(), None);
    let k = f
        .add_peer(addr(1), reserved(true, false), PeerId([1; 20]), true, start)
        .unwrap();
    assert_eq!(f.poll_timeout(), Some(start + Duration::from_secs(30)));
    let later = start + Duration::from_secs(10);
    f.handle_message(k, their_handshake(Some(info.len() as u32)), later)
        .unwrap();
    let _ = sent(&mut f, k, later);
    events(&mut f);
    // Requested at `later`: times out at later + 15 s, before the next keep-alive.
    assert_eq!(f.poll_timeout(), Some(later + METADATA_REQUEST_TIMEOUT));
    // Handling a timeout before any deadline changes nothing.
    f.handle_timeout(later + Duration::from_secs(1));
    assert!(events(&mut f).is_empty());
    f.remove_peer(k);
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn a_request_flood_is_answered_with_rejects_and_bounded() {
    let info = info(2);
    let config = Config {
        max_invalid: 5,
        ..Config::default()
    };
    let (mut f, now) = fetch_for(&info, &config);
    let (k, _) = scripted(&mut f, 1, None, now);
    let ask = |piece| MetadataMsg::Request { piece }.to_message(UT_METADATA_ID);
    let mut accepted = 0;
    let err = loop {
        match f.handle_message(k, ask(0), now) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 1_000, "never refused");
    };
    assert!(matches!(err, PeerError::Protocol(_)));
    assert_eq!(accepted, MAX_METADATA_REQUESTS + 5);
    let answers: Vec<Message> = sent(&mut f, k, now);
    let rejects = answers
        .iter()
        .filter(|m| {
            matches!(m, Message::Extended { id: 3, payload }
                if MetadataMsg::decode(payload) == Ok(Some(MetadataMsg::Reject { piece: 0 })))
        })
        .count();
    assert_eq!(rejects, MAX_METADATA_REQUESTS);
    // Answered as read: no flood.
    let (mut f, now) = fetch_for(
        &info,
        &Config {
            max_invalid: 0,
            ..Config::default()
        },
    );
    let (k, _) = scripted(&mut f, 1, None, now);
    for _ in 0..100 {
        for p in 0..4 {
            f.handle_message(k, ask(p), now).unwrap();
        }
        assert_eq!(sent(&mut f, k, now).len(), 4);
    }
}

#[test]
fn block_requests_are_rejected_and_counted() {
    let info = info(2);
    let config = Config {
        max_invalid: 2,
        ..Config::default()
    };
    let (mut f, now) = fetch_for(&info, &config);
    let (k, _) = scripted(&mut f, 1, None, now);
    let spec = wire::BlockSpec {
        piece: 0,
        begin: 0,
        len: 16_384,
    };
    f.handle_message(k, Message::Request(spec), now).unwrap();
    assert_eq!(sent(&mut f, k, now), vec![Message::Reject(spec)]);
    f.handle_message(k, Message::Request(spec), now).unwrap();
    assert!(f.handle_message(k, Message::Request(spec), now).is_err());
}

#[test]
fn what_peers_say_of_their_pieces_is_bounded() {
    let info = info(2);
    let size = info.len() as u32;
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, None, now);
    // Without a size: at most MAX_PIECES.
    f.handle_message(k, Message::Have((1 << 22) - 1), now)
        .unwrap();
    assert!(matches!(
        f.handle_message(k, Message::Have(1 << 22), now),
        Err(PeerError::Protocol(_))
    ));
    // With a size of n bytes, fewer than n / 20 pieces.
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, Some(size), now);
    f.handle_message(k, Message::Have(size / 20 - 1), now)
        .unwrap();
    assert!(f.handle_message(k, Message::Have(size / 20), now).is_err());
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, Some(size), now);
    let too_long = Message::Bitfield(vec![0u8; (size as usize / 20).div_ceil(8) + 1].into());
    assert!(f.handle_message(k, too_long, now).is_err());
    // Two bitfields of different lengths cannot both be right.
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, Some(size), now);
    f.handle_message(k, Message::Bitfield(vec![0x80; 3].into()), now)
        .unwrap();
    assert!(
        f.handle_message(k, Message::Bitfield(vec![0x80; 4].into()), now)
            .is_err()
    );
    // HAVE ALL without Fast.
    let (mut f, now) = fetch_for(&info, &Config::default());
    let k = f
        .add_peer(addr(1), reserved(false, false), PeerId([1; 20]), true, now)
        .unwrap();
    assert!(f.handle_message(k, Message::HaveAll, now).is_err());
}

#[test]
fn pex_and_port_are_heard_as_the_torrent_hears_them() {
    let info = info(2);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, None, now);
    let pex = wire::PexMsg {
        added: vec![wire::PexPeer {
            addr: addr(50),
            flags: 0,
        }],
        dropped: vec![],
    };
    f.handle_message(k, pex.to_message(UT_PEX_ID), now).unwrap();
    f.handle_message(k, Message::Port(7000), now).unwrap();
    // Too soon: ignored.
    f.handle_message(k, pex.to_message(UT_PEX_ID), now).unwrap();
    let evs = events(&mut f);
    let peers: Vec<&Vec<SocketAddr>> = evs
        .iter()
        .filter_map(|e| match e {
            FetchEvent::Peers(a) => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(peers, vec![&vec![addr(50)]]);
    assert!(evs.iter().any(
        |e| matches!(e, FetchEvent::DhtNode(a) if *a == SocketAddr::from(([10, 0, 0, 1], 7000)))
    ));
}

/// A torrent for the same metadata (any geometry: the tests below do not parse it).
fn torrent(have: Bitfield, g: Geometry, now: Instant) -> Torrent {
    Torrent::new(g, have, Config::default(), 3, now)
}

fn geometry() -> Geometry {
    Geometry::new(10 * 32_768, 32_768).unwrap()
}

#[test]
fn a_handover_replays_what_the_peer_said_and_sends_no_second_opening() {
    let info = info(2);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, Some(info.len() as u32), now);
    // It has pieces 0-7 (a bitfield), then 9; unchokes us, is interested.
    f.handle_message(k, Message::Bitfield(vec![0xff, 0x00].into()), now)
        .unwrap();
    f.handle_message(k, Message::Have(9), now).unwrap();
    f.handle_message(k, Message::Unchoke, now).unwrap();
    f.handle_message(k, Message::Interested, now).unwrap();
    // Something queued and not yet taken travels with it.
    f.handle_message(
        k,
        Message::Request(wire::BlockSpec {
            piece: 0,
            begin: 0,
            len: 1,
        }),
        now,
    )
    .unwrap();
    let h = f.take_peer(k).unwrap();
    assert_eq!(f.peer_count(), 0);
    assert!(f.take_peer(k).is_none());
    let g = geometry();
    let mut have = Bitfield::new(g.piece_count());
    have.set(g.piece(2).unwrap());
    let mut t = torrent(have, g, now);
    t.set_metadata(info.clone());
    let tk = t.adopt_peer(h, now).unwrap();
    let msgs = decode_all(t.take_outgoing(tk, now).unwrap().unwrap());
    assert!(
        !msgs.iter().any(|m| matches!(
            m,
            Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
        )),
        "{msgs:?}"
    );
    // Order: the fetch's leftovers, our HAVEs, a fresh handshake with the size, then what the
    // replay makes the torrent say (interested; requests, since it unchoked us).
    let first = &msgs[0];
    assert!(matches!(first, Message::Reject(_)), "{msgs:?}");
    assert_eq!(msgs[1], Message::Have(2));
    let Message::Extended { id: 0, payload } = &msgs[2] else {
        panic!("{msgs:?}")
    };
    let hs = ExtendedHandshake::decode(payload).unwrap();
    assert_eq!(hs.metadata_size, Some(info.len() as u32));
    assert!(msgs.contains(&Message::Interested));
    let requests: Vec<u32> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Request(s) => Some(s.piece),
            _ => None,
        })
        .collect();
    assert!(!requests.is_empty(), "{msgs:?}");
    assert!(
        requests.iter().all(|p| *p < 8 || *p == 9),
        "asked for a piece it lacks: {requests:?}"
    );
    let s = t.stats();
    assert_eq!((s.peers, s.unchoking_us), (1, 1));
    // It was interested: the choker unchoked it at once (a free slot).
    assert_eq!(s.unchoked_by_us, 1);
}

#[test]
fn a_handover_with_a_bitfield_of_the_wrong_length_is_refused() {
    let info = info(2);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, Some(info.len() as u32), now);
    f.handle_message(k, Message::Bitfield(vec![0xff; 3].into()), now)
        .unwrap();
    let h = f.take_peer(k).unwrap();
    let g = geometry();
    let mut t = torrent(Bitfield::new(g.piece_count()), g, now);
    assert!(matches!(t.adopt_peer(h, now), Err(PeerError::Protocol(_))));
    assert_eq!(t.stats().peers, 0);
    // A HAVE past the real piece count, likewise.
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, Some(info.len() as u32), now);
    f.handle_message(k, Message::Have(10), now).unwrap();
    let h = f.take_peer(k).unwrap();
    let mut t = torrent(Bitfield::new(g.piece_count()), g, now);
    assert_eq!(
        t.adopt_peer(h, now),
        Err(PeerError::Protocol("HAVE 10 out of range".into()))
    );
}

#[test]
fn adoption_has_the_admission_checks_of_add_peer() {
    let info = info(2);
    let g = geometry();
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k1, _) = scripted(&mut f, 1, None, now);
    let (k2, _) = scripted(&mut f, 2, None, now);
    let mut t = Torrent::new(
        g,
        Bitfield::new(g.piece_count()),
        Config {
            max_peers: 2,
            ..Config::default()
        },
        3,
        now,
    );
    // Already connected to peer 1 (we dialed it twice): the adopted one is refused.
    t.add_peer_outgoing(addr(1), reserved(true, false), PeerId([1; 20]), now)
        .unwrap();
    assert_eq!(
        t.adopt_peer(f.take_peer(k1).unwrap(), now),
        Err(PeerError::Refused("already connected to this peer id"))
    );
    t.add_peer(addr(3), reserved(true, false), PeerId([3; 20]), now)
        .unwrap();
    assert_eq!(
        t.adopt_peer(f.take_peer(k2).unwrap(), now),
        Err(PeerError::Refused("too many peers"))
    );
}

#[test]
fn a_peer_pending_disconnect_is_not_handed_over() {
    let info = info(2);
    let (mut f, now) = fetch_for(&info, &Config::default());
    let (k, _) = scripted(&mut f, 1, Some(info.len() as u32), now);
    f.handle_timeout(now + Config::default().idle_timeout);
    assert_eq!(disconnects(&mut f), vec![(k, PeerError::Idle)]);
    assert!(f.take_peer(k).is_none());
    f.remove_peer(k);
    assert_eq!(f.peer_count(), 0);
}

#[test]
fn adoption_sends_port_once_and_a_private_torrent_turns_pex_off() {
    let info = info(2);
    let config = Config {
        dht_port: Some(7000),
        ..Config::default()
    };
    let (mut f, now) = fetch_for(&info, &config);
    let adopted = |f: &mut MetadataFetch, n: u8, torrent_config: Config| {
        let k = f
            .add_peer(addr(n), reserved(true, true), PeerId([n; 20]), true, now)
            .unwrap();
        assert!(sent(f, k, now).contains(&Message::Port(7000)));
        let g = geometry();
        let mut t = Torrent::new(g, Bitfield::new(g.piece_count()), torrent_config, 3, now);
        let tk = t.adopt_peer(f.take_peer(k).unwrap(), now).unwrap();
        decode_all(t.take_outgoing(tk, now).unwrap().unwrap())
    };
    let msgs = adopted(&mut f, 1, config.clone());
    assert!(
        !msgs.iter().any(|m| matches!(m, Message::Port(_))),
        "{msgs:?}"
    );
    let hs = ExtendedHandshake::decode(match &msgs[..] {
        [Message::Extended { id: 0, payload }, ..] => payload,
        _ => panic!("{msgs:?}"),
    })
    .unwrap();
    assert_eq!(hs.id_of(UT_PEX), Some(UT_PEX_ID));
    // The metadata says private: the torrent takes back the ut_pex the fetch offered.
    let private = Config {
        private: true,
        ..config
    };
    let msgs = adopted(&mut f, 2, private);
    let [Message::Extended { id: 0, payload }] = &msgs[..] else {
        panic!("{msgs:?}");
    };
    let hs = ExtendedHandshake::decode(payload).unwrap();
    assert!(hs.m.contains(&(UT_PEX.to_owned(), 0)), "{hs:?}");
    assert_eq!(hs.id_of(UT_METADATA), Some(UT_METADATA_ID));
}
