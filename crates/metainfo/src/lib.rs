//! Everything about a torrent that is not the network: .torrent files (BEP 3/12/27/47) and their
//! info-hash, creating them, magnet links, piece geometry, and path safety.
//!
//! It reads files only to create torrents and to keep an info dictionary out of memory
//! ([`StoredBytes`]); it opens no sockets and reads no clock.

pub mod bitfield;
pub mod create;
mod error;
mod fields;
pub mod files;
pub mod geometry;
pub mod hash;
mod hasher;
pub mod info;
pub mod magnet;
pub mod path;
pub mod pieces;
pub mod stored;
pub mod torrent;

pub use bitfield::{Bitfield, BitfieldError};
pub use create::{CreateError, DEFAULT_PIECE_LENGTH, Scan, TorrentBuilder};
pub use error::{MetainfoError, Problem};
pub use files::{FileEntry, FileSpan, Spans};
pub use geometry::{BLOCK_SIZE, BlockRef, Geometry, GeometryError, PieceIndex};
pub use hash::{HashParseError, InfoHash, PeerId};
pub use info::{Info, MAX_FILES, MAX_TORRENT_BYTES};
pub use magnet::{Magnet, MagnetError};
pub use path::{PathError, PathProblem};
pub use pieces::PieceHashes;
pub use stored::StoredBytes;
pub use torrent::Metainfo;

/// This program's name and version ("swarm 0.1.0"), wherever it names itself to others.
pub const CLIENT_VERSION: &str = concat!("swarm ", env!("CARGO_PKG_VERSION"));
