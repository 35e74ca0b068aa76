//! The 68-byte BitTorrent handshake, parsed in two phases so a listener can pick the torrent (and
//! answer) as soon as the info-hash has arrived, before the peer id.

use metainfo::{InfoHash, PeerId};

use crate::error::HandshakeError;

/// The protocol string that follows the length byte.
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";
/// Length of a whole handshake.
pub const HANDSHAKE_LEN: usize = 68;
/// Length of the part up to and including the info-hash (what [`Handshake::parse_prefix`] needs).
pub const HANDSHAKE_PREFIX_LEN: usize = 48;

/// The 8 reserved bytes of a handshake, where peers advertise extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    /// No extension bits set.
    pub const NONE: Reserved = Reserved([0; 8]);

    /// The bits we advertise: extension protocol (BEP 10), DHT (BEP 5) and Fast (BEP 6).
    pub const fn ours() -> Reserved {
        let mut r = [0u8; 8];
        r[5] = 0x10;
        r[7] = 0x01 | 0x04;
        Reserved(r)
    }

    /// BEP 10 extension protocol: byte 5, bit 0x10.
    pub fn extension_protocol(&self) -> bool {
        self.0[5] & 0x10 != 0
    }

    /// BEP 5 DHT: byte 7, bit 0x01.
    pub fn dht(&self) -> bool {
        self.0[7] & 0x01 != 0
    }

    /// BEP 6 Fast extension: byte 7, bit 0x04.
    pub fn fast(&self) -> bool {
        self.0[7] & 0x04 != 0
    }

    /// Sets or clears the extension protocol bit.
    pub fn set_extension_protocol(&mut self, on: bool) {
        self.set(5, 0x10, on);
    }

    /// Sets or clears the DHT bit.
    pub fn set_dht(&mut self, on: bool) {
        self.set(7, 0x01, on);
    }

    /// Sets or clears the Fast extension bit.
    pub fn set_fast(&mut self, on: bool) {
        self.set(7, 0x04, on);
    }

    /// The bits both sides advertise (what a connection may use).
    pub fn common(&self, other: &Reserved) -> Reserved {
        let mut r = [0u8; 8];
        for (o, (a, b)) in r.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a & b;
        }
        Reserved(r)
    }

    fn set(&mut self, byte: usize, bit: u8, on: bool) {
        if on {
            self.0[byte] |= bit;
        } else {
            self.0[byte] &= !bit;
        }
    }
}

/// A whole handshake: reserved bits, the torrent, and who is speaking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Handshake {
    /// Extension bits.
    pub reserved: Reserved,
    /// The torrent this connection is about.
    pub info_hash: InfoHash,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// A handshake with our reserved bits ([`Reserved::ours`]).
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Handshake {
        Handshake {
            reserved: Reserved::ours(),
            info_hash,
            peer_id,
        }
    }

    /// The 68 bytes on the wire.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved.0);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id.0);
        out
    }

    /// Phase one: reserved bits and info-hash from the first 48 bytes.
    ///
    /// `Ok(None)` means more bytes are needed. A wrong length byte or protocol string is an error
    /// as soon as the offending byte has arrived, so garbage is dropped without waiting.
    pub fn parse_prefix(buf: &[u8]) -> Result<Option<(Reserved, InfoHash)>, HandshakeError> {
        if let Some(&n) = buf.first()
            && usize::from(n) != PROTOCOL.len()
        {
            return Err(HandshakeError::BadPstrLen(n));
        }
        let got = buf.get(1..).unwrap_or_default();
        let m = got.len().min(PROTOCOL.len());
        if got.get(..m) != PROTOCOL.get(..m) {
            return Err(HandshakeError::BadProtocol);
        }
        let (Some(res), Some(ih)) = (buf.get(20..28), buf.get(28..48)) else {
            return Ok(None);
        };
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(res);
        let mut info_hash = [0u8; 20];
        info_hash.copy_from_slice(ih);
        Ok(Some((Reserved(reserved), InfoHash(info_hash))))
    }

    /// Phase two: the peer id from bytes 48..68 of the handshake, or `None` if not all here yet.
    pub fn parse_peer_id(buf: &[u8]) -> Option<PeerId> {
        buf.get(HANDSHAKE_PREFIX_LEN..HANDSHAKE_LEN)
            .and_then(PeerId::from_slice)
    }

    /// Both phases at once: the whole handshake, `Ok(None)` if fewer than 68 bytes are here.
    pub fn parse(buf: &[u8]) -> Result<Option<Handshake>, HandshakeError> {
        let Some((reserved, info_hash)) = Self::parse_prefix(buf)? else {
            return Ok(None);
        };
        Ok(Self::parse_peer_id(buf).map(|peer_id| Handshake {
            reserved,
            info_hash,
            peer_id,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::ours(),
            info_hash: InfoHash([0xaa; 20]),
            peer_id: PeerId(*b"-SW0001-abcdefghijkl"),
        }
    }

    #[test]
    fn exact_bytes() {
        let b = sample().encode();
        assert_eq!(b[0], 19);
        assert_eq!(&b[1..20], b"BitTorrent protocol");
        assert_eq!(&b[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        assert_eq!(&b[28..48], &[0xaa; 20]);
        assert_eq!(&b[48..68], b"-SW0001-abcdefghijkl");
    }

    #[test]
    fn two_phases() {
        let b = sample().encode();
        assert_eq!(Handshake::parse_prefix(&b[..47]), Ok(None));
        assert_eq!(
            Handshake::parse_prefix(&b[..48]),
            Ok(Some((Reserved::ours(), InfoHash([0xaa; 20]))))
        );
        assert_eq!(Handshake::parse_peer_id(&b[..67]), None);
        assert_eq!(Handshake::parse_peer_id(&b), Some(sample().peer_id));
        assert_eq!(Handshake::parse(&b[..67]), Ok(None));
        assert_eq!(Handshake::parse(&b), Ok(Some(sample())));
        // Bytes after the handshake (the first messages) do not disturb it.
        let mut more = b.to_vec();
        more.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(Handshake::parse(&more), Ok(Some(sample())));
    }

    #[test]
    fn empty_is_incomplete() {
        assert_eq!(Handshake::parse_prefix(&[]), Ok(None));
    }

    #[test]
    fn rejects_garbage_early() {
        assert_eq!(
            Handshake::parse_prefix(b"G"),
            Err(HandshakeError::BadPstrLen(b'G'))
        );
        assert_eq!(
            Handshake::parse_prefix(b"\x13BitTorrent pro"),
            Ok(None),
            "a correct partial prefix needs more"
        );
        assert_eq!(
            Handshake::parse_prefix(b"\x13BitTorrent prX"),
            Err(HandshakeError::BadProtocol)
        );
        let mut b = sample().encode();
        b[19] = b'L';
        assert_eq!(Handshake::parse(&b), Err(HandshakeError::BadProtocol));
    }

    #[test]
    fn reserved_bits() {
        let mut r = Reserved::NONE;
        assert!(!r.extension_protocol() && !r.dht() && !r.fast());
        r.set_extension_protocol(true);
        assert_eq!(r.0, [0, 0, 0, 0, 0, 0x10, 0, 0]);
        r.set_dht(true);
        r.set_fast(true);
        assert_eq!(r, Reserved::ours());
        assert!(r.extension_protocol() && r.dht() && r.fast());
        r.set_dht(false);
        assert!(!r.dht() && r.fast());
        let other = Reserved([0xff, 0, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(
            Reserved::ours().common(&other).0,
            [0, 0, 0, 0, 0, 0x10, 0, 0]
        );
    }

    proptest! {
        #[test]
        fn round_trip(res in any::<[u8; 8]>(), ih in any::<[u8; 20]>(), pid in any::<[u8; 20]>()) {
            let h = Handshake { reserved: Reserved(res), info_hash: InfoHash(ih), peer_id: PeerId(pid) };
            prop_assert_eq!(Handshake::parse(&h.encode()), Ok(Some(h)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Handshake::parse(&b);
            let _ = Handshake::parse_peer_id(&b);
        }
    }
}
