//! Announce tokens: `SHA-1(secret | ip)`, with the secret rotated every
//! [`crate::Config::token_rotation`] (5 min) and the previous secret still accepted, so a token
//! stays valid for 5 to 10 minutes.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use rand::Rng;
use sha1::{Digest, Sha1};

/// Bytes in a token we hand out.
pub const TOKEN_LEN: usize = 20;

/// The current and previous token secrets.
#[derive(Debug)]
pub struct TokenSecrets {
    current: [u8; 20],
    previous: [u8; 20],
    rotate_at: Instant,
    every: Duration,
}

impl TokenSecrets {
    /// Fresh random secrets, first rotated at `now + every`.
    pub fn new(rng: &mut impl Rng, now: Instant, every: Duration) -> Self {
        let mut current = [0u8; 20];
        let mut previous = [0u8; 20];
        rng.fill(&mut current);
        rng.fill(&mut previous);
        TokenSecrets {
            current,
            previous,
            rotate_at: now + every,
            every,
        }
    }

    /// When [`TokenSecrets::maybe_rotate`] next has work to do.
    pub fn next_rotation(&self) -> Instant {
        self.rotate_at
    }

    /// Rotates if due: the current secret becomes the previous one.
    pub fn maybe_rotate(&mut self, rng: &mut impl Rng, now: Instant) {
        if now < self.rotate_at {
            return;
        }
        self.previous = self.current;
        rng.fill(&mut self.current);
        self.rotate_at = now + self.every;
    }

    /// The token for `ip` under the current secret.
    pub fn token(&self, ip: Ipv4Addr) -> [u8; TOKEN_LEN] {
        hash(&self.current, ip)
    }

    /// True when `token` was made for `ip` under the current or the previous secret.
    pub fn verify(&self, ip: Ipv4Addr, token: &[u8]) -> bool {
        token == hash(&self.current, ip) || token == hash(&self.previous, ip)
    }
}

fn hash(secret: &[u8; 20], ip: Ipv4Addr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    h.update(ip.octets());
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const MIN5: Duration = Duration::from_secs(300);

    #[test]
    fn token_is_per_ip() {
        let mut rng = StdRng::seed_from_u64(1);
        let t = TokenSecrets::new(&mut rng, Instant::now(), MIN5);
        let a = Ipv4Addr::new(1, 2, 3, 4);
        let b = Ipv4Addr::new(1, 2, 3, 5);
        assert!(t.verify(a, &t.token(a)));
        assert!(!t.verify(b, &t.token(a)));
        assert!(!t.verify(a, b"short"));
    }

    #[test]
    fn previous_secret_accepted_for_one_rotation() {
        let mut rng = StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let mut t = TokenSecrets::new(&mut rng, t0, MIN5);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let old = t.token(ip);
        t.maybe_rotate(&mut rng, t0 + MIN5 - Duration::from_secs(1));
        assert_eq!(t.token(ip), old, "not due yet");
        t.maybe_rotate(&mut rng, t0 + MIN5);
        assert_ne!(t.token(ip), old);
        assert!(t.verify(ip, &old), "previous secret still accepted");
        assert_eq!(t.next_rotation(), t0 + 2 * MIN5);
        t.maybe_rotate(&mut rng, t0 + 2 * MIN5);
        assert!(!t.verify(ip, &old), "two rotations later the token is dead");
    }
}
