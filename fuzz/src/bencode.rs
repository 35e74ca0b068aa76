//! Bencode: `value_len`, `decode_prefix`, `decode` and `raw_dict` must agree with one another,
//! and a decoded value must survive encode -> decode unchanged.

use ::bencode::{
    Limits, Value, decode, decode_prefix, decode_prefix_with, raw_dict, value_len, value_len_with,
};

/// Runs the bencode readers over `data` with default limits, then with tight limits taken from
/// its first bytes.
pub fn run(data: &[u8]) {
    agree(data, None);
    if let [a, b, c, rest @ ..] = data {
        let limits = Limits {
            max_len: usize::from(*a) * 4,
            max_depth: usize::from(*b % 16),
            max_items: usize::from(*c),
        };
        agree(rest, Some(limits));
    }
}

fn agree(data: &[u8], limits: Option<Limits>) {
    let limits_used = limits.unwrap_or_default();
    let (len, prefix) = match limits {
        None => (value_len(data), decode_prefix(data)),
        Some(l) => (value_len_with(data, &l), decode_prefix_with(data, &l)),
    };
    match (&len, &prefix) {
        (Ok(n), Ok((_, rest))) => assert_eq!(
            *n,
            data.len() - rest.len(),
            "value_len and decode_prefix disagree on the value's length"
        ),
        // On empty input decode_prefix says `Empty` where value_len applies its limits.
        (Err(a), Err(b)) => assert!(
            data.is_empty() || a.is_incomplete() == b.is_incomplete(),
            "value_len says {a:?}, decode_prefix says {b:?}"
        ),
        _ => panic!("value_len gives {len:?} but decode_prefix gives {prefix:?}"),
    }
    let Ok((value, rest)) = &prefix else {
        return;
    };
    let used = data.len() - rest.len();

    // Bencode has one encoding per value up to dictionary order, so the canonical form has the
    // same length, decodes, and is a fixed point.
    let encoded = value.to_vec();
    assert_eq!(encoded.len(), used, "re-encoding changed the length");
    let again = decode(&encoded).expect("a re-encoded value decodes");
    assert_eq!(
        again.to_vec(),
        encoded,
        "encode(decode(encode(v))) != encode(v)"
    );
    if limits.is_none() {
        assert_eq!(
            &again,
            &sorted(value),
            "decode(encode(v)) != v (keys sorted)"
        );
    }

    if limits.is_none() && rest.is_empty() {
        assert_eq!(
            decode(data).as_ref(),
            Ok(value),
            "decode and decode_prefix disagree"
        );
    }

    if let Value::Dict(entries) = value {
        let raw = raw_dict(data, &limits_used).expect("raw_dict reads what decode_prefix read");
        assert_eq!(
            raw.len(),
            entries.len(),
            "raw_dict lists another number of entries"
        );
        for (r, (k, v)) in raw.iter().zip(entries) {
            assert_eq!(r.key, *k);
            assert_eq!(data.get(r.offset..r.offset + r.raw.len()), Some(r.raw));
            assert_eq!(
                decode(r.raw).as_ref(),
                Ok(v),
                "raw value bytes decode to another value"
            );
        }
    }
}

/// `v` with every dictionary's entries stably sorted by key, as the encoder writes them.
fn sorted<'a>(v: &Value<'a>) -> Value<'a> {
    match v {
        Value::Int(_) | Value::Bytes(_) => v.clone(),
        Value::List(items) => Value::List(items.iter().map(sorted).collect()),
        Value::Dict(entries) => {
            let mut out: Vec<(&'a [u8], Value<'a>)> =
                entries.iter().map(|(k, v)| (*k, sorted(v))).collect();
            out.sort_by_key(|(k, _)| *k);
            Value::Dict(out)
        }
    }
}
