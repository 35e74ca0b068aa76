//! `swarm info`: print what a .torrent file contains.

use std::fmt::Write as _;

use anyhow::Context;
use metainfo::Metainfo;

use crate::cli::InfoArgs;
use crate::size::human;

/// Largest .torrent file read (the parser's own cap).
const MAX_TORRENT_FILE: u64 = metainfo::MAX_TORRENT_BYTES as u64;

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
    print!("{}", describe(&m));
    Ok(())
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
