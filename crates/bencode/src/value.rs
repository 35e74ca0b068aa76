//! A borrowed value tree: decoding a whole buffer (or a prefix) into [`Value`]s that point into
//! the input, and accessors for reading typed fields out of it.

use crate::error::{Error, ErrorKind};
use crate::scan::{Limits, parse_bytes, parse_int};

/// One bencode value; strings borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i42e`
    Int(i64),
    /// `4:spam`
    Bytes(&'a [u8]),
    /// `l...e`
    List(Vec<Value<'a>>),
    /// `d...e`, entries in input order (which need not be sorted).
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

/// Decodes `buf`, which must hold exactly one value, with default [`Limits`].
pub fn decode(buf: &[u8]) -> Result<Value<'_>, Error> {
    decode_with(buf, &Limits::default())
}

/// [`decode`] with explicit limits.
pub fn decode_with<'a>(buf: &'a [u8], limits: &Limits) -> Result<Value<'a>, Error> {
    if buf.len() > limits.max_len {
        return Err(Error::new(
            limits.max_len,
            ErrorKind::TooLarge {
                max: limits.max_len,
            },
        ));
    }
    let (value, rest) = decode_prefix_with(buf, limits)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(Error::new(buf.len() - rest.len(), ErrorKind::TrailingBytes))
    }
}

/// Decodes the value at the start of `buf` and returns it with the bytes after it (e.g. the raw
/// piece data that follows the dictionary in a `ut_metadata` message), with default [`Limits`].
pub fn decode_prefix(buf: &[u8]) -> Result<(Value<'_>, &[u8]), Error> {
    decode_prefix_with(buf, &Limits::default())
}

/// [`decode_prefix`] with explicit limits.
pub fn decode_prefix_with<'a>(
    buf: &'a [u8],
    limits: &Limits,
) -> Result<(Value<'a>, &'a [u8]), Error> {
    if buf.is_empty() {
        return Err(Error::new(0, ErrorKind::Empty));
    }
    let mut d = Decoder {
        buf,
        pos: 0,
        items: 0,
        limits,
        max_depth: limits.depth(),
    };
    let v = d.value(0)?;
    Ok((v, buf.get(d.pos..).unwrap_or_default()))
}

struct Decoder<'a, 'l> {
    buf: &'a [u8],
    pos: usize,
    items: usize,
    limits: &'l Limits,
    max_depth: usize,
}

impl<'a> Decoder<'a, '_> {
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.pos, kind)
    }

    fn peek(&self) -> Result<u8, Error> {
        if self.pos >= self.limits.max_len {
            return Err(self.err(ErrorKind::TooLarge {
                max: self.limits.max_len,
            }));
        }
        self.buf
            .get(self.pos)
            .copied()
            .ok_or(self.err(ErrorKind::Incomplete))
    }

    fn count(&mut self) -> Result<(), Error> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(self.err(ErrorKind::TooManyItems {
                max: self.limits.max_items,
            }));
        }
        Ok(())
    }

    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let (s, end) = parse_bytes(self.buf, self.pos, self.limits.max_len)?;
        self.pos = end;
        Ok(s)
    }

    /// Depth is bounded by `max_depth <= HARD_MAX_DEPTH`, so the recursion is too.
    fn value(&mut self, depth: usize) -> Result<Value<'a>, Error> {
        let b = self.peek()?;
        self.count()?;
        match b {
            b'i' => {
                let (n, end) = parse_int(self.buf, self.pos)?;
                if end > self.limits.max_len {
                    return Err(Error::new(
                        end,
                        ErrorKind::TooLarge {
                            max: self.limits.max_len,
                        },
                    ));
                }
                self.pos = end;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' | b'd' => {
                if depth >= self.max_depth {
                    return Err(self.err(ErrorKind::TooDeep {
                        max: self.max_depth,
                    }));
                }
                self.pos += 1;
                if b == b'l' {
                    let mut items = Vec::new();
                    while self.peek()? != b'e' {
                        items.push(self.value(depth + 1)?);
                    }
                    self.pos += 1;
                    Ok(Value::List(items))
                } else {
                    let mut entries = Vec::new();
                    loop {
                        let k = self.peek()?;
                        if k == b'e' {
                            break;
                        }
                        if !k.is_ascii_digit() {
                            return Err(self.err(ErrorKind::NonStringKey));
                        }
                        self.count()?;
                        let key = self.bytes()?;
                        if self.peek()? == b'e' {
                            return Err(self.err(ErrorKind::MissingValue));
                        }
                        entries.push((key, self.value(depth + 1)?));
                    }
                    self.pos += 1;
                    Ok(Value::Dict(entries))
                }
            }
            other => Err(self.err(ErrorKind::UnexpectedByte(other))),
        }
    }
}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The entries in input order, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value of the first entry named `key`, if this is a dictionary that has one.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// "integer", "byte string", "list" or "dictionary": for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_kind() {
        assert_eq!(decode(b"i-7e"), Ok(Value::Int(-7)));
        assert_eq!(decode(b"4:spam"), Ok(Value::Bytes(b"spam")));
        assert_eq!(
            decode(b"l4:spami3ee"),
            Ok(Value::List(vec![Value::Bytes(b"spam"), Value::Int(3)]))
        );
        let d = decode(b"d1:bi2e1:a0:e").unwrap();
        assert_eq!(
            d,
            Value::Dict(vec![
                (&b"b"[..], Value::Int(2)),
                (&b"a"[..], Value::Bytes(b""))
            ])
        );
        assert_eq!(d.get(b"b").and_then(Value::as_int), Some(2));
        assert_eq!(d.get(b"a").and_then(Value::as_str), Some(""));
        assert_eq!(d.get(b"c"), None);
        assert_eq!(d.as_dict().map(<[_]>::len), Some(2));
        assert_eq!(Value::Int(1).get(b"a"), None);
    }

    #[test]
    fn accessors_check_the_kind() {
        let v = decode(b"l2:\xff\xfeli1eee").unwrap();
        let l = v.as_list().unwrap();
        assert_eq!(l[0].as_bytes(), Some(&b"\xff\xfe"[..]));
        assert_eq!(l[0].as_str(), None);
        assert_eq!(l[0].as_int(), None);
        assert_eq!(l[1].as_list().map(<[_]>::len), Some(1));
        assert_eq!(l[1].as_dict(), None);
        assert_eq!(l[1].kind_name(), "list");
    }

    #[test]
    fn whole_buffer_must_be_one_value() {
        assert_eq!(
            decode(b"i1ei2e"),
            Err(Error::new(3, ErrorKind::TrailingBytes))
        );
        assert_eq!(decode(b""), Err(Error::new(0, ErrorKind::Empty)));
        assert_eq!(decode(b"l"), Err(Error::new(1, ErrorKind::Incomplete)));
    }

    #[test]
    fn prefix_returns_the_rest() {
        let (v, rest) = decode_prefix(b"d8:msg_typei1e5:piecei0eeRAW\x00DATA").unwrap();
        assert_eq!(v.get(b"msg_type"), Some(&Value::Int(1)));
        assert_eq!(rest, b"RAW\x00DATA");
    }

    /// Bug found by fuzzing (fuzz/seeds/bencode/crash-int-past-max-len): `decode_prefix_with`
    /// accepted an integer that ended past `max_len`, where `value_len_with` refused it.
    #[test]
    fn integer_ending_past_max_len_is_too_large() {
        let limits = Limits {
            max_len: 4,
            ..Limits::default()
        };
        let e = decode_prefix_with(b"i8473229729e", &limits).unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooLarge { max: 4 });
        assert_eq!(
            crate::value_len_with(b"i8473229729e", &limits)
                .unwrap_err()
                .kind,
            e.kind
        );
        assert_eq!(
            decode_prefix_with(
                b"i123e",
                &Limits {
                    max_len: 5,
                    ..limits
                }
            )
            .map(|v| v.0),
            Ok(Value::Int(123))
        );
    }

    #[test]
    fn limits_apply() {
        let limits = Limits {
            max_depth: 2,
            max_items: 4,
            max_len: 100,
        };
        assert!(decode_with(b"llee", &limits).is_ok());
        assert_eq!(
            decode_with(b"llleee", &limits).unwrap_err().kind,
            ErrorKind::TooDeep { max: 2 }
        );
        assert_eq!(
            decode_with(b"li1ei2ei3ei4ee", &limits).unwrap_err().kind,
            ErrorKind::TooManyItems { max: 4 }
        );
        assert_eq!(
            decode_with(&[b'0'; 101], &limits).unwrap_err().kind,
            ErrorKind::TooLarge { max: 100 }
        );
        let deep = vec![b'l'; 100_000];
        assert_eq!(
            decode(&deep).unwrap_err().kind,
            ErrorKind::TooDeep { max: 64 }
        );
    }

    #[test]
    fn dict_errors() {
        assert_eq!(
            decode(b"di1e1:ae").unwrap_err().kind,
            ErrorKind::NonStringKey
        );
        assert_eq!(decode(b"d1:ae").unwrap_err().kind, ErrorKind::MissingValue);
        assert_eq!(decode(b"d1:a").unwrap_err().kind, ErrorKind::Incomplete);
    }
}
