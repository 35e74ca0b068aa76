//! Opening files inside the output directory without ever leaving it.
//!
//! Paths are joined only from components that [`Layout`](crate::Layout) checked (no `..`, no
//! separators, no NUL). Every directory between the output directory and the file must be a real
//! directory, not a symlink: each is checked with `symlink_metadata` before use (and created one
//! level at a time when writing). The file itself is opened with `O_NOFOLLOW | O_NONBLOCK`, so a
//! symlink planted in its place fails the open (`ELOOP`) and a FIFO cannot block us; the handle is
//! then checked to be a regular file.
//!
//! Residual race: a process that can write inside the output directory could swap a checked
//! directory for a symlink between the check and the open. Closing that needs `openat2` with
//! `RESOLVE_BENEATH`, which std does not expose; the output directory is assumed to be ours.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Op, StorageError};

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file and its directories are created when missing.
    Write,
    /// [`Access::Write`], with writes going around the page cache (`O_DIRECT`): buffer, file
    /// offset and length must then be aligned (see [`DIRECT_ALIGN`](crate::DIRECT_ALIGN)).
    WriteDirect,
}

/// Joins checked `components` under `root` (which the caller canonicalised).
pub(crate) fn join(root: &Path, components: &[String]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(components);
    p
}

/// Makes sure every directory from `root` down to the parent of `path` is a real directory
/// (creating the missing ones when `create`), and never a symlink.
pub(crate) fn check_dirs(
    root: &Path,
    components: &[String],
    create: bool,
) -> Result<(), StorageError> {
    let mut dir = root.to_path_buf();
    let parents = components.len().saturating_sub(1);
    for c in components.iter().take(parents) {
        dir.push(c);
        match fs::symlink_metadata(&dir) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(StorageError::unsafe_path(&dir, "is a symlink"));
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(StorageError::unsafe_path(&dir, "is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                match fs::create_dir(&dir) {
                    Ok(()) => {}
                    // Another thread made it meanwhile: check it again on the next open.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        let m = fs::symlink_metadata(&dir)
                            .map_err(|e| StorageError::io(Op::Stat, &dir, e))?;
                        if !m.is_dir() {
                            return Err(StorageError::unsafe_path(&dir, "is not a directory"));
                        }
                    }
                    Err(e) => return Err(StorageError::io(Op::CreateDir, &dir, e)),
                }
            }
            Err(e) => return Err(StorageError::io(Op::Stat, &dir, e)),
        }
    }
    Ok(())
}

/// Checks that `path`, with every symlink resolved, still lies inside `root` (canonical).
/// Defence in depth: with checked components and no symlinked directories this always holds.
pub(crate) fn ensure_within(root: &Path, path: &Path) -> Result<(), StorageError> {
    let parent = path.parent().unwrap_or(root);
    let real = fs::canonicalize(parent).map_err(|e| StorageError::io(Op::Stat, parent, e))?;
    if real.starts_with(root) {
        Ok(())
    } else {
        Err(StorageError::unsafe_path(
            path,
            "resolves outside the output directory",
        ))
    }
}

/// Opens the file at `root/components` for `access`, refusing symlinks anywhere below `root`.
pub(crate) fn open(
    root: &Path,
    components: &[String],
    access: Access,
) -> Result<File, StorageError> {
    let path = join(root, components);
    let write = access != Access::Read;
    check_dirs(root, components, write)?;
    ensure_within(root, &path)?;
    let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
    if access == Access::WriteDirect {
        flags |= libc::O_DIRECT;
    }
    let mut opts = fs::OpenOptions::new();
    opts.read(true).custom_flags(flags);
    if write {
        opts.write(true).create(true);
    }
    let file = opts.open(&path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            StorageError::unsafe_path(&path, "is a symlink")
        } else {
            StorageError::io(Op::Open, &path, e)
        }
    })?;
    let meta = file
        .metadata()
        .map_err(|e| StorageError::io(Op::Stat, &path, e))?;
    if !meta.is_file() {
        return Err(StorageError::unsafe_path(&path, "is not a regular file"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comps(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn creates_directories_and_refuses_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();

        let f = open(&root, &comps(&["a", "b", "c.bin"]), Access::Write).unwrap();
        drop(f);
        assert!(root.join("a/b/c.bin").is_file());

        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        let err = open(&root, &comps(&["link", "x"]), Access::Write).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");

        std::os::unix::fs::symlink(outside.path().join("target"), root.join("file")).unwrap();
        let err = open(&root, &comps(&["file"]), Access::Write).unwrap_err();
        assert!(err.to_string().contains("is a symlink"), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);

        let err = open(&root, &comps(&["a", "b", "c.bin", "d"]), Access::Write).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");

        let err = open(&root, &comps(&["missing"]), Access::Read).unwrap_err();
        assert_eq!(err.io_kind(), Some(io::ErrorKind::NotFound));
        assert!(!root.join("missing").exists());
    }

    #[test]
    fn ensure_within_catches_paths_that_resolve_outside() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir(root.join("real")).unwrap();
        ensure_within(&root, &root.join("real").join("f")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("esc")).unwrap();
        let err = ensure_within(&root, &root.join("esc").join("f")).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        // `..` is refused by Layout, but the resolver would catch it too.
        let err =
            ensure_within(&root, &root.join("real").join("..").join("..").join("f")).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
    }

    #[test]
    fn fifo_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let root = fs::canonicalize(tmp.path()).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap();
        assert!(status.success());
        let err = open(&root, &comps(&["fifo"]), Access::Read).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
