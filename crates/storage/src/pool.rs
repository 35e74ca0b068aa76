//! A bounded pool of open file handles, least recently used out first, shareable by storages.
//!
//! A torrent may have 100,000 files and a process may seed 1,000 torrents; keeping every file
//! open would exhaust descriptors. Every [`Storage`](crate::Storage) takes its handles from a
//! [`HandlePool`]: by default a private one of [`DEFAULT_MAX_OPEN_FILES`]; a process running
//! many torrents should make one pool and pass it to all of them, which bounds the whole
//! process. At the cap the least recently used handle leaves the pool. I/O runs outside the lock
//! on a shared `Arc<File>`, so an evicted handle stays valid until the thread using it is done,
//! and is closed then. A storage's handles leave the pool when the storage is dropped.

use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Default cap on open handles of a pool.
pub const DEFAULT_MAX_OPEN_FILES: usize = 128;

/// (owner storage, file index).
type Key = (u64, usize);

#[derive(Debug)]
struct Entry {
    file: Arc<File>,
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Entry>,
    tick: u64,
}

#[derive(Debug)]
struct Shared {
    cap: usize,
    inner: Mutex<Inner>,
}

/// Open file handles shared by one or more storages, at most `cap` at a time. Cloning gives
/// another reference to the same pool.
#[derive(Debug, Clone)]
pub struct HandlePool {
    shared: Arc<Shared>,
}

impl Default for HandlePool {
    fn default() -> Self {
        HandlePool::new(DEFAULT_MAX_OPEN_FILES)
    }
}

impl HandlePool {
    /// A pool holding at most `cap` handles (at least one).
    pub fn new(cap: usize) -> Self {
        HandlePool {
            shared: Arc::new(Shared {
                cap: cap.max(1),
                inner: Mutex::new(Inner::default()),
            }),
        }
    }

    /// The cap on open handles.
    pub fn cap(&self) -> usize {
        self.shared.cap
    }

    /// Number of handles held now.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when no handle is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A fresh owner id for a storage using this pool.
    pub(crate) fn new_owner() -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The map is consistent after every statement, so a panic elsewhere cannot corrupt it.
        self.shared
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The handle for `key`, opened with `open` on a miss. The open runs outside the lock.
    pub(crate) fn get_or_open<E>(
        &self,
        key: Key,
        open: impl FnOnce() -> Result<File, E>,
    ) -> Result<Arc<File>, E> {
        if let Some(f) = self.get(key) {
            return Ok(f);
        }
        let file = Arc::new(open()?);
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(e) = inner.map.get_mut(&key) {
            // Another thread opened it meanwhile; keep one handle.
            e.used = tick;
            return Ok(Arc::clone(&e.file));
        }
        if inner.map.len() >= self.shared.cap {
            let oldest = inner
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                inner.map.remove(&k);
            }
        }
        let entry = Entry {
            file: Arc::clone(&file),
            used: tick,
        };
        inner.map.insert(key, entry);
        Ok(file)
    }

    /// The pooled handle for `key`, if any.
    pub(crate) fn get(&self, key: Key) -> Option<Arc<File>> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.map.get_mut(&key).map(|e| {
            e.used = tick;
            Arc::clone(&e.file)
        })
    }

    /// Number of handles `owner` holds.
    pub(crate) fn owned_by(&self, owner: u64) -> usize {
        self.lock().map.keys().filter(|k| k.0 == owner).count()
    }

    /// Drops every handle of `owner` (a storage going away).
    pub(crate) fn release(&self, owner: u64) {
        self.lock().map.retain(|k, _| k.0 != owner);
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
        let pool = HandlePool::new(2);
        pool.get_or_open((0, 0), open(0)).unwrap();
        pool.get_or_open((0, 1), open(1)).unwrap();
        assert!(pool.get((0, 0)).is_some()); // 0 is now more recent than 1
        pool.get_or_open((0, 2), open(2)).unwrap();
        assert_eq!(pool.len(), 2);
        assert!(pool.get((0, 1)).is_none());
        assert!(pool.get((0, 0)).is_some());
        assert!(pool.get((0, 2)).is_some());
        // A hit does not call the opener.
        let hit = pool.get_or_open((0, 2), || -> io::Result<File> { panic!("opened on a hit") });
        assert!(hit.is_ok());
        // A failed open leaves the pool as it was.
        let miss = pool.get_or_open((0, 3), || Err(io::Error::from(io::ErrorKind::NotFound)));
        assert!(miss.is_err());
        assert_eq!(pool.len(), 2);
    }

    #[test]
    fn owners_share_the_cap_and_release_their_handles() {
        let dir = tempfile::tempdir().unwrap();
        let pool = HandlePool::new(3);
        let (a, b) = (HandlePool::new_owner(), HandlePool::new_owner());
        assert_ne!(a, b);
        for (owner, file) in [(a, 0), (b, 0), (a, 1), (b, 1)] {
            let p = dir.path().join(format!("{owner}-{file}"));
            pool.clone()
                .get_or_open((owner, file), || File::create(p))
                .unwrap();
        }
        assert_eq!(pool.len(), 3);
        assert_eq!(pool.owned_by(a) + pool.owned_by(b), 3);
        pool.release(a);
        assert_eq!(pool.owned_by(a), 0);
        assert_eq!(pool.len(), pool.owned_by(b));
        assert!(!pool.is_empty());
    }
}
