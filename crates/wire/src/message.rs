//! Peer wire messages (BEP 3, BEP 6 Fast, BEP 10 extended): the enum, its encoder, and the
//! per-id length rules the decoder enforces.

use bytes::{BufMut, Bytes, BytesMut};
use metainfo::{BLOCK_SIZE, BlockRef};

use crate::error::WireError;

/// Message ids on the wire.
pub mod id {
    /// choke
    pub const CHOKE: u8 = 0;
    /// unchoke
    pub const UNCHOKE: u8 = 1;
    /// interested
    pub const INTERESTED: u8 = 2;
    /// not interested
    pub const NOT_INTERESTED: u8 = 3;
    /// have
    pub const HAVE: u8 = 4;
    /// bitfield
    pub const BITFIELD: u8 = 5;
    /// request
    pub const REQUEST: u8 = 6;
    /// piece
    pub const PIECE: u8 = 7;
    /// cancel
    pub const CANCEL: u8 = 8;
    /// port (BEP 5)
    pub const PORT: u8 = 9;
    /// suggest piece (BEP 6)
    pub const SUGGEST: u8 = 13;
    /// have all (BEP 6)
    pub const HAVE_ALL: u8 = 14;
    /// have none (BEP 6)
    pub const HAVE_NONE: u8 = 15;
    /// reject request (BEP 6)
    pub const REJECT: u8 = 16;
    /// allowed fast (BEP 6)
    pub const ALLOWED_FAST: u8 = 17;
    /// extended (BEP 10)
    pub const EXTENDED: u8 = 20;
}

/// Length of a PIECE frame's header: 4-byte prefix, id, piece, begin.
pub const PIECE_HEADER_LEN: usize = 13;

/// A block as named on the wire by REQUEST, CANCEL and REJECT: raw numbers, not yet validated
/// against the torrent's geometry (the engine does that with `Geometry::block`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockSpec {
    /// Piece index.
    pub piece: u32,
    /// Byte offset within the piece.
    pub begin: u32,
    /// Length in bytes.
    pub len: u32,
}

impl From<BlockRef> for BlockSpec {
    /// The wire name of a block of the torrent (for REQUEST, CANCEL and REJECT).
    fn from(b: BlockRef) -> Self {
        BlockSpec {
            piece: b.piece().get(),
            begin: b.begin(),
            len: b.len(),
        }
    }
}

/// One peer wire message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A zero-length frame.
    KeepAlive,
    /// We will not serve your requests.
    Choke,
    /// We will serve your requests.
    Unchoke,
    /// We want something you have.
    Interested,
    /// We want nothing you have.
    NotInterested,
    /// We now have this piece.
    Have(u32),
    /// Which pieces we have, in wire order (validated by the engine with `Bitfield::from_bytes`).
    Bitfield(Bytes),
    /// Please send this block.
    Request(BlockSpec),
    /// A block of data.
    Piece {
        /// Piece index.
        piece: u32,
        /// Byte offset within the piece.
        begin: u32,
        /// The block, at most 16 KiB.
        data: Bytes,
    },
    /// Never mind that request.
    Cancel(BlockSpec),
    /// Our DHT port (BEP 5).
    Port(u16),
    /// You may want this piece (BEP 6).
    Suggest(u32),
    /// We have every piece (BEP 6).
    HaveAll,
    /// We have no piece (BEP 6).
    HaveNone,
    /// We will not serve this request (BEP 6).
    Reject(BlockSpec),
    /// You may request this piece while choked (BEP 6).
    AllowedFast(u32),
    /// An extension message (BEP 10); `id` 0 is the extended handshake.
    Extended {
        /// The extended message id.
        id: u8,
        /// The payload after the extended id.
        payload: Bytes,
    },
    /// A message id we do not know; BEP 3 says to ignore it. Its body is dropped.
    ///
    /// Encoding it writes a bare id; with a known id that is a different message.
    Unknown {
        /// The id.
        id: u8,
    },
}

/// The fixed part of a message: either the whole message, or the header of one that carries a
/// payload, with the offset in the body where the payload starts.
#[derive(Debug)]
pub(crate) enum Head {
    /// A message with no variable payload (or one whose payload is dropped).
    Whole(Message),
    /// BITFIELD: payload from offset 1.
    Bitfield,
    /// PIECE: payload from offset 9.
    Piece { piece: u32, begin: u32 },
    /// EXTENDED: payload from offset 2.
    Extended { id: u8 },
}

impl Head {
    /// Where the payload starts in the body (after the length prefix).
    pub(crate) fn payload_offset(&self) -> usize {
        match self {
            Head::Whole(_) => 0,
            Head::Bitfield => 1,
            Head::Piece { .. } => 9,
            Head::Extended { .. } => 2,
        }
    }

    /// Completes the message with its payload.
    pub(crate) fn finish(self, payload: Bytes) -> Message {
        match self {
            Head::Whole(m) => m,
            Head::Bitfield => Message::Bitfield(payload),
            Head::Piece { piece, begin } => Message::Piece {
                piece,
                begin,
                data: payload,
            },
            Head::Extended { id } => Message::Extended { id, payload },
        }
    }
}

/// Checks a body length (id included, prefix excluded) against the rules for its id.
pub(crate) fn check_len(id: u8, len: u32) -> Result<(), WireError> {
    let ok = match id {
        id::CHOKE | id::UNCHOKE | id::INTERESTED | id::NOT_INTERESTED => len == 1,
        id::HAVE_ALL | id::HAVE_NONE => len == 1,
        id::HAVE | id::SUGGEST | id::ALLOWED_FAST => len == 5,
        id::REQUEST | id::CANCEL | id::REJECT => len == 13,
        id::PORT => len == 3,
        id::PIECE => {
            if len < 9 {
                false
            } else if len - 9 > BLOCK_SIZE {
                return Err(WireError::BlockTooLarge { len: len - 9 });
            } else {
                true
            }
        }
        id::EXTENDED => len >= 2,
        _ => len >= 1,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadLength { id, len })
    }
}

/// The big-endian u32 at `at`, or 0 if out of bounds (callers check lengths first).
fn be32(b: &[u8], at: usize) -> u32 {
    b.get(at..)
        .and_then(|s| s.first_chunk::<4>())
        .map_or(0, |x| u32::from_be_bytes(*x))
}

fn spec(b: &[u8]) -> BlockSpec {
    BlockSpec {
        piece: be32(b, 1),
        begin: be32(b, 5),
        len: be32(b, 9),
    }
}

/// Parses the fixed part of a body (the frame after its length prefix). An empty body is a
/// keep-alive. Lengths are checked first, so every read below is in bounds.
pub(crate) fn parse_head(body: &[u8]) -> Result<Head, WireError> {
    let Some(&mid) = body.first() else {
        return Ok(Head::Whole(Message::KeepAlive));
    };
    let len = u32::try_from(body.len()).map_err(|_| WireError::FrameTooLarge {
        len: u32::MAX,
        max: u32::MAX,
    })?;
    check_len(mid, len)?;
    let m = match mid {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE => Message::Have(be32(body, 1)),
        id::BITFIELD => return Ok(Head::Bitfield),
        id::REQUEST => Message::Request(spec(body)),
        id::PIECE => {
            return Ok(Head::Piece {
                piece: be32(body, 1),
                begin: be32(body, 5),
            });
        }
        id::CANCEL => Message::Cancel(spec(body)),
        id::PORT => Message::Port(
            body.get(1..)
                .and_then(|s| s.first_chunk::<2>())
                .map_or(0, |x| u16::from_be_bytes(*x)),
        ),
        id::SUGGEST => Message::Suggest(be32(body, 1)),
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::REJECT => Message::Reject(spec(body)),
        id::ALLOWED_FAST => Message::AllowedFast(be32(body, 1)),
        id::EXTENDED => {
            return Ok(Head::Extended {
                id: body.get(1).copied().unwrap_or(0),
            });
        }
        other => Message::Unknown { id: other },
    };
    Ok(Head::Whole(m))
}

/// The 13-byte header of a PIECE frame carrying `len` bytes, for writing header and block with one
/// vectored write without copying the block.
pub fn piece_header(piece: u32, begin: u32, len: u32) -> [u8; PIECE_HEADER_LEN] {
    let mut h = [0u8; PIECE_HEADER_LEN];
    h[0..4].copy_from_slice(&(9 + len).to_be_bytes());
    h[4] = id::PIECE;
    h[5..9].copy_from_slice(&piece.to_be_bytes());
    h[9..13].copy_from_slice(&begin.to_be_bytes());
    h
}

impl Message {
    /// Parses one body: the bytes of a frame after its 4-byte length prefix (empty = keep-alive).
    /// Payloads are slices of `body`, not copies.
    pub fn parse(body: Bytes) -> Result<Message, WireError> {
        let head = parse_head(&body)?;
        let payload = match head {
            Head::Whole(_) => Bytes::new(),
            ref h => body.slice(h.payload_offset()..),
        };
        Ok(head.finish(payload))
    }

    /// The message id, `None` for a keep-alive.
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::Suggest(_) => id::SUGGEST,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::Reject(_) => id::REJECT,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::Unknown { id } => *id,
        })
    }

    /// The body length (id and payload, prefix excluded).
    fn body_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 5,
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 13,
            Message::Port(_) => 3,
            Message::Bitfield(b) => 1 + b.len(),
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
            _ => 1,
        }
    }

    /// Bytes that [`Message::encode`] writes, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + self.body_len()
    }

    /// Appends the frame (length prefix, id, payload) to `dst`.
    ///
    /// Payloads are the caller's own data; one over 4 GiB cannot be framed and would be cut.
    pub fn encode(&self, dst: &mut BytesMut) {
        dst.reserve(self.encoded_len());
        dst.put_u32(self.body_len() as u32);
        let Some(mid) = self.id() else { return };
        if let Message::Piece { piece, begin, data } = self {
            dst.put_slice(&piece_header(*piece, *begin, data.len() as u32)[4..]);
            dst.put_slice(data);
            return;
        }
        dst.put_u8(mid);
        match self {
            Message::Have(n) | Message::Suggest(n) | Message::AllowedFast(n) => dst.put_u32(*n),
            Message::Request(s) | Message::Cancel(s) | Message::Reject(s) => {
                dst.put_u32(s.piece);
                dst.put_u32(s.begin);
                dst.put_u32(s.len);
            }
            Message::Port(p) => dst.put_u16(*p),
            Message::Bitfield(b) => dst.put_slice(b),
            Message::Extended { id, payload } => {
                dst.put_u8(*id);
                dst.put_slice(payload);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(m: &Message) -> Vec<u8> {
        let mut b = BytesMut::new();
        m.encode(&mut b);
        assert_eq!(b.len(), m.encoded_len(), "encoded_len of {m:?}");
        b.to_vec()
    }

    fn spec(piece: u32, begin: u32, len: u32) -> BlockSpec {
        BlockSpec { piece, begin, len }
    }

    #[test]
    fn block_spec_from_block_ref_names_the_same_block() {
        // 2 full pieces of 32 KiB and a last piece of 16 KiB + 100 bytes: its second block is
        // the short one.
        let g = metainfo::Geometry::new(2 * 32_768 + 16_384 + 100, 32_768).unwrap();
        for (piece, begin, len) in [(0, 0, 16_384), (1, 16_384, 16_384), (2, 16_384, 100)] {
            let b = g.block(piece, begin, len).unwrap();
            assert_eq!(BlockSpec::from(b), spec(piece, begin, len));
            // And back: the geometry accepts what the conversion names.
            let s = BlockSpec::from(b);
            assert_eq!(g.block(s.piece, s.begin, s.len), Some(b));
        }
    }

    /// Every message with its exact frame; parsing the body gives the message back.
    fn cases() -> Vec<(Message, Vec<u8>)> {
        vec![
            (Message::KeepAlive, vec![0, 0, 0, 0]),
            (Message::Choke, vec![0, 0, 0, 1, 0]),
            (Message::Unchoke, vec![0, 0, 0, 1, 1]),
            (Message::Interested, vec![0, 0, 0, 1, 2]),
            (Message::NotInterested, vec![0, 0, 0, 1, 3]),
            (Message::Have(0x0102_0304), vec![0, 0, 0, 5, 4, 1, 2, 3, 4]),
            (
                Message::Bitfield(Bytes::from_static(&[0xff, 0x80])),
                vec![0, 0, 0, 3, 5, 0xff, 0x80],
            ),
            (
                Message::Request(spec(1, 0x4000, 0x4000)),
                vec![0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::Piece {
                    piece: 2,
                    begin: 0x8000,
                    data: Bytes::from_static(b"abc"),
                },
                vec![0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0x80, 0, b'a', b'b', b'c'],
            ),
            (
                Message::Cancel(spec(7, 0, 5)),
                vec![0, 0, 0, 13, 8, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5],
            ),
            (Message::Port(6881), vec![0, 0, 0, 3, 9, 0x1a, 0xe1]),
            (Message::Suggest(9), vec![0, 0, 0, 5, 13, 0, 0, 0, 9]),
            (Message::HaveAll, vec![0, 0, 0, 1, 14]),
            (Message::HaveNone, vec![0, 0, 0, 1, 15]),
            (
                Message::Reject(spec(1, 2, 3)),
                vec![0, 0, 0, 13, 16, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],
            ),
            (Message::AllowedFast(3), vec![0, 0, 0, 5, 17, 0, 0, 0, 3]),
            (
                Message::Extended {
                    id: 0,
                    payload: Bytes::from_static(b"de"),
                },
                vec![0, 0, 0, 4, 20, 0, b'd', b'e'],
            ),
            (Message::Unknown { id: 99 }, vec![0, 0, 0, 1, 99]),
        ]
    }

    #[test]
    fn exact_bytes_both_ways() {
        for (m, bytes) in cases() {
            assert_eq!(enc(&m), bytes, "encoding {m:?}");
            let body = Bytes::from(bytes[4..].to_vec());
            assert_eq!(Message::parse(body), Ok(m.clone()), "parsing {m:?}");
        }
    }

    #[test]
    fn unknown_id_body_is_ignored() {
        let body = Bytes::from_static(&[42, 1, 2, 3, 4, 5]);
        assert_eq!(Message::parse(body), Ok(Message::Unknown { id: 42 }));
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let bad: &[&[u8]] = &[
            &[0, 0],
            &[1, 9],
            &[2, 0, 0],
            &[3, 1],
            &[4, 0, 0, 0],
            &[4, 0, 0, 0, 1, 2],
            &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[6, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[7, 0, 0, 0, 0, 0, 0, 0],
            &[8, 0],
            &[9, 1],
            &[9, 1, 2, 3],
            &[13],
            &[14, 0],
            &[15, 0],
            &[16, 0, 0, 0, 0],
            &[17, 0, 0],
            &[20],
        ];
        for b in bad {
            let id = b[0];
            assert_eq!(
                Message::parse(Bytes::copy_from_slice(b)),
                Err(WireError::BadLength {
                    id,
                    len: b.len() as u32
                }),
                "{b:?}"
            );
        }
    }

    #[test]
    fn piece_payload_limits() {
        let mut body = vec![7u8, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            Message::parse(Bytes::from(body.clone())),
            Ok(Message::Piece { data, .. }) if data.is_empty()
        ));
        body.resize(9 + BLOCK_SIZE as usize, 0xab);
        assert!(matches!(
            Message::parse(Bytes::from(body.clone())),
            Ok(Message::Piece { data, .. }) if data.len() == BLOCK_SIZE as usize
        ));
        body.push(0);
        assert_eq!(
            Message::parse(Bytes::from(body)),
            Err(WireError::BlockTooLarge {
                len: BLOCK_SIZE + 1
            })
        );
    }

    #[test]
    fn oversized_or_empty_request_is_not_a_codec_error() {
        for len in [0, BLOCK_SIZE + 1, u32::MAX] {
            let m = Message::Request(spec(0, 0, len));
            let b = enc(&m);
            assert_eq!(Message::parse(Bytes::from(b[4..].to_vec())), Ok(m));
        }
    }

    #[test]
    fn piece_payload_shares_memory() {
        let body = Bytes::from(vec![7u8, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3]);
        let base = body.as_ptr();
        let Ok(Message::Piece { data, .. }) = Message::parse(body) else {
            panic!("not a piece");
        };
        assert_eq!(data.as_ptr(), base.wrapping_add(9));
    }

    #[test]
    fn piece_header_matches_encode() {
        let m = Message::Piece {
            piece: 0xdead,
            begin: 0xbeef,
            data: Bytes::from(vec![1u8; 100]),
        };
        let b = enc(&m);
        assert_eq!(piece_header(0xdead, 0xbeef, 100), b[..PIECE_HEADER_LEN]);
        assert_eq!(&b[PIECE_HEADER_LEN..], &[1u8; 100][..]);
    }

    #[test]
    fn ids() {
        for (m, bytes) in cases() {
            assert_eq!(m.id(), bytes.get(4).copied(), "{m:?}");
        }
    }
}
