//! Everything about a torrent that is not the network: .torrent files (BEP 3/12/27/47) and their
//! info-hash, creating them, magnet links, piece geometry, and path safety.
//!
//! It reads files only to create torrents; it opens no sockets and reads no clock.

pub mod bitfield;
pub mod geometry;
pub mod hash;

pub use bitfield::{Bitfield, BitfieldError};
pub use geometry::{BLOCK_SIZE, BlockRef, Geometry, GeometryError, PieceIndex};
pub use hash::{HashParseError, InfoHash, PeerId};
