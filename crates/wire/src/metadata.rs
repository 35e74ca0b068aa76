//! The metadata exchange extension (BEP 9, `ut_metadata`): fetching a torrent's info dictionary
//! from peers in 16 KiB pieces, as magnet links need.
//!
//! A message is a bencoded dictionary; a DATA message is followed by the raw piece bytes, which
//! are kept as a slice of the received payload, not copied.

use bencode::Value;
use bytes::Bytes;

use crate::error::WireError;
use crate::extension::{int_field, limits};
use crate::message::Message;

/// Size of every metadata piece but the last.
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;
/// Largest info dictionary we fetch or serve (8 MiB, 512 pieces).
pub const MAX_METADATA_SIZE: u32 = 8 * 1024 * 1024;

const REQUEST: i64 = 0;
const DATA: i64 = 1;
const REJECT: i64 = 2;

/// One `ut_metadata` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMsg {
    /// Please send this metadata piece.
    Request {
        /// Piece number.
        piece: u32,
    },
    /// A metadata piece.
    Data {
        /// Piece number.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u32,
        /// The piece's bytes: 16 KiB, or less for the last piece.
        data: Bytes,
    },
    /// We will not send this piece.
    Reject {
        /// Piece number.
        piece: u32,
    },
}

/// How many pieces metadata of `total_size` bytes has.
pub fn metadata_piece_count(total_size: u32) -> u32 {
    total_size.div_ceil(METADATA_PIECE_LEN)
}

/// The length of `piece` in metadata of `total_size` bytes, `None` past the end.
pub fn metadata_piece_len(total_size: u32, piece: u32) -> Option<u32> {
    let start = piece.checked_mul(METADATA_PIECE_LEN)?;
    let left = total_size.checked_sub(start).filter(|&l| l > 0)?;
    Some(left.min(METADATA_PIECE_LEN))
}

impl MetadataMsg {
    /// The piece number this message is about.
    pub fn piece(&self) -> u32 {
        match self {
            MetadataMsg::Request { piece }
            | MetadataMsg::Data { piece, .. }
            | MetadataMsg::Reject { piece } => *piece,
        }
    }

    /// The payload: a bencoded dictionary, then the piece bytes for DATA.
    pub fn encode(&self) -> Vec<u8> {
        use bencode::{put_dict_start, put_end, put_int, put_str, put_uint};
        let (msg_type, total, data) = match self {
            MetadataMsg::Request { .. } => (REQUEST, None, &[][..]),
            MetadataMsg::Data {
                total_size, data, ..
            } => (DATA, Some(*total_size), &data[..]),
            MetadataMsg::Reject { .. } => (REJECT, None, &[][..]),
        };
        let mut out = Vec::with_capacity(48 + data.len());
        put_dict_start(&mut out);
        put_str(&mut out, "msg_type");
        put_int(&mut out, msg_type);
        put_str(&mut out, "piece");
        put_uint(&mut out, u64::from(self.piece()));
        if let Some(t) = total {
            put_str(&mut out, "total_size");
            put_uint(&mut out, u64::from(t));
        }
        put_end(&mut out);
        out.extend_from_slice(data);
        out
    }

    /// This message as a wire message, under the id the receiving peer gave `ut_metadata`.
    pub fn to_message(&self, id: u8) -> Message {
        Message::Extended {
            id,
            payload: Bytes::from(self.encode()),
        }
    }

    /// Reads a payload; `Ok(None)` for an unknown `msg_type`, which BEP 9 says to ignore.
    ///
    /// Errors: not a dictionary, `msg_type` or `piece` missing, a piece beyond
    /// [`MAX_METADATA_SIZE`], a `total_size` of 0 or over it, DATA whose length is not that of
    /// its piece, or bytes after a REQUEST or REJECT.
    pub fn decode(payload: &Bytes) -> Result<Option<MetadataMsg>, WireError> {
        let (dict, rest) = bencode::decode_prefix_with(payload, &limits())?;
        if dict.as_dict().is_none() {
            return Err(WireError::BadExtension(
                "ut_metadata message is not a dictionary",
            ));
        }
        let Some(msg_type) = dict.get(b"msg_type").and_then(Value::as_int) else {
            return Err(WireError::BadExtension(
                "ut_metadata message without msg_type",
            ));
        };
        if !(REQUEST..=REJECT).contains(&msg_type) {
            return Ok(None);
        }
        let Some(piece) = int_field::<u32>(&dict, "piece")? else {
            return Err(WireError::BadExtension("ut_metadata message without piece"));
        };
        if piece >= metadata_piece_count(MAX_METADATA_SIZE) {
            return Err(WireError::ExtensionValue {
                key: "piece",
                value: i64::from(piece),
            });
        }
        if msg_type != DATA {
            if !rest.is_empty() {
                return Err(WireError::BadExtension(
                    "bytes after a ut_metadata request or reject",
                ));
            }
            return Ok(Some(if msg_type == REQUEST {
                MetadataMsg::Request { piece }
            } else {
                MetadataMsg::Reject { piece }
            }));
        }
        let total_size = match int_field::<u32>(&dict, "total_size")? {
            Some(t) if (1..=MAX_METADATA_SIZE).contains(&t) => t,
            Some(t) => {
                return Err(WireError::ExtensionValue {
                    key: "total_size",
                    value: i64::from(t),
                });
            }
            None => {
                return Err(WireError::BadExtension(
                    "ut_metadata data without total_size",
                ));
            }
        };
        let Some(want) = metadata_piece_len(total_size, piece) else {
            return Err(WireError::ExtensionValue {
                key: "piece",
                value: i64::from(piece),
            });
        };
        if rest.len() != want as usize {
            return Err(WireError::MetadataPieceLength {
                piece,
                want,
                got: rest.len(),
            });
        }
        // `rest` is a suffix of `payload`: the data starts where the dictionary ends.
        let data = payload.slice(payload.len().saturating_sub(rest.len())..);
        Ok(Some(MetadataMsg::Data {
            piece,
            total_size,
            data,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(b: &'static [u8]) -> Result<Option<MetadataMsg>, WireError> {
        MetadataMsg::decode(&Bytes::from_static(b))
    }

    #[test]
    fn exact_bytes() {
        let cases: Vec<(MetadataMsg, &[u8])> = vec![
            (
                MetadataMsg::Request { piece: 0 },
                b"d8:msg_typei0e5:piecei0ee",
            ),
            (
                MetadataMsg::Reject { piece: 3 },
                b"d8:msg_typei2e5:piecei3ee",
            ),
            (
                MetadataMsg::Data {
                    piece: 1,
                    total_size: METADATA_PIECE_LEN + 3,
                    data: Bytes::from_static(b"xyz"),
                },
                b"d8:msg_typei1e5:piecei1e10:total_sizei16387eexyz",
            ),
        ];
        for (m, b) in cases {
            assert_eq!(m.encode(), b);
            assert_eq!(MetadataMsg::decode(&Bytes::copy_from_slice(b)), Ok(Some(m)));
        }
    }

    #[test]
    fn data_shares_the_payload() {
        let p = Bytes::from_static(b"d8:msg_typei1e5:piecei0e10:total_sizei2eeab");
        let Ok(Some(MetadataMsg::Data { data, .. })) = MetadataMsg::decode(&p) else {
            panic!("not data");
        };
        assert_eq!(data.as_ptr(), p.as_ptr().wrapping_add(p.len() - 2));
    }

    #[test]
    fn wrong_length_data_is_told_apart() {
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei4eexyz"),
            Err(WireError::MetadataPieceLength {
                piece: 0,
                want: 4,
                got: 3
            })
        );
    }

    #[test]
    fn unknown_msg_type_is_ignored() {
        assert_eq!(dec(b"d8:msg_typei7e5:piecei0ee"), Ok(None));
    }

    #[test]
    fn piece_arithmetic() {
        assert_eq!(metadata_piece_count(1), 1);
        assert_eq!(metadata_piece_count(METADATA_PIECE_LEN), 1);
        assert_eq!(metadata_piece_count(METADATA_PIECE_LEN + 1), 2);
        assert_eq!(metadata_piece_count(MAX_METADATA_SIZE), 512);
        assert_eq!(metadata_piece_len(100, 0), Some(100));
        assert_eq!(metadata_piece_len(100, 1), None);
        assert_eq!(metadata_piece_len(METADATA_PIECE_LEN, 1), None);
        assert_eq!(metadata_piece_len(METADATA_PIECE_LEN + 1, 1), Some(1));
        assert_eq!(metadata_piece_len(u32::MAX, u32::MAX), None);
    }

    #[test]
    fn rejects_malformed() {
        let bad: &[&'static [u8]] = &[
            b"i1e",
            b"d5:piecei0ee",
            b"d8:msg_typei0ee",
            b"d8:msg_typei0e5:piecei-1ee",
            b"d8:msg_typei0e5:piecei512ee",
            b"d8:msg_typei0e5:piecei0eeextra",
            b"d8:msg_typei1e5:piecei0eexyz",
            b"d8:msg_typei1e5:piecei0e10:total_sizei0eexyz",
            b"d8:msg_typei1e5:piecei0e10:total_sizei8388609eexyz",
            b"d8:msg_typei1e5:piecei1e10:total_sizei3eexyz",
            b"d8:msg_typei1e5:piecei0e10:total_sizei4eexyz",
            b"d8:msg_typei1e5:piecei0e10:total_sizei2eexyz",
            b"d8:msg_typei1e",
        ];
        for b in bad {
            assert!(dec(b).is_err(), "{}", String::from_utf8_lossy(b));
        }
    }

    fn msg() -> impl Strategy<Value = MetadataMsg> {
        let data = (1..=MAX_METADATA_SIZE, any::<prop::sample::Index>()).prop_flat_map(
            |(total_size, i)| {
                let piece = i.index(metadata_piece_count(total_size) as usize) as u32;
                let len = metadata_piece_len(total_size, piece).unwrap_or(0) as usize;
                proptest::collection::vec(any::<u8>(), len).prop_map(move |d| MetadataMsg::Data {
                    piece,
                    total_size,
                    data: Bytes::from(d),
                })
            },
        );
        prop_oneof![
            (0..512u32).prop_map(|piece| MetadataMsg::Request { piece }),
            (0..512u32).prop_map(|piece| MetadataMsg::Reject { piece }),
            data,
        ]
    }

    proptest! {
        #[test]
        fn round_trip(m in msg()) {
            prop_assert_eq!(MetadataMsg::decode(&Bytes::from(m.encode())), Ok(Some(m)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = MetadataMsg::decode(&Bytes::from(b));
        }
    }
}
