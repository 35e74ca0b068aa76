//! Bytes that are read far more seldom than they are held: a torrent's info dictionary and its
//! piece hashes (20 bytes a piece: 320 KiB for a 4 GiB torrent of 256 KiB pieces, 8 MiB for
//! 100 GiB), needed once per piece verified and once per metadata request.
//!
//! [`StoredBytes`] holds them in memory or in a file of their own (normally one already
//! unlinked, so only this process can see or change it): a file-backed copy costs no memory
//! of the process, and a read is one positioned read, normally served by the page cache.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// Bytes in memory or in a file; cloning shares them (no copy, the same file).
#[derive(Clone)]
pub struct StoredBytes(Repr);

#[derive(Clone)]
enum Repr {
    Memory(Bytes),
    File(Arc<FileBytes>),
}

/// A file holding exactly `len` bytes written by [`StoredBytes::to_file`].
struct FileBytes {
    file: File,
    len: usize,
}

impl StoredBytes {
    /// Writes `bytes` to `file` (from its start; it should be empty, and nobody else should
    /// write to it), and returns them served from there.
    pub fn to_file(bytes: &[u8], mut file: File) -> io::Result<StoredBytes> {
        file.write_all(bytes)?;
        let written = file.metadata()?.len();
        if written != bytes.len() as u64 {
            return Err(io::Error::other(format!(
                "{written} bytes in the file after writing {}",
                bytes.len()
            )));
        }
        Ok(StoredBytes(Repr::File(Arc::new(FileBytes {
            file,
            len: bytes.len(),
        }))))
    }

    /// Number of bytes.
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Memory(b) => b.len(),
            Repr::File(f) => f.len,
        }
    }

    /// True if there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True if the bytes are held in memory (not read from a file).
    pub fn is_in_memory(&self) -> bool {
        matches!(self.0, Repr::Memory(_))
    }

    /// The bytes themselves when they are held in memory.
    pub fn in_memory(&self) -> Option<&Bytes> {
        match &self.0 {
            Repr::Memory(b) => Some(b),
            Repr::File(_) => None,
        }
    }

    /// Bytes `[offset, offset + len)`: a shared slice in memory, a fresh buffer read from a
    /// file. `None` if the range is out of bounds or the file could not be read.
    pub fn read(&self, offset: usize, len: usize) -> Option<Bytes> {
        let end = offset.checked_add(len)?;
        if end > self.len() {
            return None;
        }
        match &self.0 {
            Repr::Memory(b) => Some(b.slice(offset..end)),
            Repr::File(f) => {
                let mut buf = vec![0; len];
                f.file.read_exact_at(&mut buf, offset as u64).ok()?;
                Some(Bytes::from(buf))
            }
        }
    }

    /// Fills `buf` with the bytes from `offset` on; false if out of bounds or unreadable.
    pub fn read_into(&self, offset: usize, buf: &mut [u8]) -> bool {
        let Some(end) = offset.checked_add(buf.len()) else {
            return false;
        };
        if end > self.len() {
            return false;
        }
        match &self.0 {
            Repr::Memory(b) => match b.get(offset..end) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            },
            Repr::File(f) => f.file.read_exact_at(buf, offset as u64).is_ok(),
        }
    }
}

impl From<Bytes> for StoredBytes {
    fn from(b: Bytes) -> StoredBytes {
        StoredBytes(Repr::Memory(b))
    }
}

impl Default for StoredBytes {
    fn default() -> StoredBytes {
        StoredBytes::from(Bytes::new())
    }
}

impl fmt::Debug for StoredBytes {
    /// The size and where the bytes are, never the bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.is_in_memory() {
            "memory"
        } else {
            "file"
        };
        write!(f, "StoredBytes({} bytes in {at})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_file_read_the_same_and_refuse_out_of_range() {
        let data: Vec<u8> = (0..=255).cycle().take(5000).collect();
        let mem = StoredBytes::from(Bytes::from(data.clone()));
        let file = StoredBytes::to_file(&data, tempfile::tempfile().unwrap()).unwrap();
        assert!(mem.is_in_memory() && !file.is_in_memory());
        assert!(file.in_memory().is_none());
        for s in [&mem, &file] {
            assert_eq!(s.len(), 5000);
            assert_eq!(s.read(4990, 10).as_deref(), Some(&data[4990..]));
            assert_eq!(s.read(0, 0).as_deref(), Some(&[][..]));
            assert_eq!(s.read(4991, 10), None);
            assert_eq!(s.read(usize::MAX, 2), None);
            let mut buf = [0u8; 20];
            assert!(s.read_into(100, &mut buf));
            assert_eq!(&buf[..], &data[100..120]);
            assert!(!s.read_into(4990, &mut buf));
            assert!(!s.read_into(usize::MAX - 5, &mut buf));
        }
        assert_eq!(format!("{file:?}"), "StoredBytes(5000 bytes in file)");
        assert!(StoredBytes::default().is_empty());
    }

    #[test]
    fn a_file_that_cannot_be_written_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ro");
        std::fs::write(&path, b"").unwrap();
        let ro = File::open(&path).unwrap();
        assert!(StoredBytes::to_file(b"abc", ro).is_err());
    }
}
