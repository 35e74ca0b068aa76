//! Property tests: encode/decode round trip, no panics on arbitrary bytes, and the scanner
//! agreeing with the decoder.

use bencode::{Limits, Value, decode, decode_prefix, raw_dict, value_len};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// An owned mirror of `Value` so proptest can generate trees; dict keys unique and sorted.
#[derive(Debug, Clone)]
enum Owned {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Owned>),
    Dict(BTreeMap<Vec<u8>, Owned>),
}

impl Owned {
    fn as_value(&self) -> Value<'_> {
        match self {
            Owned::Int(n) => Value::Int(*n),
            Owned::Bytes(b) => Value::Bytes(b),
            Owned::List(l) => Value::List(l.iter().map(Owned::as_value).collect()),
            Owned::Dict(d) => Value::Dict(d.iter().map(|(k, v)| (&k[..], v.as_value())).collect()),
        }
    }
}

fn owned() -> impl Strategy<Value = Owned> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Owned::Int),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Owned::Bytes),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Owned::List),
            proptest::collection::btree_map(
                proptest::collection::vec(any::<u8>(), 0..6),
                inner,
                0..6
            )
            .prop_map(Owned::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn encode_decode_round_trip(o in owned()) {
        let v = o.as_value();
        let bytes = v.to_vec();
        let back = decode(&bytes).unwrap();
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(value_len(&bytes), Ok(bytes.len()));
        prop_assert_eq!(back.to_vec(), bytes);
    }

    #[test]
    fn every_proper_prefix_is_incomplete(o in owned()) {
        let bytes = o.as_value().to_vec();
        for cut in 0..bytes.len() {
            let e = value_len(&bytes[..cut]).unwrap_err();
            prop_assert!(e.is_incomplete(), "cut {cut}: {e}");
        }
    }

    #[test]
    fn prefix_decoding_returns_the_tail(o in owned(), tail in proptest::collection::vec(any::<u8>(), 0..16)) {
        let mut bytes = o.as_value().to_vec();
        let n = bytes.len();
        bytes.extend_from_slice(&tail);
        let (v, rest) = decode_prefix(&bytes).unwrap();
        prop_assert_eq!(v, o.as_value());
        prop_assert_eq!(rest, &tail[..]);
        prop_assert_eq!(value_len(&bytes), Ok(n));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_scanner_agrees(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        check_agreement(&bytes)?;
    }

    #[test]
    fn bencode_like_bytes_never_panic_and_scanner_agrees(
        bytes in proptest::collection::vec(
            prop_oneof![Just(b'i'), Just(b'e'), Just(b'l'), Just(b'd'), Just(b':'), Just(b'-'), Just(b'0'), Just(b'1'), Just(b'2'), Just(b'a')],
            0..48,
        )
    ) {
        check_agreement(&bytes)?;
    }

    #[test]
    fn raw_dict_spans_decode_to_the_entries(o in owned()) {
        let v = o.as_value();
        let bytes = v.to_vec();
        if let Value::Dict(entries) = &v {
            let raw = raw_dict(&bytes, &Limits::default()).unwrap();
            prop_assert_eq!(raw.len(), entries.len());
            for (r, (k, val)) in raw.iter().zip(entries) {
                prop_assert_eq!(r.key, *k);
                prop_assert_eq!(&decode(r.raw).unwrap(), val);
                prop_assert_eq!(&bytes[r.offset..r.offset + r.raw.len()], r.raw);
            }
        }
    }
}

/// `value_len` succeeds exactly when `decode_prefix` does, with the same length; and `decode`
/// succeeds exactly when the value fills the buffer.
fn check_agreement(bytes: &[u8]) -> Result<(), TestCaseError> {
    let scanned = value_len(bytes);
    let prefix = decode_prefix(bytes);
    match (&scanned, &prefix) {
        (Ok(n), Ok((_, rest))) => prop_assert_eq!(*n, bytes.len() - rest.len()),
        (Err(e), Err(f)) => {
            if !bytes.is_empty() {
                prop_assert_eq!(e, f);
            }
        }
        _ => prop_assert!(false, "scanner {scanned:?} vs decoder {prefix:?}"),
    }
    let whole = decode(bytes);
    prop_assert_eq!(whole.is_ok(), scanned == Ok(bytes.len()));
    Ok(())
}
