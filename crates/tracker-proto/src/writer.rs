//! Bencode output primitives that append straight into a `Vec<u8>` (keys are written by the
//! callers in sorted order, as bencode requires).

/// Appends the decimal digits of `v`.
pub(crate) fn put_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(buf.get(i..).unwrap_or_default());
}

/// Appends `i<v>e`.
pub(crate) fn put_int(out: &mut Vec<u8>, v: u64) {
    out.push(b'i');
    put_decimal(out, v);
    out.push(b'e');
}

/// Appends the `<len>:` header of a byte string.
pub(crate) fn put_len(out: &mut Vec<u8>, len: usize) {
    put_decimal(out, len as u64);
    out.push(b':');
}

/// Appends `<len>:<bytes>`.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_len(out, b.len());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_ints_and_strings() {
        let mut v = Vec::new();
        put_int(&mut v, 0);
        put_int(&mut v, u64::MAX);
        put_bytes(&mut v, b"spam");
        put_bytes(&mut v, b"");
        assert_eq!(v, b"i0ei18446744073709551615e4:spam0:");
    }
}
