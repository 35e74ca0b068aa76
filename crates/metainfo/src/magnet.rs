//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<hash>&dn=<name>&tr=<tracker>&x.pe=<host:port>`.
//!
//! Parsing percent-decodes values (and reads `+` as a space, as libtorrent does), accepts the
//! hash in hex (40) or base32 (32), takes the first `urn:btih:` among several `xt` (also
//! `xt.1`, `xt.2`...), keeps `tr` and `x.pe` in order without duplicates (at most
//! [`MAX_MAGNET_TRACKERS`] and [`MAX_MAGNET_PEERS`]; further ones are ignored) and ignores
//! unknown parameters. Formatting percent-encodes everything but RFC 3986 unreserved bytes.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode, utf8_percent_encode};

use crate::hash::{HashParseError, InfoHash};
use crate::torrent::Metainfo;

/// Longest magnet link accepted, in bytes.
pub const MAX_MAGNET_LEN: usize = 64 * 1024;
/// Most trackers kept from one magnet link.
pub const MAX_MAGNET_TRACKERS: usize = 64;
/// Most peer addresses kept from one magnet link.
pub const MAX_MAGNET_PEERS: usize = 64;

/// Bytes left unescaped: RFC 3986 unreserved characters.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    /// The torrent's info-hash (from `xt=urn:btih:`).
    pub info_hash: InfoHash,
    /// `dn`: a suggested name.
    pub display_name: Option<String>,
    /// `tr`: tracker URLs, in order.
    pub trackers: Vec<String>,
    /// `x.pe`: peer addresses (`host:port`), in order.
    pub peers: Vec<String>,
}

/// Why a string is not a usable magnet link.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MagnetError {
    /// It does not start with `magnet:?`.
    #[error("not a magnet link (must start with \"magnet:?\")")]
    NotMagnet,
    /// Longer than [`MAX_MAGNET_LEN`].
    #[error("magnet link is {0} bytes, over the {MAX_MAGNET_LEN}-byte limit")]
    TooLong(usize),
    /// No `xt=urn:btih:` parameter.
    #[error("magnet link has no xt=urn:btih: parameter")]
    NoInfoHash,
    /// The btih value is not 40 hex or 32 base32 characters.
    #[error("magnet link: {0}")]
    BadInfoHash(#[from] HashParseError),
}

fn decode(v: &str) -> String {
    let plus_as_space = v.replace('+', " ");
    percent_decode(plus_as_space.as_bytes())
        .decode_utf8_lossy()
        .into_owned()
}

fn push_unique(list: &mut Vec<String>, v: String, cap: usize) {
    if !v.is_empty() && list.len() < cap && !list.contains(&v) {
        list.push(v);
    }
}

/// True for `xt`, `xt.1`, `xt.2`...
fn is_xt(key: &str) -> bool {
    key == "xt"
        || key
            .strip_prefix("xt.")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

impl Magnet {
    /// Parses a magnet link.
    pub fn parse(s: &str) -> Result<Magnet, MagnetError> {
        if s.len() > MAX_MAGNET_LEN {
            return Err(MagnetError::TooLong(s.len()));
        }
        let query = s
            .get(..8)
            .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
            .and_then(|_| s.get(8..))
            .ok_or(MagnetError::NotMagnet)?;
        let mut info_hash = None;
        let mut display_name = None;
        let mut trackers = Vec::new();
        let mut peers = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = key.to_ascii_lowercase();
            match key.as_str() {
                k if is_xt(k) => {
                    let v = decode(value);
                    let hash = v
                        .get(..9)
                        .filter(|p| p.eq_ignore_ascii_case("urn:btih:"))
                        .and_then(|_| v.get(9..));
                    if let (None, Some(h)) = (info_hash, hash) {
                        info_hash = Some(InfoHash::parse(h)?);
                    }
                }
                "dn" => display_name = display_name.or(Some(decode(value))),
                "tr" => push_unique(&mut trackers, decode(value), MAX_MAGNET_TRACKERS),
                "x.pe" => push_unique(&mut peers, decode(value), MAX_MAGNET_PEERS),
                _ => {}
            }
        }
        Ok(Magnet {
            info_hash: info_hash.ok_or(MagnetError::NoInfoHash)?,
            display_name,
            trackers,
            peers,
        })
    }
}

impl fmt::Display for Magnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "magnet:?xt=urn:btih:{}", self.info_hash.to_hex())?;
        if let Some(dn) = &self.display_name {
            write!(f, "&dn={}", utf8_percent_encode(dn, ESCAPE))?;
        }
        for t in &self.trackers {
            write!(f, "&tr={}", utf8_percent_encode(t, ESCAPE))?;
        }
        for p in &self.peers {
            write!(f, "&x.pe={}", utf8_percent_encode(p, ESCAPE))?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Magnet {
    type Err = MagnetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Magnet::parse(s)
    }
}

impl Metainfo {
    /// A magnet link for this torrent: info-hash, name, and every tracker of every tier.
    pub fn magnet(&self) -> Magnet {
        let mut trackers = Vec::new();
        for url in self.trackers().into_iter().flatten() {
            push_unique(&mut trackers, url, MAX_MAGNET_TRACKERS);
        }
        Magnet {
            info_hash: self.info_hash,
            display_name: Some(self.info.name().to_owned()),
            trackers,
            peers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn parses_a_full_link() {
        let s = format!(
            "magnet:?xt=urn:btih:{HEX}&dn=My+File%20%C3%A9.iso&tr=http%3A%2F%2Ft1%2Fannounce\
             &tr=udp://t2:80&x.pe=127.0.0.1:6881&x.pe=%5B::1%5D:6882&foo=bar&tr=udp://t2:80"
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.display_name.as_deref(), Some("My File é.iso"));
        assert_eq!(m.trackers, ["http://t1/announce", "udp://t2:80"]);
        assert_eq!(m.peers, ["127.0.0.1:6881", "[::1]:6882"]);
    }

    #[test]
    fn base32_and_uppercase_and_multiple_xt() {
        let h = InfoHash::from_hex(HEX).unwrap();
        let s = format!(
            "MAGNET:?xt=urn:btmh:1220abcd&XT.1=URN:BTIH:{}&xt.2=urn:btih:{}",
            h.to_base32(),
            "0".repeat(40)
        );
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.info_hash, h);
        assert_eq!(m.display_name, None);
        assert!(m.trackers.is_empty() && m.peers.is_empty());
    }

    #[test]
    fn errors() {
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("magnet:"), Err(MagnetError::NotMagnet));
        assert_eq!(
            Magnet::parse("magnet:?dn=x&tr=y"),
            Err(MagnetError::NoInfoHash)
        );
        assert_eq!(
            Magnet::parse("magnet:?xt=urn:btmh:1220abcd"),
            Err(MagnetError::NoInfoHash)
        );
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:1234"),
            Err(MagnetError::BadInfoHash(_))
        ));
        let long = format!(
            "magnet:?xt=urn:btih:{HEX}&dn={}",
            "a".repeat(MAX_MAGNET_LEN)
        );
        assert!(matches!(Magnet::parse(&long), Err(MagnetError::TooLong(_))));
        // Multi-byte characters at the prefix boundary do not panic.
        assert_eq!(Magnet::parse("magnét:?xt"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("é"), Err(MagnetError::NotMagnet));
    }

    #[test]
    fn trackers_and_peers_are_capped() {
        let mut s = format!("magnet:?xt=urn:btih:{HEX}");
        for i in 0..200 {
            s.push_str(&format!("&tr=udp://t{i}:1&x.pe=10.0.0.1:{i}"));
        }
        let m = Magnet::parse(&s).unwrap();
        assert_eq!(m.trackers.len(), MAX_MAGNET_TRACKERS);
        assert_eq!(m.peers.len(), MAX_MAGNET_PEERS);
        assert_eq!(m.trackers[0], "udp://t0:1");
    }

    #[test]
    fn formats_with_escaping() {
        let m = Magnet {
            info_hash: InfoHash::from_hex(HEX).unwrap(),
            display_name: Some("a b&c=d/é+".into()),
            trackers: vec!["http://t/ann?x=1&y=2".into()],
            peers: vec!["[::1]:1".into()],
        };
        let s = m.to_string();
        assert_eq!(
            s,
            format!(
                "magnet:?xt=urn:btih:{HEX}&dn=a%20b%26c%3Dd%2F%C3%A9%2B\
                 &tr=http%3A%2F%2Ft%2Fann%3Fx%3D1%26y%3D2&x.pe=%5B%3A%3A1%5D%3A1"
            )
        );
        assert_eq!(Magnet::parse(&s), Ok(m));
    }
}
