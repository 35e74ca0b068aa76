//! 20-byte identifiers: the info-hash of a torrent and the id of a peer.

use std::fmt;

/// The SHA-1 of the bencoded `info` dictionary exactly as it stands in the .torrent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

/// The 20-byte id a peer sends in its handshake and announces to trackers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

/// A hex or base32 string that is not a 20-byte hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 20-byte hash in hex (40 chars) or base32 (32 chars): {0:?}")]
pub struct HashParseError(pub String);

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

macro_rules! id20 {
    ($t:ident) => {
        impl $t {
            /// The raw 20 bytes.
            pub fn as_bytes(&self) -> &[u8; 20] {
                &self.0
            }

            /// Takes exactly 20 bytes, or `None`.
            pub fn from_slice(b: &[u8]) -> Option<Self> {
                <[u8; 20]>::try_from(b).ok().map($t)
            }

            /// Lower-case hex, 40 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses 40 hex characters (either case).
            pub fn from_hex(s: &str) -> Result<Self, HashParseError> {
                let mut out = [0u8; 20];
                hex::decode_to_slice(s, &mut out).map_err(|_| HashParseError(s.to_owned()))?;
                Ok($t(out))
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($t), "({})"), self.to_hex())
            }
        }
    };
}

id20!(InfoHash);
id20!(PeerId);

impl InfoHash {
    /// RFC 4648 base32 (upper case, no padding), 32 characters, as old magnet links use.
    pub fn to_base32(&self) -> String {
        let mut out = String::with_capacity(32);
        let mut acc: u64 = 0;
        let mut bits = 0;
        for &b in &self.0 {
            acc = (acc << 8) | u64::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(BASE32[((acc >> bits) & 31) as usize] as char);
            }
        }
        out
    }

    /// Parses 32 base32 characters (either case).
    pub fn from_base32(s: &str) -> Result<Self, HashParseError> {
        let err = || HashParseError(s.to_owned());
        if s.len() != 32 {
            return Err(err());
        }
        let mut out = [0u8; 20];
        let mut acc: u64 = 0;
        let mut bits = 0;
        let mut n = 0;
        for c in s.bytes() {
            let v = BASE32
                .iter()
                .position(|&x| x == c.to_ascii_uppercase())
                .ok_or_else(err)? as u64;
            acc = (acc << 5) | v;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                out[n] = (acc >> bits) as u8;
                n += 1;
            }
        }
        Ok(InfoHash(out))
    }

    /// Parses either 40 hex or 32 base32 characters.
    pub fn parse(s: &str) -> Result<Self, HashParseError> {
        match s.len() {
            40 => Self::from_hex(s),
            32 => Self::from_base32(s),
            _ => Err(HashParseError(s.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base32_round_trip() {
        let h = InfoHash(
            *b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xff",
        );
        assert_eq!(InfoHash::parse(&h.to_hex()), Ok(h));
        assert_eq!(InfoHash::parse(&h.to_base32()), Ok(h));
        assert_eq!(InfoHash::parse(&h.to_base32().to_lowercase()), Ok(h));
        assert_eq!(h.to_base32().len(), 32);
    }

    #[test]
    fn base32_known_vector() {
        // 20 zero bytes -> 32 'A's; 0xff.. -> 32 '7's.
        assert_eq!(InfoHash([0; 20]).to_base32(), "A".repeat(32));
        assert_eq!(InfoHash([0xff; 20]).to_base32(), "7".repeat(32));
    }

    #[test]
    fn rejects_bad_strings() {
        assert!(InfoHash::parse("zz").is_err());
        assert!(InfoHash::parse(&"g".repeat(40)).is_err());
        assert!(InfoHash::parse(&"1".repeat(32)).is_err());
    }
}
