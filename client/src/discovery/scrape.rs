//! Asking a tracker for one torrent's counts (seeders, leechers, completed downloads): HTTP
//! through the scrape URL BEP 48 derives from the announce URL, UDP through BEP 15's scrape
//! (action 2). Used by `swarm info --scrape`.

use metainfo::InfoHash;
use tracker_proto::{ScrapeRequest, ScrapeResponse, ScrapeStats};

use super::announce::{AnnounceError, Trackers, get_body};

/// BEP 48: the scrape URL of an announce URL whose last path segment starts with `announce`
/// (that word becomes `scrape`, the rest stays: `/x/announce.php?k=1` -> `/x/scrape.php?k=1`);
/// `None` when there is no such segment (the tracker offers no scrape).
pub fn scrape_url(announce: &str) -> Option<String> {
    let path_end = announce.find('?').unwrap_or(announce.len());
    let slash = announce.get(..path_end)?.rfind('/')?;
    // Not the `//` of the scheme.
    if announce.get(..slash)?.ends_with('/') || !announce.contains("://") {
        return None;
    }
    let last = announce.get(slash + 1..path_end)?;
    let rest = last.strip_prefix("announce")?;
    Some(format!(
        "{}/scrape{rest}{}",
        announce.get(..slash)?,
        announce.get(path_end..)?
    ))
}

/// The counts `url`'s tracker has for `info_hash`.
pub async fn scrape_once(
    trackers: &Trackers,
    url: &str,
    info_hash: InfoHash,
) -> Result<ScrapeStats, AnnounceError> {
    if url.starts_with("udp://") {
        return Ok(trackers.udp.scrape(url, info_hash).await?);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(AnnounceError::Unsupported(url.to_owned()));
    }
    let scrape = scrape_url(url).ok_or(AnnounceError::NoScrape)?;
    let sep = if scrape.contains('?') { '&' } else { '?' };
    let query = ScrapeRequest {
        info_hashes: vec![info_hash],
    }
    .to_query();
    let body = get_body(trackers, &format!("{scrape}{sep}{query}")).await?;
    let resp = match ScrapeResponse::decode(&body) {
        Err(tracker_proto::ResponseError::Failure(reason)) => {
            return Err(AnnounceError::Failure(reason));
        }
        r => r?,
    };
    resp.files
        .iter()
        .find(|(h, _)| *h == info_hash)
        .map(|(_, s)| *s)
        .ok_or(AnnounceError::NotListed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep48_scrape_urls() {
        let cases = [
            (
                "http://example.com/announce",
                Some("http://example.com/scrape"),
            ),
            (
                "http://example.com/x/announce?x2=0%2644",
                Some("http://example.com/x/scrape?x2=0%2644"),
            ),
            (
                "http://example.com/announce.php",
                Some("http://example.com/scrape.php"),
            ),
            ("http://example.com/a", None),
            (
                "http://example.com/announce?x=2/4",
                Some("http://example.com/scrape?x=2/4"),
            ),
            ("http://example.com/x%064announce", None),
            (
                "http://example.com/a/b/announce",
                Some("http://example.com/a/b/scrape"),
            ),
            ("http://example.com", None),
            ("announce", None),
        ];
        for (announce, scrape) in cases {
            assert_eq!(scrape_url(announce).as_deref(), scrape, "{announce}");
        }
    }
}
