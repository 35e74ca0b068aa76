//! The MSE/PE responder (`mse::Responder`) against hostile initiators. The first byte picks the
//! mode: raw bytes (the fuzzer's own public key, pad and markers), or a real initiator whose
//! second message the fuzzer overwrites byte by byte (so the encrypted fields -- VC,
//! crypto_provide, pad and payload lengths -- are reached past the DH and the sync hash). The
//! second byte picks how the input is cut into reads.
//!
//! Invariants besides "no panic": what the responder sends is bounded (public key, PadB, and
//! VC + select + PadD); a finished handshake selected a method it allows, for the one torrent
//! it serves, and hands back no more bytes than it was given.

use mse::{Initiator, Method, Methods, PrivateKey, Responder, Secrets, req2};

const SKEY: [u8; 20] = [0x42; 20];
const IA: &[u8] = b"\x13BitTorrent protocol payload";
const MAX_SENT: usize = 96 + 512 + 8 + 4 + 2 + 512;

fn lookup(h: &[u8; 20]) -> Option<[u8; 20]> {
    (*h == req2(&SKEY)).then_some(SKEY)
}

/// Feeds `input` in reads whose sizes cycle through `cut` (1 to 256 bytes).
fn feed(r: &mut Responder, input: &[u8], cut: u8, allowed: Methods, fed_before: usize) {
    let step = usize::from(cut) + 1;
    let mut sent = 0;
    for chunk in input.chunks(step) {
        let res = r.feed(chunk, &lookup);
        sent += r.take_output().len();
        assert!(sent <= MAX_SENT, "responder sent {sent} bytes");
        match res {
            Ok(None) => {}
            Ok(Some(done)) => {
                assert_eq!(done.skey, SKEY);
                assert!(allowed.has(done.method));
                assert_eq!(done.ciphers.is_some(), done.method == Method::Rc4);
                assert!(done.received.len() <= fed_before + input.len());
                return;
            }
            Err(_) => return,
        }
    }
}

/// Runs one input.
pub fn run(data: &[u8]) {
    let [mode, cut, rest @ ..] = data else {
        return;
    };
    let allowed = match mode >> 6 {
        0 => Methods::RC4,
        1 => Methods::PLAINTEXT,
        _ => Methods::BOTH,
    };
    let secrets = Secrets {
        private_key: PrivateKey([7; 20]),
        pad1: vec![1; usize::from(*cut) * 2],
        pad2: vec![0; usize::from(*mode & 0x3e) * 8],
    };
    let mut r = Responder::new(allowed, mode & 0x20 != 0, secrets);
    if mode & 1 == 0 {
        feed(&mut r, rest, *cut, allowed, 0);
        return;
    }
    // A real initiator: its first message as is, its second one overwritten by the fuzzer at
    // the offsets it names (pairs of offset, byte).
    let provide = Methods(u32::from(*cut & 3));
    let mut i = Initiator::new(
        SKEY,
        provide,
        IA,
        Secrets {
            private_key: PrivateKey([9; 20]),
            pad1: vec![2; usize::from(*cut)],
            pad2: vec![0; usize::from(*cut) / 2],
        },
    );
    let first = i.take_output();
    if !matches!(r.feed(&first, &lookup), Ok(None)) {
        return;
    }
    if i.feed(&r.take_output()).is_err() {
        return;
    }
    let mut second = i.take_output();
    for pair in rest.chunks_exact(2) {
        if second.is_empty() {
            break;
        }
        let at = usize::from(pair[0]) % second.len();
        second[at] = pair[1];
    }
    if rest.len() % 2 == 1 {
        // An odd tail: the message cut short there.
        let keep = usize::from(rest[rest.len() - 1]) % (second.len() + 1);
        second.truncate(keep);
    }
    feed(&mut r, &second, *cut, allowed, first.len());
}
