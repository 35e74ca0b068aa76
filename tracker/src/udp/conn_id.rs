//! Stateless BEP 15 connection ids: a connect response hands out an id the tracker can check
//! later without having stored anything, so a flood of connects costs no memory.
//!
//! An id is 64 bits: the second it was issued (the service clock, low 16 bits) and a 48-bit
//! SipHash-2-4 tag, keyed with a random per-process secret, over the whole issue second and the
//! client's IP address (IPv4-mapped addresses as IPv4). The tracker accepts it from that address
//! for [`LIFETIME_SECS`]; the issue second is rebuilt from `now` and the 16 bits, so an id cannot
//! come back to life when the 16 bits wrap. The port is not part of it: the id proves that the
//! host receives what is sent to it, which is all that amplification needs, and a NAT may move a
//! client to another port between its connect and its announce.

use std::hash::Hasher as _;
use std::net::IpAddr;

use siphasher::sip::SipHasher24;

/// Seconds a connection id is accepted after it was issued (BEP 15: clients use one for a
/// minute, servers accept it for two).
pub const LIFETIME_SECS: u64 = 120;

const TAG_BITS: u32 = 48;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// Issues and checks connection ids with one secret key.
#[derive(Clone)]
pub struct ConnectionIds {
    key: [u8; 16],
}

impl std::fmt::Debug for ConnectionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConnectionIds { key: <secret> }")
    }
}

impl ConnectionIds {
    /// Ids keyed with `key` (random per process in the service; fixed in tests).
    pub fn new(key: [u8; 16]) -> ConnectionIds {
        ConnectionIds { key }
    }

    fn tag(&self, issued: u64, ip: IpAddr) -> u64 {
        let mut h = SipHasher24::new_with_key(&self.key);
        h.write_u64(issued);
        match ip.to_canonical() {
            IpAddr::V4(v4) => h.write(&v4.octets()),
            IpAddr::V6(v6) => h.write(&v6.octets()),
        }
        h.finish() & TAG_MASK
    }

    /// The id for `ip` at `now` (seconds of the service clock).
    pub fn issue(&self, ip: IpAddr, now: u64) -> u64 {
        ((now & 0xffff) << TAG_BITS) | self.tag(now, ip)
    }

    /// True when `id` was issued to `ip` at most [`LIFETIME_SECS`] before `now`.
    pub fn check(&self, id: u64, ip: IpAddr, now: u64) -> bool {
        let age = (now & 0xffff).wrapping_sub(id >> TAG_BITS) & 0xffff;
        if age > LIFETIME_SECS {
            return false;
        }
        match now.checked_sub(age) {
            Some(issued) => self.tag(issued, ip) == id & TAG_MASK,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const KEY: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn accepted_for_two_minutes_from_the_same_address_only() {
        let ids = ConnectionIds::new(KEY);
        let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        let id = ids.issue(ip, 1000);
        for now in [1000, 1001, 1060, 1000 + LIFETIME_SECS] {
            assert!(ids.check(id, ip, now), "at {now}");
        }
        assert!(!ids.check(id, ip, 1000 + LIFETIME_SECS + 1), "expired");
        assert!(!ids.check(id, ip, 999), "issued in the future");
        assert!(!ids.check(id, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8)), 1000));
        assert!(!ids.check(id ^ 1, ip, 1000), "one bit of the tag changed");
        assert!(!ids.check(id ^ (1 << 48), ip, 1001), "issue second changed");
        let other = ConnectionIds::new(*b"fedcba9876543210");
        assert!(!other.check(id, ip, 1000), "another process's secret");
    }

    #[test]
    fn does_not_come_back_when_the_issue_second_wraps() {
        let ids = ConnectionIds::new(KEY);
        let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let id = ids.issue(ip, 70_000);
        assert!(ids.check(id, ip, 70_030));
        assert!(!ids.check(id, ip, 70_030 + 0x1_0000));
        assert!(!ids.check(id, ip, 70_000 + 0x1_0000));
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let ids = ConnectionIds::new(KEY);
        let v4 = Ipv4Addr::new(10, 1, 2, 3);
        let id = ids.issue(IpAddr::V4(v4), 5);
        assert!(ids.check(id, IpAddr::V6(v4.to_ipv6_mapped()), 6));
    }

    #[test]
    fn early_in_the_clock_nothing_older_than_zero_passes() {
        let ids = ConnectionIds::new(KEY);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // An id claiming second 0xffff checked at second 3 would be 4 s old, before the clock.
        let forged = (0xffffu64 << 48) | ids.tag(0xffff, ip);
        assert!(!ids.check(forged, ip, 3));
        assert!(ids.check(ids.issue(ip, 0), ip, 3));
    }
}
