//! Initiator against responder, in memory: every pad length, every way of cutting the byte
//! streams, and each way a peer can get it wrong.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

use mse::{
    Cipher, Established, Initiator, MAX_IA, Method, Methods, MseError, PUBLIC_KEY_LEN, PrivateKey,
    Responder, Secrets, VC, req1, req2, req3,
};

const SKEY: [u8; 20] = [0x11; 20];
const IA: &[u8] = b"\x13BitTorrent protocol -- the initial payload";
const AFTER: &[u8] = b"bytes after the handshake";

fn secrets(tag: u8, pad1: usize, pad2: usize) -> Secrets {
    Secrets {
        private_key: PrivateKey([tag; 20]),
        pad1: vec![tag ^ 0x5a; pad1],
        pad2: vec![0; pad2],
    }
}

fn lookup(h: &[u8; 20]) -> Option<[u8; 20]> {
    (*h == req2(&SKEY)).then_some(SKEY)
}

/// Cuts message number `n` of the exchange (0: Ya+PadA, 1: Yb+PadB, 2: the initiator's
/// request, 3: the responder's answer) into pieces.
type Cut<'a> = &'a dyn Fn(usize, &[u8]) -> Vec<Vec<u8>>;

fn whole(_: usize, m: &[u8]) -> Vec<Vec<u8>> {
    vec![m.to_vec()]
}

/// Runs both sides to the end; each appends [`AFTER`] (encrypted as it must be) to its last
/// message, so both must hand it back as received.
fn run(mut i: Initiator, mut r: Responder, cut: Cut<'_>) -> (Established, Established) {
    let (mut done_i, mut done_r) = (None, None);
    let mut n = 0;
    while done_i.is_none() || done_r.is_none() {
        assert!(n < 4, "the handshake is four messages");
        if n % 2 == 0 {
            let msg = i.take_output();
            for piece in cut(n, &msg) {
                if let Some(e) = &mut done_r {
                    later(e, piece);
                } else {
                    done_r = r.feed(&piece, &lookup).unwrap();
                }
            }
        } else {
            let mut msg = r.take_output();
            if let Some(e) = &mut done_r {
                let mut after = AFTER.to_vec();
                if let Some((enc, _)) = &mut e.ciphers {
                    enc.apply(&mut after);
                }
                msg.extend_from_slice(&after);
            }
            for piece in cut(n, &msg) {
                if let Some(e) = &mut done_i {
                    later(e, piece);
                } else {
                    done_i = i.feed(&piece).unwrap();
                }
            }
        }
        n += 1;
    }
    (done_i.unwrap(), done_r.unwrap())
}

/// Bytes read after the handshake finished: the stream itself (a reader decrypts them).
fn later(e: &mut Established, mut piece: Vec<u8>) {
    if let Some((_, dec)) = &mut e.ciphers {
        dec.apply(&mut piece);
    }
    e.received.extend_from_slice(&piece);
}

fn check(i: &mut Established, r: &mut Established, method: Method) {
    assert_eq!((i.method, r.method), (method, method));
    assert_eq!((i.skey, r.skey), (SKEY, SKEY));
    assert_eq!(r.received, IA, "the responder gets the initial payload");
    assert_eq!(
        i.received, AFTER,
        "the initiator gets what followed the answer"
    );
    match method {
        Method::Rc4 => {
            let (ie, id) = i.ciphers.as_mut().unwrap();
            let (re, rd) = r.ciphers.as_mut().unwrap();
            for (e, d) in [(ie, rd), (re, id)] {
                let mut m = b"a message".to_vec();
                e.apply(&mut m);
                assert_ne!(m, b"a message");
                d.apply(&mut m);
                assert_eq!(m, b"a message");
            }
        }
        Method::Plaintext => assert!(i.ciphers.is_none() && r.ciphers.is_none()),
    }
}

fn pair(pads: [usize; 4], provide: Methods, allowed: Methods) -> (Initiator, Responder) {
    (
        Initiator::new(SKEY, provide, IA, secrets(1, pads[0], pads[2])),
        Responder::new(allowed, true, secrets(2, pads[1], pads[3])),
    )
}

#[test]
fn every_pad_length() {
    for n in 0..=512 {
        let pads = [n, 512 - n, (n * 7) % 513, (n * 37) % 513];
        let (i, r) = pair(pads, Methods::RC4, Methods::BOTH);
        let (mut a, mut b) = run(i, r, &whole);
        check(&mut a, &mut b, Method::Rc4);
    }
}

#[test]
fn byte_at_a_time() {
    let ones = |_: usize, m: &[u8]| m.chunks(1).map(<[u8]>::to_vec).collect();
    for pads in [[0, 0, 0, 0], [512; 4], [1, 511, 0, 512], [511, 3, 512, 0]] {
        let (i, r) = pair(pads, Methods::RC4, Methods::BOTH);
        let (mut a, mut b) = run(i, r, &ones);
        check(&mut a, &mut b, Method::Rc4);
    }
}

#[test]
fn every_split_point_of_every_message() {
    let pads = [40, 60, 30, 20];
    let sizes = [
        PUBLIC_KEY_LEN + pads[0],
        PUBLIC_KEY_LEN + pads[1],
        40 + 8 + 4 + 2 + pads[2] + 2 + IA.len(),
        8 + 4 + 2 + pads[3] + AFTER.len(),
    ];
    for (m, &size) in sizes.iter().enumerate() {
        for k in 0..=size {
            let cut = move |n: usize, msg: &[u8]| {
                if n == m {
                    assert_eq!(msg.len(), size);
                    vec![msg[..k].to_vec(), msg[k..].to_vec()]
                } else {
                    vec![msg.to_vec()]
                }
            };
            let (i, r) = pair(pads, Methods::RC4, Methods::BOTH);
            let (mut a, mut b) = run(i, r, &cut);
            check(&mut a, &mut b, Method::Rc4);
        }
    }
}

#[test]
fn whole_first_exchange_with_largest_pads_split_everywhere() {
    for k in 0..=PUBLIC_KEY_LEN + 512 {
        let cut = move |n: usize, msg: &[u8]| {
            if n < 2 {
                vec![msg[..k].to_vec(), msg[k..].to_vec()]
            } else {
                vec![msg.to_vec()]
            }
        };
        let (i, r) = pair([512, 512, 0, 0], Methods::RC4, Methods::RC4);
        let (mut a, mut b) = run(i, r, &cut);
        check(&mut a, &mut b, Method::Rc4);
    }
}

#[test]
fn method_selection() {
    let cases = [
        (Methods::BOTH, Methods::BOTH, true, Some(Method::Plaintext)),
        (Methods::BOTH, Methods::BOTH, false, Some(Method::Rc4)),
        (Methods::BOTH, Methods::RC4, true, Some(Method::Rc4)),
        (Methods::RC4, Methods::BOTH, true, Some(Method::Rc4)),
        (
            Methods::PLAINTEXT,
            Methods::BOTH,
            false,
            Some(Method::Plaintext),
        ),
        (Methods::RC4, Methods::PLAINTEXT, true, None),
        (Methods::PLAINTEXT, Methods::RC4, true, None),
    ];
    for (provide, allowed, prefer_plain, want) in cases {
        let mut i = Initiator::new(SKEY, provide, IA, secrets(1, 5, 6));
        let mut r = Responder::new(allowed, prefer_plain, secrets(2, 7, 8));
        match want {
            Some(m) => {
                let (mut a, mut b) = run(i, r, &whole);
                check(&mut a, &mut b, m);
            }
            None => {
                assert!(r.feed(&i.take_output(), &lookup).unwrap().is_none());
                i.feed(&r.take_output()).unwrap();
                assert_eq!(
                    r.feed(&i.take_output(), &lookup).unwrap_err(),
                    MseError::NoCommonMethod(provide.0)
                );
            }
        }
    }
}

/// Drives an initiator and responder through the first exchange and returns the initiator's
/// second message.
fn request(i: &mut Initiator, r: &mut Responder) -> Vec<u8> {
    r.feed(&i.take_output(), &lookup).unwrap();
    i.feed(&r.take_output()).unwrap();
    i.take_output()
}

#[test]
fn unknown_and_wrong_skey() {
    let mut i = Initiator::new([0x22; 20], Methods::RC4, IA, secrets(1, 3, 3));
    let mut r = Responder::new(Methods::BOTH, true, secrets(2, 3, 3));
    let req = request(&mut i, &mut r);
    assert_eq!(r.feed(&req, &lookup).unwrap_err(), MseError::UnknownSkey);

    // The responder maps the hash to another info-hash: its keys differ, VC does not decrypt.
    let mut i = Initiator::new(SKEY, Methods::RC4, IA, secrets(1, 3, 3));
    let mut r = Responder::new(Methods::BOTH, true, secrets(2, 3, 3));
    let req = request(&mut i, &mut r);
    let liar = |_: &[u8; 20]| Some([0x33; 20]);
    assert_eq!(r.feed(&req, &liar).unwrap_err(), MseError::BadVc);
}

#[test]
fn garbage_finds_no_sync() {
    let garbage: Vec<u8> = (0..2000u32).map(|x| (x * 7919 % 251) as u8).collect();
    let mut r = Responder::new(Methods::BOTH, true, secrets(2, 0, 0));
    assert_eq!(
        r.feed(&garbage, &lookup).unwrap_err(),
        MseError::Req1NotFound
    );
    let mut i = Initiator::new(SKEY, Methods::RC4, IA, secrets(1, 0, 0));
    assert_eq!(i.feed(&garbage).unwrap_err(), MseError::VcNotFound);
}

#[test]
fn sync_windows_are_exact() {
    // The responder: req1 after a 512-byte pad is found; a stream of 627 bytes without it
    // waits; at 628 it fails.
    let xa = PrivateKey([1; 20]);
    let mut r = Responder::new(Methods::BOTH, true, secrets(2, 0, 0));
    let mut first = xa.public_key().to_vec();
    first.extend_from_slice(&[0xee; 512]);
    assert!(r.feed(&first, &lookup).unwrap().is_none());
    let s = xa.shared_secret(&PrivateKey([2; 20]).public_key());
    assert!(
        r.feed(&req1(&s), &lookup).unwrap().is_none(),
        "found at offset 512"
    );

    let mut r = Responder::new(Methods::BOTH, true, secrets(2, 0, 0));
    let mut stream = first.clone();
    stream.extend_from_slice(&[0xee; 19]);
    assert_eq!(stream.len(), mse::RESPONDER_SYNC_WINDOW - 1);
    assert!(r.feed(&stream, &lookup).unwrap().is_none());
    assert_eq!(
        r.feed(&[0xee], &lookup).unwrap_err(),
        MseError::Req1NotFound
    );

    // The initiator: RC4(VC) after a 512-byte pad is found; 616 bytes without it fail.
    let mut i = Initiator::new(SKEY, Methods::RC4, IA, secrets(1, 0, 0));
    let xb = PrivateKey([2; 20]);
    let s = xb.shared_secret(&PrivateKey([1; 20]).public_key());
    let mut answer = xb.public_key().to_vec();
    answer.extend_from_slice(&[0xee; 512]);
    let mut enc = Cipher::for_direction(false, &s, &SKEY);
    let mut tail = VC.to_vec();
    tail.extend_from_slice(&2u32.to_be_bytes());
    tail.extend_from_slice(&0u16.to_be_bytes());
    enc.apply(&mut tail);
    answer.extend_from_slice(&tail);
    let done = i.feed(&answer).unwrap().expect("done");
    assert_eq!((done.method, done.received.len()), (Method::Rc4, 0));

    let mut i = Initiator::new(SKEY, Methods::RC4, IA, secrets(1, 0, 0));
    let stream = vec![0xee; mse::INITIATOR_SYNC_WINDOW - 1];
    assert!(i.feed(&stream).unwrap().is_none());
    assert_eq!(i.feed(&[0xee]).unwrap_err(), MseError::VcNotFound);
}

/// The initiator's second message made by hand, with any lengths and provide.
fn crafted_request(s: &[u8; 96], provide: u32, pad_len: u16, pad: usize, ia_len: u16) -> Vec<u8> {
    let mut m = req1(s).to_vec();
    let x: Vec<u8> = req2(&SKEY)
        .iter()
        .zip(req3(s))
        .map(|(a, b)| a ^ b)
        .collect();
    m.extend_from_slice(&x);
    let mut enc = Cipher::for_direction(true, s, &SKEY);
    let mut body = VC.to_vec();
    body.extend_from_slice(&provide.to_be_bytes());
    body.extend_from_slice(&pad_len.to_be_bytes());
    body.extend(std::iter::repeat_n(0, pad));
    body.extend_from_slice(&ia_len.to_be_bytes());
    enc.apply(&mut body);
    m.extend_from_slice(&body);
    m
}

#[test]
fn oversize_pads_and_payload() {
    let xa = PrivateKey([1; 20]);
    let start = |r: &mut Responder| {
        assert!(r.feed(&xa.public_key(), &lookup).unwrap().is_none());
        let yb: [u8; 96] = r.take_output()[..96].try_into().unwrap();
        xa.shared_secret(&yb)
    };
    let mut r = Responder::new(Methods::BOTH, true, secrets(2, 9, 9));
    let s = start(&mut r);
    let m = crafted_request(&s, 2, 513, 0, 0);
    assert_eq!(r.feed(&m, &lookup).unwrap_err(), MseError::PadTooLong(513));

    let mut r = Responder::new(Methods::BOTH, true, secrets(2, 9, 9));
    let s = start(&mut r);
    let m = crafted_request(&s, 2, 4, 4, MAX_IA as u16 + 1);
    assert_eq!(
        r.feed(&m, &lookup).unwrap_err(),
        MseError::IaTooLong(MAX_IA as u16 + 1)
    );

    // A PadD over 512, and a crypto_select that is not one method offered.
    for (select, pad, want) in [
        (2u32, 513u16, MseError::PadTooLong(513)),
        (3, 0, MseError::BadSelect(3)),
        (1, 0, MseError::BadSelect(1)),
        (0, 0, MseError::BadSelect(0)),
    ] {
        let mut i = Initiator::new(SKEY, Methods::RC4, IA, secrets(1, 0, 0));
        let xb = PrivateKey([2; 20]);
        let s = xb.shared_secret(&PrivateKey([1; 20]).public_key());
        let mut answer = xb.public_key().to_vec();
        let mut enc = Cipher::for_direction(false, &s, &SKEY);
        let mut tail = VC.to_vec();
        tail.extend_from_slice(&select.to_be_bytes());
        tail.extend_from_slice(&pad.to_be_bytes());
        enc.apply(&mut tail);
        answer.extend_from_slice(&tail);
        assert_eq!(i.feed(&answer).unwrap_err(), want);
    }
}

#[test]
fn truncated_streams_wait_then_fail_at_eof() {
    let (mut i, mut r) = pair([10, 10, 10, 10], Methods::RC4, Methods::BOTH);
    let first = i.take_output();
    assert!(r.feed(&first[..50], &lookup).unwrap().is_none());
    assert_eq!(r.handle_eof(), MseError::Truncated);
    let req = {
        let mut r2 = Responder::new(Methods::BOTH, true, secrets(2, 10, 10));
        r2.feed(&first, &lookup).unwrap();
        i.feed(&r2.take_output()).unwrap();
        i.take_output()
    };
    // Every prefix of the request leaves a fresh responder waiting, never failing.
    for k in 0..req.len() {
        let mut r = Responder::new(Methods::BOTH, true, secrets(2, 10, 10));
        r.feed(&first, &lookup).unwrap();
        assert!(r.feed(&req[..k], &lookup).unwrap().is_none(), "prefix {k}");
    }
    assert_eq!(i.handle_eof(), MseError::Truncated);
}

#[test]
fn input_after_the_end_is_refused() {
    let (i, r) = pair([0, 0, 0, 0], Methods::RC4, Methods::BOTH);
    let mut r2 = Responder::new(Methods::BOTH, true, secrets(2, 0, 0));
    let mut i2 = Initiator::new(SKEY, Methods::RC4, IA, secrets(1, 0, 0));
    drop((i, r));
    let req = request(&mut i2, &mut r2);
    assert!(r2.feed(&req, &lookup).unwrap().is_some());
    assert_eq!(r2.feed(b"x", &lookup).unwrap_err(), MseError::Finished);
    assert!(i2.feed(&r2.take_output()).unwrap().is_some());
    assert_eq!(i2.feed(b"x").unwrap_err(), MseError::Finished);
}

#[test]
fn random_secrets_have_bounded_pads() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..200 {
        let s = Secrets::random(&mut rng);
        assert!(s.pad1.len() <= 512 && s.pad2.len() <= 512);
    }
    let a = Secrets::random(&mut rng);
    let b = Secrets::random(&mut rng);
    let i = Initiator::new(SKEY, Methods::BOTH, IA, a);
    let r = Responder::new(Methods::RC4, false, b);
    let (mut x, mut y) = run(i, r, &whole);
    check(&mut x, &mut y, Method::Rc4);
}
