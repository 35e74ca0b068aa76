//! Framing in two phases over `bytes`: [`check`] says whether a whole frame is buffered (no
//! allocation, oversized frames refused from their prefix alone), then the [`Decoder`] splits it off
//! the read buffer and parses it, sharing payloads with the buffer instead of copying them.

use bytes::{Buf, BytesMut};

use crate::error::WireError;
use crate::message::{Message, check_len, parse_head};

/// Default cap on one frame's length (after the prefix): 1 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 1024 * 1024;

/// Is a whole frame at the start of `buf`? Returns its total length (prefix included) if so,
/// `Ok(None)` if more bytes are needed.
///
/// Fails as soon as the prefix (and, if present, the id) show the frame cannot be valid: a length
/// over `max_frame`, a wrong length for its id, or a PIECE carrying more than 16 KiB. So a 4 GiB
/// prefix is an error with only its 4 bytes buffered.
pub fn check(buf: &[u8], max_frame: u32) -> Result<Option<usize>, WireError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix);
    if len > max_frame {
        return Err(WireError::FrameTooLarge {
            len,
            max: max_frame,
        });
    }
    // A keep-alive has no id: byte 4 then belongs to the next frame.
    if len > 0
        && let Some(&id) = buf.get(4)
    {
        check_len(id, len)?;
    }
    let total = 4 + len as usize;
    Ok((buf.len() >= total).then_some(total))
}

/// Splits whole messages off a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    /// Largest frame length accepted (after the prefix); larger ones are an error.
    pub max_frame: u32,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

impl Decoder {
    /// A decoder refusing frames over `max_frame` bytes.
    pub fn new(max_frame: u32) -> Decoder {
        Decoder { max_frame }
    }

    /// Takes the next message off the front of `buf`; `Ok(None)` leaves `buf` untouched and means
    /// read more. Payloads (PIECE data, BITFIELD, EXTENDED) share `buf`'s memory; other messages
    /// allocate nothing.
    ///
    /// After an error the stream is out of sync: drop the connection.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let Some(total) = check(buf, self.max_frame)? else {
            return Ok(None);
        };
        let head = parse_head(buf.get(4..total).unwrap_or_default())?;
        let off = 4 + head.payload_offset();
        if off == 4 {
            buf.advance(total);
            return Ok(Some(head.finish(bytes::Bytes::new())));
        }
        buf.advance(off);
        let payload = buf.split_to(total - off).freeze();
        Ok(Some(head.finish(payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::BlockSpec;
    use bytes::Bytes;
    use metainfo::BLOCK_SIZE;
    use proptest::prelude::*;

    fn encode_all(ms: &[Message]) -> BytesMut {
        let mut b = BytesMut::new();
        for m in ms {
            m.encode(&mut b);
        }
        b
    }

    fn decode_all(d: &Decoder, buf: &mut BytesMut) -> Result<Vec<Message>, WireError> {
        let mut out = Vec::new();
        while let Some(m) = d.decode(buf)? {
            out.push(m);
        }
        Ok(out)
    }

    #[test]
    fn four_gib_prefix_fails_on_prefix_alone() {
        let d = Decoder::default();
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(WireError::FrameTooLarge {
                len: u32::MAX,
                max: DEFAULT_MAX_FRAME
            })
        );
        assert_eq!(
            check(&[0xff, 0xff, 0xff, 0xff], DEFAULT_MAX_FRAME),
            Err(WireError::FrameTooLarge {
                len: u32::MAX,
                max: DEFAULT_MAX_FRAME
            })
        );
    }

    #[test]
    fn cap_is_inclusive() {
        assert_eq!(check(&[0, 0, 0, 10], 10), Ok(None));
        assert_eq!(
            check(&[0, 0, 0, 11], 10),
            Err(WireError::FrameTooLarge { len: 11, max: 10 })
        );
    }

    #[test]
    fn oversized_piece_fails_on_header_alone() {
        let len = 9 + BLOCK_SIZE + 1;
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&len.to_be_bytes());
        assert_eq!(check(&buf, DEFAULT_MAX_FRAME), Ok(None));
        buf.extend_from_slice(&[7]);
        assert_eq!(
            check(&buf, DEFAULT_MAX_FRAME),
            Err(WireError::BlockTooLarge {
                len: BLOCK_SIZE + 1
            })
        );
    }

    #[test]
    fn bad_fixed_length_fails_on_header_alone() {
        assert_eq!(
            check(&[0, 0, 1, 0, 4], DEFAULT_MAX_FRAME),
            Err(WireError::BadLength { id: 4, len: 256 })
        );
    }

    #[test]
    fn incomplete_leaves_buffer_untouched() {
        let d = Decoder::default();
        let full = encode_all(&[Message::Have(5)]);
        for cut in 0..full.len() {
            let mut buf = BytesMut::from(&full[..cut]);
            assert_eq!(d.decode(&mut buf), Ok(None));
            assert_eq!(&buf[..], &full[..cut]);
        }
    }

    #[test]
    fn decodes_back_to_back_and_leaves_the_rest() {
        let d = Decoder::default();
        let ms = [
            Message::Unchoke,
            Message::Piece {
                piece: 1,
                begin: 0,
                data: Bytes::from(vec![9u8; 10]),
            },
            Message::KeepAlive,
        ];
        let mut buf = encode_all(&ms);
        buf.extend_from_slice(&[0, 0, 0, 5, 4]);
        assert_eq!(decode_all(&d, &mut buf), Ok(ms.to_vec()));
        assert_eq!(&buf[..], &[0, 0, 0, 5, 4]);
    }

    /// Regression: `check` read the byte after a keep-alive's prefix as the keep-alive's id, so a
    /// keep-alive followed by any message failed with `BadLength { id, len: 0 }`.
    #[test]
    fn keep_alive_then_message() {
        let d = Decoder::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 0, 0, 0, 0, 1, 2][..]);
        assert_eq!(
            decode_all(&d, &mut buf),
            Ok(vec![Message::KeepAlive, Message::Interested])
        );
    }

    #[test]
    fn unknown_message_body_is_consumed() {
        let d = Decoder::default();
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 200, 1, 2, 0, 0, 0, 1, 2][..]);
        assert_eq!(
            decode_all(&d, &mut buf),
            Ok(vec![Message::Unknown { id: 200 }, Message::Interested])
        );
        assert!(buf.is_empty());
    }

    fn block_spec() -> impl Strategy<Value = BlockSpec> {
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(piece, begin, len)| BlockSpec {
            piece,
            begin,
            len,
        })
    }

    fn payload(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..=max).prop_map(Bytes::from)
    }

    fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            any::<u32>().prop_map(Message::Have),
            payload(300).prop_map(Message::Bitfield),
            block_spec().prop_map(Message::Request),
            (any::<u32>(), any::<u32>(), payload(BLOCK_SIZE as usize))
                .prop_map(|(piece, begin, data)| Message::Piece { piece, begin, data }),
            block_spec().prop_map(Message::Cancel),
            any::<u16>().prop_map(Message::Port),
            any::<u32>().prop_map(Message::Suggest),
            Just(Message::HaveAll),
            Just(Message::HaveNone),
            block_spec().prop_map(Message::Reject),
            any::<u32>().prop_map(Message::AllowedFast),
            (any::<u8>(), payload(300)).prop_map(|(id, payload)| Message::Extended { id, payload }),
            (21u8..=255).prop_map(|id| Message::Unknown { id }),
            prop_oneof![10u8..=12, 18u8..=19].prop_map(|id| Message::Unknown { id }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(m in message()) {
            let mut buf = encode_all(std::slice::from_ref(&m));
            prop_assert_eq!(buf.len(), m.encoded_len());
            prop_assert_eq!(check(&buf, DEFAULT_MAX_FRAME), Ok(Some(buf.len())));
            prop_assert_eq!(Decoder::default().decode(&mut buf), Ok(Some(m)));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2000), max in 0u32..2000) {
            let d = Decoder::new(max);
            let mut buf = BytesMut::from(&b[..]);
            let before = buf.len();
            match d.decode(&mut buf) {
                Ok(None) => prop_assert_eq!(buf.len(), before),
                Ok(Some(_)) => prop_assert!(buf.len() < before),
                Err(_) => {}
            }
            let _ = decode_all(&d, &mut buf);
            let _ = Message::parse(Bytes::from(b));
        }

        #[test]
        fn arbitrary_frames_never_panic(id in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..40)) {
            // Well-framed bodies of every id and small length, which random bytes rarely hit.
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
            buf.extend_from_slice(&[id]);
            buf.extend_from_slice(&body);
            if let Ok(Some(m)) = Decoder::default().decode(&mut buf) {
                // What parses re-encodes to the same frame, except an unknown id's dropped body.
                if !matches!(m, Message::Unknown { .. }) {
                    let mut again = BytesMut::new();
                    m.encode(&mut again);
                    prop_assert_eq!(&again[4..5], &[id][..]);
                    prop_assert_eq!(&again[5..], &body[..]);
                }
            }
        }

        #[test]
        fn split_at_every_boundary(ms in proptest::collection::vec(message(), 1..6)) {
            let stream = encode_all(&ms);
            let d = Decoder::default();
            for cut in 0..=stream.len() {
                let mut buf = BytesMut::from(&stream[..cut]);
                let mut got = decode_all(&d, &mut buf).expect("valid stream");
                buf.extend_from_slice(&stream[cut..]);
                got.extend(decode_all(&d, &mut buf).expect("valid stream"));
                prop_assert!(buf.is_empty());
                prop_assert_eq!(&got, &ms);
            }
        }

        #[test]
        fn byte_at_a_time(ms in proptest::collection::vec(message(), 1..4)) {
            let stream = encode_all(&ms);
            let d = Decoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for b in stream.iter() {
                buf.extend_from_slice(&[*b]);
                got.extend(decode_all(&d, &mut buf).expect("valid stream"));
            }
            prop_assert_eq!(got, ms);
        }
    }
}
