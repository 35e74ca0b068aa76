//! URL query strings: splitting into parameters, percent-decoding into fixed buffers without
//! allocating, percent-encoding raw bytes, and strict decimal numbers.

use crate::error::QueryError;

/// One `name=value` pair of a query string, both still percent-encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawParam<'a> {
    /// The encoded name (before `=`).
    pub name: &'a [u8],
    /// The encoded value (after the first `=`, empty when there is none).
    pub value: &'a [u8],
}

/// Iterates the `&`-separated parameters of a raw query; empty segments are skipped.
pub(crate) fn params(query: &[u8]) -> impl Iterator<Item = RawParam<'_>> {
    query
        .split(|&b| b == b'&')
        .filter(|s| !s.is_empty())
        .map(|seg| match seg.iter().position(|&b| b == b'=') {
            Some(i) => RawParam {
                name: &seg[..i],
                value: &seg[i + 1..],
            },
            None => RawParam {
                name: seg,
                value: &[],
            },
        })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Why a percent-decode into a fixed buffer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeFail {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// The decoded bytes do not fit the buffer.
    TooLong,
}

impl DecodeFail {
    /// The query error for parameter `param`.
    pub(crate) fn into_error(self, param: &'static str) -> QueryError {
        match self {
            DecodeFail::BadEscape => QueryError::BadPercentEncoding(param),
            DecodeFail::TooLong => QueryError::TooLong(param),
        }
    }
}

/// Percent-decodes `src` into `dst`, returning the decoded length. `+` stays a literal `+`
/// (trackers treat the query as raw bytes, not as a form).
pub(crate) fn percent_decode_into(src: &[u8], dst: &mut [u8]) -> Result<usize, DecodeFail> {
    let mut i = 0;
    let mut n = 0;
    while let Some(&b) = src.get(i) {
        let byte = if b == b'%' {
            let hi = src.get(i + 1).copied().and_then(hex_val);
            let lo = src.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    i += 3;
                    (h << 4) | l
                }
                _ => return Err(DecodeFail::BadEscape),
            }
        } else {
            i += 1;
            b
        };
        *dst.get_mut(n).ok_or(DecodeFail::TooLong)? = byte;
        n += 1;
    }
    Ok(n)
}

/// The length `src` percent-decodes to, without writing it anywhere.
pub(crate) fn decoded_len(src: &[u8]) -> Result<usize, DecodeFail> {
    let mut i = 0;
    let mut n = 0;
    while let Some(&b) = src.get(i) {
        if b == b'%' {
            let ok = src.get(i + 1).copied().and_then(hex_val).is_some()
                && src.get(i + 2).copied().and_then(hex_val).is_some();
            if !ok {
                return Err(DecodeFail::BadEscape);
            }
            i += 3;
        } else {
            i += 1;
        }
        n += 1;
    }
    Ok(n)
}

/// True when `encoded` percent-decodes to exactly `name` (parameter names are short ASCII).
pub(crate) fn name_is(encoded: &[u8], name: &str) -> bool {
    if encoded == name.as_bytes() {
        return true;
    }
    if !encoded.contains(&b'%') {
        return false;
    }
    let mut buf = [0u8; 32];
    matches!(percent_decode_into(encoded, &mut buf), Ok(n) if buf.get(..n) == Some(name.as_bytes()))
}

/// Appends `bytes` percent-encoded: RFC 3986 unreserved characters stay, all else is `%XX`.
pub(crate) fn percent_encode_into(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

/// Parses a non-negative decimal number (after percent-decoding) for parameter `param`.
pub(crate) fn parse_u64(param: &'static str, encoded: &[u8]) -> Result<u64, QueryError> {
    let mut buf = [0u8; 32];
    let n = percent_decode_into(encoded, &mut buf).map_err(|e| e.into_error(param))?;
    let digits = buf.get(..n).unwrap_or_default();
    match digits.split_first() {
        None => return Err(QueryError::NotANumber(param)),
        Some((b'-', rest)) if !rest.is_empty() && rest.iter().all(u8::is_ascii_digit) => {
            return Err(QueryError::Negative(param));
        }
        _ => {}
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(QueryError::NotANumber(param));
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or(QueryError::NumberTooLarge(param))?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_params() {
        let v: Vec<_> = params(b"a=1&&b&c=x=y").collect();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].name, b"a");
        assert_eq!(v[0].value, b"1");
        assert_eq!(v[1].name, b"b");
        assert_eq!(v[1].value, b"");
        assert_eq!(v[2].value, b"x=y");
    }

    #[test]
    fn decodes_escapes_and_rejects_bad_ones() {
        let mut buf = [0u8; 8];
        assert_eq!(percent_decode_into(b"%41b%ff+", &mut buf), Ok(4));
        assert_eq!(&buf[..4], b"Ab\xff+");
        assert_eq!(
            percent_decode_into(b"%4", &mut buf),
            Err(DecodeFail::BadEscape)
        );
        assert_eq!(
            percent_decode_into(b"%zz", &mut buf),
            Err(DecodeFail::BadEscape)
        );
        assert_eq!(
            percent_decode_into(b"123456789", &mut buf),
            Err(DecodeFail::TooLong)
        );
    }

    #[test]
    fn decoded_len_counts_escapes_once() {
        assert_eq!(decoded_len(b"%41b%ff+"), Ok(4));
        assert_eq!(decoded_len(b"ab%"), Err(DecodeFail::BadEscape));
    }

    #[test]
    fn encodes_unreserved_verbatim() {
        let mut s = String::new();
        percent_encode_into(b"aZ9-._~ /\x00\xff", &mut s);
        assert_eq!(s, "aZ9-._~%20%2F%00%FF");
    }

    #[test]
    fn names_match_encoded_or_plain() {
        assert!(name_is(b"info_hash", "info_hash"));
        assert!(name_is(b"info%5Fhash", "info_hash"));
        assert!(!name_is(b"info_hash2", "info_hash"));
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(parse_u64("left", b"0"), Ok(0));
        assert_eq!(parse_u64("left", b"18446744073709551615"), Ok(u64::MAX));
        assert_eq!(
            parse_u64("left", b"18446744073709551616"),
            Err(QueryError::NumberTooLarge("left"))
        );
        assert_eq!(parse_u64("left", b"-5"), Err(QueryError::Negative("left")));
        assert_eq!(parse_u64("left", b"-"), Err(QueryError::NotANumber("left")));
        assert_eq!(parse_u64("left", b""), Err(QueryError::NotANumber("left")));
        assert_eq!(
            parse_u64("left", b"1e3"),
            Err(QueryError::NotANumber("left"))
        );
        assert_eq!(
            parse_u64("left", b"+3"),
            Err(QueryError::NotANumber("left"))
        );
        assert_eq!(parse_u64("left", b"%31%32"), Ok(12));
        assert_eq!(
            parse_u64("left", b"%3"),
            Err(QueryError::BadPercentEncoding("left"))
        );
    }
}
