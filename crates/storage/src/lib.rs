//! Storage: a torrent's pieces on its files. It maps pieces onto file spans, reads and writes
//! them with positioned I/O from many threads, verifies them against their SHA-1 hashes, and
//! saves and checks resume data.
//!
//! File I/O is its job, and only that: it opens no sockets and runs no async runtime; the
//! client calls it from a blocking thread pool. It reads the clock only to time its own direct
//! writes (is this device slow at them?), never for protocol time. It never writes outside the
//! output directory (see the `path` module for how). Unix only (`pread`/`pwrite`, `O_NOFOLLOW`).
//!
//! The life of a torrent's data:
//! 1. [`Storage::open`] (or [`Storage::new`] with a [`Layout`]) creates and sizes the files;
//!    processes with many torrents share one [`HandlePool`].
//! 2. What is already there: [`ResumeData::load`], then [`trusted_pieces`] with
//!    [`Storage::stamps`], then [`Storage::verify_set`] on the `recheck` set; without usable
//!    resume data, [`Storage::verify_all`].
//! 3. While downloading: [`Storage::write`] blocks or [`Storage::write_piece`], then
//!    [`Storage::verify_piece`]; serve peers with [`Storage::read`].
//! 4. On shutdown (and now and then): [`Storage::flush`], then save
//!    `ResumeData { have, files: storage.stamps(), .. }` with [`ResumeData::save_atomic`].
//!
//! [`write_atomic`] replaces any small file that way (old or new after a crash, never a mix).

mod atomic_file;
mod error;
mod layout;
mod path;
mod pool;
mod resume;
mod scratch;
mod stamp;
mod storage;
mod verify;

pub use atomic_file::write_atomic;
pub use error::{Op, Result, StorageError};
pub use layout::{FileSpec, Layout, LayoutError, Span};
pub use pool::{DEFAULT_MAX_OPEN_FILES, HandlePool};
pub use resume::{MAX_RESUME_LEN, ResumeData, ResumeError, encoded_len};
pub use scratch::unlinked_file_in;
pub use stamp::{FileStamp, Trusted, trusted_pieces};
pub use storage::{DIRECT_ALIGN, Mode, OpenOptions, Storage};
