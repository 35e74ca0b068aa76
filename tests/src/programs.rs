//! Gates for tests that need a real program installed (aria2c, transmission, libtorrent, ...).
//!
//! A missing program skips the test with a line on stderr, except under `CI=true`, where CI was
//! meant to install it: there the test fails.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Debian's interpreter: the one `python3-libtorrent` installs the `libtorrent` module for.
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// A real program an interop test can need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `aria2c`, a BitTorrent (and HTTP) downloader.
    Aria2c,
    /// `transmission-show`, prints a .torrent's contents.
    TransmissionShow,
    /// `transmission-daemon`, Transmission's headless client.
    TransmissionDaemon,
    /// `transmission-remote`, the RPC client for the daemon.
    TransmissionRemote,
    /// `mktorrent`, a .torrent creator.
    Mktorrent,
    /// `opentracker`, a BitTorrent tracker.
    Opentracker,
    /// Debian's `python3` with the `libtorrent` (rasterbar) module importable.
    Libtorrent,
}

impl Program {
    /// Every program, in declaration order.
    pub const ALL: [Program; 7] = [
        Program::Aria2c,
        Program::TransmissionShow,
        Program::TransmissionDaemon,
        Program::TransmissionRemote,
        Program::Mktorrent,
        Program::Opentracker,
        Program::Libtorrent,
    ];

    /// The name a person knows it by.
    pub fn name(self) -> &'static str {
        match self {
            Program::Aria2c => "aria2c",
            Program::TransmissionShow => "transmission-show",
            Program::TransmissionDaemon => "transmission-daemon",
            Program::TransmissionRemote => "transmission-remote",
            Program::Mktorrent => "mktorrent",
            Program::Opentracker => "opentracker",
            Program::Libtorrent => "python3 with libtorrent",
        }
    }

    /// The Debian package that provides it.
    pub fn apt_package(self) -> &'static str {
        match self {
            Program::Aria2c => "aria2",
            Program::TransmissionShow | Program::TransmissionRemote => "transmission-cli",
            Program::TransmissionDaemon => "transmission-daemon",
            Program::Mktorrent => "mktorrent",
            Program::Opentracker => "opentracker",
            Program::Libtorrent => "python3-libtorrent",
        }
    }

    /// The program's path (for [`Program::Libtorrent`], the interpreter's), looked up once.
    pub fn locate(self) -> Option<PathBuf> {
        static FOUND: [OnceLock<Option<PathBuf>>; 7] = [const { OnceLock::new() }; 7];
        let slot = Program::ALL.iter().position(|p| *p == self)?;
        FOUND.get(slot)?.get_or_init(|| self.search()).clone()
    }

    fn search(self) -> Option<PathBuf> {
        match self {
            Program::Libtorrent => python_with_libtorrent(),
            other => find_in_path(other.name()),
        }
    }
}

/// The path of `program`, or `None` after printing why the calling test is skipped.
///
/// # Panics
/// When the program is missing and the environment has `CI=true`.
pub fn require(program: Program) -> Option<PathBuf> {
    if let Some(path) = program.locate() {
        return Some(path);
    }
    let test = current_test();
    let install = format!("apt-get install {}", program.apt_package());
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{test}: {} is not installed but CI=true requires it ({install})",
            program.name()
        );
    }
    // Straight to the process's stderr: libtest captures `eprintln!`, and a skip must be seen.
    let line = format!(
        "SKIPPED {test}: {} not installed ({install})\n",
        program.name()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// `require!(Program::X)` evaluates to the program's path, or returns from the test (skipped).
///
/// ```no_run
/// fn an_interop_test() -> anyhow::Result<()> {
///     let aria2 = tests::require!(tests::Program::Aria2c);
///     assert!(aria2.is_file());
///     Ok(())
/// }
/// ```
#[macro_export]
macro_rules! require {
    ($program:expr) => {
        match $crate::programs::require($program) {
            Some(path) => path,
            None => return $crate::programs::Skipped::skipped(),
        }
    };
}

/// What a skipped test returns: `()` or `Ok(())`, so [`require!`] works in either kind of test.
pub trait Skipped {
    /// The value that reports the test as passed after its skip line was printed.
    fn skipped() -> Self;
}

impl Skipped for () {
    fn skipped() -> Self {}
}

impl<E> Skipped for Result<(), E> {
    fn skipped() -> Self {
        Ok(())
    }
}

/// The running test's name: libtest names each test's thread after it.
fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned()
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn python_with_libtorrent() -> Option<PathBuf> {
    let python = PathBuf::from(DEBIAN_PYTHON);
    let imported = Command::new(&python)
        .args(["-c", "import libtorrent"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    imported.then_some(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_has_a_distinct_slot_and_a_package() {
        for (i, p) in Program::ALL.iter().enumerate() {
            assert_eq!(Program::ALL.iter().position(|q| q == p), Some(i));
            assert!(!p.apt_package().is_empty());
        }
    }

    #[test]
    fn a_program_that_does_not_exist_is_not_found() {
        assert_eq!(find_in_path("swarm-no-such-program-7f3a"), None);
    }

    #[test]
    fn sh_is_found_on_path() {
        let sh = find_in_path("sh").expect("every unix has sh on PATH");
        assert!(is_executable(&sh));
    }

    #[test]
    fn current_test_is_named_after_the_test() {
        assert!(current_test().ends_with("current_test_is_named_after_the_test"));
    }
}
