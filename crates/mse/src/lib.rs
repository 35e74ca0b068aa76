//! MSE/PE, BitTorrent's Message Stream Encryption (Vuze's protocol encryption, what
//! "require encryption" means in other clients), as a sans-IO state machine.
//!
//! [`Initiator`] (the side that dialed) and [`Responder`] take the bytes read from the peer
//! ([`Initiator::feed`]) and queue the bytes to send ([`Initiator::take_output`]); neither
//! touches a socket or a clock, and randomness comes in as [`Secrets`] (a private key and the
//! pads). When one finishes it hands back an [`Established`]: the method chosen, the two RC4
//! directions, and whatever the peer sent after the handshake (decrypted).
//!
//! The handshake: both send a 96-byte DH public key (768-bit prime, G = 2) and 0-512 bytes of
//! pad. The initiator then sends HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S) and,
//! RC4-encrypted, VC (8 zero bytes), crypto_provide, len(PadC), PadC, len(IA), IA (the
//! BitTorrent handshake); the responder answers, encrypted, VC, crypto_select, len(PadD), PadD.
//! S is the shared secret, SKEY the info-hash; RC4 is keyed SHA1('keyA'|'keyB', S, SKEY) and its
//! first 1024 bytes are thrown away. Every read is bounded: the sync windows below, pads of at
//! most [`MAX_PAD`], an initial payload of at most [`MAX_IA`].
//!
//! Not here: telling a plain BitTorrent stream from an encrypted one (the caller looks for
//! `19 "BitTorrent protocol"`), deadlines, and the encrypted stream itself (the caller wraps its
//! transport in the two [`Cipher`]s).

mod arc4;
mod dh;
mod error;
mod initiator;
mod keys;
mod responder;

pub use arc4::Rc4;
pub use dh::{PRIVATE_KEY_LEN, PUBLIC_KEY_LEN, PrivateKey};
pub use error::MseError;
pub use initiator::Initiator;
pub use keys::{Cipher, RC4_DISCARD, rc4_key, req1, req2, req3};
pub use responder::Responder;

use rand::{Rng, RngCore};

/// Most bytes of random pad (PadA, PadB, PadC, PadD).
pub const MAX_PAD: usize = 512;
/// The verification constant: 8 zero bytes.
pub const VC: [u8; 8] = [0; 8];
/// Bytes within which the responder must find HASH('req1', S): public key, pad, the hash.
pub const RESPONDER_SYNC_WINDOW: usize = PUBLIC_KEY_LEN + MAX_PAD + 20;
/// Bytes within which the initiator must find the encrypted VC: public key, pad, VC.
pub const INITIATOR_SYNC_WINDOW: usize = PUBLIC_KEY_LEN + MAX_PAD + 8;
/// Longest initial payload accepted (the 68-byte BitTorrent handshake and a little more).
pub const MAX_IA: usize = 1024;

/// A set of crypto methods, as in crypto_provide (bit 0x01 plaintext, 0x02 RC4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods(pub u32);

impl Methods {
    /// Plaintext after the handshake.
    pub const PLAINTEXT: Methods = Methods(0x01);
    /// RC4 after the handshake.
    pub const RC4: Methods = Methods(0x02);
    /// Either.
    pub const BOTH: Methods = Methods(0x03);

    /// Does the set hold `m`?
    pub fn has(self, m: Method) -> bool {
        self.0 & m.bit() != 0
    }
}

/// The method a handshake settled on for the rest of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// The stream goes on unencrypted.
    Plaintext,
    /// The stream goes on RC4-encrypted.
    Rc4,
}

impl Method {
    /// Its crypto_select bit.
    pub fn bit(self) -> u32 {
        match self {
            Method::Plaintext => 0x01,
            Method::Rc4 => 0x02,
        }
    }
}

/// The randomness one side of a handshake needs: its private key and its two pads (PadA and
/// PadC for the initiator, PadB and PadD for the responder), each at most [`MAX_PAD`] bytes
/// (longer ones are cut).
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The DH private key.
    pub private_key: PrivateKey,
    /// Sent after the public key (PadA / PadB), in the clear.
    pub pad1: Vec<u8>,
    /// Sent encrypted (PadC / PadD).
    pub pad2: Vec<u8>,
}

impl Secrets {
    /// A fresh private key and random pads of random lengths (0 to [`MAX_PAD`] bytes).
    pub fn random(rng: &mut impl RngCore) -> Secrets {
        let mut key = [0u8; PRIVATE_KEY_LEN];
        rng.fill_bytes(&mut key);
        let pad = |rng: &mut dyn RngCore| {
            let mut p = vec![0u8; rng.gen_range(0..=MAX_PAD)];
            rng.fill_bytes(&mut p);
            p
        };
        let pad1 = pad(rng);
        // PadC/PadD travel encrypted: their content does not matter, only their length.
        let pad2 = vec![0u8; pad(rng).len()];
        Secrets {
            private_key: PrivateKey(key),
            pad1,
            pad2,
        }
    }
}

/// A finished handshake.
#[derive(Debug)]
pub struct Established {
    /// What the rest of the stream is.
    pub method: Method,
    /// The info-hash the handshake was for.
    pub skey: [u8; 20],
    /// For [`Method::Rc4`]: the cipher of what we send and of what we receive, each positioned
    /// where the stream goes on.
    pub ciphers: Option<(Cipher, Cipher)>,
    /// Bytes of the stream the peer sent after its part of the handshake, decrypted if need
    /// be; a responder's starts with the initiator's initial payload (IA).
    pub received: Vec<u8>,
}

/// Input read so far and not yet consumed, with a cursor.
#[derive(Debug, Default)]
struct Input {
    buf: Vec<u8>,
}

impl Input {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The first `n` bytes, taken, if they are here.
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        (self.buf.len() >= n).then(|| self.buf.drain(..n).collect())
    }

    /// Finds `needle` starting within the first `max_offset + 1` positions; consumes up to
    /// and including it. `Ok(false)`: not yet (more may come); `Err(())`: not within reach.
    fn sync(&mut self, needle: &[u8], max_offset: usize) -> Result<bool, ()> {
        let found = self
            .buf
            .windows(needle.len())
            .take(max_offset + 1)
            .position(|w| w == needle);
        match found {
            Some(k) => {
                self.buf.drain(..k + needle.len());
                Ok(true)
            }
            None if self.buf.len() >= max_offset + needle.len() => Err(()),
            None => Ok(false),
        }
    }

    fn rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}
