//! Extension protocol payloads (BEP 10, 9, 11): `ExtendedHandshake::decode`,
//! `MetadataMsg::decode` (ut_metadata) and `PexMsg::decode` (ut_pex). What decodes re-encodes to
//! a payload that decodes to the same value (for PEX, after one normalising round: the encoder
//! writes IPv4-mapped addresses as IPv4 and caps the lists).

use bytes::Bytes;
use wire::pex::{MAX_PEX_RECEIVE, MAX_PEX_SEND};
use wire::{ExtendedHandshake, MetadataMsg, PexMsg};

/// Decodes `data` as each of the three payloads.
pub fn run(data: &[u8]) {
    if let Ok(hs) = ExtendedHandshake::decode(data) {
        // The encoder writes `m` in key order; the decoder keeps the order it read.
        let mut want = hs.clone();
        want.m.sort_by(|a, b| a.0.cmp(&b.0));
        let again = ExtendedHandshake::decode(&hs.encode());
        assert_eq!(
            again.as_ref(),
            Ok(&want),
            "extension handshake does not round-trip"
        );
    }

    let payload = Bytes::copy_from_slice(data);
    if let Ok(Some(m)) = MetadataMsg::decode(&payload) {
        let again = MetadataMsg::decode(&Bytes::from(m.encode()));
        assert_eq!(
            again.as_ref(),
            Ok(&Some(m.clone())),
            "ut_metadata does not round-trip"
        );
    }

    if let Ok(p) = PexMsg::decode(data) {
        assert!(p.added.len() <= 2 * MAX_PEX_RECEIVE && p.dropped.len() <= 2 * MAX_PEX_RECEIVE);
        let once = PexMsg::decode(&p.encode()).expect("an encoded PEX message decodes");
        assert_eq!(once.added.len(), p.added.len().min(MAX_PEX_SEND));
        assert_eq!(once.dropped.len(), p.dropped.len().min(MAX_PEX_SEND));
        let twice = PexMsg::decode(&once.encode()).expect("an encoded PEX message decodes");
        assert_eq!(twice, once, "PEX is not a fixed point after one round");
    }
}
