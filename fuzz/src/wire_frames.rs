//! Peer wire framing: `Handshake::parse_prefix` / `parse`, `check` and `Decoder::decode`.
//!
//! The two handshake phases agree and re-encode to the bytes read. `check` predicts exactly what
//! the decoder does; every decoded frame re-encodes to its own bytes (an unknown id aside, whose
//! body is dropped) and `Message::parse` of its body gives the same message; and feeding the same
//! stream in small chunks gives the same messages ("incomplete" only ever means "read more").

use bytes::BytesMut;
use wire::{DEFAULT_MAX_FRAME, Decoder, HANDSHAKE_LEN, Handshake, Message, WireError, check};

/// Reads `data` as a handshake, then (after one control byte) as a stream of frames.
pub fn run(data: &[u8]) {
    handshake(data);
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let max_frame = match ctl % 4 {
        0 => DEFAULT_MAX_FRAME,
        1 => 13,
        2 => 16 * 1024 + 9,
        _ => u32::from(ctl),
    };
    let whole = frames(stream, max_frame);
    let chunk = usize::from(ctl / 4 % 16) + 1;
    let chunked = chunked_frames(stream, max_frame, chunk);
    assert_eq!(whole, chunked, "chunked reading gives other messages");
}

fn handshake(data: &[u8]) {
    let prefix = Handshake::parse_prefix(data);
    let full = Handshake::parse(data);
    match (&prefix, &full) {
        (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(None), Ok(None)) => {}
        (Ok(Some((reserved, info_hash))), Ok(Some(h))) => {
            assert_eq!((h.reserved, h.info_hash), (*reserved, *info_hash));
            assert_eq!(data.get(..HANDSHAKE_LEN), Some(&h.encode()[..]));
        }
        (Ok(Some(_)), Ok(None)) => assert!(data.len() < HANDSHAKE_LEN),
        _ => panic!("parse_prefix gives {prefix:?} but parse gives {full:?}"),
    }
}

/// Decodes every frame of `stream`; the messages and how it ended (`None`: needs more bytes).
fn frames(stream: &[u8], max_frame: u32) -> (Vec<Message>, Option<WireError>) {
    let decoder = Decoder::new(max_frame);
    let mut buf = BytesMut::from(stream);
    let mut out = Vec::new();
    loop {
        let before = buf.clone().freeze();
        let checked = check(&before, max_frame);
        match decoder.decode(&mut buf) {
            Ok(Some(msg)) => {
                let used = before.len() - buf.len();
                assert_eq!(checked, Ok(Some(used)), "check disagrees with decode");
                if !matches!(msg, Message::Unknown { .. }) {
                    let mut again = BytesMut::new();
                    msg.encode(&mut again);
                    assert_eq!(
                        &again[..],
                        &before[..used],
                        "{msg:?} re-encodes differently"
                    );
                    assert_eq!(msg.encoded_len(), used);
                }
                let parsed = Message::parse(before.slice(4..used));
                assert_eq!(
                    parsed.as_ref(),
                    Ok(&msg),
                    "Message::parse disagrees with decode"
                );
                out.push(msg);
            }
            Ok(None) => {
                assert_eq!(checked, Ok(None), "check disagrees with decode");
                assert_eq!(
                    buf.len(),
                    before.len(),
                    "an incomplete frame consumed bytes"
                );
                return (out, None);
            }
            Err(e) => {
                assert_eq!(checked, Err(e.clone()), "check disagrees with decode");
                return (out, Some(e));
            }
        }
    }
}

/// Like [`frames`], but the bytes arrive `chunk` at a time.
fn chunked_frames(
    stream: &[u8],
    max_frame: u32,
    chunk: usize,
) -> (Vec<Message>, Option<WireError>) {
    let decoder = Decoder::new(max_frame);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(msg)) => out.push(msg),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}
