//! Diffie-Hellman over the 768-bit prime of the MSE/PE spec, generator 2, in constant time
//! (`crypto-bigint`'s Montgomery form with the modulus fixed at compile time).

use crypto_bigint::modular::constant_mod::{Residue, ResidueParams};
use crypto_bigint::{Encoding, U192, U768, impl_modulus};

/// Bytes of a public key (and of the shared secret S): 768 bits, big-endian, zero-padded.
pub const PUBLIC_KEY_LEN: usize = 96;
/// Bytes of a private key: 160 bits, as the spec asks.
pub const PRIVATE_KEY_LEN: usize = 20;
/// Bits of a private key.
const PRIVATE_KEY_BITS: usize = PRIVATE_KEY_LEN * 8;

impl_modulus!(
    Prime,
    U768,
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563"
);

/// A number modulo P, in Montgomery form.
type Fe = Residue<Prime, { U768::LIMBS }>;

/// A 160-bit private key.
#[derive(Clone)]
pub struct PrivateKey(pub [u8; PRIVATE_KEY_LEN]);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(..)")
    }
}

impl PrivateKey {
    fn exponent(&self) -> U192 {
        let mut wide = [0u8; 24];
        wide[24 - PRIVATE_KEY_LEN..].copy_from_slice(&self.0);
        U192::from_be_bytes(wide)
    }

    /// Our public key: 2^x mod P.
    pub fn public_key(&self) -> [u8; PUBLIC_KEY_LEN] {
        let g = Fe::new(&U768::from_u8(2));
        g.pow_bounded_exp(&self.exponent(), PRIVATE_KEY_BITS)
            .retrieve()
            .to_be_bytes()
    }

    /// The shared secret S = Y^x mod P from the peer's public key `theirs` (any 96 bytes: a
    /// value at or above P is taken modulo P, as other clients do).
    pub fn shared_secret(&self, theirs: &[u8; PUBLIC_KEY_LEN]) -> [u8; PUBLIC_KEY_LEN] {
        let y = U768::from_be_bytes(*theirs);
        // Reduce first: the Montgomery conversion wants a value below the modulus.
        let (y, _) = y.const_rem(&Prime::MODULUS);
        let y = Fe::new(&y);
        y.pow_bounded_exp(&self.exponent(), PRIVATE_KEY_BITS)
            .retrieve()
            .to_be_bytes()
    }
}
