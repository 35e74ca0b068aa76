//! What the user sees: indicatif bars on a terminal, a plain status line every few seconds
//! otherwise, nothing with `--quiet`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{
    HumanBytes, HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use crate::torrent::TorrentShared;

/// How often bars refresh.
const TICK: Duration = Duration::from_millis(500);
/// How often a plain status line is printed when stdout is not a terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The display of one process.
#[derive(Debug, Clone)]
pub struct Ui {
    multi: MultiProgress,
    quiet: bool,
    tty: bool,
}

impl Ui {
    /// Bars when stdout is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stdout().is_terminal();
        let target = if tty && !quiet {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        };
        Ui {
            multi: MultiProgress::with_draw_target(target),
            quiet,
            tty,
        }
    }

    /// Bars are drawn.
    pub fn bars(&self) -> bool {
        self.tty && !self.quiet
    }

    /// Prints a line above the bars (or plainly), unless quiet.
    pub fn println(&self, line: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        if self.bars() {
            let _ = self.multi.println(line.as_ref());
        } else {
            println!("{}", line.as_ref());
        }
    }

    /// A bar over `total` bytes (hashing, checking).
    pub fn bytes_bar(&self, prefix: &str, total: u64) -> ProgressBar {
        if !self.bars() {
            return ProgressBar::hidden();
        }
        let pb = self.multi.add(ProgressBar::new(total));
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:.bold} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        pb.set_prefix(prefix.to_owned());
        pb
    }

    /// A spinner with a message (metadata fetches); hidden without bars.
    pub fn spinner(&self, msg: &str) -> ProgressBar {
        if !self.bars() {
            return ProgressBar::hidden();
        }
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.enable_steady_tick(Duration::from_millis(200));
        pb.set_message(msg.to_owned());
        pb
    }

    /// Keeps a torrent's bar (or status line) current until it stops.
    pub fn track(&self, t: Arc<TorrentShared>) -> tokio::task::JoinHandle<()> {
        let ui = self.clone();
        tokio::spawn(async move { ui.track_loop(t).await })
    }

    async fn track_loop(&self, t: Arc<TorrentShared>) {
        let total = t.total_len();
        let pb = self.bytes_bar(t.name(), total);
        if self.bars() {
            pb.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30.green/blue}] {percent:>3}% {bytes}/{total_bytes} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
        }
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
                _ = t.stopped().cancelled() => break,
                _ = tick.tick() => {}
            }
            let s = t.status();
            let now = Instant::now();
            let d = down.update(now, s.downloaded);
            let u = up.update(now, s.uploaded);
            let done = total - s.left;
            let seeding = s.left == 0;
            let msg = if seeding {
                format!(
                    "seeding: up {}/s, {} sent, {} peers ({} unchoked)",
                    HumanBytes(u as u64),
                    HumanBytes(s.uploaded),
                    s.peers,
                    s.unchoked_by_us
                )
            } else {
                let eta = if d > 1.0 {
                    HumanDuration(Duration::from_secs_f64(s.left as f64 / d)).to_string()
                } else {
                    "-".into()
                };
                format!(
                    "down {}/s up {}/s, {} peers ({} unchoking us), eta {eta}",
                    HumanBytes(d as u64),
                    HumanBytes(u as u64),
                    s.peers,
                    s.unchoking_us
                )
            };
            if self.bars() {
                pb.set_position(done);
                pb.set_message(msg);
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
                println!(
                    "{}: {:.1}% {}/{} {}",
                    t.name(),
                    done as f64 * 100.0 / total.max(1) as f64,
                    HumanBytes(done),
                    HumanBytes(total),
                    msg
                );
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
