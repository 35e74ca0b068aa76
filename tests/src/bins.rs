//! The workspace's own binaries (`swarm`, `swarm-tracker`) for process-level tests.
//!
//! Cargo builds a package's binaries only for that package's own tests, so this crate builds
//! them itself: all of them in one `cargo build`, once per test process, with the cargo that
//! runs the tests, the same profile and the same target directory. When nothing changed that
//! build is a no-op taking a fraction of a second, and it keeps the binaries current with the
//! sources. (Its first run after a change can take a minute: `cargo test --workspace` unifies
//! features over every member and dev-dependency, this build only over the binaries' packages,
//! so some dependencies are compiled a second time with other features.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

/// A binary target of a workspace package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binary {
    /// The package that owns it (`cargo build -p`).
    pub package: &'static str,
    /// The binary's name (`--bin`).
    pub name: &'static str,
}

/// The client: `swarm create|info|...`.
pub const SWARM: Binary = Binary {
    package: "client",
    name: "swarm",
};

/// The HTTP tracker.
pub const SWARM_TRACKER: Binary = Binary {
    package: "tracker",
    name: "swarm-tracker",
};

/// Every binary of the workspace, built together.
pub const ALL: [Binary; 2] = [SWARM, SWARM_TRACKER];

/// The path of the `swarm` binary, built if needed.
pub fn swarm() -> Result<PathBuf> {
    path_of(SWARM)
}

/// The path of the `swarm-tracker` binary, built if needed.
pub fn swarm_tracker() -> Result<PathBuf> {
    path_of(SWARM_TRACKER)
}

/// The path of `bin` after the one build of this process (run on first use).
pub fn path_of(bin: Binary) -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let profile_dir = BUILT
        .get_or_init(|| build_all().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow!(e))?;
    let path = profile_dir.join(bin.name);
    if !path.is_file() {
        bail!(
            "built {} but it is not at {} (a CARGO_TARGET_DIR or --target the tests do not share?)",
            bin.name,
            path.display()
        );
    }
    Ok(path)
}

/// Builds every binary in [`ALL`] with the test's profile; returns the profile directory.
pub fn build_all() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    let profile_dir = profile_dir(&exe)?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args(["build", "--quiet"]);
    for bin in ALL {
        cmd.args(["-p", bin.package, "--bin", bin.name]);
    }
    cmd.args(profile_args(&profile_dir));
    let out = cmd.output().with_context(|| format!("run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(profile_dir)
}

/// `target/<profile>` for a test executable at `target/<profile>/deps/<test>`.
fn profile_dir(exe: &Path) -> Result<PathBuf> {
    let deps = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", exe.display()))?;
    if deps.file_name().is_none_or(|n| n != "deps") {
        bail!("{} is not in a cargo deps directory", exe.display());
    }
    deps.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("{} has no profile directory", deps.display()))
}

/// The cargo flags that build into `profile_dir` (`debug` is the default dev profile).
fn profile_args(profile_dir: &Path) -> Vec<String> {
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        None | Some("debug") => Vec::new(),
        Some("release") => vec!["--release".to_owned()],
        Some(other) => vec!["--profile".to_owned(), other.to_owned()],
    }
}

/// The workspace root: this package lives in `<root>/tests`.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_dir_is_above_deps() {
        let dir = profile_dir(Path::new("t/target/release/deps/foo-123")).unwrap();
        assert_eq!(dir, Path::new("t/target/release"));
        assert!(profile_dir(Path::new("t/target/release/foo")).is_err());
    }

    #[test]
    fn profile_flags_follow_the_directory() {
        assert!(profile_args(Path::new("target/debug")).is_empty());
        assert_eq!(profile_args(Path::new("target/release")), ["--release"]);
        assert_eq!(
            profile_args(Path::new("target/bench2")),
            ["--profile", "bench2"]
        );
    }

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }
}
