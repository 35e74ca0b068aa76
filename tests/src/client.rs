//! Our client as processes: `swarm seed` and `swarm fetch` command lines with the flags every
//! scenario needs (listening on loopback only), and readings of what they print and write.
//!
//! Each builder returns a [`Command`]; a test adds its own flags (`--upload-limit`, `-q`, ...)
//! with `cmd.args(...)` and runs it as a [`Proc`].

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::bins;
use crate::process::{Proc, Stream};

/// Where our client listens in tests: loopback only, on a port the OS picks.
pub const LISTEN: &str = "127.0.0.1:0";

/// How often [`wait_for_pieces`] compares the files.
const PIECE_POLL: Duration = Duration::from_millis(50);

/// `swarm seed PATH --torrent TORRENT --tracker URL --piece-size SIZE --listen 127.0.0.1:0`:
/// hash `path` into `torrent` (announcing to `tracker`) and seed it.
pub fn seed_command(
    path: &Path,
    torrent: &Path,
    tracker: &str,
    piece_size: &str,
) -> Result<Command> {
    let mut cmd = Command::new(bins::swarm()?);
    cmd.arg("seed")
        .arg(path)
        .arg("--torrent")
        .arg(torrent)
        .args(["--tracker", tracker, "--piece-size", piece_size])
        .args(["--listen", LISTEN]);
    Ok(cmd)
}

/// `swarm seed TORRENT --data DATA --listen 127.0.0.1:0`: check `data` against an existing
/// torrent and seed it.
pub fn seed_existing_command(torrent: &Path, data: &Path) -> Result<Command> {
    let mut cmd = Command::new(bins::swarm()?);
    cmd.arg("seed")
        .arg(torrent)
        .arg("--data")
        .arg(data)
        .args(["--listen", LISTEN]);
    Ok(cmd)
}

/// `swarm fetch TORRENT -o DIR --listen 127.0.0.1:0`.
pub fn fetch_command(torrent: &Path, out_dir: &Path) -> Result<Command> {
    let mut cmd = Command::new(bins::swarm()?);
    cmd.arg("fetch")
        .arg(torrent)
        .arg("-o")
        .arg(out_dir)
        .args(["--listen", LISTEN]);
    Ok(cmd)
}

/// Spawns a `swarm seed` and waits at most `timeout` for it to say it is listening (its
/// torrents are hashed or checked and added by then); returns the port it accepts peers on.
pub fn start_seeder(
    cmd: Command,
    name: &str,
    log_dir: &Path,
    timeout: Duration,
) -> Result<(Proc, u16)> {
    let mut proc = Proc::spawn(cmd, name, log_dir)?;
    let line = proc.wait_for_line(Stream::Stdout, timeout, |l| {
        l.starts_with("listening on port ")
    })?;
    let port = listening_port(&line).with_context(|| format!("{name}: {line:?}"))?;
    Ok((proc, port))
}

/// The port of `swarm seed`'s `listening on port N; ...` line.
pub fn listening_port(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("listening on port ")?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `(N, M)` from `swarm fetch`'s `NAME: N of M pieces already on disk` line, if it printed one.
pub fn pieces_already_on_disk(stdout: &str) -> Option<(u32, u32)> {
    stdout.lines().find_map(|l| {
        let (_, counts) = l.rsplit_once(": ")?;
        let counts = counts.strip_suffix(" pieces already on disk")?;
        let (n, m) = counts.split_once(" of ")?;
        Some((n.parse().ok()?, m.parse().ok()?))
    })
}

/// The payload bytes from `swarm fetch`'s `done: ...; N bytes received` line, if it printed one.
pub fn bytes_received(stdout: &str) -> Option<u64> {
    stdout.lines().find_map(|l| {
        let rest = l.strip_prefix("done: ")?;
        let (_, tail) = rest.rsplit_once("; ")?;
        tail.strip_suffix(" bytes received")?.parse().ok()
    })
}

/// How many `piece_len`-byte pieces of the file `want` are already in the file `have`, byte for
/// byte (the last piece may be short). A missing `have` holds none.
///
/// Test data is pseudo-random, so a piece that has not been written (zeros, or a short file)
/// does not match by chance.
pub fn matching_pieces(want: &Path, have: &Path, piece_len: usize) -> Result<usize> {
    let want = std::fs::read(want).with_context(|| format!("read {}", want.display()))?;
    let have = match std::fs::read(have) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("read {}", have.display())),
    };
    Ok(want
        .chunks(piece_len.max(1))
        .zip(have.chunks(piece_len.max(1)))
        .filter(|(w, h)| w == h)
        .count())
}

/// Waits at most `timeout` until at least `at_least` pieces of `want` are in `have` (see
/// [`matching_pieces`]) while `proc` still runs; returns the count seen.
pub fn wait_for_pieces(
    proc: &mut Proc,
    want: &Path,
    have: &Path,
    piece_len: usize,
    at_least: usize,
    timeout: Duration,
) -> Result<usize> {
    let deadline = Instant::now() + timeout;
    let mut seen = 0;
    for _ in 0..=timeout.as_millis() / PIECE_POLL.as_millis() {
        seen = matching_pieces(want, have, piece_len)?;
        if seen >= at_least {
            return Ok(seen);
        }
        if proc.try_status()?.is_some() {
            bail!(
                "{} exited with {seen} of {at_least} pieces\n{}",
                proc.name(),
                proc.describe()
            );
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(PIECE_POLL);
    }
    bail!(
        "{}: {seen} of {at_least} pieces after {timeout:?}\n{}",
        proc.name(),
        proc.describe()
    )
}

/// Runs `leecher` (at most `timeout`) to its end and checks it failed with one `error:` line containing every
/// one of `needles`; returns the line.
pub fn fails_with(mut leecher: Proc, needles: &[&str], timeout: Duration) -> Result<String> {
    let status = leecher.wait(timeout)?;
    let stderr = leecher.output(Stream::Stderr);
    ensure!(!status.success(), "exit {status}\n{}", leecher.describe());
    ensure!(!stderr.contains("panicked"), "{}", leecher.describe());
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    ensure!(
        errors.len() == 1,
        "want one error line\n{}",
        leecher.describe()
    );
    let line = errors[0];
    for n in needles {
        ensure!(line.contains(n), "the error does not mention {n:?}: {line}");
    }
    Ok(line.to_owned())
}

/// Sends `signal` (SIGINT or SIGTERM) to a running `swarm fetch` and checks it stopped the way
/// an interrupted download should: exit code 130, no panic.
pub fn interrupt(
    proc: &mut Proc,
    signal: nix::sys::signal::Signal,
    timeout: Duration,
) -> Result<()> {
    proc.signal(signal)?;
    let status = proc.wait(timeout)?;
    ensure!(
        status.code() == Some(130),
        "exit {status}, want 130\n{}",
        proc.describe()
    );
    ensure!(
        !proc.output(Stream::Stderr).contains("panicked"),
        "{}",
        proc.describe()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::write_file;

    #[test]
    fn reads_the_listening_port() {
        assert_eq!(
            listening_port("listening on port 41235; Ctrl-C to stop"),
            Some(41235)
        );
        assert_eq!(listening_port("listening on port ; Ctrl-C"), None);
        assert_eq!(listening_port("seeding x"), None);
    }

    #[test]
    fn reads_the_resume_line() {
        let out = "x\nmy: file: 12 of 40 pieces already on disk\ndone: my: file 1 MiB in 1 s\n";
        assert_eq!(pieces_already_on_disk(out), Some((12, 40)));
        assert_eq!(pieces_already_on_disk("done: a 1 MiB\n"), None);
    }

    #[test]
    fn reads_the_received_bytes() {
        let out = "a: 3 of 9 pieces already on disk\ndone: a 2 MiB in 0.5 s (4 MiB/s); 2097152 bytes received\n";
        assert_eq!(bytes_received(out), Some(2_097_152));
        assert_eq!(bytes_received("done: a 2 MiB in 0.5 s (4 MiB/s)\n"), None);
    }

    #[test]
    fn counts_pieces_that_match() {
        let dir = tempfile::tempdir().unwrap();
        let (want, have) = (dir.path().join("want"), dir.path().join("have"));
        write_file(&want, 10_000, 5).unwrap();
        assert_eq!(matching_pieces(&want, &have, 1000).unwrap(), 0);
        let mut bytes = std::fs::read(&want).unwrap();
        bytes[1500] ^= 0xff;
        bytes.truncate(9_500);
        std::fs::write(&have, &bytes).unwrap();
        // Piece 1 differs; the short last piece (9000..9500 of 9000..10000) does not match.
        assert_eq!(matching_pieces(&want, &have, 1000).unwrap(), 8);
    }
}
