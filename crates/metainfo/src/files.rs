//! The files of a torrent laid end to end, and how a byte range of the torrent (a piece, a
//! block) maps onto spans of those files.

use std::path::PathBuf;

use crate::path::join_checked;

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Checked path components relative to the output directory: `[name]` for a single-file
    /// torrent, `[name, dir.., file]` for a multi-file one.
    pub path: Vec<String>,
    /// Length in bytes (may be zero).
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 padding file: its bytes are zeros and it is never written to disk.
    pub pad: bool,
}

impl FileEntry {
    /// The path relative to the output directory (checked components only).
    pub fn relative_path(&self) -> PathBuf {
        join_checked(std::path::Path::new(""), &self.path)
    }

    /// Offset one past the file's last byte in the torrent's byte stream.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.length)
    }
}

/// The part of a torrent byte range that falls in one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index of the file in `Info::files()`.
    pub file: usize,
    /// Offset within that file.
    pub file_offset: u64,
    /// Offset of the same byte in the torrent's byte stream.
    pub torrent_offset: u64,
    /// Bytes in this span (never zero).
    pub len: u64,
}

/// Iterator over the [`FileSpan`]s covering a byte range, in order. Zero-length files yield
/// nothing; padding files do yield spans (check `FileEntry::pad` to skip them).
#[derive(Debug, Clone)]
pub struct Spans<'a> {
    files: &'a [FileEntry],
    next_file: usize,
    pos: u64,
    end: u64,
}

impl<'a> Spans<'a> {
    /// Spans of `[offset, offset + len)`, clipped to the end of the last file.
    pub(crate) fn new(files: &'a [FileEntry], offset: u64, len: u64) -> Self {
        let total = files.last().map_or(0, FileEntry::end);
        let end = offset.saturating_add(len).min(total);
        // First file whose end lies beyond `offset` (zero-length files before it are skipped).
        let next_file = files.partition_point(|f| f.end() <= offset);
        Spans {
            files,
            next_file,
            pos: offset,
            end,
        }
    }
}

impl Iterator for Spans<'_> {
    type Item = FileSpan;

    fn next(&mut self) -> Option<FileSpan> {
        while self.pos < self.end {
            let i = self.next_file;
            let f = self.files.get(i)?;
            self.next_file += 1;
            if f.end() <= self.pos {
                continue; // zero-length file at this offset
            }
            let len = f.end().min(self.end) - self.pos;
            let span = FileSpan {
                file: i,
                file_offset: self.pos - f.offset,
                torrent_offset: self.pos,
                len,
            };
            self.pos += len;
            return Some(span);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(lengths: &[u64]) -> Vec<FileEntry> {
        let mut offset = 0;
        lengths
            .iter()
            .enumerate()
            .map(|(i, &length)| {
                let f = FileEntry {
                    path: vec![format!("f{i}")],
                    length,
                    offset,
                    pad: false,
                };
                offset += length;
                f
            })
            .collect()
    }

    fn spans(files: &[FileEntry], offset: u64, len: u64) -> Vec<(usize, u64, u64, u64)> {
        Spans::new(files, offset, len)
            .map(|s| (s.file, s.file_offset, s.torrent_offset, s.len))
            .collect()
    }

    #[test]
    fn range_within_one_file() {
        let files = layout(&[100, 50]);
        assert_eq!(spans(&files, 10, 20), [(0, 10, 10, 20)]);
        assert_eq!(spans(&files, 100, 50), [(1, 0, 100, 50)]);
    }

    #[test]
    fn range_straddling_three_files_skips_empty_ones() {
        let files = layout(&[10, 0, 5, 0, 0, 20]);
        assert_eq!(
            spans(&files, 8, 15),
            [(0, 8, 8, 2), (2, 0, 10, 5), (5, 0, 15, 8)]
        );
        // Starting exactly at a boundary with zero-length files there.
        assert_eq!(spans(&files, 15, 3), [(5, 0, 15, 3)]);
        assert_eq!(spans(&files, 10, 5), [(2, 0, 10, 5)]);
    }

    #[test]
    fn range_is_clipped_to_the_total() {
        let files = layout(&[10, 10]);
        assert_eq!(spans(&files, 15, 100), [(1, 5, 15, 5)]);
        assert!(spans(&files, 20, 5).is_empty());
        assert!(spans(&files, 0, 0).is_empty());
        assert!(spans(&files, u64::MAX, u64::MAX).is_empty());
        assert!(spans(&[], 0, 10).is_empty());
    }

    #[test]
    fn relative_path_joins_components() {
        let f = FileEntry {
            path: vec!["top".into(), "sub".into(), "a.bin".into()],
            length: 1,
            offset: 0,
            pad: false,
        };
        assert_eq!(f.relative_path(), PathBuf::from("top/sub/a.bin"));
    }
}
