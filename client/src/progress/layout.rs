//! How a line is laid out in [`WIDTH`] columns: bar and message styles, names cut by
//! columns, figures dropped least useful first, compact sizes and times.

use std::fmt;

use indicatif::{ProgressState, ProgressStyle};

/// The terminal width lines are laid out for.
pub const WIDTH: usize = 80;
/// A name is never cut shorter than this; a download bar's name is cut to exactly this.
pub(super) const NAME_MIN: usize = 16;
/// The shortest and longest download bar.
pub(super) const BAR_MIN: usize = 10;
pub(super) const BAR_MAX: usize = 30;
/// Columns a message wants to show everything, a little more than the usual widest: a
/// download's ` 42% 431 MiB/1.0 GiB ↓ 98 MiB/s ↑ 0 B/s 3 peers eta 6s` (54), a seed's
/// `seeding ↑ 98 MiB/s 2.3 GiB sent 3 peers` (39). A name is cut to leave them room.
pub(super) const DOWNLOAD_WANTS: usize = 56;
pub(super) const SEEDING_WANTS: usize = 40;
/// Columns around a download bar (` [`, `] `), between name and message on a seed's line
/// (`  `) and a plain line (`: `).
pub(super) const BAR_GAPS: usize = 4;
pub(super) const SEEDING_GAP: usize = 2;
pub(super) const PLAIN_GAP: usize = 2;
/// A hashing or checking bar's name.
pub(super) const BYTES_NAME: usize = WIDTH - BAR_GAPS - BAR_MIN - BYTES_MSG;
/// The widest message of a hashing or checking bar: `100% 999 GiB/999 GiB 999 MiB/s eta 9h59m`.
pub(super) const BYTES_MSG: usize = 40;
/// A seed's name.
pub(super) const SEEDING_NAME: usize = WIDTH - SEEDING_GAP - SEEDING_WANTS;

/// What a torrent's line shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Figures {
    pub(super) total: u64,
    pub(super) done: u64,
    /// Bytes/s.
    pub(super) down: f64,
    pub(super) up: f64,
    /// Bytes sent in all.
    pub(super) uploaded: u64,
    pub(super) peers: usize,
}

impl Figures {
    /// A download's parts: the first two always, then rate in, time left, peers, rate out.
    fn download_parts(&self) -> Vec<Part> {
        let mut parts = vec![
            Part::new(0, Percent(self.done, self.total).to_string()),
            Part::new(0, format!("{}/{}", Bytes(self.done), Bytes(self.total))),
            Part::new(1, format!("↓ {}/s", Bytes(self.down as u64))),
            Part::new(4, format!("↑ {}/s", Bytes(self.up as u64))),
            Part::new(3, peers(self.peers)),
        ];
        if self.down >= 1.0 {
            let left = (self.total - self.done) as f64 / self.down;
            parts.push(Part::new(2, format!("eta {}", Eta(left))));
        }
        parts
    }

    /// A seed's parts.
    fn seeding_parts(&self) -> Vec<Part> {
        vec![
            Part::new(0, "seeding".to_owned()),
            Part::new(1, format!("↑ {}/s", Bytes(self.up as u64))),
            Part::new(3, format!("{} sent", Bytes(self.uploaded))),
            Part::new(2, peers(self.peers)),
        ]
    }
}

/// `1 peer`, `3 peers`.
pub(super) fn peers(n: usize) -> String {
    format!("{n} {}", if n == 1 { "peer" } else { "peers" })
}

/// A download bar's layout: `NAME [====>     ]  42% 431 MiB/1.0 GiB ↓ 98 MiB/s ...`. The
/// name and the bar keep their widths for the whole download, so the bar does not jump as
/// the figures change.
#[derive(Debug, Clone)]
pub(super) struct BarLayout {
    pub(super) name: String,
    pub(super) bar: usize,
    /// Columns left for the message.
    pub(super) room: usize,
}

impl BarLayout {
    pub(super) fn new(name: &str) -> Self {
        let name = fit_name(name, NAME_MIN);
        let used = BAR_GAPS + cols(&name);
        let bar = WIDTH
            .saturating_sub(used + DOWNLOAD_WANTS)
            .clamp(BAR_MIN, BAR_MAX);
        BarLayout {
            room: WIDTH - used - bar,
            name,
            bar,
        }
    }

    fn template(&self) -> String {
        format!(
            "{{prefix:.bold}} [{{bar:{}.green/blue}}] {{wide_msg}}",
            self.bar
        )
    }

    pub(super) fn style(&self) -> ProgressStyle {
        ProgressStyle::with_template(&self.template())
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ")
    }

    pub(super) fn message(&self, f: &Figures) -> String {
        fit(&f.download_parts(), self.room)
    }
}

pub(super) fn seeding_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:.bold}  {wide_msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

pub(super) fn seeding_message(f: &Figures, room: usize) -> String {
    fit(&f.seeding_parts(), room)
}

/// A hashing or checking bar: `checking NAME [====>     ]  42% 431 MiB/1.0 GiB 98 MiB/s eta
/// 6s`, from indicatif's own counters (the callers only add bytes), beside a prefix of
/// `prefix_cols` columns.
pub(super) fn bytes_style(prefix_cols: usize) -> ProgressStyle {
    // The bar takes what the name leaves, so the line is WIDTH columns at most.
    let bar = WIDTH
        .saturating_sub(BAR_GAPS + BYTES_MSG + prefix_cols)
        .clamp(BAR_MIN, BAR_MAX);
    let template = format!(
        "{{prefix:.bold}} [{{bar:{bar}.cyan/blue}}] {{pct}} {{done}}/{{whole}} {{speed}}/s eta {{left}}"
    );
    ProgressStyle::with_template(&template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
        .with_key("pct", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", Percent(s.pos(), s.len().unwrap_or(s.pos())));
        })
        .with_key("done", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", Bytes(s.pos()));
        })
        .with_key("whole", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", Bytes(s.len().unwrap_or(s.pos())));
        })
        .with_key("speed", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", Bytes(s.per_sec() as u64));
        })
        .with_key("left", |s: &ProgressState, w: &mut dyn fmt::Write| {
            let _ = write!(w, "{}", Eta(s.eta().as_secs_f64()));
        })
}

/// The plain status line printed when stdout is not a terminal: `NAME: 42% 431 MiB/1.0 GiB
/// ↓ 98 MiB/s ↑ 0 B/s 3 peers eta 6s`, or `NAME: seeding ↑ 0 B/s 1.0 GiB sent 1 peer`.
pub(super) fn plain_line(name: &str, f: &Figures) -> String {
    let (parts, wants) = if f.done == f.total {
        (f.seeding_parts(), SEEDING_WANTS)
    } else {
        (f.download_parts(), DOWNLOAD_WANTS)
    };
    let name = fit_name(name, WIDTH - PLAIN_GAP - wants);
    let msg = fit(&parts, WIDTH - PLAIN_GAP - cols(&name));
    // No column to keep here: ` 42%` loses its padding.
    format!("{name}: {}", msg.trim_start())
}

/// A piece of a message, with its rank: the highest ranks are left out first.
#[derive(Debug, Clone)]
pub(super) struct Part {
    pub(super) rank: u8,
    pub(super) text: String,
}

impl Part {
    pub(super) fn new(rank: u8, text: String) -> Self {
        Part { rank, text }
    }
}

/// `parts` in their order, joined by spaces, leaving out the highest ranks until the line is
/// at most `room` columns (rank 0 stays whatever its width).
pub(super) fn fit(parts: &[Part], room: usize) -> String {
    let width = |max_rank: u8| -> usize {
        let kept = parts.iter().filter(|p| p.rank <= max_rank);
        kept.clone().map(|p| cols(&p.text)).sum::<usize>() + kept.count().saturating_sub(1)
    };
    let mut max_rank = parts.iter().map(|p| p.rank).max().unwrap_or(0);
    while max_rank > 0 && width(max_rank) > room {
        max_rank -= 1;
    }
    let kept: Vec<&str> = parts
        .iter()
        .filter(|p| p.rank <= max_rank)
        .map(|p| p.text.as_str())
        .collect();
    kept.join(" ")
}

/// `name` made safe to show (control characters, such as escape sequences a torrent could
/// carry, become `?`) and cut to `max` columns with an ellipsis.
pub(crate) fn fit_name(name: &str, max: usize) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if cols(&clean) <= max {
        return clean;
    }
    let mut out = String::new();
    let mut used = 0;
    for c in clean.chars() {
        let w = char_cols(c);
        if used + w + 1 > max {
            break;
        }
        out.push(c);
        used += w;
    }
    let mut out = out.trim_end().to_owned();
    out.push('…');
    out
}

/// Columns `s` takes on a terminal.
pub(crate) fn cols(s: &str) -> usize {
    s.chars().map(char_cols).sum()
}

/// Columns a character takes: 2 for the wide East Asian scripts and emoji, else 1 (close
/// enough for names; combining marks are rare in them).
pub(super) fn char_cols(c: char) -> usize {
    match u32::from(c) {
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6
        | 0x1F300..=0x1F64F
        | 0x1F900..=0x1F9FF
        | 0x20000..=0x3FFFD => 2,
        _ => 1,
    }
}

/// ` 42%` of done out of a whole, rounded down: 100% means done.
#[derive(Debug, Clone, Copy)]
pub(super) struct Percent(pub(super) u64, pub(super) u64);

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.1 {
            0 => 100,
            whole => u128::from(self.0.min(whole)) * 100 / u128::from(whole),
        };
        write!(f, "{p:>3}%")
    }
}

/// Bytes with three significant digits and binary units, at most 7 columns: `512 B`,
/// `9.8 KiB`, `431 MiB`, `1.0 GiB`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bytes(pub(super) u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut v = self.0 as f64;
        let mut unit = 0;
        // 1000 to 1023 of a unit read as 0.98 to 1.0 of the next: never four digits.
        while v >= 999.5 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else if v < 9.95 {
            write!(f, "{v:.1} {}", UNITS[unit])
        } else {
            write!(f, "{v:.0} {}", UNITS[unit])
        }
    }
}

/// Time left, compactly: `6s`, `3m12s`, `42m`, `1h04m`, `42h`, `2d05h`, `42d`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Eta(pub(super) f64);

impl fmt::Display for Eta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_finite() || self.0 >= 100.0 * 86_400.0 {
            return f.write_str(">99d");
        }
        let s = self.0.max(0.0).ceil() as u64;
        let (m, h, d) = (s / 60, s / 3600, s / 86_400);
        match s {
            0..60 => write!(f, "{s}s"),
            60..600 => write!(f, "{m}m{:02}s", s % 60),
            600..3600 => write!(f, "{m}m"),
            3600..36_000 => write!(f, "{h}h{:02}m", m % 60),
            36_000..360_000 => write!(f, "{h}h"),
            _ if d < 10 => write!(f, "{d}d{:02}h", h % 24),
            _ => write!(f, "{d}d"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use indicatif::{ProgressBar, ProgressDrawTarget};
    use parking_lot::Mutex;
    use std::sync::Arc;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    fn downloading(peers: usize) -> Figures {
        Figures {
            total: GIB,
            done: 431 * MIB,
            down: 98.0 * MIB as f64,
            up: 0.0,
            uploaded: 0,
            peers,
        }
    }

    fn seeding(peers: usize) -> Figures {
        Figures {
            total: GIB,
            done: GIB,
            down: 0.0,
            up: 12.5 * MIB as f64,
            uploaded: 7 * GIB,
            peers,
        }
    }

    /// The widest figures there are.
    fn widest() -> Figures {
        Figures {
            total: 999 * GIB,
            done: 998 * GIB,
            down: 999.0 * MIB as f64,
            up: 999.0 * MIB as f64,
            uploaded: 999 * (1 << 50),
            peers: 200,
        }
    }

    const LONG: &str = "Ubuntu 24.04.1 LTS (Noble Numbat) desktop amd64 full install media.iso";

    /// An 80-column terminal of one line that keeps what indicatif last drew there, without
    /// colour codes.
    #[derive(Debug, Clone, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            WIDTH as u16
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)?;
            self.write_str("\n")
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            let mut out = self.0.lock();
            let mut chars = s.chars();
            while let Some(c) = chars.next() {
                if c == '\x1b' {
                    // CSI: up to and including its final letter.
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.lock().clear();
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line indicatif draws for a bar of `style` on `WIDTH` columns.
    fn draw(style: ProgressStyle, prefix: &str, msg: &str, pos: u64, len: u64) -> String {
        let screen = Screen::default();
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let pb = ProgressBar::with_draw_target(Some(len), target);
        pb.set_style(style);
        pb.set_prefix(prefix.to_owned());
        pb.set_message(msg.to_owned());
        pb.set_position(pos);
        pb.abandon();
        let out = screen.0.lock().clone();
        out.lines().last().unwrap_or_default().trim_end().to_owned()
    }

    /// A download's line as indicatif draws it.
    fn bar_line(name: &str, f: &Figures) -> String {
        let layout = BarLayout::new(name);
        draw(
            layout.style(),
            &layout.name,
            &layout.message(f),
            f.done,
            f.total,
        )
    }

    /// A seed's line as indicatif draws it.
    fn seeding_line(name: &str, f: &Figures) -> String {
        let name = fit_name(name, SEEDING_NAME);
        let msg = seeding_message(f, WIDTH - SEEDING_GAP - cols(&name));
        draw(seeding_style(), &name, &msg, f.done, f.total)
    }

    fn fits(line: &str) {
        assert!(
            line.chars().count() <= WIDTH && cols(line) <= WIDTH,
            "{} chars: {line:?}",
            line.chars().count()
        );
    }

    #[test]
    fn a_download_with_one_peer_fits_and_says_peer() {
        let line = bar_line("ubuntu.iso", &downloading(1));
        fits(&line);
        assert_eq!(
            line,
            "ubuntu.iso [====>     ]  42% 431 MiB/1.0 GiB ↓ 98 MiB/s ↑ 0 B/s 1 peer eta 7s"
        );
        let plain = plain_line("ubuntu.iso", &downloading(1));
        fits(&plain);
        assert_eq!(
            plain,
            "ubuntu.iso: 42% 431 MiB/1.0 GiB ↓ 98 MiB/s ↑ 0 B/s 1 peer eta 7s"
        );
    }

    #[test]
    fn a_download_with_three_peers_fits() {
        let line = bar_line("ubuntu.iso", &downloading(3));
        fits(&line);
        assert!(line.contains(" 3 peers "), "{line}");
        fits(&plain_line("ubuntu.iso", &downloading(3)));
    }

    #[test]
    fn a_long_name_is_cut_and_the_least_useful_figures_go_first() {
        let line = bar_line(LONG, &downloading(3));
        fits(&line);
        assert_eq!(
            line,
            "Ubuntu 24.04.1… [====>     ]  42% 431 MiB/1.0 GiB ↓ 98 MiB/s 3 peers eta 7s"
        );
        let plain = plain_line(LONG, &downloading(3));
        fits(&plain);
        assert!(plain.starts_with("Ubuntu 24.04.1 LTS (N…: 42% "), "{plain}");
    }

    #[test]
    fn the_widest_figures_fit() {
        for name in [
            "x",
            "ubuntu.iso",
            LONG,
            "日本語のとても長い名前のファイル.mkv",
        ] {
            fits(&bar_line(name, &widest()));
            fits(&seeding_line(name, &widest()));
            fits(&plain_line(name, &widest()));
            let mut done = widest();
            done.done = done.total;
            fits(&plain_line(name, &done));
        }
    }

    #[test]
    fn a_seed_line_fits_and_counts_peers_right() {
        let line = seeding_line("ubuntu.iso", &seeding(1));
        fits(&line);
        assert_eq!(line, "ubuntu.iso  seeding ↑ 12 MiB/s 7.0 GiB sent 1 peer");
        let line = seeding_line(LONG, &seeding(2));
        fits(&line);
        assert!(line.contains(" 2 peers"), "{line}");
        let plain = plain_line("ubuntu.iso", &seeding(1));
        assert_eq!(plain, "ubuntu.iso: seeding ↑ 12 MiB/s 7.0 GiB sent 1 peer");
    }

    #[test]
    fn a_download_layout_adds_up_to_the_width() {
        for name in ["x", "ubuntu.iso", LONG] {
            let l = BarLayout::new(name);
            assert!((BAR_MIN..=BAR_MAX).contains(&l.bar), "{name}: {}", l.bar);
            assert_eq!(cols(&l.name) + BAR_GAPS + l.bar + l.room, WIDTH, "{name}");
        }
    }

    #[test]
    fn a_hashing_bar_fits() {
        for name in [
            "hashing",
            "checking ubuntu.iso",
            &format!("checking {LONG}"),
        ] {
            let prefix = fit_name(name, BYTES_NAME);
            // The widest figures: 999 GiB of 999 GiB, hashed over hours.
            let line = draw(
                bytes_style(cols(&prefix)),
                &prefix,
                "",
                998 * GIB,
                999 * GIB,
            );
            fits(&line);
            assert!(line.starts_with(&prefix), "{line}");
            assert!(line.contains("]  99% 998 GiB/999 GiB "), "{line}");
        }
    }

    #[test]
    fn names_are_cleaned_and_cut_by_columns() {
        assert_eq!(fit_name("a\x1b[2Jb", 20), "a?[2Jb");
        assert_eq!(fit_name("abcdefgh", 5), "abcd…");
        assert_eq!(fit_name("abcde", 5), "abcde");
        // Wide characters take two columns each.
        assert_eq!(fit_name("日本語ファイル", 7), "日本語…");
        assert_eq!(cols("日本語…"), 7);
    }

    #[test]
    fn bytes_read_in_at_most_seven_columns() {
        let cases = [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.0 KiB"),
            (10 * 1024 - 1, "10 KiB"),
            (431 * MIB, "431 MiB"),
            (1000 * MIB, "1.0 GiB"),
            (GIB, "1.0 GiB"),
            (5 * GIB / 2, "2.5 GiB"),
            (u64::MAX, "16 EiB"),
        ];
        for (n, want) in cases {
            assert_eq!(Bytes(n).to_string(), want, "{n}");
        }
        for shift in 0..64 {
            let p = 1u128 << shift;
            for n in [p - 1, p, p * 999 / 1000].map(|n| n as u64) {
                assert!(Bytes(n).to_string().len() <= 7, "{n}: {}", Bytes(n));
            }
        }
    }

    #[test]
    fn time_left_is_compact() {
        let cases = [
            (0.0, "0s"),
            (5.2, "6s"),
            (59.0, "59s"),
            (192.0, "3m12s"),
            (2520.0, "42m"),
            (3840.0, "1h04m"),
            (151_200.0, "42h"),
            (190_800.0, "53h"),
            (400_000.0, "4d15h"),
            (3_628_800.0, "42d"),
            (1e12, ">99d"),
            (f64::INFINITY, ">99d"),
        ];
        for (secs, want) in cases {
            assert_eq!(Eta(secs).to_string(), want, "{secs}");
        }
    }

    #[test]
    fn fit_drops_the_highest_ranks_first_and_keeps_the_order() {
        let parts = [
            Part::new(0, "aaaa".into()),
            Part::new(2, "bb".into()),
            Part::new(1, "cc".into()),
        ];
        assert_eq!(fit(&parts, 100), "aaaa bb cc");
        assert_eq!(fit(&parts, 10), "aaaa bb cc");
        assert_eq!(fit(&parts, 9), "aaaa cc");
        assert_eq!(fit(&parts, 1), "aaaa");
    }
}
