//! `swarm info`: print what a .torrent file contains, and with `--scrape` what each of its
//! trackers counts (one line per tracker, within 80 columns).

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context;
use metainfo::{InfoHash, Metainfo};
use tracker_proto::ScrapeStats;

use crate::cli::InfoArgs;
use crate::discovery::announce::Trackers;
use crate::discovery::scrape::scrape_once;
use crate::progress::{WIDTH, cols, fit_name, printable};
use crate::size::human;

/// Largest .torrent file read (the parser's own cap).
const MAX_TORRENT_FILE: u64 = metainfo::MAX_TORRENT_BYTES as u64;
/// Most trackers scraped (all at once); the others are named as skipped.
const MAX_SCRAPED: usize = 32;
/// Added to the UDP bound for the whole report (HTTP trackers have 15 s).
const SCRAPE_SLACK: Duration = Duration::from_secs(2);
/// The key column of `swarm info`'s lines.
const KEY: usize = 12;

/// Runs `swarm info`.
pub fn run(args: InfoArgs) -> anyhow::Result<()> {
    let path = &args.torrent;
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if len > MAX_TORRENT_FILE {
        anyhow::bail!(
            "{}: {len} bytes is too large for a .torrent (limit {MAX_TORRENT_FILE})",
            path.display()
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let m = Metainfo::from_shared(bytes.into())
        .with_context(|| format!("{} is not a valid torrent", path.display()))?;
    // Names, paths, comments and trackers' error messages come from others: shown without
    // their control characters (no escape sequence reaches the terminal).
    print!("{}", printable(&describe(&m)));
    if args.scrape {
        let urls: Vec<String> = m.trackers().into_iter().flatten().collect();
        for line in scrape_report(&urls, m.info_hash)? {
            println!("{}", printable(&line));
        }
    }
    Ok(())
}

/// Every tracker's counts for `info_hash`, asked at once; one line each, in tier order.
fn scrape_report(urls: &[String], info_hash: InfoHash) -> anyhow::Result<Vec<String>> {
    let mut unique: Vec<&str> = Vec::new();
    for u in urls {
        if !unique.contains(&u.as_str()) {
            unique.push(u);
        }
    }
    if unique.is_empty() {
        return Ok(vec![line_with_key("scrape", "no trackers to ask")]);
    }
    let skipped = unique.len().saturating_sub(MAX_SCRAPED);
    unique.truncate(MAX_SCRAPED);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let udp = crate::settings::scrape_trackers();
    let bound = udp.timeout + SCRAPE_SLACK;
    let results: Vec<Result<ScrapeStats, String>> = rt.block_on(async {
        let trackers = Trackers::new(udp);
        let mut set = tokio::task::JoinSet::new();
        for (i, url) in unique.iter().enumerate() {
            let (t, url) = (trackers.clone(), (*url).to_owned());
            set.spawn(async move {
                let r = tokio::time::timeout(bound, scrape_once(&t, &url, info_hash)).await;
                (i, r)
            });
        }
        let mut out: Vec<Result<ScrapeStats, String>> =
            vec![Err("no answer in time".into()); unique.len()];
        while let Some(done) = set.join_next().await {
            if let Ok((i, r)) = done
                && let Some(slot) = out.get_mut(i)
            {
                *slot = match r {
                    Ok(Ok(s)) => Ok(s),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("no answer in time".into()),
                };
            }
        }
        out
    });
    let mut lines: Vec<String> = unique
        .iter()
        .zip(&results)
        .enumerate()
        .map(|(i, (url, r))| scrape_line(if i == 0 { "scrape" } else { "" }, url, r))
        .collect();
    if skipped > 0 {
        lines.push(line_with_key(
            "",
            &format!("({skipped} more trackers not asked)"),
        ));
    }
    Ok(lines)
}

/// `KEY  URL  seeders S  leechers L  completed C`, or the error after the URL; the URL and then
/// the error are cut to keep the line within [`WIDTH`] columns.
pub fn scrape_line(key: &str, url: &str, r: &Result<ScrapeStats, String>) -> String {
    let room = WIDTH - KEY;
    let tail = match r {
        Ok(s) => format!(
            "seeders {}  leechers {}  completed {}",
            count(s.complete),
            count(s.incomplete),
            count(s.downloaded)
        ),
        // The error gets what a URL of up to 40 columns leaves.
        Err(e) => {
            let url_cols = cols(url).min(40);
            fit_name(&format!("error: {e}"), room - 2 - url_cols)
        }
    };
    let url = fit_name(url, room.saturating_sub(2 + cols(&tail)).max(8));
    line_with_key(key, &format!("{url}  {tail}"))
}

fn line_with_key(key: &str, rest: &str) -> String {
    format!("{key:<w$}{rest}", w = KEY)
}

/// A count in at most 6 columns: exact below a million, then `12.3M`, `4.5G`...
fn count(n: u64) -> String {
    if n < 1_000_000 {
        return n.to_string();
    }
    let mut v = n as f64 / 1e6;
    for unit in ["M", "G", "T", "P"] {
        if v < 999.95 {
            return format!("{v:.1}{unit}");
        }
        v /= 1000.0;
    }
    format!("{v:.1}E")
}

/// The report `swarm info` prints.
pub fn describe(m: &Metainfo) -> String {
    let i = &m.info;
    let g = i.geometry();
    let mut s = String::new();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(s, "{k:<11} {v}");
    };
    line("name", i.name());
    line("info-hash", &m.info_hash.to_hex());
    line("magnet", &m.magnet().to_string());
    line(
        "size",
        &format!("{} ({} bytes)", human(i.total_length()), i.total_length()),
    );
    let last = g.last_piece_len();
    let pieces = if last == g.nominal_piece_len() {
        format!(
            "{} x {}",
            g.piece_count(),
            human(u64::from(i.piece_length()))
        )
    } else {
        format!(
            "{} x {} (last {})",
            g.piece_count(),
            human(u64::from(i.piece_length())),
            human(u64::from(last))
        )
    };
    line("pieces", &pieces);
    line("private", if i.is_private() { "yes" } else { "no" });
    if let Some(src) = i.source() {
        line("source", src);
    }
    let tiers = m.trackers();
    if tiers.is_empty() {
        line("trackers", "none");
    }
    for (n, tier) in tiers.iter().enumerate() {
        let k = if n == 0 { "trackers" } else { "" };
        line(k, &format!("tier {}: {}", n + 1, tier.join(" ")));
    }
    for (n, url) in m.url_list.iter().enumerate() {
        line(if n == 0 { "web seeds" } else { "" }, url);
    }
    if let Some(c) = &m.comment {
        line("comment", c);
    }
    if let Some(c) = &m.created_by {
        line("created by", c);
    }
    if let Some(t) = m.creation_date {
        line("created on", &format!("{} (unix {t})", utc_date(t)));
    }
    let real = i.files().iter().filter(|f| !f.pad).count();
    line("files", &real.to_string());
    for f in i.files() {
        let pad = if f.pad { " (padding)" } else { "" };
        let _ = writeln!(
            s,
            "  {:>12}  {}{pad}",
            human(f.length),
            f.relative_path().display()
        );
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds (proleptic Gregorian calendar).
pub fn utc_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil-from-days: shift the epoch to 0000-03-01 so leap days fall at the end of a year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_lines_fit_80_columns() {
        let s = ScrapeStats {
            complete: 3,
            downloaded: 7,
            incomplete: 1,
        };
        let line = scrape_line("scrape", "udp://tracker.example.org:1337", &Ok(s));
        assert_eq!(
            line,
            "scrape      udp://tracker.example.org:1337  seeders 3  leechers 1  completed 7"
        );
        assert!(cols(&line) <= WIDTH);
        let cut = scrape_line("", "udp://tracker.example.org:1337/announce", &Ok(s));
        assert_eq!(
            cut,
            "            udp://tracker.example.org:1337/…  seeders 3  leechers 1  completed 7"
        );
        let huge = ScrapeStats {
            complete: u64::MAX,
            downloaded: 999_999,
            incomplete: 1_234_567,
        };
        let long_url = format!("https://{}/announce?passkey=abc", "x".repeat(200));
        for (url, r) in [
            (long_url.as_str(), Ok(huge)),
            (long_url.as_str(), Err("x".repeat(300))),
            (
                "udp://a:1",
                Err("no answer to the connect request".to_owned()),
            ),
            ("http://\u{1b}[2Jevil/announce", Ok(s)),
        ] {
            let line = scrape_line("", url, &r);
            assert!(cols(&line) <= WIDTH, "{} columns: {line}", cols(&line));
            assert!(!line.contains('\u{1b}'), "{line}");
            match r {
                Ok(_) => assert!(line.contains("completed"), "{line}"),
                Err(_) => assert!(line.contains("error: "), "{line}"),
            }
        }
        assert_eq!(count(999_999), "999999");
        assert_eq!(count(1_234_567), "1.2M");
        assert_eq!(count(u64::MAX), "18.4E");
    }

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_date(-1), "1969-12-31 23:59:59 UTC");
        // Extreme values do not panic.
        let _ = utc_date(i64::MAX);
        let _ = utc_date(i64::MIN);
    }
}
