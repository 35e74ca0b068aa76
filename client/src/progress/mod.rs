//! What the user sees: indicatif bars on a terminal, a plain status line every few seconds
//! otherwise, nothing with `--quiet`.
//!
//! Lines are laid out for an 80-column terminal ([`WIDTH`]): a long name is cut with an
//! ellipsis and the least useful figures are left out until the line fits; a wider terminal
//! shows the same line, and a narrower one cuts the message's tail (indicatif's `wide_msg`)
//! rather than wrapping. While bars are drawn, log lines are printed above them
//! ([`above_bars`]).

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

mod layout;

pub use layout::WIDTH;
use layout::*;
pub(crate) use layout::{cols, fit_name};

/// How often bars refresh.
const TICK: Duration = Duration::from_millis(500);
/// How often a plain status line is printed when stdout is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// A torrent as its display sees it.
pub trait Progress: Send + Sync + 'static {
    /// Its name.
    fn name(&self) -> &str;
    /// Its size in bytes.
    fn total_len(&self) -> u64;
    /// Its counters now.
    fn stats(&self) -> engine::Stats;
    /// Cancelled when it stops: the display then ends.
    fn stopped(&self) -> CancellationToken;
}

/// The bars on the screen, if any, with the id of the [`Ui`] that drew them.
static DRAWN: Mutex<Option<(u64, MultiProgress)>> = Mutex::new(None);
static NEXT_UI: AtomicU64 = AtomicU64::new(0);

/// Runs `print`, which writes to the terminal, with the bars taken off the screen and drawn
/// again below what it printed; plainly when no bars are drawn.
pub fn above_bars<R>(print: impl FnOnce() -> R) -> R {
    // Not under DRAWN's lock: `suspend` takes the bars' own lock.
    let drawn = DRAWN.lock().as_ref().map(|(_, multi)| multi.clone());
    match drawn {
        Some(multi) => multi.suspend(print),
        None => print(),
    }
}

/// Registers a [`Ui`]'s bars in [`DRAWN`] while any clone of it lives.
#[derive(Debug)]
struct Drawn(u64);

impl Drawn {
    fn register(multi: &MultiProgress) -> Self {
        let id = NEXT_UI.fetch_add(1, Ordering::Relaxed);
        *DRAWN.lock() = Some((id, multi.clone()));
        Drawn(id)
    }
}

impl Drop for Drawn {
    fn drop(&mut self) {
        let mut drawn = DRAWN.lock();
        if drawn.as_ref().is_some_and(|(id, _)| *id == self.0) {
            *drawn = None;
        }
    }
}

/// The display of one process.
#[derive(Debug, Clone)]
pub struct Ui {
    multi: MultiProgress,
    quiet: bool,
    tty: bool,
    /// Set while bars are drawn: log lines go above them.
    _drawn: Option<Arc<Drawn>>,
}

impl Ui {
    /// Bars when stdout is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        let bars = tty && !quiet;
        let target = if bars {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let drawn = bars.then(|| Arc::new(Drawn::register(&multi)));
        Ui {
            multi,
            quiet,
            tty,
            _drawn: drawn,
        }
    }

    /// Bars are drawn.
    pub fn bars(&self) -> bool {
        self.tty && !self.quiet
    }

    /// Prints a line above the bars (or plainly), unless quiet. Control characters other than
    /// line breaks become `?`: the lines carry torrent names and paths from files we did not
    /// write, which must not move the cursor or recolour the terminal.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let line = printable(line.as_ref());
        if self.bars() {
            let _ = self.multi.println(&line);
        } else {
            println!("{line}");
        }
    }

    /// A bar over `total` bytes (hashing, checking).
    pub fn bytes_bar(&self, prefix: &str, total: u64) -> ProgressBar {
        if !self.bars() {
            return ProgressBar::hidden();
        }
        let pb = self.multi.add(ProgressBar::new(total));
        let prefix = fit_name(prefix, BYTES_NAME);
        pb.set_style(bytes_style(cols(&prefix)));
        pb.set_prefix(prefix);
        pb
    }

    /// A spinner with a message (metadata fetches); hidden without bars.
    pub fn spinner(&self, msg: &str) -> ProgressBar {
        if !self.bars() {
            return ProgressBar::hidden();
        }
        let pb = self.multi.add(ProgressBar::new_spinner());
        // `wide_msg`: a long message is cut at the terminal's edge instead of wrapping.
        pb.set_style(
            ProgressStyle::with_template("{spinner:.green} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        pb.set_message(msg.to_owned());
        pb
    }

    /// Keeps a torrent's bar (or status line) current until it stops.
    pub fn track(&self, t: Arc<dyn Progress>) -> tokio::task::JoinHandle<()> {
        let ui = self.clone();
        tokio::spawn(async move { ui.track_loop(t).await })
    }

    async fn track_loop(&self, t: Arc<dyn Progress>) {
        let total = t.total_len();
        let stopped = t.stopped();
        let pb = if self.bars() {
            self.multi.add(ProgressBar::new(total))
        } else {
            ProgressBar::hidden()
        };
        let bar = BarLayout::new(t.name());
        let seeding_name = fit_name(t.name(), SEEDING_NAME);
        // Which style the bar has: the download's (false) or the seed's (true).
        let mut styled: Option<bool> = None;
        let mut down = RateMeter::default();
        let mut up = RateMeter::default();
        let mut last_plain = Instant::now();
        // Off a terminal only a line every PLAIN_EVERY is wanted: wake that often, not more
        // (a `swarm seed` of a thousand torrents would otherwise wake 2,000 times a second).
        let mut tick = tokio::time::interval(if self.bars() { TICK } else { PLAIN_EVERY });
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_seeding_line: Option<(u64, usize)> = None;
        loop {
            tokio::select! {
                _ = stopped.cancelled() => break,
                _ = tick.tick() => {}
            }
            let s = t.stats();
            let now = Instant::now();
            let f = Figures {
                total,
                done: total.saturating_sub(s.left),
                down: down.update(now, s.downloaded),
                up: up.update(now, s.uploaded),
                uploaded: s.uploaded,
                peers: s.peers,
            };
            let seeding = s.left == 0;
            if self.bars() {
                if styled != Some(seeding) {
                    styled = Some(seeding);
                    if seeding {
                        pb.set_style(seeding_style());
                        pb.set_prefix(seeding_name.clone());
                    } else {
                        pb.set_style(bar.style());
                        pb.set_prefix(bar.name.clone());
                    }
                }
                pb.set_position(f.done);
                pb.set_message(if seeding {
                    seeding_message(&f, WIDTH - SEEDING_GAP - cols(&seeding_name))
                } else {
                    bar.message(&f)
                });
            } else if !self.quiet && now.duration_since(last_plain) + TICK >= PLAIN_EVERY {
                // A seed repeats its line only when something changed (bytes sent, peers).
                if seeding {
                    let state = (s.uploaded, s.peers);
                    if last_seeding_line == Some(state) {
                        continue;
                    }
                    last_seeding_line = Some(state);
                }
                last_plain = now;
                println!("{}", plain_line(t.name(), &f));
            }
        }
        pb.finish_and_clear();
    }
}

/// Bytes/s from successive counter readings, smoothed.
#[derive(Debug, Default)]
struct RateMeter {
    last: Option<(Instant, u64)>,
    rate: f64,
}

impl RateMeter {
    fn update(&mut self, now: Instant, total: u64) -> f64 {
        if let Some((t, v)) = self.last {
            let dt = now.duration_since(t).as_secs_f64();
            if dt > 0.0 {
                let r = total.saturating_sub(v) as f64 / dt;
                self.rate = if self.rate == 0.0 {
                    r
                } else {
                    0.6 * self.rate + 0.4 * r
                };
            }
        }
        self.last = Some((now, total));
        self.rate
    }
}

/// `1.0 GiB in 4.2 s (243.1 MiB/s)`.
pub fn summary(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-3);
    format!(
        "{} in {:.1} s ({}/s)",
        HumanBytes(bytes),
        secs,
        HumanBytes((bytes as f64 / secs) as u64)
    )
}

// ---- Line layout -------------------------------------------------------------------------

/// `s` with every control character but `\n` shown as `?`.
pub(crate) fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() && c != '\n' { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn printed_lines_carry_no_escape_sequences() {
        assert_eq!(
            super::printable("done: \u{1b}[2Jevil\u{7}\n  next\r"),
            "done: ?[2Jevil?\n  next?"
        );
    }
}
