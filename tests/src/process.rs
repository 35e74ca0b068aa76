//! A child process for scenario tests: its own process group, output captured to files, bounded
//! waits, and killed (with its group) when dropped, so a failing test leaves nothing behind.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;

/// How often a wait looks at the process and its output.
const POLL: Duration = Duration::from_millis(20);
/// How long `Drop` waits for a killed process to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);
/// Lines of each stream quoted in error messages.
const TAIL_LINES: usize = 15;
/// At most this many processes of one name share a log directory.
const MAX_SAME_NAME: usize = 1000;

/// One of a process's two output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A running program whose process group is killed on drop.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    pgid: Pid,
    status: Option<ExitStatus>,
    stdout: Capture,
    stderr: Capture,
}

/// A stream's log file and how far [`Proc::wait_for_line`] has consumed it.
#[derive(Debug)]
struct Capture {
    path: PathBuf,
    consumed: u64,
}

impl Proc {
    /// Spawns `cmd` in a new process group, stdin empty, stdout and stderr written to
    /// `log_dir/<name>.stdout` and `.stderr` (`<name>-2.stdout`, ... when taken).
    pub fn spawn(mut cmd: Command, name: &str, log_dir: &Path) -> Result<Proc> {
        std::fs::create_dir_all(log_dir).with_context(|| format!("mkdir {}", log_dir.display()))?;
        let (out_path, err_path) = log_paths(log_dir, name)?;
        let stdout = File::create(&out_path)?;
        let stderr = File::create(&err_path)?;
        // Test traffic stays on loopback: our client joins the DHT (whose default bootstrap
        // nodes are on the internet) only when a test asks for it with SWARM_NO_DHT=0.
        if !cmd.get_envs().any(|(k, _)| k == "SWARM_NO_DHT") {
            cmd.env("SWARM_NO_DHT", "1");
        }
        // Nor does it multicast local service discovery announces on the machine's network,
        // unless a test (in network namespaces of its own) asks with SWARM_NO_LSD=0.
        if !cmd.get_envs().any(|(k, _)| k == "SWARM_NO_LSD") {
            cmd.env("SWARM_NO_LSD", "1");
        }
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawn {name}: {cmd:?}"))?;
        let pgid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        Ok(Proc {
            name: name.to_owned(),
            child,
            pgid,
            status: None,
            stdout: Capture {
                path: out_path,
                consumed: 0,
            },
            stderr: Capture {
                path: err_path,
                consumed: 0,
            },
        })
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file a stream is captured in.
    pub fn log_path(&self, stream: Stream) -> &Path {
        &self.capture(stream).path
    }

    /// Everything the process wrote to `stream` so far (invalid UTF-8 replaced).
    pub fn output(&self, stream: Stream) -> String {
        std::fs::read(self.log_path(stream))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Waits at most `timeout` for a complete line on `stream` that `matches`, and returns it.
    ///
    /// Lines are consumed in order: the match and every line before it are not seen again by a
    /// later call. Fails with the output's tail if the process exits or time runs out first.
    pub fn wait_for_line(
        &mut self,
        stream: Stream,
        timeout: Duration,
        mut matches: impl FnMut(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut scanned = self.capture(stream).consumed;
        for _ in 0..max_polls(timeout) {
            let exited = self.try_status()?.is_some();
            let (text, start) = read_from(&self.capture(stream).path, scanned)?;
            let mut at = start;
            for line in text.split_inclusive('\n') {
                if !line.ends_with('\n') {
                    break;
                }
                at += line.len() as u64;
                if matches(line.trim_end_matches(['\n', '\r'])) {
                    self.capture_mut(stream).consumed = at;
                    return Ok(line.trim_end().to_owned());
                }
            }
            scanned = at;
            if exited {
                bail!(
                    "{} exited before the awaited line\n{}",
                    self.name,
                    self.describe()
                );
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(POLL);
        }
        bail!(
            "{}: no awaited line within {timeout:?}\n{}",
            self.name,
            self.describe()
        )
    }

    /// The exit status if the process has exited (then the rest of its group is killed).
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        // Look without reaping: while the leader is an unreaped zombie its group id cannot be
        // reused, so killing the group afterwards can only reach this process's descendants.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(self.pgid), flags) {
            Ok(WaitStatus::StillAlive) => Ok(None),
            Ok(_) => {
                let _ = killpg(self.pgid, Signal::SIGKILL);
                let status = self.child.wait().context("reap")?;
                self.status = Some(status);
                Ok(Some(status))
            }
            Err(e) => Err(anyhow!("waitid {}: {e}", self.name)),
        }
    }

    /// Waits at most `timeout` for the process to exit.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        for _ in 0..max_polls(timeout) {
            if let Some(status) = self.try_status()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(POLL);
        }
        bail!(
            "{} still running after {timeout:?}\n{}",
            self.name,
            self.describe()
        )
    }

    /// Waits at most `timeout` for the process to exit with status 0.
    pub fn wait_success(&mut self, timeout: Duration) -> Result<()> {
        let status = self.wait(timeout)?;
        if !status.success() {
            bail!("{} failed: {status}\n{}", self.name, self.describe());
        }
        Ok(())
    }

    /// Sends `signal` to the process group (nothing once the process has been reaped).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        if self.status.is_none() {
            killpg(self.pgid, signal).with_context(|| format!("{signal} to {}", self.name))?;
        }
        Ok(())
    }

    /// SIGTERM to the group, up to `grace` to exit, then SIGKILL; returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        self.signal(Signal::SIGTERM)?;
        if let Ok(status) = self.wait(grace) {
            return Ok(status);
        }
        self.signal(Signal::SIGKILL)?;
        self.wait(REAP_TIMEOUT)
    }

    /// The name, pid, status and the last lines of both streams, for error messages.
    pub fn describe(&self) -> String {
        let status = self
            .status
            .map_or_else(|| "running".to_owned(), |s| s.to_string());
        format!(
            "--- {} (pid {}, {status})\n--- stdout ({}):\n{}--- stderr ({}):\n{}",
            self.name,
            self.pid(),
            self.stdout.path.display(),
            tail(&self.output(Stream::Stdout)),
            self.stderr.path.display(),
            tail(&self.output(Stream::Stderr)),
        )
    }

    fn capture(&self, stream: Stream) -> &Capture {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    fn capture_mut(&mut self, stream: Stream) -> &mut Capture {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = killpg(self.pgid, Signal::SIGKILL);
            let _ = self.wait(REAP_TIMEOUT);
        }
    }
}

/// Polls that fit in `timeout`, plus one so a zero timeout still looks once.
fn max_polls(timeout: Duration) -> u128 {
    timeout.as_millis() / POLL.as_millis() + 1
}

fn log_paths(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf)> {
    for n in 1..=MAX_SAME_NAME {
        let stem = if n == 1 {
            name.to_owned()
        } else {
            format!("{name}-{n}")
        };
        let out = dir.join(format!("{stem}.stdout"));
        if !out.exists() {
            return Ok((out, dir.join(format!("{stem}.stderr"))));
        }
    }
    bail!(
        "more than {MAX_SAME_NAME} processes named {name} in {}",
        dir.display()
    )
}

/// The file's text from byte `offset` on, and that offset.
fn read_from(path: &Path, offset: u64) -> Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("open {}", path.display()))?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok((String::from_utf8_lossy(&bytes).into_owned(), offset))
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    lines[start..]
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn lines_are_awaited_in_order_and_consumed() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Proc::spawn(sh("echo a 1; echo b; echo a 2"), "echo", dir.path()).unwrap();
        let t = Duration::from_secs(10);
        assert_eq!(
            p.wait_for_line(Stream::Stdout, t, |l| l.starts_with('a'))
                .unwrap(),
            "a 1"
        );
        assert_eq!(
            p.wait_for_line(Stream::Stdout, t, |l| l.starts_with('a'))
                .unwrap(),
            "a 2"
        );
        assert!(p.wait(t).unwrap().success());
        assert!(p.wait_for_line(Stream::Stdout, t, |l| l == "b").is_err());
    }

    #[test]
    fn stderr_is_captured_separately() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Proc::spawn(sh("echo out; echo err >&2"), "two", dir.path()).unwrap();
        p.wait_success(Duration::from_secs(10)).unwrap();
        assert_eq!(p.output(Stream::Stdout), "out\n");
        assert_eq!(p.output(Stream::Stderr), "err\n");
    }

    #[test]
    fn a_missing_line_times_out_with_the_output_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Proc::spawn(sh("echo hello; sleep 30"), "sleeper", dir.path()).unwrap();
        let err = p
            .wait_for_line(Stream::Stdout, Duration::from_millis(300), |l| l == "bye")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no awaited line") && err.contains("hello"),
            "{err}"
        );
    }

    #[test]
    fn an_early_exit_ends_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = Proc::spawn(sh("exit 3"), "quitter", dir.path()).unwrap();
        let err = p
            .wait_for_line(Stream::Stdout, Duration::from_secs(30), |_| true)
            .unwrap_err();
        assert!(err.to_string().contains("exited"), "{err}");
        assert_eq!(p.wait(Duration::ZERO).unwrap().code(), Some(3));
    }

    #[test]
    fn terminate_and_drop_end_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        // The shell starts a grandchild and reports its pid; both must die with the group.
        let script = "sleep 60 & echo $!; wait";
        let mut p = Proc::spawn(sh(script), "group", dir.path()).unwrap();
        let line = p
            .wait_for_line(Stream::Stdout, Duration::from_secs(10), |_| true)
            .unwrap();
        let grandchild = Pid::from_raw(line.parse().unwrap());
        let status = p.terminate(Duration::from_secs(5)).unwrap();
        assert!(!status.success());
        let gone = (0..250).any(|_| {
            std::thread::sleep(POLL);
            !Path::new(&format!("/proc/{grandchild}")).exists()
                || std::fs::read_to_string(format!("/proc/{grandchild}/stat"))
                    .is_ok_and(|s| s.contains(") Z "))
        });
        assert!(gone, "grandchild {grandchild} survived its group");
    }

    #[test]
    fn same_names_get_distinct_logs() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = Proc::spawn(sh("echo 1"), "twin", dir.path()).unwrap();
        let mut b = Proc::spawn(sh("echo 2"), "twin", dir.path()).unwrap();
        a.wait_success(Duration::from_secs(10)).unwrap();
        b.wait_success(Duration::from_secs(10)).unwrap();
        assert_ne!(a.log_path(Stream::Stdout), b.log_path(Stream::Stdout));
        assert_eq!(b.output(Stream::Stdout), "2\n");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (0..40).map(|i| format!("{i}\n")).collect();
        let t = tail(&text);
        assert!(t.contains("    39\n") && !t.contains("    24\n"), "{t}");
    }
}
