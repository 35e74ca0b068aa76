//! The side that dialed: sends its public key at once, and the rest when the responder's key
//! arrives.

use crate::dh::PUBLIC_KEY_LEN;
use crate::keys::{self, Cipher};
use crate::{
    Established, INITIATOR_SYNC_WINDOW, Input, MAX_IA, MAX_PAD, Method, Methods, MseError, Secrets,
    VC, u16_at, u32_at,
};

#[derive(Debug)]
enum State {
    /// Waiting for Yb.
    PublicKey,
    /// Looking for RC4(VC) after PadB.
    Sync,
    /// Reading crypto_select and len(PadD).
    Select,
    /// Skipping PadD.
    PadD {
        method: Method,
        len: usize,
    },
    Done,
}

/// The initiating side of an MSE/PE handshake.
#[derive(Debug)]
pub struct Initiator {
    state: State,
    secrets: Secrets,
    skey: [u8; 20],
    provide: Methods,
    ia: Vec<u8>,
    input: Input,
    output: Vec<u8>,
    /// (encrypt, decrypt), once S is known.
    ciphers: Option<(Cipher, Cipher)>,
    /// RC4(VC): what the responder's answer starts with.
    encrypted_vc: [u8; 8],
}

impl Initiator {
    /// Starts a handshake for the torrent `skey`, offering `provide` and sending `ia` (the
    /// BitTorrent handshake; at most [`MAX_IA`] bytes, longer is cut) encrypted with it. The
    /// public key and PadA are queued at once.
    pub fn new(skey: [u8; 20], provide: Methods, ia: &[u8], mut secrets: Secrets) -> Initiator {
        secrets.pad1.truncate(MAX_PAD);
        secrets.pad2.truncate(MAX_PAD);
        let mut output = secrets.private_key.public_key().to_vec();
        output.extend_from_slice(&secrets.pad1);
        Initiator {
            state: State::PublicKey,
            secrets,
            skey,
            provide,
            ia: ia[..ia.len().min(MAX_IA)].to_vec(),
            input: Input::default(),
            output,
            ciphers: None,
            encrypted_vc: [0; 8],
        }
    }

    /// Bytes to send to the responder now (taken).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// The stream ended: the error to report.
    pub fn handle_eof(&self) -> MseError {
        MseError::Truncated
    }

    /// Bytes read from the responder. `Ok(Some(..))` once the handshake is complete (send
    /// [`take_output`](Self::take_output) first: nothing is queued then, but earlier output may
    /// be); `Ok(None)`: more input is needed.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Established>, MseError> {
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
                    let mut yb = [0u8; PUBLIC_KEY_LEN];
                    yb.copy_from_slice(&y);
                    self.send_request(&yb);
                    self.state = State::Sync;
                }
                State::Sync => {
                    let window = INITIATOR_SYNC_WINDOW - PUBLIC_KEY_LEN - VC.len();
                    match self.input.sync(&self.encrypted_vc, window) {
                        Ok(true) => self.state = State::Select,
                        Ok(false) => return Ok(None),
                        Err(()) => return Err(MseError::VcNotFound),
                    }
                }
                State::Select => {
                    let Some(mut b) = self.input.take(6) else {
                        return Ok(None);
                    };
                    self.decrypt(&mut b);
                    let select = u32_at(&b, 0);
                    let method = match select {
                        0x01 => Method::Plaintext,
                        0x02 => Method::Rc4,
                        _ => return Err(MseError::BadSelect(select)),
                    };
                    if !self.provide.has(method) {
                        return Err(MseError::BadSelect(select));
                    }
                    let len = u16_at(&b, 4);
                    if usize::from(len) > MAX_PAD {
                        return Err(MseError::PadTooLong(len));
                    }
                    self.state = State::PadD {
                        method,
                        len: len.into(),
                    };
                }
                State::PadD { method, len } => {
                    let Some(mut pad) = self.input.take(len) else {
                        return Ok(None);
                    };
                    self.decrypt(&mut pad);
                    self.state = State::Done;
                    let mut received = self.input.rest();
                    let ciphers = match method {
                        Method::Rc4 => {
                            let mut c = self.ciphers.take();
                            if let Some((_, dec)) = &mut c {
                                dec.apply(&mut received);
                            }
                            c
                        }
                        Method::Plaintext => None,
                    };
                    return Ok(Some(Established {
                        method,
                        skey: self.skey,
                        ciphers,
                        received,
                    }));
                }
                State::Done => return Err(MseError::Finished),
            }
        }
    }

    fn decrypt(&mut self, data: &mut [u8]) {
        if let Some((_, dec)) = &mut self.ciphers {
            dec.apply(data);
        }
    }

    /// With the responder's key: queues the sync hashes and the encrypted request.
    fn send_request(&mut self, yb: &[u8; PUBLIC_KEY_LEN]) {
        let s = self.secrets.private_key.shared_secret(yb);
        let mut enc = Cipher::for_direction(true, &s, &self.skey);
        let mut dec = Cipher::for_direction(false, &s, &self.skey);
        self.encrypted_vc = VC;
        dec.apply(&mut self.encrypted_vc);
        self.output.extend_from_slice(&keys::req1(&s));
        self.output
            .extend_from_slice(&keys::xor(&keys::req2(&self.skey), &keys::req3(&s)));
        let start = self.output.len();
        self.output.extend_from_slice(&VC);
        self.output.extend_from_slice(&self.provide.0.to_be_bytes());
        let pad = &self.secrets.pad2;
        self.output
            .extend_from_slice(&(pad.len() as u16).to_be_bytes());
        self.output.extend_from_slice(pad);
        self.output
            .extend_from_slice(&(self.ia.len() as u16).to_be_bytes());
        self.output.extend_from_slice(&self.ia);
        enc.apply(&mut self.output[start..]);
        self.ciphers = Some((enc, dec));
    }
}
