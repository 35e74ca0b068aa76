//! Storage: a torrent's pieces on its files. It maps pieces onto file spans, reads and writes
//! them with positioned I/O from many threads, verifies them against their SHA-1 hashes, and
//! saves and checks resume data.
//!
//! It is the one library crate that does file I/O. It opens no sockets, reads no clock and runs
//! no async runtime: the client calls it from a blocking thread pool. It never writes outside the
//! output directory (see the `path` module for how). Unix only (`pread`/`pwrite`,
//! `O_NOFOLLOW`).

mod error;
mod layout;
mod path;
mod pool;
mod resume;
mod stamp;
mod storage;
mod verify;

pub use error::{Op, Result, StorageError};
pub use layout::{FileSpec, Layout, LayoutError, Span};
pub use pool::{DEFAULT_MAX_OPEN_FILES, HandlePool};
pub use resume::{MAX_RESUME_LEN, ResumeData, ResumeError, encoded_len};
pub use stamp::{FileStamp, Trusted, trusted_pieces};
pub use storage::{Mode, OpenOptions, Storage};
