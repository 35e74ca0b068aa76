//! Where log lines go and what they look like.
//!
//! Every line goes to stderr, through the progress bars when they are on the screen (see
//! [`progress::above_bars`]), so a warning never lands in the middle of a bar. Without `-v` or
//! `RUST_LOG` a line is what a person reads -- `warning: announce failed: tracker says: busy
//! (torrent=a.iso, retry_in=30)` -- with no timestamp, module path or colour ([`Plain`]);
//! with them, it is tracing-subscriber's full format, for whoever is debugging.

use std::fmt::{self, Write as _};
use std::io::{self, IsTerminal};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::progress;

/// Installs the process's subscriber: `RUST_LOG` wins, else `-v` raises the level (warn, info,
/// debug, trace). A second call (tests calling `main` twice) keeps the first.
pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let from_env = tracing_subscriber::EnvFilter::try_from_default_env().ok();
    let detailed = verbose > 0 || from_env.is_some();
    let filter = from_env.unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let writer = Stderr::new();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if detailed {
        // Colour codes only on a terminal: logs in files and pipes stay plain text.
        builder.with_ansi(writer.terminal).try_init()
    } else {
        builder.event_format(Plain).try_init()
    };
}

/// Writes each formatted line to stderr, above the progress bars when stderr shares the
/// terminal with them.
#[derive(Debug, Clone, Copy)]
struct Stderr {
    terminal: bool,
}

impl Stderr {
    fn new() -> Self {
        Stderr {
            terminal: io::stderr().is_terminal(),
        }
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl io::Write for Stderr {
    // tracing-subscriber formats a whole event, then writes it with one `write_all`: one call
    // here, so a line is never split around a redraw of the bars.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let write = || io::stderr().lock().write_all(buf);
        if self.terminal {
            progress::above_bars(write)?;
        } else {
            // Redirected: the bars (on stdout) and the file do not share a screen.
            write()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// One line a person reads: `warning: MESSAGE: ERROR (key=value, ...)`. The `error` field
/// follows the message as its cause, the other fields close the line; the level is the word
/// in front (`error`, `warning`, `info`, ...). No timestamp, target, span or colour; control
/// characters (a tracker's warning is remote text) are replaced, so it stays one line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl<S, N> FormatEvent<S, N> for Plain
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        writeln!(writer, "{}", plain_line(*event.metadata().level(), &fields))
    }
}

/// The word a plain line starts with.
fn label(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn plain_line(level: Level, f: &Fields) -> String {
    let mut line = format!("{}:", label(level));
    if !f.message.is_empty() {
        line.push(' ');
        push_clean(&mut line, &f.message);
    }
    if let Some(e) = &f.error {
        line.push_str(if f.message.is_empty() { " " } else { ": " });
        push_clean(&mut line, e);
    }
    if !f.rest.is_empty() {
        line.push_str(" (");
        for (i, (k, v)) in f.rest.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            let _ = write!(line, "{k}=");
            push_clean(&mut line, v);
        }
        line.push(')');
    }
    line
}

/// Appends `s` with line breaks and tabs as spaces and other control characters (escape
/// sequences) as `?`.
pub(crate) fn push_clean(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| match c {
        '\n' | '\r' | '\t' => ' ',
        c if c.is_control() => '?',
        c => c,
    }));
}

/// An event's fields, as text.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    error: Option<String>,
    rest: Vec<(&'static str, String)>,
}

impl Fields {
    fn add(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "error" => self.error = Some(value),
            // Records from the `log` crate carry where they came from; a person does not need it.
            name if name.starts_with("log.") => {}
            name => self.rest.push((name, value)),
        }
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.add(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields and the message arrive here too, their Debug being their Display.
        self.add(field, format!("{value:?}"));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `emit` logs, formatted by [`Plain`] at the default level (warn).
    fn plain(emit: impl FnOnce()) -> String {
        let out = Capture::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
            .with_writer(move || sink.clone())
            .event_format(Plain)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = out.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_warning_with_fields_is_one_plain_line() {
        let e = "tracker says: swarm is resting";
        let out = plain(|| {
            tracing::warn!(torrent = %"a.iso", error = %e, retry_in = 30, "announce failed");
        });
        assert_eq!(
            out,
            "warning: announce failed: tracker says: swarm is resting (torrent=a.iso, retry_in=30)\n"
        );
    }

    #[test]
    fn a_warning_without_fields_is_its_message() {
        let out = plain(|| tracing::warn!("cannot install signal handlers"));
        assert_eq!(out, "warning: cannot install signal handlers\n");
    }

    #[test]
    fn debug_fields_and_errors_read_plainly() {
        let names = vec!["nosuch.invalid:1".to_owned()];
        let io = io::Error::other("disk on fire");
        let out = plain(|| {
            tracing::warn!(nodes = ?names, "no DHT bootstrap node could be resolved");
            tracing::error!(
                error = &io as &(dyn std::error::Error + 'static),
                "torrent stopped"
            );
        });
        assert_eq!(
            out,
            "warning: no DHT bootstrap node could be resolved (nodes=[\"nosuch.invalid:1\"])\n\
             error: torrent stopped: disk on fire\n"
        );
    }

    #[test]
    fn remote_text_cannot_break_the_line_or_the_terminal() {
        let w = "line one\nline two \x1b[2J\x07";
        let out = plain(|| tracing::warn!(warning = %w, "tracker warning"));
        assert_eq!(
            out,
            "warning: tracker warning (warning=line one line two ?[2J?)\n"
        );
    }

    #[test]
    fn info_and_below_are_filtered_at_the_default_level() {
        let out = plain(|| {
            tracing::info!("resumed");
            tracing::debug!("peer added");
        });
        assert_eq!(out, "");
    }
}
