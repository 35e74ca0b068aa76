//! The side that accepted: answers the initiator's public key with its own, finds the torrent
//! by HASH('req2', SKEY), and selects a method.

use crate::dh::PUBLIC_KEY_LEN;
use crate::keys::{self, Cipher};
use crate::{
    Established, Input, MAX_IA, MAX_PAD, Method, Methods, MseError, RESPONDER_SYNC_WINDOW, Secrets,
    VC, u16_at, u32_at,
};

/// Finds the info-hash whose HASH('req2', info-hash) is given, among the torrents served.
pub type SkeyLookup<'a> = &'a dyn Fn(&[u8; 20]) -> Option<[u8; 20]>;

#[derive(Debug)]
enum State {
    /// Waiting for Ya.
    PublicKey,
    /// Looking for HASH('req1', S) after PadA.
    Sync,
    /// Reading HASH('req2', SKEY) xor HASH('req3', S).
    Skey,
    /// Reading VC, crypto_provide and len(PadC).
    Provide,
    /// Reading PadC and len(IA).
    PadC {
        method: Method,
        len: usize,
    },
    /// Reading IA.
    Ia {
        method: Method,
        len: usize,
    },
    Done,
}

/// The responding side of an MSE/PE handshake.
#[derive(Debug)]
pub struct Responder {
    state: State,
    secrets: Secrets,
    allowed: Methods,
    prefer_plaintext: bool,
    input: Input,
    output: Vec<u8>,
    s: [u8; PUBLIC_KEY_LEN],
    skey: [u8; 20],
    /// (encrypt, decrypt), once SKEY is known.
    ciphers: Option<(Cipher, Cipher)>,
}

impl Responder {
    /// Waits for an initiator; selects among `allowed` (plaintext first when both are offered
    /// and allowed and `prefer_plaintext`, else RC4).
    pub fn new(allowed: Methods, prefer_plaintext: bool, mut secrets: Secrets) -> Responder {
        secrets.pad1.truncate(MAX_PAD);
        secrets.pad2.truncate(MAX_PAD);
        Responder {
            state: State::PublicKey,
            secrets,
            allowed,
            prefer_plaintext,
            input: Input::default(),
            output: Vec::new(),
            s: [0; PUBLIC_KEY_LEN],
            skey: [0; 20],
            ciphers: None,
        }
    }

    /// Bytes to send to the initiator now (taken). When [`feed`](Self::feed) has returned the
    /// finished handshake, the last of them (VC, crypto_select, PadD) are here.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The stream ended: the error to report.
    pub fn handle_eof(&self) -> MseError {
        MseError::Truncated
    }

    /// Bytes read from the initiator; `lookup` finds the torrent by HASH('req2', SKEY).
    /// `Ok(Some(..))` once the handshake is complete (then send
    /// [`take_output`](Self::take_output)); `Ok(None)`: more input is needed.
    pub fn feed(
        &mut self,
        data: &[u8],
        lookup: SkeyLookup<'_>,
    ) -> Result<Option<Established>, MseError> {
        if matches!(self.state, State::Done) {
            return Err(MseError::Finished);
        }
        self.input.push(data);
        loop {
            match self.state {
                State::PublicKey => {
                    let Some(y) = self.input.take(PUBLIC_KEY_LEN) else {
                        return Ok(None);
                    };
                    let mut ya = [0u8; PUBLIC_KEY_LEN];
                    ya.copy_from_slice(&y);
                    self.s = self.secrets.private_key.shared_secret(&ya);
                    self.output
                        .extend_from_slice(&self.secrets.private_key.public_key());
                    self.output.extend_from_slice(&self.secrets.pad1);
                    self.state = State::Sync;
                }
                State::Sync => {
                    let window = RESPONDER_SYNC_WINDOW - PUBLIC_KEY_LEN - 20;
                    match self.input.sync(&keys::req1(&self.s), window) {
                        Ok(true) => self.state = State::Skey,
                        Ok(false) => return Ok(None),
                        Err(()) => return Err(MseError::Req1NotFound),
                    }
                }
                State::Skey => {
                    let Some(x) = self.input.take(20) else {
                        return Ok(None);
                    };
                    let mut masked = [0u8; 20];
                    masked.copy_from_slice(&x);
                    let req2 = keys::xor(&masked, &keys::req3(&self.s));
                    self.skey = lookup(&req2).ok_or(MseError::UnknownSkey)?;
                    self.ciphers = Some((
                        Cipher::for_direction(false, &self.s, &self.skey),
                        Cipher::for_direction(true, &self.s, &self.skey),
                    ));
                    self.state = State::Provide;
                }
                State::Provide => {
                    let Some(mut b) = self.input.take(14) else {
                        return Ok(None);
                    };
                    self.decrypt(&mut b);
                    if b[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    let method = self.select(u32_at(&b, 8))?;
                    let len = u16_at(&b, 12);
                    if usize::from(len) > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    self.state = State::PadC {
                        method,
                        len: len.into(),
                    };
                }
                State::PadC { method, len } => {
                    let Some(mut b) = self.input.take(len + 2) else {
                        return Ok(None);
                    };
                    self.decrypt(&mut b);
                    let ia = u16_at(&b, len);
                    if usize::from(ia) > MAX_IA {
                        return Err(MseError::IaTooLong(ia));
                    }
                    self.state = State::Ia {
                        method,
                        len: ia.into(),
                    };
                }
                State::Ia { method, len } => {
                    let Some(mut ia) = self.input.take(len) else {
                        return Ok(None);
                    };
                    self.decrypt(&mut ia);
                    self.state = State::Done;
                    return Ok(Some(self.answer(method, ia)));
                }
                State::Done => return Err(MseError::Finished),
            }
        }
    }

    /// crypto_select for the initiator's crypto_provide.
    fn select(&self, provide: u32) -> Result<Method, MseError> {
        let common = provide & self.allowed.0;
        let plain = common & Method::Plaintext.bit() != 0;
        let rc4 = common & Method::Rc4.bit() != 0;
        match (plain, rc4) {
            (true, true) if self.prefer_plaintext => Ok(Method::Plaintext),
            (_, true) => Ok(Method::Rc4),
            (true, false) => Ok(Method::Plaintext),
            (false, false) => Err(MseError::NoCommonMethod(provide)),
        }
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        if let Some((_, dec)) = &mut self.ciphers {
            dec.apply(data);
        }
    }

    /// Queues VC, crypto_select, PadD (encrypted) and hands the stream over.
    fn answer(&mut self, method: Method, ia: Vec<u8>) -> Established {
        let mut rest = self.input.rest();
        let mut ciphers = self.ciphers.take();
        let start = self.output.len();
        self.output.extend_from_slice(&VC);
        self.output.extend_from_slice(&method.bit().to_be_bytes());
        let pad = &self.secrets.pad2;
        self.output
            .extend_from_slice(&(pad.len() as u16).to_be_bytes());
        self.output.extend_from_slice(pad);
        if let Some((enc, dec)) = &mut ciphers {
            enc.apply(&mut self.output[start..]);
            if method == Method::Rc4 {
                dec.apply(&mut rest);
            }
        }
        let mut received = ia;
        received.extend_from_slice(&rest);
        Established {
            method,
            skey: self.skey,
            ciphers: ciphers.filter(|_| method == Method::Rc4),
            received,
        }
    }
}
