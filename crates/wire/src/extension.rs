//! The extension protocol (BEP 10): the extended handshake that maps extension names to the
//! message ids a peer wants to receive them under, and the ids we assign to ours.
//!
//! Each side picks the ids for the messages it *receives*: we send a peer's `ut_metadata`
//! messages under the id in *its* `m`, and it sends ours under [`UT_METADATA_ID`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bencode::{Limits, Value};
use bytes::Bytes;

use crate::error::WireError;
use crate::message::Message;

/// Extended message id 0: the extended handshake.
pub const HANDSHAKE_ID: u8 = 0;
/// Name of the metadata exchange extension (BEP 9).
pub const UT_METADATA: &str = "ut_metadata";
/// Name of the peer exchange extension (BEP 11).
pub const UT_PEX: &str = "ut_pex";
/// The id under which we receive `ut_metadata` messages.
pub const UT_METADATA_ID: u8 = 1;
/// The id under which we receive `ut_pex` messages.
pub const UT_PEX_ID: u8 = 2;
/// Most entries kept in `m`, on encode and decode.
pub const MAX_EXTENSIONS: usize = 64;
/// Longest client name (`v`) accepted, in bytes.
pub const MAX_CLIENT_NAME: usize = 256;

/// Bencode limits for extension payloads: small and shallow, whatever the frame cap allows.
pub(crate) fn limits() -> Limits {
    Limits {
        max_len: crate::codec::DEFAULT_MAX_FRAME as usize,
        max_depth: 8,
        max_items: 4096,
    }
}

/// The integer under `key` as a `T`: `Ok(None)` if absent or not an integer (ignored), an error
/// if it is an integer out of `T`'s range.
pub(crate) fn int_field<T: TryFrom<i64>>(
    dict: &Value<'_>,
    key: &'static str,
) -> Result<Option<T>, WireError> {
    match dict.get(key.as_bytes()).and_then(Value::as_int) {
        None => Ok(None),
        Some(value) => T::try_from(value)
            .map(Some)
            .map_err(|_| WireError::ExtensionValue { key, value }),
    }
}

/// The BEP 10 handshake payload (extended message id 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// Extension name -> the id the sender receives it under; id 0 means "disabled".
    /// At most [`MAX_EXTENSIONS`] entries.
    pub m: Vec<(String, u8)>,
    /// Client name and version.
    pub v: Option<String>,
    /// How many outstanding requests the sender queues before dropping them.
    pub reqq: Option<u32>,
    /// The sender's listening port.
    pub p: Option<u16>,
    /// The receiver's address as the sender sees it.
    pub yourip: Option<IpAddr>,
    /// Size of the info dictionary in bytes (BEP 9).
    pub metadata_size: Option<u32>,
    /// The sender only uploads (a seed or partial seed; BEP 21).
    pub upload_only: Option<bool>,
}

impl ExtendedHandshake {
    /// The id the sender wants `name` messages sent under, `None` if absent or disabled (0).
    pub fn id_of(&self, name: &str) -> Option<u8> {
        self.m
            .iter()
            .find(|(n, _)| n == name)
            .map(|&(_, id)| id)
            .filter(|&id| id != 0)
    }

    /// The bencoded payload (what follows extended id 0), keys sorted; `m` cut at
    /// [`MAX_EXTENSIONS`] entries.
    pub fn encode(&self) -> Vec<u8> {
        use bencode::{put_bytes, put_dict_start, put_end, put_str, put_uint};
        let mut out = Vec::with_capacity(128);
        put_dict_start(&mut out);
        put_str(&mut out, "m");
        put_dict_start(&mut out);
        let mut m: Vec<&(String, u8)> = self.m.iter().take(MAX_EXTENSIONS).collect();
        m.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, id) in m {
            put_str(&mut out, name);
            put_uint(&mut out, u64::from(*id));
        }
        put_end(&mut out);
        if let Some(n) = self.metadata_size {
            put_str(&mut out, "metadata_size");
            put_uint(&mut out, u64::from(n));
        }
        if let Some(p) = self.p {
            put_str(&mut out, "p");
            put_uint(&mut out, u64::from(p));
        }
        if let Some(r) = self.reqq {
            put_str(&mut out, "reqq");
            put_uint(&mut out, u64::from(r));
        }
        if let Some(u) = self.upload_only {
            put_str(&mut out, "upload_only");
            put_uint(&mut out, u64::from(u));
        }
        if let Some(v) = &self.v {
            put_str(&mut out, "v");
            put_str(&mut out, v);
        }
        match self.yourip {
            Some(IpAddr::V4(ip)) => {
                put_str(&mut out, "yourip");
                put_bytes(&mut out, &ip.octets());
            }
            Some(IpAddr::V6(ip)) => {
                put_str(&mut out, "yourip");
                put_bytes(&mut out, &ip.octets());
            }
            None => {}
        }
        put_end(&mut out);
        out
    }

    /// This handshake as a wire message.
    pub fn to_message(&self) -> Message {
        Message::Extended {
            id: HANDSHAKE_ID,
            payload: Bytes::from(self.encode()),
        }
    }

    /// Reads a handshake payload. Unknown keys, and optional keys of the wrong type, are
    /// ignored; integers out of range, more than [`MAX_EXTENSIONS`] extensions, a client name
    /// over [`MAX_CLIENT_NAME`] bytes, or anything but a dictionary are errors.
    pub fn decode(payload: &[u8]) -> Result<ExtendedHandshake, WireError> {
        let root = bencode::decode_with(payload, &limits())?;
        if root.as_dict().is_none() {
            return Err(WireError::BadExtension(
                "extended handshake is not a dictionary",
            ));
        }
        let mut m = Vec::new();
        if let Some(entries) = root.get(b"m").and_then(Value::as_dict) {
            for (name, id) in entries {
                let (Ok(name), Some(id)) = (std::str::from_utf8(name), id.as_int()) else {
                    continue;
                };
                let id = u8::try_from(id).map_err(|_| WireError::ExtensionValue {
                    key: "m",
                    value: id,
                })?;
                if m.len() == MAX_EXTENSIONS {
                    return Err(WireError::TooMany {
                        what: "extended handshake m",
                        count: entries.len(),
                        max: MAX_EXTENSIONS,
                    });
                }
                m.push((name.to_owned(), id));
            }
        }
        let v = match root.get(b"v").and_then(Value::as_bytes) {
            Some(b) if b.len() > MAX_CLIENT_NAME => {
                return Err(WireError::TooMany {
                    what: "extended handshake v bytes",
                    count: b.len(),
                    max: MAX_CLIENT_NAME,
                });
            }
            Some(b) => std::str::from_utf8(b).ok().map(str::to_owned),
            None => None,
        };
        let yourip = match root.get(b"yourip").and_then(Value::as_bytes) {
            Some(b) => match b.len() {
                4 => <[u8; 4]>::try_from(b)
                    .ok()
                    .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
                16 => <[u8; 16]>::try_from(b)
                    .ok()
                    .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
                _ => None,
            },
            None => None,
        };
        Ok(ExtendedHandshake {
            m,
            v,
            reqq: int_field(&root, "reqq")?,
            p: int_field(&root, "p")?,
            yourip,
            metadata_size: int_field(&root, "metadata_size")?,
            upload_only: int_field::<i64>(&root, "upload_only")?.map(|u| u != 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ours() -> ExtendedHandshake {
        ExtendedHandshake {
            m: vec![
                (UT_PEX.to_owned(), UT_PEX_ID),
                (UT_METADATA.to_owned(), UT_METADATA_ID),
            ],
            v: Some("swarm 0.1".to_owned()),
            reqq: Some(2000),
            p: Some(6881),
            yourip: Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))),
            metadata_size: Some(31235),
            upload_only: Some(false),
        }
    }

    #[test]
    fn exact_bytes() {
        let expected: &[u8] = b"d1:md11:ut_metadatai1e6:ut_pexi2ee13:metadata_sizei31235e\
            1:pi6881e4:reqqi2000e11:upload_onlyi0e1:v9:swarm 0.16:yourip4:\x0a\x00\x00\x01e";
        assert_eq!(ours().encode(), expected);
        // Keys are in sorted order, as bencode requires.
        assert_eq!(bencode::decode(expected).unwrap().to_vec(), expected);
        assert_eq!(ExtendedHandshake::decode(expected).unwrap(), {
            let mut h = ours();
            h.m.reverse();
            h
        });
    }

    #[test]
    fn minimal_and_message() {
        let h = ExtendedHandshake::default();
        assert_eq!(h.encode(), b"d1:mdee");
        assert_eq!(
            h.to_message(),
            Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"d1:mdee")
            }
        );
        assert_eq!(ExtendedHandshake::decode(b"de").unwrap(), h);
    }

    #[test]
    fn id_of_skips_disabled() {
        let h = ExtendedHandshake::decode(b"d1:md6:ut_pexi0e11:ut_metadatai3eee").unwrap();
        assert_eq!(h.id_of(UT_METADATA), Some(3));
        assert_eq!(h.id_of(UT_PEX), None);
        assert_eq!(h.id_of("lt_donthave"), None);
    }

    #[test]
    fn tolerates_unknown_keys_and_wrong_types() {
        let h = ExtendedHandshake::decode(
            b"d12:complete_agoi-1e1:m3:abc1:pli1ee4:reqq3:lot1:vi5e6:yourip3:abc\
              13:metadata_size0:11:upload_onlyd1:xi1ee1:zl1:aee",
        )
        .unwrap();
        assert_eq!(h, ExtendedHandshake::default());
        // An m entry of the wrong type is skipped, the rest kept; IPv6 yourip.
        let h = ExtendedHandshake::decode(
            b"d1:md1:a1:x1:bi7ee6:yourip16:\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01e",
        )
        .unwrap();
        assert_eq!(h.m, vec![("b".to_owned(), 7)]);
        assert_eq!(h.yourip, Some("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn strict_on_bounds() {
        let cases: &[&[u8]] = &[
            b"d1:md1:ai256eee",
            b"d1:md1:ai-1eee",
            b"d4:reqqi4294967296ee",
            b"d4:reqqi-1ee",
            b"d1:pi65536ee",
            b"d13:metadata_sizei-5ee",
        ];
        for c in cases {
            assert!(
                matches!(
                    ExtendedHandshake::decode(c),
                    Err(WireError::ExtensionValue { .. })
                ),
                "{}",
                String::from_utf8_lossy(c)
            );
        }
        assert!(matches!(
            ExtendedHandshake::decode(b"li1ee"),
            Err(WireError::BadExtension(_))
        ));
        assert!(matches!(
            ExtendedHandshake::decode(b"d1:m"),
            Err(WireError::Bencode(_))
        ));
        assert!(matches!(
            ExtendedHandshake::decode(b"dede"),
            Err(WireError::Bencode(_))
        ));
        let mut many = b"d1:md".to_vec();
        for i in 0..=MAX_EXTENSIONS {
            many.extend_from_slice(format!("3:x{i:02}i1e").as_bytes());
        }
        many.extend_from_slice(b"ee");
        assert!(matches!(
            ExtendedHandshake::decode(&many),
            Err(WireError::TooMany { .. })
        ));
        let long_v = format!(
            "d1:v{}:{}e",
            MAX_CLIENT_NAME + 1,
            "x".repeat(MAX_CLIENT_NAME + 1)
        );
        assert!(matches!(
            ExtendedHandshake::decode(long_v.as_bytes()),
            Err(WireError::TooMany { .. })
        ));
    }

    #[test]
    fn encode_caps_m() {
        let h = ExtendedHandshake {
            m: (0..100).map(|i| (format!("x{i:03}"), 1)).collect(),
            ..ExtendedHandshake::default()
        };
        let back = ExtendedHandshake::decode(&h.encode()).unwrap();
        assert_eq!(back.m.len(), MAX_EXTENSIONS);
    }

    fn handshake() -> impl Strategy<Value = ExtendedHandshake> {
        let ip = prop_oneof![
            any::<[u8; 4]>().prop_map(|o| IpAddr::V4(o.into())),
            any::<[u8; 16]>().prop_map(|o| IpAddr::V6(o.into())),
        ];
        (
            proptest::collection::btree_map("[a-z_]{1,12}", any::<u8>(), 0..MAX_EXTENSIONS),
            proptest::option::of("\\PC{0,40}"),
            any::<Option<u32>>(),
            any::<Option<u16>>(),
            proptest::option::of(ip),
            any::<Option<u32>>(),
            any::<Option<bool>>(),
        )
            .prop_map(|(m, v, reqq, p, yourip, metadata_size, upload_only)| {
                ExtendedHandshake {
                    m: m.into_iter().collect(),
                    v,
                    reqq,
                    p,
                    yourip,
                    metadata_size,
                    upload_only,
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip(h in handshake()) {
            // Sorted, distinct names (a btree map) come back in the same order.
            prop_assert_eq!(ExtendedHandshake::decode(&h.encode()), Ok(h));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ExtendedHandshake::decode(&b);
        }
    }
}
