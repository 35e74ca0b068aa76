//! Tracker request query strings, as the tracker reads them: `AnnounceRequest::parse_query`
//! and `ScrapeRequest::parse_query`. What parses must print (`to_query`) as a query that parses
//! back to the same request.

use tracker_proto::{AnnounceRequest, DEFAULT_MAX_SCRAPE, ScrapeRequest};

/// Parses `data` as an announce and as a scrape query.
pub fn run(data: &[u8]) {
    if let Ok(a) = AnnounceRequest::parse_query(data) {
        let q = a.to_query();
        assert_eq!(
            AnnounceRequest::parse_query(q.as_bytes()).as_ref(),
            Ok(&a),
            "announce query {q:?} does not parse back"
        );
    }
    let max = data
        .first()
        .map_or(DEFAULT_MAX_SCRAPE, |b| usize::from(*b % 8));
    for max in [DEFAULT_MAX_SCRAPE, max] {
        if let Ok(s) = ScrapeRequest::parse_query(data, max) {
            assert!(!s.info_hashes.is_empty() && s.info_hashes.len() <= max);
            let q = s.to_query();
            assert_eq!(
                ScrapeRequest::parse_query(q.as_bytes(), max).as_ref(),
                Ok(&s),
                "scrape query {q:?} does not parse back"
            );
        }
    }
}
