//! A minimal pull reader for bencode responses: integers, byte strings, dictionaries and lists
//! walked in place, unknown values skipped with a depth limit. It borrows the input and never
//! allocates; it exists so the client can decode tracker responses without a value tree.

use crate::error::ResponseError;

/// Deepest nesting [`Reader::skip`] follows.
const MAX_DEPTH: usize = 32;

/// A cursor over bencoded bytes.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts at the first byte of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn malformed(&self) -> ResponseError {
        ResponseError::Malformed(self.pos)
    }

    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    /// The next byte, not consumed.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    /// Consumes `b` or fails.
    pub(crate) fn expect(&mut self, b: u8) -> Result<(), ResponseError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.malformed())
        }
    }

    /// True when every byte was consumed.
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Reads `i<n>e`.
    pub(crate) fn int(&mut self) -> Result<i64, ResponseError> {
        self.expect(b'i')?;
        let start = self.pos;
        let end = self
            .rest()
            .iter()
            .position(|&b| b == b'e')
            .map(|i| start + i)
            .ok_or_else(|| self.malformed())?;
        let text = std::str::from_utf8(self.buf.get(start..end).unwrap_or_default())
            .map_err(|_| self.malformed())?;
        let ok_digits = text.strip_prefix('-').unwrap_or(text);
        if ok_digits.is_empty() || !ok_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.malformed());
        }
        let v = text.parse::<i64>().map_err(|_| self.malformed())?;
        self.pos = end + 1;
        Ok(v)
    }

    /// Reads `<len>:<bytes>`.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], ResponseError> {
        let start = self.pos;
        let colon = self
            .rest()
            .iter()
            .take(21)
            .position(|&b| b == b':')
            .map(|i| start + i)
            .ok_or_else(|| self.malformed())?;
        let digits = self.buf.get(start..colon).unwrap_or_default();
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(self.malformed());
        }
        let len = digits.iter().try_fold(0usize, |acc, &d| {
            acc.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        });
        let body_start = colon + 1;
        let body_end = len
            .and_then(|l| body_start.checked_add(l))
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.malformed())?;
        let body = self
            .buf
            .get(body_start..body_end)
            .ok_or_else(|| self.malformed())?;
        self.pos = body_end;
        Ok(body)
    }

    /// Inside a dictionary: the next key, or `None` after consuming the closing `e`.
    pub(crate) fn next_key(&mut self) -> Result<Option<&'a [u8]>, ResponseError> {
        if self.peek() == Some(b'e') {
            self.pos += 1;
            return Ok(None);
        }
        self.bytes().map(Some)
    }

    /// Inside a list: true when another item follows, false after consuming the closing `e`.
    pub(crate) fn next_item(&mut self) -> Result<bool, ResponseError> {
        match self.peek() {
            Some(b'e') => {
                self.pos += 1;
                Ok(false)
            }
            Some(_) => Ok(true),
            None => Err(self.malformed()),
        }
    }

    /// Skips one value of any type.
    pub(crate) fn skip(&mut self) -> Result<(), ResponseError> {
        self.skip_at(0)
    }

    fn skip_at(&mut self, depth: usize) -> Result<(), ResponseError> {
        if depth > MAX_DEPTH {
            return Err(ResponseError::TooDeep);
        }
        match self.peek() {
            Some(b'i') => self.int().map(drop),
            Some(b'0'..=b'9') => self.bytes().map(drop),
            Some(b'l') => {
                self.pos += 1;
                while self.next_item()? {
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            Some(b'd') => {
                self.pos += 1;
                while self.next_key()?.is_some() {
                    self.skip_at(depth + 1)?;
                }
                Ok(())
            }
            _ => Err(self.malformed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_values() {
        let mut r = Reader::new(b"i-42e4:spamd1:ai1eel0:e");
        assert_eq!(r.int(), Ok(-42));
        assert_eq!(r.bytes(), Ok(&b"spam"[..]));
        r.skip().unwrap();
        r.skip().unwrap();
        assert!(r.at_end());
    }

    #[test]
    fn rejects_malformed() {
        assert!(Reader::new(b"ie").int().is_err());
        assert!(Reader::new(b"i-e").int().is_err());
        assert!(Reader::new(b"i12").int().is_err());
        assert!(Reader::new(b"i99999999999999999999e").int().is_err());
        assert!(Reader::new(b"5:abc").bytes().is_err());
        assert!(Reader::new(b"99999999999999999999999:").bytes().is_err());
        assert!(Reader::new(b"l").skip().is_err());
        assert!(Reader::new(b"x").skip().is_err());
    }

    #[test]
    fn depth_is_limited() {
        let deep = format!("{}{}", "l".repeat(100), "e".repeat(100));
        assert_eq!(
            Reader::new(deep.as_bytes()).skip(),
            Err(ResponseError::TooDeep)
        );
    }
}
