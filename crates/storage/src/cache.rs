//! A bounded cache of open file handles, least recently used out first.
//!
//! A torrent may have 100,000 files and a process may seed 1,000 torrents; keeping every file
//! open would exhaust descriptors. Each [`Storage`](crate::Storage) keeps at most `cap` handles
//! (default [`DEFAULT_MAX_OPEN_FILES`]); at the cap the least recently used handle is dropped
//! from the cache. I/O runs outside the lock on a shared `Arc<File>`, so an evicted handle stays
//! valid until the thread using it finishes, and is closed then.

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Mutex, PoisonError};

/// Default cap on open handles per storage.
pub const DEFAULT_MAX_OPEN_FILES: usize = 128;

#[derive(Debug)]
struct Entry {
    file: Arc<File>,
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<usize, Entry>,
    tick: u64,
}

/// Open handles keyed by file index.
#[derive(Debug)]
pub(crate) struct HandleCache {
    cap: usize,
    inner: Mutex<Inner>,
}

impl HandleCache {
    /// A cache holding at most `cap` handles (at least one).
    pub(crate) fn new(cap: usize) -> Self {
        HandleCache {
            cap: cap.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is consistent after every statement, so a panic elsewhere cannot corrupt it.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle for file `idx`, opened with `open` on a miss. The open runs outside the lock.
    pub(crate) fn get_or_open<E>(
        &self,
        idx: usize,
        open: impl FnOnce() -> Result<File, E>,
    ) -> Result<Arc<File>, E> {
        if let Some(f) = self.get(idx) {
            return Ok(f);
        }
        let file = Arc::new(open()?);
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(e) = inner.map.get_mut(&idx) {
            // Another thread opened it meanwhile; keep one handle.
            e.used = tick;
            return Ok(Arc::clone(&e.file));
        }
        if inner.map.len() >= self.cap {
            let oldest = inner
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                inner.map.remove(&k);
            }
        }
        inner.map.insert(
            idx,
            Entry {
                file: Arc::clone(&file),
                used: tick,
            },
        );
        Ok(file)
    }

    /// The cached handle for file `idx`, if any.
    pub(crate) fn get(&self, idx: usize) -> Option<Arc<File>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.map.get_mut(&idx).map(|e| {
            e.used = tick;
            Arc::clone(&e.file)
        })
    }

    /// Number of handles held.
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn evicts_least_recently_used_at_cap() {
        let dir = tempfile::tempdir().unwrap();
        let open = |i: usize| {
            let p = dir.path().join(i.to_string());
            move || File::create(p)
        };
        let c = HandleCache::new(2);
        c.get_or_open(0, open(0)).unwrap();
        c.get_or_open(1, open(1)).unwrap();
        assert!(c.get(0).is_some()); // 0 is now more recent than 1
        c.get_or_open(2, open(2)).unwrap();
        assert_eq!(c.len(), 2);
        assert!(c.get(1).is_none());
        assert!(c.get(0).is_some());
        assert!(c.get(2).is_some());
        // A hit does not call the opener.
        let hit = c.get_or_open(2, || -> io::Result<File> { panic!("opened on a hit") });
        assert!(hit.is_ok());
        // A failed open leaves the cache as it was.
        let miss = c.get_or_open(3, || Err(io::Error::from(io::ErrorKind::NotFound)));
        assert!(miss.is_err());
        assert_eq!(c.len(), 2);
    }
}
