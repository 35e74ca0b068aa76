//! Hostile KRPC against one [`Dht`] on virtual time: malformed bencode, wrong types in every
//! field, huge values, ids of the wrong length, replies to transactions never sent, query floods
//! from one address and from 10,000, announce floods with valid tokens for 100,000 info-hashes,
//! and node floods. Each scenario checks the caps through the public counters and the node's
//! answers, then that valid traffic still works.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use dht::message::{Body, ERROR_PROTOCOL, ERROR_SERVER, MAX_PACKET, Message, Response};
use dht::{Config, Dht, ID_BITS, NodeId};
use metainfo::InfoHash;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Our node's id.
const OWN: NodeId = NodeId([0x55; 20]);

/// A bencode value to build packets from, right or wrong.
#[derive(Debug, Clone)]
enum B {
    I(i64),
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(&'static str, B)>),
}

fn s(b: impl AsRef<[u8]>) -> B {
    B::S(b.as_ref().to_vec())
}

impl B {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            B::I(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            B::S(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            B::L(items) => {
                out.push(b'l');
                items.iter().for_each(|i| i.encode(out));
                out.push(b'e');
            }
            B::D(entries) => {
                let mut sorted = entries.clone();
                sorted.sort_by_key(|(k, _)| *k);
                out.push(b'd');
                for (k, v) in &sorted {
                    s(k).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// A copy with `path` (keys, outermost first) set to `value`.
    fn with(&self, path: &[&'static str], value: B) -> B {
        let (B::D(entries), Some((first, rest))) = (self, path.split_first()) else {
            return value;
        };
        let mut entries = entries.clone();
        match entries.iter_mut().find(|(k, _)| k == first) {
            Some((_, v)) => *v = v.with(rest, value),
            None => entries.push((first, B::D(Vec::new()).with(rest, value))),
        }
        B::D(entries)
    }
}

fn query(tid: &[u8], method: &str, args: Vec<(&'static str, B)>) -> B {
    B::D(vec![
        ("t", s(tid)),
        ("y", s("q")),
        ("q", s(method)),
        ("a", B::D(args)),
    ])
}

fn ping(id: [u8; 20]) -> B {
    query(b"pi", "ping", vec![("id", s(id))])
}

fn get_peers(id: [u8; 20], info_hash: [u8; 20]) -> B {
    query(
        b"gp",
        "get_peers",
        vec![("id", s(id)), ("info_hash", s(info_hash))],
    )
}

fn announce(id: [u8; 20], info_hash: [u8; 20], port: u16, token: &[u8]) -> B {
    query(
        b"ap",
        "announce_peer",
        vec![
            ("id", s(id)),
            ("info_hash", s(info_hash)),
            ("port", B::I(i64::from(port))),
            ("token", s(token)),
        ],
    )
}

fn response(tid: &[u8], id: [u8; 20], extra: Vec<(&'static str, B)>) -> B {
    let mut r = vec![("id", s(id))];
    r.extend(extra);
    B::D(vec![("t", s(tid)), ("y", s("r")), ("r", B::D(r))])
}

/// A routable IPv4 address for index `i` (11.0.0.0 up, never multicast or broadcast).
fn ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0b00_0000 + i)
}

fn addr(i: u32) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip(i), 6881))
}

/// One node under attack, on a virtual clock.
struct Bed {
    node: Dht,
    now: Instant,
}

impl Bed {
    fn new(config: Config) -> Bed {
        let now = Instant::now();
        let mut rng = StdRng::seed_from_u64(5);
        Bed {
            node: Dht::new(OWN, config, &mut rng, now),
            now,
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.node.handle_timeout(self.now);
        self.sent();
    }

    /// Everything the node sends, decoded (what we send must always decode and fit a packet).
    /// Bootstraps from `boot` and returns the transaction id of the query sent to it.
    fn bootstrap_tid(&mut self, boot: SocketAddr) -> Vec<u8> {
        self.node.bootstrap(&[boot], self.now);
        self.sent()
            .into_iter()
            .find(|(to, _)| *to == boot)
            .map(|(_, m)| m.tid)
            .expect("a bootstrap query")
    }

    fn sent(&mut self) -> Vec<(SocketAddr, Message)> {
        let mut out = Vec::new();
        while let Some((to, bytes)) = self.node.poll_transmit() {
            assert!(bytes.len() <= MAX_PACKET);
            let m = Message::decode(&bytes).expect("our own packets decode");
            out.push((to, m));
        }
        while self.node.poll_event().is_some() {}
        out
    }

    /// Feeds `bytes` from `from` and returns what the node sent back to `from`.
    fn feed(&mut self, from: SocketAddr, bytes: &[u8]) -> Vec<Message> {
        self.node.handle_packet(from, bytes, self.now);
        self.sent()
            .into_iter()
            .filter(|(to, _)| *to == from)
            .map(|(_, m)| m)
            .collect()
    }

    /// The one reply to `bytes`, if any.
    fn ask(&mut self, from: SocketAddr, bytes: &[u8]) -> Option<Message> {
        let mut replies = self.feed(from, bytes);
        assert!(replies.len() <= 1, "several replies: {replies:?}");
        replies.pop()
    }

    /// A well-formed ping from a fresh address is answered with our id.
    fn answers_a_real_ping(&mut self, from: SocketAddr) {
        let reply = self
            .ask(from, &ping([0x99; 20]).bytes())
            .expect("ping answered");
        assert_eq!(reply.tid, b"pi");
        assert_eq!(reply.body, Body::Response(Response::id_only(OWN)));
    }

    /// The token the node gives `from` in a get_peers reply.
    fn token(&mut self, from: SocketAddr, id: [u8; 20]) -> Vec<u8> {
        let reply = self.ask(from, &get_peers(id, [0; 20]).bytes());
        match reply.map(|m| m.body) {
            Some(Body::Response(r)) => r.token.expect("get_peers reply has a token"),
            other => panic!("get_peers answered with {other:?}"),
        }
    }
}

/// Every key of `q` and of its `a` or `r` dictionary, with its value.
fn fields(q: &B) -> Vec<(Vec<&'static str>, B)> {
    let B::D(top) = q else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (k, v) in top {
        out.push((vec![*k], v.clone()));
        if let B::D(inner) = v {
            out.extend(inner.iter().map(|(ik, iv)| (vec![*k, *ik], iv.clone())));
        }
    }
    out
}

/// One value of each bencode type other than `right`'s.
fn wrong_types(right: &B) -> Vec<B> {
    let all = [
        B::I(7),
        s("wrong"),
        B::L(vec![B::I(1)]),
        B::D(vec![("k", B::I(1))]),
    ];
    all.into_iter()
        .filter(|w| std::mem::discriminant(w) != std::mem::discriminant(right))
        .collect()
}

fn error_code(m: &Message) -> Option<i64> {
    match &m.body {
        Body::Error(e) => Some(e.code),
        _ => None,
    }
}

#[test]
fn malformed_bencode_is_dropped_without_a_reply() {
    let mut bed = Bed::new(Config::default());
    let garbage: [&[u8]; 14] = [
        b"",
        b"d",
        b"e",
        b"i42e",
        b"le",
        b"4:spam",
        b"d1:t2:aa1:y1:q",
        b"d1:t2:aa1:y1:qe trailing",
        b"d2:zz1:a2:aa1:be",
        b"d1:ti01e1:y1:qe",
        b"99999999999999999999:x",
        b"d1:t-1:a1:y1:qe",
        b"\x00\xff\xfe garbage \x80",
        b"d1:ad2:id20:0123456789abcdefghije1:q4:ping1:t2:aa1:y1:q",
    ];
    for g in garbage {
        assert!(bed.ask(addr(1), g).is_none(), "reply to {g:?}");
    }
    assert_eq!(bed.node.routing_nodes(), 0);
    bed.answers_a_real_ping(addr(2));
    assert_eq!(bed.node.routing_nodes(), 1);
}

/// Every field of every query, and of a response, replaced by each wrong bencode type: a query
/// whose `t` is readable gets a protocol error, anything else is dropped, and nothing reaches
/// the routing table.
#[test]
fn wrong_types_in_every_field() {
    let id = [0x11; 20];
    let ih = [0x42; 20];
    let queries = [
        ping(id),
        query(b"fn", "find_node", vec![("id", s(id)), ("target", s(ih))]),
        get_peers(id, ih),
        announce(id, ih, 6881, b"token"),
    ];
    let mut bed = Bed::new(Config {
        query_burst_per_ip: 10_000,
        ..Config::default()
    });
    let mut cases = 0;
    for q in &queries {
        for (path, right) in fields(q) {
            for w in wrong_types(&right) {
                let bytes = q.with(&path, w).bytes();
                cases += 1;
                let reply = bed.ask(addr(1), &bytes);
                let tid_readable = path.as_slice() != ["t"] && path.as_slice() != ["y"];
                let text = String::from_utf8_lossy(&bytes);
                match reply {
                    Some(m) => {
                        assert!(tid_readable, "reply to an unreadable t: {text}");
                        assert_eq!(error_code(&m), Some(ERROR_PROTOCOL), "{text}: {m:?}");
                    }
                    None => assert!(!tid_readable, "no error reply to {text}"),
                }
            }
        }
    }
    assert!(cases >= 60, "{cases} cases");
    // Queries that failed to decode never add their sender.
    assert_eq!(bed.node.routing_nodes(), 0);

    // Responses: a node we asked answers with wrong types first; those are dropped and the
    // transaction stays open for the real answer.
    let boot = addr(50);
    let tid = bed.bootstrap_tid(boot);
    let good = response(&tid, [0x22; 20], vec![]);
    let full = response(
        &tid,
        [0x22; 20],
        vec![
            ("nodes", s([3; 26])),
            ("values", B::L(vec![s([4; 6])])),
            ("token", s("tk")),
        ],
    );
    for (path, right) in fields(&full).into_iter().filter(|(p, _)| p[0] == "r") {
        for w in wrong_types(&right) {
            assert!(bed.ask(boot, &full.with(&path, w).bytes()).is_none());
        }
    }
    let in_list = full.with(&["r", "values"], B::L(vec![B::I(1)]));
    assert!(bed.ask(boot, &in_list.bytes()).is_none());
    assert_eq!(bed.node.routing_nodes(), 0);
    assert!(
        bed.ask(boot, &good.bytes()).is_none(),
        "responses are not answered"
    );
    assert_eq!(bed.node.routing_nodes(), 1, "the real answer still counts");
}

#[test]
fn huge_values_are_dropped_or_refused() {
    let mut bed = Bed::new(Config::default());
    let id = [0x11; 20];
    // Over the packet size: dropped before anything is read.
    let long_string = ping(id).with(&["a", "pad"], s(vec![b'x'; 100_000]));
    assert!(bed.ask(addr(1), &long_string.bytes()).is_none());
    let many = B::L((0..10_000).map(B::I).collect());
    assert!(
        bed.ask(addr(1), &ping(id).with(&["a", "pad"], many).bytes())
            .is_none()
    );
    // Under the size but over the item count (4,000 empty strings in under 8 KiB).
    let items = B::L((0..4000).map(|_| s("")).collect());
    let packet = ping(id).with(&["a", "pad"], items).bytes();
    assert!(packet.len() <= MAX_PACKET);
    assert!(bed.ask(addr(1), &packet).is_none());
    // Deep nesting, alone and inside a query.
    let mut deep = Vec::new();
    deep.extend(std::iter::repeat_n(b'l', 4000));
    deep.extend(std::iter::repeat_n(b'e', 4000));
    assert!(bed.ask(addr(1), &deep).is_none());
    let mut nested = B::I(1);
    for _ in 0..10 {
        nested = B::L(vec![nested]);
    }
    assert!(
        bed.ask(addr(1), &ping(id).with(&["a", "pad"], nested).bytes())
            .is_none()
    );
    // Within the size: a token and a transaction id too long are protocol errors; a long
    // version is ignored; a long error message is cut.
    let m = bed
        .ask(addr(1), &announce(id, id, 1, &[7; 1000]).bytes())
        .expect("an error reply");
    assert_eq!(error_code(&m), Some(ERROR_PROTOCOL));
    let long_tid = ping(id).with(&["t"], s([b't'; 17]));
    assert!(bed.ask(addr(1), &long_tid.bytes()).is_none());
    let long_v = ping(id).with(&["v"], s([b'v'; 4000]));
    let m = bed.ask(addr(1), &long_v.bytes()).expect("ping answered");
    assert_eq!(m.body, Body::Response(Response::id_only(OWN)));
    let err = B::D(vec![
        ("t", s("ee")),
        ("y", s("e")),
        ("e", B::L(vec![B::I(201), s(vec![b'm'; 7000])])),
    ]);
    let decoded = Message::decode(&err.bytes()).expect("a long error decodes");
    assert!(matches!(decoded.body, Body::Error(e) if e.message.len() <= 256));
    assert!(bed.ask(addr(1), &err.bytes()).is_none());
    // Huge integers.
    let port = announce(id, id, 1, b"t").with(&["a", "port"], B::I(i64::MAX));
    let m = bed.ask(addr(1), &port.bytes()).expect("an error reply");
    assert_eq!(error_code(&m), Some(ERROR_PROTOCOL));
    let big = b"d1:ad2:id20:0123456789abcdefghij4:porti99999999999999999999999999ee1:q4:ping1:t2:aa1:y1:qe";
    assert!(
        bed.ask(addr(1), big).is_none(),
        "integer overflow is bencode-invalid"
    );
    bed.answers_a_real_ping(addr(2));
}

#[test]
fn ids_of_the_wrong_length_are_refused() {
    let mut bed = Bed::new(Config::default());
    for len in [0usize, 1, 19, 21, 40, 1000] {
        let id = vec![0x11; len];
        let ih = vec![0x42; len];
        let cases = [
            ping([0x11; 20]).with(&["a", "id"], s(&id)),
            query(
                b"fn",
                "find_node",
                vec![("id", s([1; 20])), ("target", s(&ih))],
            ),
            get_peers([0x11; 20], [0; 20]).with(&["a", "info_hash"], s(&ih)),
            announce([0x11; 20], [0; 20], 1, b"t").with(&["a", "info_hash"], s(&ih)),
        ];
        for q in cases {
            let m = bed.ask(addr(1), &q.bytes()).expect("an error reply");
            assert_eq!(error_code(&m), Some(ERROR_PROTOCOL), "len {len}");
        }
    }
    assert_eq!(bed.node.routing_nodes(), 0);
    // A response with a bad id or a `nodes` string that is not whole 26-byte records is
    // dropped; the real answer after it is taken.
    let boot = addr(60);
    let tid = bed.bootstrap_tid(boot);
    for bad in [
        response(&tid, [0x22; 20], vec![]).with(&["r", "id"], s([0x22; 19])),
        response(&tid, [0x22; 20], vec![("nodes", s([1; 25]))]),
        response(&tid, [0x22; 20], vec![("nodes", s([1; 27]))]),
        response(&tid, [0x22; 20], vec![("values", B::L(vec![s([1; 5])]))]),
        response(&tid, [0x22; 20], vec![("values", B::L(vec![s([1; 18])]))]),
    ] {
        assert!(bed.ask(boot, &bad.bytes()).is_none());
        assert_eq!(bed.node.routing_nodes(), 0);
    }
    bed.ask(boot, &response(&tid, [0x22; 20], vec![]).bytes());
    assert_eq!(bed.node.routing_nodes(), 1);
}

#[test]
fn replies_to_transactions_never_sent_are_ignored() {
    let mut bed = Bed::new(Config::default());
    let mut rng = StdRng::seed_from_u64(9);
    // Unsolicited responses and errors from 1,000 addresses with every 2-byte tid shape.
    for i in 0..1000u32 {
        let tid: [u8; 2] = rng.r#gen();
        let r = response(&tid, rng.r#gen(), vec![("nodes", s([3; 26 * 8]))]);
        assert!(bed.ask(addr(i), &r.bytes()).is_none());
        let e = B::D(vec![
            ("t", s(tid)),
            ("y", s("e")),
            ("e", B::L(vec![B::I(201), s("x")])),
        ]);
        assert!(bed.ask(addr(i), &e.bytes()).is_none());
    }
    assert_eq!(
        bed.node.routing_nodes(),
        0,
        "unsolicited responders are not added"
    );
    assert_eq!(bed.node.lookups_running(), 0);

    // A real transaction answered first by a spoofer (right tid, other address): ignored; the
    // real node's answer still counts.
    let boot = addr(5000);
    let tid = bed.bootstrap_tid(boot);
    let answer = response(&tid, [0x22; 20], vec![]);
    assert!(bed.ask(addr(5001), &answer.bytes()).is_none());
    assert_eq!(bed.node.routing_nodes(), 0);
    // A response carrying our own id is refused too.
    bed.ask(boot, &response(&tid, OWN.0, vec![]).bytes());
    assert_eq!(bed.node.routing_nodes(), 0);
    // That failed the bootstrap's only transaction; a new bootstrap asks again and the real
    // answer counts.
    let tid = bed.bootstrap_tid(boot);
    bed.ask(boot, &response(&tid, [0x22; 20], vec![]).bytes());
    assert_eq!(bed.node.routing_nodes(), 1);
    bed.answers_a_real_ping(addr(6000));
    assert_eq!(bed.node.routing_nodes(), 2);
}

#[test]
fn a_query_flood_from_one_address_is_rate_limited() {
    let config = Config::default();
    let (rate, burst) = (config.query_rate_per_ip, config.query_burst_per_ip);
    let mut bed = Bed::new(config);
    let flood = addr(1);
    let packet = ping([0x11; 20]).bytes();
    let answered = (0..10_000)
        .filter(|_| bed.ask(flood, &packet).is_some())
        .count();
    assert_eq!(answered, burst as usize, "only the burst at one instant");
    // A second later, one second's worth more.
    bed.now += Duration::from_secs(1);
    let answered = (0..10_000)
        .filter(|_| bed.ask(flood, &packet).is_some())
        .count();
    assert_eq!(answered, rate as usize);
    // Malformed queries count against the same budget (no error replies past it).
    let bad = ping([0x11; 20]).with(&["a", "id"], s("short")).bytes();
    assert!(bed.ask(flood, &bad).is_none());
    // Everyone else is unaffected.
    bed.answers_a_real_ping(addr(2));
    assert_eq!(bed.node.routing_nodes(), 2, "the flooder holds one entry");
}

#[test]
fn a_query_flood_from_10000_addresses_fills_only_the_limiter_table() {
    let config = Config::default();
    let tracked = config.max_rate_limited_ips;
    let k = config.k;
    let mut bed = Bed::new(config);
    let mut rng = StdRng::seed_from_u64(3);
    let mut answered = 0;
    for i in 0..10_000u32 {
        let id: [u8; 20] = rng.r#gen();
        if bed.ask(addr(i), &ping(id).bytes()).is_some() {
            answered += 1;
        }
    }
    assert_eq!(
        answered, tracked,
        "new addresses past the table cap are dropped"
    );
    assert!(bed.node.routing_nodes() <= ID_BITS * k);
    // Once the tracked addresses' buckets have refilled, newcomers get answers again.
    bed.now += Duration::from_secs(3);
    bed.answers_a_real_ping(addr(20_000));
    let again = (10_000..12_000u32)
        .filter(|i| bed.ask(addr(*i), &ping([7; 20]).bytes()).is_some())
        .count();
    assert_eq!(again, 2000);
}

#[test]
fn announce_flood_with_valid_tokens_stops_at_the_store_cap() {
    let config = Config::default();
    let cap = config.max_info_hashes;
    let per_ip = config.query_burst_per_ip as usize - 1; // one query spent on the token
    let mut bed = Bed::new(config);
    let mut rng = StdRng::seed_from_u64(4);
    let (mut stored, mut refused, mut hashes) = (0usize, 0usize, 0u32);
    let mut first = None;
    let mut ip_index = 0u32;
    while hashes < 100_000 {
        ip_index += 1;
        let from = addr(ip_index);
        let id: [u8; 20] = rng.r#gen();
        let token = bed.token(from, id);
        for _ in 0..per_ip.min((100_000 - hashes) as usize) {
            let mut ih = [0u8; 20];
            ih[..4].copy_from_slice(&hashes.to_be_bytes());
            hashes += 1;
            let m = bed
                .ask(from, &announce(id, ih, 7000, &token).bytes())
                .expect("announce answered");
            match error_code(&m) {
                None => {
                    stored += 1;
                    first.get_or_insert((ih, from));
                }
                Some(ERROR_SERVER) => refused += 1,
                other => panic!("announce answered with {other:?}"),
            }
        }
    }
    assert_eq!(hashes, 100_000);
    println!(
        "announce flood: {hashes} info-hashes from {ip_index} addresses, {stored} stored, {refused} refused"
    );
    assert_eq!(stored, cap);
    assert_eq!(refused, 100_000 - cap);
    assert_eq!(bed.node.stored_info_hashes(), cap);
    // A wrong token is a protocol error, not a store entry.
    let m = bed
        .ask(
            addr(900_000),
            &announce([1; 20], [9; 20], 7000, b"forged").bytes(),
        )
        .expect("answered");
    assert_eq!(error_code(&m), Some(ERROR_PROTOCOL));
    // Stored info-hashes still work: the announced peer is handed out, and a new peer for a
    // stored info-hash is accepted.
    let (ih, announcer) = first.expect("something was stored");
    let asker = addr(900_001);
    let reply = bed
        .ask(asker, &get_peers([2; 20], ih).bytes())
        .expect("answered");
    let Body::Response(r) = reply.body else {
        panic!("{reply:?}")
    };
    let SocketAddr::V4(a) = announcer else {
        unreachable!()
    };
    assert_eq!(r.values, vec![SocketAddrV4::new(*a.ip(), 7000)]);
    let token = r.token.expect("a token");
    let m = bed
        .ask(asker, &announce([2; 20], ih, 7001, &token).bytes())
        .expect("answered");
    assert_eq!(m.body, Body::Response(Response::id_only(OWN)));
    assert_eq!(bed.node.stored_info_hashes(), cap);
    // After the peer TTL the store empties and takes new info-hashes again.
    bed.advance(Duration::from_secs(31 * 60));
    assert_eq!(bed.node.stored_info_hashes(), 0);
}

/// An id that shares exactly `prefix` leading bits with [`OWN`].
fn id_at(prefix: usize, rng: &mut StdRng) -> [u8; 20] {
    let mut id: [u8; 20] = rng.r#gen();
    for bit in 0..=prefix.min(ID_BITS - 1) {
        let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
        let own = OWN.0[byte] & mask;
        let keep = if bit == prefix { own ^ mask } else { own };
        id[byte] = (id[byte] & !mask) | keep;
    }
    id
}

#[test]
fn node_floods_keep_the_routing_table_bounded_and_one_entry_per_address() {
    let config = Config::default();
    let k = config.k;
    let mut bed = Bed::new(config);
    let mut rng = StdRng::seed_from_u64(8);
    // One address, 10,000 ids (spread over the time so the rate limit lets them in).
    let one = addr(1);
    for _ in 0..10_000 {
        bed.now += Duration::from_millis(60);
        bed.ask(one, &ping(rng.r#gen()).bytes());
    }
    assert_eq!(bed.node.routing_nodes(), 1, "one entry per address");

    // 40,000 addresses with ids at every depth of the tree: the table fills up to 160 buckets
    // of k and no more.
    let mut n = 2;
    for round in 0..250 {
        for prefix in 0..ID_BITS {
            n += 1;
            bed.ask(addr(n), &ping(id_at(prefix, &mut rng)).bytes());
        }
        if round % 10 == 0 {
            // Let the limiter table forget old addresses.
            bed.advance(Duration::from_secs(3));
        }
    }
    let full = bed.node.routing_nodes();
    println!(
        "node flood: {n} addresses, routing table {full} nodes (cap {})",
        ID_BITS * k
    );
    assert!(full <= ID_BITS * k, "{full} nodes");
    assert!(full > ID_BITS * k / 2, "the flood did get in: {full}");
    // The same addresses again with new ids change nothing.
    bed.advance(Duration::from_secs(3));
    for i in 2..2 + 4000 {
        bed.ask(addr(i), &ping(rng.r#gen()).bytes());
        if i % 2000 == 0 {
            bed.advance(Duration::from_secs(3));
        }
    }
    assert!(bed.node.routing_nodes() <= full);
    // find_node answers hold k nodes, each from a different address.
    let reply = bed
        .ask(
            addr(999_999),
            &query(
                b"fn",
                "find_node",
                vec![("id", s([9; 20])), ("target", s(OWN.0))],
            )
            .bytes(),
        )
        .expect("answered");
    let Body::Response(r) = reply.body else {
        panic!("{reply:?}")
    };
    assert_eq!(r.nodes.len(), k);
    let mut ips: Vec<Ipv4Addr> = r.nodes.iter().map(|n| *n.addr.ip()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), k);
    // Lookups still run.
    bed.node
        .get_peers(InfoHash([0x42; 20]), bed.now)
        .expect("lookup starts");
    let queries = bed
        .sent()
        .iter()
        .filter(|(_, m)| matches!(m.body, Body::Query(_)))
        .count();
    assert!(queries >= 1);
}
