//! Deterministic test data and byte-for-byte tree comparison.
//!
//! Data comes from a seeded xorshift generator: the same seed gives the same bytes on every run
//! and machine, so a failure reproduces. It is not a source of real randomness.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

/// Bytes written or compared per step.
const CHUNK: usize = 64 * 1024;
/// At most this many files in one tree walk (test trees are small; this bounds the walk).
const MAX_TREE_FILES: usize = 100_000;
/// At most this deep a tree walk.
const MAX_TREE_DEPTH: usize = 32;

/// Marsaglia's xorshift64* generator: fast, seeded, reproducible.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator for `seed` (any value; zero is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        XorShift((seed ^ 0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// `len` pseudo-random bytes for `seed`.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    XorShift::new(seed).fill(&mut out);
    out
}

/// Writes a file of `len` pseudo-random bytes for `seed`, creating parent directories.
pub fn write_file(path: &Path, len: u64, seed: u64) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("mkdir {}", parent.display()))?;
    }
    let file = File::create(path).with_context(|| format!("create {}", path.display()))?;
    let mut out = BufWriter::new(file);
    let mut rng = XorShift::new(seed);
    let mut buf = vec![0; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
        let chunk = &mut buf[..n];
        rng.fill(chunk);
        out.write_all(chunk)?;
        left -= n as u64;
    }
    out.flush()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

/// Writes each `(relative path, length)` under `root`; file `i` gets seed `seed + i`.
pub fn write_tree(root: &Path, files: &[(&str, u64)], seed: u64) -> Result<()> {
    std::fs::create_dir_all(root).with_context(|| format!("mkdir {}", root.display()))?;
    for (i, (rel, len)) in files.iter().enumerate() {
        ensure!(
            Path::new(rel).is_relative() && !rel.split('/').any(|c| c == ".."),
            "tree path {rel:?} must stay under the root"
        );
        write_file(&root.join(rel), *len, seed.wrapping_add(i as u64))?;
    }
    Ok(())
}

/// Checks that `a` and `b` hold the same bytes: two files, or two directories with the same
/// regular files (by relative path) and contents. Empty directories are not compared.
///
/// The error names every missing, extra and differing file, with the first differing offset.
pub fn compare_paths(a: &Path, b: &Path) -> Result<()> {
    if a.is_file() || b.is_file() {
        return match compare_files(a, b)? {
            None => Ok(()),
            Some(diff) => bail!("{} and {} differ: {diff}", a.display(), b.display()),
        };
    }
    let left = list_files(a)?;
    let right = list_files(b)?;
    let mut problems = Vec::new();
    for rel in left.keys().filter(|k| !right.contains_key(*k)) {
        problems.push(format!("only in {}: {}", a.display(), rel.display()));
    }
    for rel in right.keys().filter(|k| !left.contains_key(*k)) {
        problems.push(format!("only in {}: {}", b.display(), rel.display()));
    }
    for rel in left.keys().filter(|k| right.contains_key(*k)) {
        if let Some(diff) = compare_files(&a.join(rel), &b.join(rel))? {
            problems.push(format!("{}: {diff}", rel.display()));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    bail!(
        "trees {} and {} differ:\n  {}",
        a.display(),
        b.display(),
        problems.join("\n  ")
    )
}

/// Panics with [`compare_paths`]'s message unless `a` and `b` hold the same bytes.
#[track_caller]
pub fn assert_same_bytes(a: &Path, b: &Path) {
    if let Err(e) = compare_paths(a, b) {
        panic!("{e:#}");
    }
}

/// `None` when the two files are equal, else what differs (size, or first differing offset).
fn compare_files(a: &Path, b: &Path) -> Result<Option<String>> {
    let (Ok(ma), Ok(mb)) = (a.metadata(), b.metadata()) else {
        return Ok(Some(format!(
            "missing: {} exists={}, {} exists={}",
            a.display(),
            a.exists(),
            b.display(),
            b.exists()
        )));
    };
    if !ma.is_file() || !mb.is_file() {
        return Ok(Some("not both regular files".to_owned()));
    }
    if ma.len() != mb.len() {
        return Ok(Some(format!("sizes {} != {}", ma.len(), mb.len())));
    }
    let mut fa = File::open(a).with_context(|| format!("open {}", a.display()))?;
    let mut fb = File::open(b).with_context(|| format!("open {}", b.display()))?;
    let (mut ba, mut bb) = (vec![0; CHUNK], vec![0; CHUNK]);
    let mut offset = 0u64;
    while offset < ma.len() {
        let n = usize::try_from((ma.len() - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
        fa.read_exact(&mut ba[..n])?;
        fb.read_exact(&mut bb[..n])?;
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(Some(format!(
                "first difference at byte {}",
                offset + i as u64
            )));
        }
        offset += n as u64;
    }
    Ok(None)
}

/// Regular files under `root`, by path relative to it, with their sizes.
fn list_files(root: &Path) -> Result<BTreeMap<PathBuf, u64>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        ensure!(
            depth <= MAX_TREE_DEPTH,
            "{} is nested too deep",
            dir.display()
        );
        let entries = std::fs::read_dir(&dir).with_context(|| format!("read {}", dir.display()))?;
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push((path, depth + 1));
            } else if kind.is_file() {
                ensure!(
                    out.len() < MAX_TREE_FILES,
                    "{} has too many files",
                    root.display()
                );
                let rel = path.strip_prefix(root)?.to_path_buf();
                out.insert(rel, entry.metadata()?.len());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        assert_eq!(pseudo_random_bytes(7, 1000), pseudo_random_bytes(7, 1000));
        assert_ne!(pseudo_random_bytes(7, 1000), pseudo_random_bytes(8, 1000));
        assert_ne!(pseudo_random_bytes(0, 64), vec![0; 64]);
    }

    #[test]
    fn a_shorter_run_is_a_prefix_of_a_longer_one() {
        let long = pseudo_random_bytes(3, 100);
        assert_eq!(pseudo_random_bytes(3, 13), long[..13]);
    }

    #[test]
    fn written_file_matches_the_generator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/f.bin");
        let len = CHUNK as u64 * 2 + 5;
        write_file(&path, len, 11).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk, pseudo_random_bytes(11, len as usize));
    }

    #[test]
    fn equal_trees_compare_equal() {
        let dir = tempfile::tempdir().unwrap();
        let files = [("x", 10), ("d/y", 70_000), ("d/e/z", 0)];
        write_tree(&dir.path().join("a"), &files, 1).unwrap();
        write_tree(&dir.path().join("b"), &files, 1).unwrap();
        compare_paths(&dir.path().join("a"), &dir.path().join("b")).unwrap();
        compare_paths(&dir.path().join("a/x"), &dir.path().join("b/x")).unwrap();
    }

    #[test]
    fn differences_are_all_named() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_tree(&a, &[("same", 5), ("gone", 5), ("long", 9)], 1).unwrap();
        write_tree(&b, &[("same", 5), ("new", 5), ("long", 8)], 1).unwrap();
        let mut bytes = std::fs::read(a.join("same")).unwrap();
        bytes[3] ^= 1;
        std::fs::write(b.join("same"), bytes).unwrap();
        let msg = compare_paths(&a, &b).unwrap_err().to_string();
        assert!(msg.contains("gone"), "{msg}");
        assert!(msg.contains("only in") && msg.contains("new"), "{msg}");
        assert!(msg.contains("sizes 9 != 8"), "{msg}");
        assert!(msg.contains("first difference at byte 3"), "{msg}");
    }

    #[test]
    fn a_missing_file_is_a_difference() {
        let dir = tempfile::tempdir().unwrap();
        write_file(&dir.path().join("a"), 3, 1).unwrap();
        let msg = compare_paths(&dir.path().join("a"), &dir.path().join("b"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing"), "{msg}");
    }

    #[test]
    fn tree_paths_may_not_escape() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_tree(dir.path(), &[("../x", 1)], 1).is_err());
        assert!(write_tree(dir.path(), &[("/x", 1)], 1).is_err());
    }
}
