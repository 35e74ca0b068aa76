//! Validation without allocation of values: [`value_len`] finds where one complete value ends,
//! and [`raw_dict`] lists a dictionary's entries with the exact bytes of each value.
//!
//! Strict per BEP 3: no leading zeros in integers or string lengths, no `-0`, keys must be
//! byte strings. Key order is not checked (torrents in the wild have unsorted keys) and neither
//! are duplicate keys (callers that care check them).

use crate::error::{Error, ErrorKind};

/// Nesting deeper than this is refused whatever [`Limits::max_depth`] says, so that the
/// recursive decoder can never exhaust the stack.
pub const HARD_MAX_DEPTH: usize = 256;

/// Caps applied while reading untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest value accepted, in bytes.
    pub max_len: usize,
    /// Deepest nesting of lists and dictionaries accepted (clamped to [`HARD_MAX_DEPTH`]).
    pub max_depth: usize,
    /// Most values (integers, strings, lists, dictionaries, keys included) in one value.
    pub max_items: usize,
}

impl Default for Limits {
    /// 16 MiB, depth 64, 1 Mi values: generous for messages, tracker replies and most torrents.
    fn default() -> Self {
        Limits {
            max_len: 16 << 20,
            max_depth: 64,
            max_items: 1 << 20,
        }
    }
}

impl Limits {
    pub(crate) fn depth(&self) -> usize {
        self.max_depth.min(HARD_MAX_DEPTH)
    }
}

fn err(pos: usize, kind: ErrorKind) -> Error {
    Error::new(pos, kind)
}

/// Reads the integer starting at `buf[pos] == b'i'`; returns it and the offset after its `e`.
pub(crate) fn parse_int(buf: &[u8], pos: usize) -> Result<(i64, usize), Error> {
    let mut i = pos + 1;
    let negative = buf.get(i) == Some(&b'-');
    if negative {
        i += 1;
    }
    let first = i;
    let mut acc: i64 = 0;
    loop {
        let &b = buf.get(i).ok_or(err(i, ErrorKind::Incomplete))?;
        match b {
            b'0'..=b'9' => {
                if i > first && buf.get(first) == Some(&b'0') {
                    return Err(err(first, ErrorKind::LeadingZero));
                }
                let d = i64::from(b - b'0');
                // Accumulate towards the sign so that i64::MIN is representable.
                acc = acc
                    .checked_mul(10)
                    .and_then(|a| {
                        if negative {
                            a.checked_sub(d)
                        } else {
                            a.checked_add(d)
                        }
                    })
                    .ok_or(err(first, ErrorKind::IntegerOverflow))?;
                i += 1;
            }
            b'e' if i == first => return Err(err(i, ErrorKind::EmptyInteger)),
            b'e' => {
                if negative && acc == 0 {
                    return Err(err(first - 1, ErrorKind::NegativeZero));
                }
                return Ok((acc, i + 1));
            }
            other => return Err(err(i, ErrorKind::UnexpectedByte(other))),
        }
    }
}

/// Reads the byte string starting at `buf[pos]` (a digit); returns it and the offset after it.
/// A declared end beyond `max_len` fails at once instead of waiting for bytes that cannot come.
pub(crate) fn parse_bytes(buf: &[u8], pos: usize, max_len: usize) -> Result<(&[u8], usize), Error> {
    let mut i = pos;
    let mut len: usize = 0;
    loop {
        let &b = buf.get(i).ok_or(err(i, ErrorKind::Incomplete))?;
        match b {
            b'0'..=b'9' => {
                if i > pos && buf.get(pos) == Some(&b'0') {
                    return Err(err(pos, ErrorKind::LeadingZero));
                }
                len = len
                    .checked_mul(10)
                    .and_then(|l| l.checked_add(usize::from(b - b'0')))
                    .ok_or(err(pos, ErrorKind::LengthOverflow))?;
                i += 1;
            }
            b':' if i > pos => break,
            other => return Err(err(i, ErrorKind::UnexpectedByte(other))),
        }
    }
    let start = i + 1;
    let end = start
        .checked_add(len)
        .ok_or(err(pos, ErrorKind::LengthOverflow))?;
    if end > max_len {
        return Err(err(pos, ErrorKind::TooLarge { max: max_len }));
    }
    let s = buf
        .get(start..end)
        .ok_or(err(buf.len(), ErrorKind::Incomplete))?;
    Ok((s, end))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    List,
    DictKey,
    DictValue,
}

/// The byte length of the one complete value at the start of `buf`, with default [`Limits`].
///
/// `Incomplete` means more bytes could complete it; any other error means it is invalid.
/// Bytes after the value are not looked at.
pub fn value_len(buf: &[u8]) -> Result<usize, Error> {
    value_len_with(buf, &Limits::default())
}

/// [`value_len`] with explicit limits.
pub fn value_len_with(buf: &[u8], limits: &Limits) -> Result<usize, Error> {
    let max_depth = limits.depth();
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0;
    let mut items = 0usize;
    loop {
        if pos >= limits.max_len {
            return Err(err(
                pos,
                ErrorKind::TooLarge {
                    max: limits.max_len,
                },
            ));
        }
        let &b = buf.get(pos).ok_or(err(pos, ErrorKind::Incomplete))?;
        if let Some(&top) = stack.last() {
            if b == b'e' {
                if top == Frame::DictValue {
                    return Err(err(pos, ErrorKind::MissingValue));
                }
                stack.pop();
                pos += 1;
                if value_done(&mut stack) {
                    return Ok(pos);
                }
                continue;
            }
            if top == Frame::DictKey && !b.is_ascii_digit() {
                return Err(err(pos, ErrorKind::NonStringKey));
            }
        }
        items += 1;
        if items > limits.max_items {
            return Err(err(
                pos,
                ErrorKind::TooManyItems {
                    max: limits.max_items,
                },
            ));
        }
        match b {
            b'i' => pos = parse_int(buf, pos)?.1,
            b'0'..=b'9' => pos = parse_bytes(buf, pos, limits.max_len)?.1,
            b'l' | b'd' => {
                if stack.len() >= max_depth {
                    return Err(err(pos, ErrorKind::TooDeep { max: max_depth }));
                }
                stack.push(if b == b'l' {
                    Frame::List
                } else {
                    Frame::DictKey
                });
                pos += 1;
                continue;
            }
            other => return Err(err(pos, ErrorKind::UnexpectedByte(other))),
        }
        if pos > limits.max_len {
            return Err(err(
                pos,
                ErrorKind::TooLarge {
                    max: limits.max_len,
                },
            ));
        }
        if value_done(&mut stack) {
            return Ok(pos);
        }
    }
}

/// Records that a value just ended inside the container on top of the stack; true when the
/// stack is empty, i.e. the outermost value is complete.
fn value_done(stack: &mut [Frame]) -> bool {
    match stack.last_mut() {
        None => true,
        Some(top) => {
            *top = match *top {
                Frame::List => Frame::List,
                Frame::DictKey => Frame::DictValue,
                Frame::DictValue => Frame::DictKey,
            };
            false
        }
    }
}

/// One entry of a dictionary, with the exact bytes of its value as they stand in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawEntry<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value's bytes, exactly as encoded (e.g. to hash a torrent's `info`).
    pub raw: &'a [u8],
    /// Offset of the value's first byte in the buffer given to [`raw_dict`].
    pub offset: usize,
}

/// The entries of the dictionary at the start of `buf`, in input order, each with the raw bytes
/// of its value; every value is fully validated with `limits` (depth counted from the dict).
pub fn raw_dict<'a>(buf: &'a [u8], limits: &Limits) -> Result<Vec<RawEntry<'a>>, Error> {
    match buf.first() {
        None => return Err(err(0, ErrorKind::Incomplete)),
        Some(b'd') => {}
        Some(&other) => return Err(err(0, ErrorKind::UnexpectedByte(other))),
    }
    if limits.depth() == 0 {
        return Err(err(0, ErrorKind::TooDeep { max: 0 }));
    }
    let inner = Limits {
        max_depth: limits.depth() - 1,
        ..*limits
    };
    let mut out = Vec::new();
    let mut pos = 1;
    let mut items = 1usize;
    loop {
        let &b = buf.get(pos).ok_or(err(pos, ErrorKind::Incomplete))?;
        if b == b'e' {
            return Ok(out);
        }
        if !b.is_ascii_digit() {
            return Err(err(pos, ErrorKind::NonStringKey));
        }
        let (key, after_key) = parse_bytes(buf, pos, limits.max_len)?;
        items += 1;
        let rest = buf.get(after_key..).unwrap_or_default();
        if rest.first() == Some(&b'e') {
            return Err(err(after_key, ErrorKind::MissingValue));
        }
        let remaining_items = limits.max_items.saturating_sub(items);
        let sub = Limits {
            max_len: limits.max_len.saturating_sub(after_key),
            max_items: remaining_items,
            ..inner
        };
        let len = value_len_with(rest, &sub).map_err(|e| {
            let kind = match e.kind {
                ErrorKind::TooLarge { .. } => ErrorKind::TooLarge {
                    max: limits.max_len,
                },
                ErrorKind::TooManyItems { .. } => ErrorKind::TooManyItems {
                    max: limits.max_items,
                },
                ErrorKind::TooDeep { .. } => ErrorKind::TooDeep {
                    max: limits.depth(),
                },
                k => k,
            };
            err(e.pos + after_key, kind)
        })?;
        // value_len does not report how many values it saw: count the value itself only (the
        // input length bounds the rest).
        items += 1;
        let end = after_key + len;
        out.push(RawEntry {
            key,
            raw: buf.get(after_key..end).unwrap_or_default(),
            offset: after_key,
        });
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(buf: &[u8]) -> ErrorKind {
        value_len(buf).unwrap_err().kind
    }

    #[test]
    fn lengths_of_valid_values() {
        assert_eq!(value_len(b"i42e"), Ok(4));
        assert_eq!(value_len(b"i-42erest"), Ok(5));
        assert_eq!(value_len(b"i0e"), Ok(3));
        assert_eq!(value_len(b"0:"), Ok(2));
        assert_eq!(value_len(b"4:spam"), Ok(6));
        assert_eq!(value_len(b"le"), Ok(2));
        assert_eq!(value_len(b"de"), Ok(2));
        assert_eq!(value_len(b"l4:spami3ee"), Ok(11));
        assert_eq!(value_len(b"d3:cow3:moo4:spam4:eggse"), Ok(24));
        assert_eq!(value_len(b"d4:spaml1:a1:bee"), Ok(16));
        // Unsorted keys are accepted.
        assert_eq!(value_len(b"d1:bi1e1:ai2ee"), Ok(14));
        assert_eq!(value_len(b"i9223372036854775807e"), Ok(21));
        assert_eq!(value_len(b"i-9223372036854775808e"), Ok(22));
    }

    #[test]
    fn incomplete_is_not_invalid() {
        for buf in [
            &b""[..],
            b"i",
            b"i12",
            b"i-",
            b"4:spa",
            b"12",
            b"l",
            b"l4:spam",
            b"d3:cow",
            b"d3:cow3:moo",
        ] {
            assert_eq!(kind(buf), ErrorKind::Incomplete, "{buf:?}");
        }
    }

    #[test]
    fn strict_integers() {
        assert_eq!(kind(b"i03e"), ErrorKind::LeadingZero);
        assert_eq!(kind(b"i-03e"), ErrorKind::LeadingZero);
        assert_eq!(kind(b"i-0e"), ErrorKind::NegativeZero);
        assert_eq!(kind(b"ie"), ErrorKind::EmptyInteger);
        assert_eq!(kind(b"i-e"), ErrorKind::EmptyInteger);
        assert_eq!(kind(b"i1-2e"), ErrorKind::UnexpectedByte(b'-'));
        assert_eq!(kind(b"i9223372036854775808e"), ErrorKind::IntegerOverflow);
        assert_eq!(kind(b"i-9223372036854775809e"), ErrorKind::IntegerOverflow);
        assert_eq!(kind(b"i+1e"), ErrorKind::UnexpectedByte(b'+'));
    }

    #[test]
    fn strict_strings() {
        assert_eq!(kind(b"03:abc"), ErrorKind::LeadingZero);
        assert_eq!(kind(b":abc"), ErrorKind::UnexpectedByte(b':'));
        assert_eq!(kind(b"3x:abc"), ErrorKind::UnexpectedByte(b'x'));
        assert_eq!(kind(b"-3:abc"), ErrorKind::UnexpectedByte(b'-'));
        assert_eq!(
            kind(b"99999999999999999999999999:x"),
            ErrorKind::LengthOverflow
        );
        // A huge declared length fails at once, not "incomplete".
        assert_eq!(
            kind(b"4294967296:x"),
            ErrorKind::TooLarge {
                max: Limits::default().max_len
            }
        );
    }

    #[test]
    fn dict_keys_must_be_strings() {
        assert_eq!(kind(b"di1ei2ee"), ErrorKind::NonStringKey);
        assert_eq!(kind(b"dlei2ee"), ErrorKind::NonStringKey);
        assert_eq!(kind(b"d1:ae"), ErrorKind::MissingValue);
    }

    #[test]
    fn junk_is_rejected() {
        assert_eq!(kind(b"e"), ErrorKind::UnexpectedByte(b'e'));
        assert_eq!(kind(b"x"), ErrorKind::UnexpectedByte(b'x'));
        assert_eq!(kind(b"l\x00e"), ErrorKind::UnexpectedByte(0));
    }

    #[test]
    fn depth_is_limited() {
        let limits = Limits {
            max_depth: 3,
            ..Limits::default()
        };
        assert_eq!(value_len_with(b"llleee", &limits), Ok(6));
        let e = value_len_with(b"lllleeee", &limits).unwrap_err();
        assert_eq!(e, Error::new(3, ErrorKind::TooDeep { max: 3 }));
        // A hostile nesting far beyond the hard cap fails without recursion.
        let deep = vec![b'l'; 1_000_000];
        assert_eq!(kind(&deep), ErrorKind::TooDeep { max: 64 });
        let huge = Limits {
            max_depth: usize::MAX,
            ..Limits::default()
        };
        assert_eq!(
            value_len_with(&deep, &huge).unwrap_err().kind,
            ErrorKind::TooDeep {
                max: HARD_MAX_DEPTH
            }
        );
    }

    #[test]
    fn items_and_length_are_limited() {
        let limits = Limits {
            max_items: 3,
            ..Limits::default()
        };
        assert_eq!(value_len_with(b"li1ei2ee", &limits), Ok(8));
        assert_eq!(
            value_len_with(b"li1ei2ei3ee", &limits).unwrap_err().kind,
            ErrorKind::TooManyItems { max: 3 }
        );
        let limits = Limits {
            max_len: 5,
            ..Limits::default()
        };
        assert_eq!(value_len_with(b"3:abc", &limits), Ok(5));
        assert_eq!(
            value_len_with(b"4:abcd", &limits).unwrap_err().kind,
            ErrorKind::TooLarge { max: 5 }
        );
        assert_eq!(
            value_len_with(b"li1ei2ee", &limits).unwrap_err().kind,
            ErrorKind::TooLarge { max: 5 }
        );
    }

    #[test]
    fn raw_dict_keeps_exact_bytes() {
        let buf = b"d1:zi1e4:infod1:b1:x1:a1:ye3:fooli1eee";
        let entries = raw_dict(buf, &Limits::default()).unwrap();
        let keys: Vec<&[u8]> = entries.iter().map(|e| e.key).collect();
        assert_eq!(keys, [&b"z"[..], b"info", b"foo"]);
        assert_eq!(entries[1].raw, b"d1:b1:x1:a1:ye");
        assert_eq!(
            &buf[entries[1].offset..][..entries[1].raw.len()],
            entries[1].raw
        );
        assert_eq!(entries[2].raw, b"li1ee");
    }

    #[test]
    fn raw_dict_errors_point_into_the_buffer() {
        let e = raw_dict(b"d1:ai03ee", &Limits::default()).unwrap_err();
        assert_eq!(e, Error::new(5, ErrorKind::LeadingZero));
        assert_eq!(
            raw_dict(b"d1:ae", &Limits::default()).unwrap_err().kind,
            ErrorKind::MissingValue
        );
        assert_eq!(
            raw_dict(b"li1ee", &Limits::default()).unwrap_err().kind,
            ErrorKind::UnexpectedByte(b'l')
        );
        assert_eq!(
            raw_dict(b"di1ei1ee", &Limits::default()).unwrap_err().kind,
            ErrorKind::NonStringKey
        );
        let shallow = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        assert!(raw_dict(b"d1:alee", &shallow).is_ok());
        assert_eq!(
            raw_dict(b"d1:allee", &shallow).unwrap_err().kind,
            ErrorKind::TooDeep { max: 2 }
        );
    }
}
