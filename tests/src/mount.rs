//! A tmpfs mounted by a test (small, or read-only) to make a disk fill up or refuse writes, or a
//! ramfs (which refuses `O_DIRECT`), unmounted when the guard is dropped. Needs root (or CAP_SYS_ADMIN); where mounting is not
//! permitted, [`Tmpfs::mount`] says why so the test can print a SKIP line.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A tmpfs mounted at a directory; unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    at: PathBuf,
    mounted: bool,
}

/// Why a tmpfs could not be mounted: the test should skip (and say so).
#[derive(Debug)]
pub struct NotPermitted(pub String);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"8m"`) at `at` (created if missing), read-only when
    /// `read_only`. `Ok(Err(_))` when this process may not mount (not root, no capability).
    pub fn mount(at: &Path, size: &str, read_only: bool) -> Result<Result<Tmpfs, NotPermitted>> {
        let mut opts = format!("size={size},mode=0755");
        if read_only {
            opts.push_str(",ro");
        }
        Tmpfs::mount_fs(at, "tmpfs", &opts)
    }

    /// Mounts a ramfs at `at`: memory without a size cap, and a file system that refuses
    /// `O_DIRECT` (`EINVAL` at open).
    pub fn mount_ramfs(at: &Path) -> Result<Result<Tmpfs, NotPermitted>> {
        Tmpfs::mount_fs(at, "ramfs", "mode=0755")
    }

    fn mount_fs(at: &Path, fs_type: &str, opts: &str) -> Result<Result<Tmpfs, NotPermitted>> {
        std::fs::create_dir_all(at).with_context(|| format!("mkdir {}", at.display()))?;
        let out = match Command::new("mount")
            .args(["-t", fs_type, "-o", opts, "swarm-test"])
            .arg(at)
            .output()
        {
            Ok(out) => out,
            Err(e) => return Ok(Err(NotPermitted(format!("cannot run mount: {e}")))),
        };
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            return Ok(Err(NotPermitted(format!(
                "mount -t {fs_type} failed ({}): {why}",
                out.status
            ))));
        }
        Ok(Ok(Tmpfs {
            at: at.to_path_buf(),
            mounted: true,
        }))
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.at
    }

    /// Unmounts it now (also done on drop).
    pub fn unmount(&mut self) -> Result<()> {
        if !self.mounted {
            return Ok(());
        }
        self.mounted = false;
        let out = Command::new("umount")
            .arg(&self.at)
            .output()
            .context("run umount")?;
        if !out.status.success() {
            // Something still holds it (a process of a failed test): detach it lazily.
            let lazy = Command::new("umount").arg("-l").arg(&self.at).status()?;
            if !lazy.success() {
                bail!(
                    "umount {}: {}",
                    self.at.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("cleanup: {e:#}");
        }
    }
}
