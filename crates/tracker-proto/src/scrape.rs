//! Scrape (BEP 48): the request's repeated `info_hash` parameters, and the `files` dictionary of
//! per-torrent counts, both sides.
//!
//! Policy: at most the caller's cap of info-hashes per request (more is an error, so a client
//! learns rather than getting a silently partial answer); a repeated info-hash is kept once; no
//! info-hash at all is [`QueryError::Missing`] (full scrapes are not offered).

use metainfo::InfoHash;

use bencode::{Value, put_bytes, put_uint};

use crate::announce_response::top_dict;
use crate::error::{QueryError, ResponseError};
use crate::query::{name_is, params, percent_encode_into};

/// The usual cap on info-hashes in one scrape.
pub const DEFAULT_MAX_SCRAPE: usize = 100;

/// Most `files` entries [`ScrapeResponse::decode`] keeps; later ones are dropped.
pub const MAX_DECODED_FILES: usize = 1000;

/// A scrape request: which torrents to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// Distinct info-hashes, in request order.
    pub info_hashes: Vec<InfoHash>,
}

impl ScrapeRequest {
    /// Parses the raw query of `GET /scrape?...`, refusing more than `max` info-hashes.
    pub fn parse_query(raw_query: &[u8], max: usize) -> Result<ScrapeRequest, QueryError> {
        let mut info_hashes: Vec<InfoHash> = Vec::new();
        for p in params(raw_query) {
            if !name_is(p.name, "info_hash") {
                continue;
            }
            let h = InfoHash(crate::announce_request::decode20("info_hash", p.value)?);
            if info_hashes.contains(&h) {
                continue;
            }
            if info_hashes.len() >= max {
                return Err(QueryError::TooManyInfoHashes(max));
            }
            info_hashes.push(h);
        }
        if info_hashes.is_empty() {
            return Err(QueryError::Missing("info_hash"));
        }
        Ok(ScrapeRequest { info_hashes })
    }

    /// The query string (without `?`) a client appends to the scrape URL.
    pub fn to_query(&self) -> String {
        let mut q = String::with_capacity(self.info_hashes.len() * 72);
        for (i, h) in self.info_hashes.iter().enumerate() {
            if i > 0 {
                q.push('&');
            }
            q.push_str("info_hash=");
            percent_encode_into(h.as_bytes(), &mut q);
        }
        q
    }
}

/// The counts of one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u64,
    /// Completed downloads the tracker has counted.
    pub downloaded: u64,
    /// Leechers.
    pub incomplete: u64,
}

/// A scrape response: counts per info-hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// One entry per torrent (the encoder sorts them and drops repeated hashes).
    pub files: Vec<(InfoHash, ScrapeStats)>,
}

impl ScrapeResponse {
    /// Appends `d5:filesd<hash>d8:completei..e10:downloadedi..e10:incompletei..ee...ee`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut sorted: Vec<&(InfoHash, ScrapeStats)> = self.files.iter().collect();
        sorted.sort_by_key(|(h, _)| *h);
        sorted.dedup_by_key(|(h, _)| *h);
        out.reserve(16 + sorted.len() * 90);
        out.extend_from_slice(b"d5:filesd");
        for (h, s) in sorted {
            put_bytes(out, h.as_bytes());
            out.extend_from_slice(b"d8:complete");
            put_uint(out, s.complete);
            out.extend_from_slice(b"10:downloaded");
            put_uint(out, s.downloaded);
            out.extend_from_slice(b"10:incomplete");
            put_uint(out, s.incomplete);
            out.push(b'e');
        }
        out.extend_from_slice(b"ee");
    }

    /// Decodes a scrape body; a `failure reason` becomes [`ResponseError::Failure`].
    pub fn decode(body: &[u8]) -> Result<ScrapeResponse, ResponseError> {
        let v = top_dict(body)?;
        let mut resp = ScrapeResponse::default();
        let Some(files) = v.get(b"files") else {
            return Ok(resp);
        };
        let entries = files.as_dict().ok_or(ResponseError::BadField("files"))?;
        for (key, stats) in entries.iter().take(MAX_DECODED_FILES) {
            let hash = InfoHash::from_slice(key).ok_or(ResponseError::BadField("files"))?;
            if stats.as_dict().is_none() {
                return Err(ResponseError::BadField("files"));
            }
            resp.files.push((
                hash,
                ScrapeStats {
                    complete: count(stats, "complete")?,
                    downloaded: count(stats, "downloaded")?,
                    incomplete: count(stats, "incomplete")?,
                },
            ));
        }
        Ok(resp)
    }
}

/// A count field of a `files` entry; absent counts as 0.
fn count(stats: &Value<'_>, field: &'static str) -> Result<u64, ResponseError> {
    match stats.get(field.as_bytes()) {
        None => Ok(0),
        Some(v) => v
            .as_int()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or(ResponseError::BadField(field)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(b: u8) -> InfoHash {
        InfoHash([b; 20])
    }

    #[test]
    fn parses_repeated_hashes_once_each() {
        let q = ScrapeRequest {
            info_hashes: vec![h(1), h(2), h(1)],
        }
        .to_query();
        let r = ScrapeRequest::parse_query(q.as_bytes(), 100).unwrap();
        assert_eq!(r.info_hashes, vec![h(1), h(2)]);
    }

    #[test]
    fn enforces_the_cap_and_names_problems() {
        let many = ScrapeRequest {
            info_hashes: (0..=100).map(h).collect(),
        }
        .to_query();
        assert_eq!(
            ScrapeRequest::parse_query(many.as_bytes(), 100),
            Err(QueryError::TooManyInfoHashes(100))
        );
        assert_eq!(
            ScrapeRequest::parse_query(b"foo=1", 100),
            Err(QueryError::Missing("info_hash"))
        );
        assert_eq!(
            ScrapeRequest::parse_query(b"info_hash=short", 100),
            Err(QueryError::WrongLength {
                param: "info_hash",
                len: 5
            })
        );
    }

    #[test]
    fn encodes_sorted_exact_bytes() {
        let resp = ScrapeResponse {
            files: vec![
                (
                    h(b'b'),
                    ScrapeStats {
                        complete: 1,
                        downloaded: 2,
                        incomplete: 3,
                    },
                ),
                (h(b'a'), ScrapeStats::default()),
            ],
        };
        let mut out = Vec::new();
        resp.encode(&mut out);
        let want = format!(
            "d5:filesd20:{}d8:completei0e10:downloadedi0e10:incompletei0ee20:{}d8:completei1e10:downloadedi2e10:incompletei3eeee",
            "a".repeat(20),
            "b".repeat(20)
        );
        assert_eq!(out, want.as_bytes());
    }

    #[test]
    fn decode_rejects_bad_keys() {
        assert_eq!(
            ScrapeResponse::decode(b"d5:filesd3:abcdeee"),
            Err(ResponseError::BadField("files"))
        );
        assert_eq!(
            ScrapeResponse::decode(b"d14:failure reason2:noe"),
            Err(ResponseError::Failure("no".into()))
        );
    }

    fn stats() -> impl Strategy<Value = ScrapeStats> {
        (
            0..=i64::MAX as u64,
            0..=i64::MAX as u64,
            0..=i64::MAX as u64,
        )
            .prop_map(|(complete, downloaded, incomplete)| ScrapeStats {
                complete,
                downloaded,
                incomplete,
            })
    }

    proptest! {
        #[test]
        fn query_round_trips(hashes in proptest::collection::btree_set(any::<[u8; 20]>(), 1..50)) {
            let req = ScrapeRequest { info_hashes: hashes.into_iter().map(InfoHash).collect() };
            prop_assert_eq!(ScrapeRequest::parse_query(req.to_query().as_bytes(), 100), Ok(req));
        }

        #[test]
        fn response_round_trips(
            files in proptest::collection::btree_map(any::<[u8; 20]>(), stats(), 0..40)
        ) {
            let resp = ScrapeResponse {
                files: files.into_iter().map(|(k, v)| (InfoHash(k), v)).collect(),
            };
            let mut out = Vec::new();
            resp.encode(&mut out);
            prop_assert_eq!(ScrapeResponse::decode(&out), Ok(resp));
        }

        #[test]
        fn parse_and_decode_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ScrapeRequest::parse_query(&raw, 100);
            let _ = ScrapeResponse::decode(&raw);
        }
    }
}
