//! SIGTERM to `swarm fetch` half-way: it stops cleanly like Ctrl-C (exit 130, no panic), its
//! resume data is on disk and claims the verified pieces (each checked against the seeder's
//! bytes), and a second run completes fetching only the pieces that were missing.
//!
//! (Ctrl-C and SIGKILL are covered by `client_e2e_resume.rs`.)

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use nix::sys::signal::Signal;
use tests::client::{interrupt, wait_for_pieces};
use tests::files::assert_same_bytes;
use tests::process::{Proc, Stream};
use tests::resume::{
    claimed_pieces, claimed_pieces_are_on_disk, only_missing_pieces_received, resume_file,
    resumed_pieces,
};
use tests::seeded::{SeedSpec, Seeded};

/// A bound for a download of a few MB, or for a process to stop.
const TIMEOUT: Duration = Duration::from_secs(40);
/// The first run's rate: the 2 MB file takes about 8 s, far longer than the test waits.
const SLOW: &str = "256K";

#[test]
fn sigterm_exits_130_keeps_resume_data_and_a_rerun_fetches_only_the_rest() -> Result<()> {
    let s = Seeded::start(SeedSpec::new("term.bin", 2 * 1024 * 1024 + 3_001, 81))?;
    let out = s.dir().join("leech");
    let got = s.fetched(&out);

    let mut cmd = s.fetch_command(&out)?;
    cmd.args(["--download-limit", SLOW]);
    let mut first = Proc::spawn(cmd, "leecher-1", &s.logs)?;
    wait_for_pieces(&mut first, &s.data, &got, s.piece_len(), 6, TIMEOUT)?;
    interrupt(&mut first, Signal::SIGTERM, TIMEOUT)?;
    let stdout = first.output(Stream::Stdout);
    ensure!(
        stdout.contains("interrupted; "),
        "no interrupted line:\n{stdout}"
    );

    let resume = resume_file(&out, &s.meta);
    let claimed = claimed_pieces(&resume, &s.meta)?
        .with_context(|| format!("no resume data at {}", resume.display()))?;
    let total = s.piece_count();
    let k = claimed_pieces_are_on_disk(&claimed, &s.data, &got, s.piece_len())?;
    ensure!(
        k > 0 && k < total as usize,
        "the resume data claims {k} of {total} pieces"
    );

    let mut second = Proc::spawn(s.fetch_command(&out)?, "leecher-2", &s.logs)?;
    second.wait_success(TIMEOUT)?;
    assert_same_bytes(&s.data, &got);
    let stdout = second.output(Stream::Stdout);
    let have = resumed_pieces(&stdout, total)?;
    ensure!(
        have as usize >= k,
        "the rerun trusted {have} pieces, the resume data claimed {k}"
    );
    only_missing_pieces_received(&stdout, have, total, s.piece_len())
}
