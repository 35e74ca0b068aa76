//! What both sides derive from the shared secret S and the torrent's info-hash (SKEY): the
//! synchronisation hashes and the RC4 keys.

use sha1::{Digest, Sha1};

use crate::arc4::Rc4;
use crate::dh::PUBLIC_KEY_LEN;

/// Keystream bytes thrown away after keying RC4, as the spec asks.
pub const RC4_DISCARD: usize = 1024;

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// HASH('req1', S): the initiator's marker the responder synchronises on.
pub fn req1(s: &[u8; PUBLIC_KEY_LEN]) -> [u8; 20] {
    sha1(&[b"req1", s])
}

/// HASH('req2', SKEY): what a responder looks info-hashes up by (precompute it per torrent).
pub fn req2(skey: &[u8; 20]) -> [u8; 20] {
    sha1(&[b"req2", skey])
}

/// HASH('req3', S).
pub fn req3(s: &[u8; PUBLIC_KEY_LEN]) -> [u8; 20] {
    sha1(&[b"req3", s])
}

/// `a` xor `b`.
pub fn xor(a: &[u8; 20], b: &[u8; 20]) -> [u8; 20] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// The RC4 key of the initiator's direction (HASH('keyA', S, SKEY)) or the responder's
/// (HASH('keyB', S, SKEY)).
pub fn rc4_key(initiator: bool, s: &[u8; PUBLIC_KEY_LEN], skey: &[u8; 20]) -> [u8; 20] {
    sha1(&[if initiator { b"keyA" } else { b"keyB" }, s, skey])
}

/// One direction of an RC4 stream, keyed and past the discarded first 1024 bytes.
pub struct Cipher(Rc4);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    /// RC4 keyed with `key`, the first [`RC4_DISCARD`] bytes of keystream thrown away.
    pub fn new(key: &[u8; 20]) -> Cipher {
        let mut rc4 = Rc4::new(key);
        let mut discard = [0u8; RC4_DISCARD];
        rc4.apply(&mut discard);
        Cipher(rc4)
    }

    /// The cipher of one direction after a handshake with secret `s` for `skey`.
    pub fn for_direction(initiator: bool, s: &[u8; PUBLIC_KEY_LEN], skey: &[u8; 20]) -> Cipher {
        Cipher::new(&rc4_key(initiator, s, skey))
    }

    /// Encrypts (or decrypts: the same) `data` in place, advancing the stream.
    pub fn apply(&mut self, data: &mut [u8]) {
        self.0.apply(data);
    }
}
