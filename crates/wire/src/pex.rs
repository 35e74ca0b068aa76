//! Peer exchange (BEP 11, `ut_pex`): peers a neighbour has connected to or dropped since its
//! last message, in compact form (6 bytes per IPv4 peer, 18 per IPv6 peer) with one flag byte
//! per added peer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bencode::Value;
use bytes::Bytes;

use crate::error::WireError;
use crate::extension::limits;
use crate::message::Message;

/// Most added and most dropped peers we put in one message (BEP 11 asks for at most 50).
pub const MAX_PEX_SEND: usize = 50;
/// Most peers accepted in each of a message's four lists; more is an error.
pub const MAX_PEX_RECEIVE: usize = 200;

/// Flag bits of an added peer (`added.f`).
pub mod flags {
    /// Prefers encrypted connections.
    pub const ENCRYPTION: u8 = 0x01;
    /// Is a seed or only uploads.
    pub const SEED: u8 = 0x02;
    /// Supports uTP.
    pub const UTP: u8 = 0x04;
    /// Supports the holepunch extension.
    pub const HOLEPUNCH: u8 = 0x08;
    /// Is reachable: the sender connected to it (an outgoing connection).
    pub const REACHABLE: u8 = 0x10;
}

/// A peer that was added, with its [`flags`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PexPeer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Bits from [`flags`].
    pub flags: u8,
}

/// One `ut_pex` message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PexMsg {
    /// Peers connected since the last message (IPv4 first, then IPv6, when decoded).
    pub added: Vec<PexPeer>,
    /// Peers disconnected since the last message (IPv4 first, then IPv6, when decoded).
    pub dropped: Vec<SocketAddr>,
}

/// An IPv4-mapped IPv6 address as IPv4, so it is sent in the compact IPv4 form.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

fn put_compact(v4: &mut Vec<u8>, v6: &mut Vec<u8>, addr: SocketAddr) {
    match canonical(addr) {
        SocketAddr::V4(a) => {
            v4.extend_from_slice(&a.ip().octets());
            v4.extend_from_slice(&a.port().to_be_bytes());
        }
        SocketAddr::V6(a) => {
            v6.extend_from_slice(&a.ip().octets());
            v6.extend_from_slice(&a.port().to_be_bytes());
        }
    }
}

/// Reads the compact list under `key`; absent or not a byte string is an empty list.
fn compact(dict: &Value<'_>, key: &'static str, v6: bool) -> Result<Vec<SocketAddr>, WireError> {
    let Some(b) = dict.get(key.as_bytes()).and_then(Value::as_bytes) else {
        return Ok(Vec::new());
    };
    let size = if v6 { 18 } else { 6 };
    if b.len() % size != 0 {
        return Err(WireError::BadExtension(
            "ut_pex peer list is not a whole number of entries",
        ));
    }
    let count = b.len() / size;
    if count > MAX_PEX_RECEIVE {
        return Err(WireError::TooMany {
            what: key,
            count,
            max: MAX_PEX_RECEIVE,
        });
    }
    Ok(b.chunks_exact(size)
        .filter_map(|c| {
            let (ip, port) = c.split_last_chunk::<2>()?;
            let port = u16::from_be_bytes(*port);
            let ip = if v6 {
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?))
            } else {
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?))
            };
            Some(SocketAddr::new(ip, port))
        })
        .collect())
}

/// Pairs peers with their flag bytes; flags of the wrong length are ignored (all zero).
fn with_flags(addrs: Vec<SocketAddr>, dict: &Value<'_>, key: &str) -> Vec<PexPeer> {
    let f = dict
        .get(key.as_bytes())
        .and_then(Value::as_bytes)
        .filter(|f| f.len() == addrs.len());
    addrs
        .into_iter()
        .enumerate()
        .map(|(i, addr)| PexPeer {
            addr,
            flags: f.and_then(|f| f.get(i)).copied().unwrap_or(0),
        })
        .collect()
}

impl PexMsg {
    /// The payload: the six keys in sorted order, each possibly empty. Only the first
    /// [`MAX_PEX_SEND`] added and dropped peers are written; IPv4-mapped IPv6 addresses are
    /// written as IPv4.
    pub fn encode(&self) -> Vec<u8> {
        use bencode::{put_bytes, put_dict_start, put_end, put_str};
        let (mut a4, mut a6, mut f4, mut f6) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for p in self.added.iter().take(MAX_PEX_SEND) {
            put_compact(&mut a4, &mut a6, p.addr);
            match canonical(p.addr) {
                SocketAddr::V4(_) => f4.push(p.flags),
                SocketAddr::V6(_) => f6.push(p.flags),
            }
        }
        let (mut d4, mut d6) = (Vec::new(), Vec::new());
        for &a in self.dropped.iter().take(MAX_PEX_SEND) {
            put_compact(&mut d4, &mut d6, a);
        }
        let mut out = Vec::with_capacity(80 + a4.len() + a6.len() + d4.len() + d6.len());
        put_dict_start(&mut out);
        for (key, val) in [
            ("added", &a4),
            ("added.f", &f4),
            ("added6", &a6),
            ("added6.f", &f6),
            ("dropped", &d4),
            ("dropped6", &d6),
        ] {
            put_str(&mut out, key);
            put_bytes(&mut out, val);
        }
        put_end(&mut out);
        out
    }

    /// This message as a wire message, under the id the receiving peer gave `ut_pex`.
    pub fn to_message(&self, id: u8) -> Message {
        Message::Extended {
            id,
            payload: Bytes::from(self.encode()),
        }
    }

    /// Reads a payload. Keys of the wrong type are ignored; a list that is not a whole number of
    /// entries, or has more than [`MAX_PEX_RECEIVE`], is an error.
    pub fn decode(payload: &[u8]) -> Result<PexMsg, WireError> {
        let dict = bencode::decode_with(payload, &limits())?;
        if dict.as_dict().is_none() {
            return Err(WireError::BadExtension(
                "ut_pex message is not a dictionary",
            ));
        }
        let mut added = with_flags(compact(&dict, "added", false)?, &dict, "added.f");
        added.extend(with_flags(
            compact(&dict, "added6", true)?,
            &dict,
            "added6.f",
        ));
        let mut dropped = compact(&dict, "dropped", false)?;
        dropped.extend(compact(&dict, "dropped6", true)?);
        Ok(PexMsg { added, dropped })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(a.into()), port)
    }

    #[test]
    fn exact_bytes() {
        let m = PexMsg {
            added: vec![
                PexPeer {
                    addr: v4([1, 2, 3, 4], 0x1ae1),
                    flags: flags::SEED | flags::REACHABLE,
                },
                PexPeer {
                    addr: "[::1]:80".parse().unwrap(),
                    flags: flags::UTP,
                },
            ],
            dropped: vec![v4([5, 6, 7, 8], 1)],
        };
        let expected: &[u8] = b"d5:added6:\x01\x02\x03\x04\x1a\xe17:added.f1:\x12\
            6:added618:\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01\x00\x508:added6.f1:\x04\
            7:dropped6:\x05\x06\x07\x08\x00\x018:dropped60:e";
        assert_eq!(m.encode(), expected);
        assert_eq!(PexMsg::decode(expected), Ok(m));
    }

    #[test]
    fn empty() {
        let m = PexMsg::default();
        assert_eq!(
            m.encode(),
            b"d5:added0:7:added.f0:6:added60:8:added6.f0:7:dropped0:8:dropped60:e"
        );
        assert_eq!(PexMsg::decode(b"de"), Ok(m));
    }

    #[test]
    fn mapped_v6_is_sent_as_v4() {
        let m = PexMsg {
            added: vec![],
            dropped: vec!["[::ffff:10.0.0.1]:6881".parse().unwrap()],
        };
        let back = PexMsg::decode(&m.encode()).unwrap();
        assert_eq!(back.dropped, vec![v4([10, 0, 0, 1], 6881)]);
    }

    #[test]
    fn encode_caps_at_50() {
        let m = PexMsg {
            added: (0..80)
                .map(|i| PexPeer {
                    addr: v4([10, 0, 0, i], 1),
                    flags: 0,
                })
                .collect(),
            dropped: (0..80).map(|i| v4([10, 0, 1, i], 1)).collect(),
        };
        let back = PexMsg::decode(&m.encode()).unwrap();
        assert_eq!(back.added.len(), MAX_PEX_SEND);
        assert_eq!(back.dropped.len(), MAX_PEX_SEND);
        assert_eq!(back.added[..], m.added[..MAX_PEX_SEND]);
    }

    #[test]
    fn tolerant_of_types_and_flag_mismatch() {
        let m =
            PexMsg::decode(b"d5:added6:\x01\x02\x03\x04\x00\x017:added.f2:ab7:droppedi3e1:xlee")
                .unwrap();
        assert_eq!(
            m,
            PexMsg {
                added: vec![PexPeer {
                    addr: v4([1, 2, 3, 4], 1),
                    flags: 0
                }],
                dropped: vec![],
            }
        );
    }

    #[test]
    fn strict_on_bounds() {
        assert!(matches!(
            PexMsg::decode(b"d5:added5:abcdee"),
            Err(WireError::BadExtension(_))
        ));
        assert!(matches!(
            PexMsg::decode(b"d6:added67:abcdefge"),
            Err(WireError::BadExtension(_))
        ));
        assert!(matches!(
            PexMsg::decode(b"le"),
            Err(WireError::BadExtension(_))
        ));
        let n = (MAX_PEX_RECEIVE + 1) * 6;
        let mut big = format!("d7:dropped{n}:").into_bytes();
        big.resize(big.len() + n, 7);
        big.push(b'e');
        assert_eq!(
            PexMsg::decode(&big),
            Err(WireError::TooMany {
                what: "dropped",
                count: MAX_PEX_RECEIVE + 1,
                max: MAX_PEX_RECEIVE
            })
        );
    }

    fn v4_addr() -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| v4(a, p))
    }

    fn v6_addr() -> impl Strategy<Value = SocketAddr> {
        (any::<[u8; 16]>(), any::<u16>())
            .prop_filter("not IPv4-mapped", |(a, _)| {
                Ipv6Addr::from(*a).to_ipv4_mapped().is_none()
            })
            .prop_map(|(a, p)| SocketAddr::new(IpAddr::V6(a.into()), p))
    }

    fn peers(s: impl Strategy<Value = SocketAddr>) -> impl Strategy<Value = Vec<PexPeer>> {
        proptest::collection::vec(
            (s, any::<u8>()).prop_map(|(addr, flags)| PexPeer { addr, flags }),
            0..25,
        )
    }

    proptest! {
        #[test]
        fn round_trip(
            a4 in peers(v4_addr()),
            a6 in peers(v6_addr()),
            d4 in proptest::collection::vec(v4_addr(), 0..25),
            d6 in proptest::collection::vec(v6_addr(), 0..25),
        ) {
            let m = PexMsg {
                added: a4.into_iter().chain(a6).collect(),
                dropped: d4.into_iter().chain(d6).collect(),
            };
            prop_assert_eq!(PexMsg::decode(&m.encode()), Ok(m));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PexMsg::decode(&b);
        }
    }
}
