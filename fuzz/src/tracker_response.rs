//! Tracker response bodies, as the client reads them: `AnnounceResponse::decode` and
//! `ScrapeResponse::decode`. Decoded lists stay within their caps, and a scrape response
//! re-encodes to a body that decodes to the same (sorted, deduplicated) counts.

use tracker_proto::{AnnounceResponse, MAX_DECODED_FILES, MAX_DECODED_PEERS, ScrapeResponse};

/// Decodes `data` as an announce and as a scrape response.
pub fn run(data: &[u8]) {
    if let Ok(a) = AnnounceResponse::decode(data) {
        assert!(a.peers.len() <= MAX_DECODED_PEERS);
    }
    if let Ok(s) = ScrapeResponse::decode(data) {
        assert!(s.files.len() <= MAX_DECODED_FILES);
        let mut body = Vec::new();
        s.encode(&mut body);
        let again = ScrapeResponse::decode(&body).expect("an encoded scrape response decodes");
        let mut want = s.files.clone();
        want.sort_by_key(|(h, _)| *h);
        want.dedup_by_key(|(h, _)| *h);
        assert_eq!(again.files, want, "scrape response does not round-trip");
    }
}
