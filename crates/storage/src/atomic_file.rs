//! [`write_atomic`]: replacing a small file so that a crash leaves the old or the new one, never
//! a mix (resume data, the DHT routing table, a .torrent fetched from a magnet link).

use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Op, Result, StorageError};

/// Names tried for the temporary file before giving up. A name is taken only by a leftover of
/// a process that crashed with our process id (or by another live process with the same id in
/// another pid namespace); each costs one try, once.
const TEMP_ATTEMPTS: u32 = 64;

/// Numbers the temporary files of this process, so concurrent writers never share one.
static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: creates the parent directory, writes a temporary file
/// with a name of its own in that directory (created exclusively, never reused), fsyncs it,
/// renames it over `path` and fsyncs the directory. A crash at any point leaves the old file or
/// the new one, and at worst a stray `.<name>.<pid>.<n>.tmp` beside it, which later writes
/// skip. On an error the temporary file is removed; the error names the operation and the file
/// or directory it failed on.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(|e| StorageError::io(Op::CreateDir, dir, e))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let (mut file, tmp) = create_temp(dir, &name)?;
    let written = file
        .write_all(bytes)
        .map_err(|e| StorageError::io(Op::Write, &tmp, e))
        .and_then(|()| {
            file.sync_all()
                .map_err(|e| StorageError::io(Op::Sync, &tmp, e))
        })
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| StorageError::io(Op::Rename, path, e)));
    drop(file);
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = fs::remove_file(&tmp);
        return written;
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(Op::Sync, dir, e))
}

/// The temporary file for `name` in `dir`: `.<name>.<pid>.<n>.tmp`, created exclusively (so it
/// is ours alone, and a symlink planted in its place is not followed).
fn create_temp(dir: &Path, name: &str) -> Result<(File, PathBuf)> {
    let pid = std::process::id();
    let mut attempts = 0;
    loop {
        let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{pid}.{seq}.tmp"));
        let opened = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp);
        attempts += 1;
        match opened {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && attempts < TEMP_ATTEMPTS => {}
            Err(e) => return Err(StorageError::io(Op::Open, &tmp, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn creates_the_directory_and_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dir/state");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(
            entries(path.parent().unwrap()),
            ["state"],
            "no temp file left"
        );
    }

    #[test]
    fn leftover_temp_files_of_a_crash_do_not_block_the_next_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        fs::write(&path, b"old").unwrap();
        // What a crash of a process with our id would leave: the next names this one would use.
        let pid = std::process::id();
        let next = TEMP_SEQ.load(Ordering::Relaxed);
        let leftovers: Vec<PathBuf> = (next..next + 4)
            .map(|seq| dir.path().join(format!(".state.{pid}.{seq}.tmp")))
            .collect();
        for l in &leftovers {
            fs::write(l, b"half-writ").unwrap();
        }
        write_atomic(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        for l in &leftovers {
            assert_eq!(
                fs::read(l).unwrap(),
                b"half-writ",
                "another's file is left alone"
            );
        }
        assert_eq!(entries(dir.path()).len(), 1 + leftovers.len());
    }

    #[test]
    fn errors_name_the_path_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        // A parent that is a file cannot be made a directory (whoever runs the test, root too).
        let file = dir.path().join("plain");
        fs::write(&file, b"x").unwrap();
        let err = write_atomic(&file.join("state"), b"data").unwrap_err();
        let shown = err.to_string();
        let want = format!("create directory {}:", file.display());
        assert!(shown.starts_with(&want), "{shown}");

        // A directory in the target's place: the rename fails, and names the target.
        let target = dir.path().join("taken");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("inside"), b"x").unwrap();
        let err = write_atomic(&target, b"data").unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("rename {}:", target.display())),
            "{shown}"
        );
        assert_eq!(entries(dir.path()), ["plain", "taken"], "temp file removed");
    }

    #[test]
    fn a_read_only_directory_is_an_error_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ro = dir.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        // Root writes anyway (CAP_DAC_OVERRIDE): then there is nothing to test.
        if fs::write(ro.join("probe"), b"").is_ok() {
            return;
        }
        let err = write_atomic(&ro.join("state"), b"data").unwrap_err();
        let shown = err.to_string();
        let want = format!("open {}/.state.", ro.display());
        assert!(shown.starts_with(&want), "{shown}");
        assert_eq!(err.io_kind(), Some(ErrorKind::PermissionDenied));
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }
}
