//! Magnet links: `Magnet::parse` (and through it `InfoHash::parse`, hex and base32). A parsed
//! link must print as a link that parses back to the same value.

use metainfo::{InfoHash, Magnet};

/// Parses `data` (lossily made UTF-8) as a magnet link and as a bare info-hash.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(m) = Magnet::parse(&text) {
        let printed = m.to_string();
        assert_eq!(
            Magnet::parse(&printed).as_ref(),
            Ok(&m),
            "{printed:?} does not parse back"
        );
    }
    if let Ok(h) = InfoHash::parse(&text) {
        assert_eq!(InfoHash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(InfoHash::from_base32(&h.to_base32()), Ok(h));
    }
}
