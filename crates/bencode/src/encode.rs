//! Writing bencode: [`Value::encode`] (dictionary keys sorted, as BEP 3 requires) and small
//! `put_*` helpers for hand-rolled encoders that write straight into a `Vec<u8>`.
//!
//! Hand-rolled encoders must write dictionary keys in sorted byte order themselves.

use crate::value::Value;

/// Appends the decimal digits of `n` (no allocation).
fn put_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Writes `i<n>e`.
pub fn put_int(out: &mut Vec<u8>, n: i64) {
    out.push(b'i');
    if n < 0 {
        out.push(b'-');
    }
    put_decimal(out, n.unsigned_abs());
    out.push(b'e');
}

/// Writes `i<n>e` for an unsigned number (values above `i64::MAX` are not readable back by
/// [`crate::decode`]; callers keep to sizes and counts).
pub fn put_uint(out: &mut Vec<u8>, n: u64) {
    out.push(b'i');
    put_decimal(out, n);
    out.push(b'e');
}

/// Writes `<len>:<bytes>`.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_decimal(out, b.len() as u64);
    out.push(b':');
    out.extend_from_slice(b);
}

/// Writes a string as a byte string.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// Writes the opening `l` of a list.
pub fn put_list_start(out: &mut Vec<u8>) {
    out.push(b'l');
}

/// Writes the opening `d` of a dictionary.
pub fn put_dict_start(out: &mut Vec<u8>) {
    out.push(b'd');
}

/// Writes the `e` that closes a list or dictionary.
pub fn put_end(out: &mut Vec<u8>) {
    out.push(b'e');
}

impl Value<'_> {
    /// Appends the encoding of this value; dictionary entries are written in sorted key order
    /// (a stable sort, so duplicate keys keep their relative order).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => put_int(out, *n),
            Value::Bytes(b) => put_bytes(out, b),
            Value::List(items) => {
                put_list_start(out);
                for v in items {
                    v.encode(out);
                }
                put_end(out);
            }
            Value::Dict(entries) => {
                put_dict_start(out);
                let mut sorted: Vec<&(&[u8], Value<'_>)> = entries.iter().collect();
                sorted.sort_by_key(|(k, _)| *k);
                for (k, v) in sorted {
                    put_bytes(out, k);
                    v.encode(out);
                }
                put_end(out);
            }
        }
    }

    /// The encoding as a new vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_write_exact_bytes() {
        let mut out = Vec::new();
        put_dict_start(&mut out);
        put_str(&mut out, "n");
        put_int(&mut out, i64::MIN);
        put_str(&mut out, "u");
        put_uint(&mut out, u64::MAX);
        put_str(&mut out, "z");
        put_int(&mut out, 0);
        put_list_start(&mut out);
        put_bytes(&mut out, b"");
        put_end(&mut out);
        put_end(&mut out);
        assert_eq!(
            out,
            b"d1:ni-9223372036854775808e1:ui18446744073709551615e1:zi0el0:ee".as_slice()
        );
    }

    #[test]
    fn dict_keys_are_sorted_on_encode() {
        let v = Value::Dict(vec![
            (b"zeta", Value::Int(1)),
            (
                b"alfa",
                Value::List(vec![Value::Bytes(b"x"), Value::Int(-3)]),
            ),
        ]);
        assert_eq!(v.to_vec(), b"d4:alfal1:xi-3ee4:zetai1ee".as_slice());
    }
}
