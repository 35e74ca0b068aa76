use super::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

const ID: &[u8; 20] = b"abcdefghij0123456789";

fn msg(body: Body) -> Message {
    Message {
        tid: b"aa".to_vec(),
        version: None,
        read_only: false,
        body,
    }
}

#[test]
fn bep5_ping_bytes() {
    let q = msg(Body::Query(Query::Ping { id: NodeId(*ID) }));
    let wire = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
    assert_eq!(q.to_vec(), wire.as_slice());
    assert_eq!(Message::decode(wire), Ok(q));
}

#[test]
fn bep5_announce_bytes() {
    let q = msg(Body::Query(Query::AnnouncePeer {
        id: NodeId(*ID),
        info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
        port: 6881,
        implied_port: true,
        token: b"aoeusnth".to_vec(),
    }));
    let wire = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert_eq!(q.to_vec(), wire.as_slice());
    assert_eq!(Message::decode(wire), Ok(q));
}

#[test]
fn error_reply_bytes() {
    let e = msg(Body::Error(KrpcError {
        code: ERROR_GENERIC,
        message: "A Generic Error Ocurred".into(),
    }));
    let wire = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
    assert_eq!(e.to_vec(), wire.as_slice());
    assert_eq!(Message::decode(wire), Ok(e));
}

#[test]
fn tolerates_unknown_keys_version_and_ro() {
    let wire = b"d1:ad2:id20:abcdefghij01234567894:wantl2:n4e6:target20:mnopqrstuvwxyz123456e1:q9:find_node2:roi1e1:t2:aa1:v4:LT\x01\x021:y1:q3:zzzi5ee";
    let m = Message::decode(wire).unwrap();
    assert!(m.read_only);
    assert_eq!(m.version.as_deref(), Some(&b"LT\x01\x02"[..]));
    assert_eq!(
        m.body,
        Body::Query(Query::FindNode {
            id: NodeId(*ID),
            target: NodeId(*b"mnopqrstuvwxyz123456"),
        })
    );
    // A malformed `v` or `ro` is ignored, not an error.
    let wire = b"d1:rd2:id20:abcdefghij0123456789e2:ro1:x1:t2:aa1:vi3e1:y1:re";
    let m = Message::decode(wire).unwrap();
    assert!(!m.read_only);
    assert_eq!(m.version, None);
}

#[test]
fn strict_sizes() {
    let short_id = b"d1:ad2:id19:abcdefghij012345678e1:q4:ping1:t2:aa1:y1:qe";
    let err = Message::decode(short_id).unwrap_err();
    assert_eq!(err.kind, K::BadLength { key: "id", len: 19 });
    assert_eq!(err.query_tid.as_deref(), Some(&b"aa"[..]));

    let bad_nodes = b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(bad_nodes).unwrap_err().kind,
        K::BadLength {
            key: "nodes",
            len: 3
        }
    );
    let bad_value = b"d1:rd2:id20:abcdefghij01234567896:valuesl5:abcdeee1:t2:aa1:y1:re";
    assert_eq!(
        Message::decode(bad_value).unwrap_err().kind,
        K::BadLength {
            key: "values",
            len: 5
        }
    );
    let empty_tid = b"d1:rd2:id20:abcdefghij0123456789e1:t0:1:y1:re";
    assert_eq!(
        Message::decode(empty_tid).unwrap_err().kind,
        K::BadLength { key: "t", len: 0 }
    );
    let big_port = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti65536e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe";
    assert_eq!(
        Message::decode(big_port).unwrap_err().kind,
        K::OutOfRange("port")
    );
}

#[test]
fn unknown_method_keeps_the_tid() {
    let wire = b"d1:ad2:id20:abcdefghij0123456789e1:q3:put1:t2:xy1:y1:qe";
    let err = Message::decode(wire).unwrap_err();
    assert_eq!(err.kind, K::UnknownMethod);
    assert_eq!(err.query_tid.as_deref(), Some(&b"xy"[..]));
    let not_query = b"d1:t2:xy1:y1:ze";
    let err = Message::decode(not_query).unwrap_err();
    assert_eq!(err.kind, K::UnknownType);
    assert_eq!(err.query_tid, None);
}

#[test]
fn long_error_message_is_cut() {
    let mut wire = b"d1:eli202e300:".to_vec();
    wire.extend_from_slice(&[b'x'; 300]);
    wire.extend_from_slice(b"e1:t1:a1:y1:ee");
    match Message::decode(&wire).unwrap().body {
        Body::Error(e) => assert_eq!(e.message.len(), MAX_ERROR_MESSAGE),
        other => panic!("not an error: {other:?}"),
    }
}

fn arb_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}

fn arb_addr() -> impl Strategy<Value = SocketAddrV4> {
    (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

fn arb_token() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..=MAX_TOKEN_LEN)
}

fn arb_body() -> impl Strategy<Value = Body> {
    let node = (arb_id(), arb_addr()).prop_map(|(id, addr)| NodeInfo { id, addr });
    prop_oneof![
        arb_id().prop_map(|id| Body::Query(Query::Ping { id })),
        (arb_id(), arb_id()).prop_map(|(id, target)| Body::Query(Query::FindNode { id, target })),
        (arb_id(), any::<[u8; 20]>()).prop_map(|(id, h)| Body::Query(Query::GetPeers {
            id,
            info_hash: InfoHash(h)
        })),
        (
            arb_id(),
            any::<[u8; 20]>(),
            any::<u16>(),
            any::<bool>(),
            arb_token()
        )
            .prop_map(|(id, h, port, implied_port, token)| Body::Query(
                Query::AnnouncePeer {
                    id,
                    info_hash: InfoHash(h),
                    port,
                    implied_port,
                    token,
                }
            )),
        (
            arb_id(),
            proptest::collection::vec(node, 0..10),
            proptest::collection::vec(arb_addr(), 0..10),
            proptest::option::of(arb_token())
        )
            .prop_map(|(id, nodes, values, token)| Body::Response(Response {
                id,
                nodes,
                values,
                token
            })),
        (201i64..=204, "[ -~]{0,40}")
            .prop_map(|(code, message)| Body::Error(KrpcError { code, message })),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (
        proptest::collection::vec(any::<u8>(), 1..=MAX_TID_LEN),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=MAX_VERSION_LEN)),
        any::<bool>(),
        arb_body(),
    )
        .prop_map(|(tid, version, read_only, body)| Message {
            tid,
            version,
            read_only,
            body,
        })
}

proptest! {
    #[test]
    fn round_trip(m in arb_message()) {
        let wire = m.to_vec();
        // Keys must come out sorted: re-encoding the generic tree changes nothing.
        prop_assert_eq!(bencode::decode(&wire).unwrap().to_vec(), wire.clone());
        prop_assert_eq!(Message::decode(&wire), Ok(m));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Message::decode(&bytes);
    }

    #[test]
    fn decode_of_mutated_messages_never_panics(
        m in arb_message(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = m.to_vec();
        for (i, b) in flips {
            let at = i.index(wire.len());
            wire[at] = b;
        }
        let _ = Message::decode(&wire);
        let _ = Message::decode(&wire[..cut.index(wire.len())]);
    }
}
