//! The BEP 14 announce: an HTTP-like datagram, `BT-SEARCH * HTTP/1.1`, with `Host`, `Port`, one
//! or more `Infohash` headers and a `cookie` by which a sender recognises its own datagrams.
//!
//! Parsing is strict where it must be (the first line, the header syntax, the port, a blank
//! line at the end, the size) and lenient where clients differ (header names in any case,
//! hex in either case, unknown headers ignored, a bad info-hash skipped rather than the
//! whole datagram).

use metainfo::InfoHash;

/// Longest datagram read; anything longer is dropped unread. It also bounds the info-hashes
/// one datagram can name: at most 28 (`infohash:` lines of 50 bytes).
pub const MAX_DATAGRAM: usize = 1400;
/// Most info-hashes we put in one datagram of ours (about 1,200 bytes).
pub const MAX_HASHES_SENT: usize = 20;

/// The IPv4 group and port.
pub const HOST_V4: &str = "239.192.152.143:6771";
/// The IPv6 group and port.
pub const HOST_V6: &str = "[ff15::efc0:988f]:6771";

/// An announce as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// Where the sender accepts peers (TCP), at the datagram's source address.
    pub port: u16,
    /// The torrents announced (the valid, non-zero ones, each once).
    pub info_hashes: Vec<InfoHash>,
    /// The sender's cookie, if it sent one.
    pub cookie: Option<String>,
}

/// Why a datagram is not an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram longer than {MAX_DATAGRAM} bytes")]
    Oversize,
    /// Not text, or a line is not `Name: value`.
    #[error("not an HTTP-like message")]
    Syntax,
    /// The request line is not `BT-SEARCH * HTTP/1.x`.
    #[error("not a BT-SEARCH request")]
    Method,
    /// The headers do not end with an empty line.
    #[error("headers not terminated")]
    Unterminated,
    /// No `Port`, or not a number from 1 to 65535, or two different ones.
    #[error("missing or bad Port")]
    Port,
    /// No valid `Infohash`.
    #[error("no valid Infohash")]
    NoInfoHash,
}

/// One of our announces: `host` is [`HOST_V4`] or [`HOST_V6`].
pub fn encode(host: &str, port: u16, info_hashes: &[InfoHash], cookie: &str) -> Vec<u8> {
    let mut s = format!("BT-SEARCH * HTTP/1.1\r\nHost: {host}\r\nPort: {port}\r\n");
    for ih in info_hashes {
        s.push_str("Infohash: ");
        s.push_str(&ih.to_hex());
        s.push_str("\r\n");
    }
    s.push_str("cookie: ");
    s.push_str(cookie);
    // The blank line ending the headers, and the empty line BEP 14 puts after it.
    s.push_str("\r\n\r\n\r\n");
    s.into_bytes()
}

/// Reads one datagram.
pub fn parse(data: &[u8]) -> Result<Announce, ParseError> {
    if data.len() > MAX_DATAGRAM {
        return Err(ParseError::Oversize);
    }
    let text = std::str::from_utf8(data).map_err(|_| ParseError::Syntax)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request = lines.next().ok_or(ParseError::Syntax)?;
    let mut words = request.split(' ').filter(|w| !w.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(ParseError::Method);
    };
    if !method.eq_ignore_ascii_case("BT-SEARCH")
        || target != "*"
        || !version.to_ascii_uppercase().starts_with("HTTP/1.")
    {
        return Err(ParseError::Method);
    }
    let mut port = None;
    let mut info_hashes = Vec::new();
    let mut cookie = None;
    let mut terminated = false;
    for line in lines {
        if line.is_empty() {
            terminated = true;
            break;
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::Syntax)?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            return Err(ParseError::Syntax);
        }
        if name.eq_ignore_ascii_case("port") {
            let p = parse_port(value)?;
            if port.is_some_and(|q| q != p) {
                return Err(ParseError::Port);
            }
            port = Some(p);
        } else if name.eq_ignore_ascii_case("infohash") {
            if value.len() != 40 {
                continue;
            }
            match InfoHash::from_hex(value) {
                Ok(ih) if ih.0 != [0; 20] && !info_hashes.contains(&ih) => info_hashes.push(ih),
                _ => {}
            }
        } else if name.eq_ignore_ascii_case("cookie") && cookie.is_none() {
            cookie = Some(value.to_owned());
        }
    }
    if !terminated {
        return Err(ParseError::Unterminated);
    }
    let port = port.ok_or(ParseError::Port)?;
    if info_hashes.is_empty() {
        return Err(ParseError::NoInfoHash);
    }
    Ok(Announce {
        port,
        info_hashes,
        cookie,
    })
}

/// A TCP port in decimal: 1 to 65535, digits only.
fn parse_port(value: &str) -> Result<u16, ParseError> {
    if value.is_empty() || value.len() > 5 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Port);
    }
    match value.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err(ParseError::Port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ih(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn round_trip() {
        let hashes = [ih(1), ih(0xab)];
        let d = encode(HOST_V4, 6881, &hashes, "5fe1c0");
        let text = String::from_utf8(d.clone()).unwrap();
        assert!(text.starts_with("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\n"));
        assert!(text.ends_with("cookie: 5fe1c0\r\n\r\n\r\n"));
        let a = parse(&d).unwrap();
        assert_eq!(a.port, 6881);
        assert_eq!(a.info_hashes, hashes);
        assert_eq!(a.cookie.as_deref(), Some("5fe1c0"));
        let v6 = parse(&encode(HOST_V6, 1, &hashes[..1], "x")).unwrap();
        assert_eq!((v6.port, v6.info_hashes.len()), (1, 1));
    }

    #[test]
    fn our_largest_datagram_fits() {
        let hashes: Vec<InfoHash> = (0..MAX_HASHES_SENT as u8).map(|b| ih(b + 1)).collect();
        let d = encode(HOST_V6, 65535, &hashes, &format!("{:x}", u32::MAX));
        assert!(d.len() <= MAX_DATAGRAM, "{} bytes", d.len());
        assert_eq!(parse(&d).unwrap().info_hashes, hashes);
    }

    #[test]
    fn what_other_clients_send_is_read() {
        // Transmission: upper-case hex, no cookie, bare LF tolerated; libtorrent: lower-case
        // header names would do too.
        let hex = "0123456789ABCDEF0123456789ABCDEF01234567";
        let t = format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\nInfohash: {hex}\r\n\r\n\r\n"
        );
        let a = parse(t.as_bytes()).unwrap();
        assert_eq!(a.info_hashes, vec![InfoHash::from_hex(hex).unwrap()]);
        assert_eq!((a.port, a.cookie), (51413, None));
        let lf = format!("bt-search * HTTP/1.0\nPORT:7\nINFOHASH:{hex}\nX-Other: y\n\n");
        assert_eq!(parse(lf.as_bytes()).unwrap().port, 7);
    }

    #[test]
    fn bad_info_hashes_are_skipped() {
        let mut m = String::from("BT-SEARCH * HTTP/1.1\r\nPort: 9\r\n");
        m.push_str("Infohash: xyz\r\nInfohash: 0000000000000000000000000000000000000000\r\n");
        m.push_str("Infohash: 0123456789abcdef0123456789abcdef0123456g\r\n");
        for b in 1..=20u8 {
            m.push_str(&format!("Infohash: {}\r\n", ih(b).to_hex()));
        }
        m.push_str(&format!("Infohash: {}\r\n\r\n", ih(1).to_hex()));
        let a = parse(m.as_bytes()).unwrap();
        assert_eq!(a.info_hashes, (1..=20u8).map(ih).collect::<Vec<_>>());
        let none = "BT-SEARCH * HTTP/1.1\r\nPort: 9\r\nInfohash: zz\r\n\r\n";
        assert_eq!(parse(none.as_bytes()), Err(ParseError::NoInfoHash));
    }

    #[test]
    fn garbage_is_refused() {
        let h = ih(3).to_hex();
        let ok = format!("BT-SEARCH * HTTP/1.1\r\nPort: 9\r\nInfohash: {h}\r\n\r\n");
        assert!(parse(ok.as_bytes()).is_ok());
        let cases: Vec<(Vec<u8>, ParseError)> = vec![
            (Vec::new(), ParseError::Method),
            (b"\xff\xfe".to_vec(), ParseError::Syntax),
            (
                ok.replace("BT-SEARCH", "M-SEARCH").into(),
                ParseError::Method,
            ),
            (ok.replace(" * ", " / ").into(), ParseError::Method),
            (
                ok.replace("HTTP/1.1", "HTTP/1.1 x").into(),
                ParseError::Method,
            ),
            (ok.replace("Port: 9", "Port 9").into(), ParseError::Syntax),
            (ok.replace("Port: 9", "Po rt: 9").into(), ParseError::Syntax),
            (ok.replace("Port: 9", "Port: 0").into(), ParseError::Port),
            (
                ok.replace("Port: 9", "Port: 65536").into(),
                ParseError::Port,
            ),
            (ok.replace("Port: 9", "Port: +9").into(), ParseError::Port),
            (ok.replace("Port: 9", "Port: ").into(), ParseError::Port),
            (ok.replace("Port: 9", "X: 1").into(), ParseError::Port),
            (
                ok.replace("Port: 9", "Port: 9\r\nPort: 10").into(),
                ParseError::Port,
            ),
            (ok.trim_end().into(), ParseError::Unterminated),
            (vec![b'a'; MAX_DATAGRAM + 1], ParseError::Oversize),
        ];
        for (d, want) in cases {
            assert_eq!(parse(&d), Err(want), "{:?}", String::from_utf8_lossy(&d));
        }
        // Every prefix of a good datagram, and every byte flipped: an error or an announce,
        // never a panic.
        let good = encode(HOST_V4, 6881, &[ih(7)], "c");
        for n in 0..good.len() {
            let _ = parse(&good[..n]);
            for bit in [0x01u8, 0x20, 0x80] {
                let mut d = good.clone();
                d[n] ^= bit;
                let _ = parse(&d);
            }
        }
    }
}
