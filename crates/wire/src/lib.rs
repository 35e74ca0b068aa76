//! The BitTorrent peer wire protocol as a sans-IO codec: the 68-byte handshake (BEP 3), the
//! length-prefixed messages of BEP 3 and the Fast extension (BEP 6), and the extension protocol
//! (BEP 10) with its metadata (BEP 9) and peer-exchange (BEP 11) messages.
//!
//! It turns bytes into typed messages and back, checking every length before it reads, capping
//! every size, and sharing payloads with the read buffer (`bytes`) instead of copying them.
//!
//! It is not a connection: it opens no socket, keeps no state between frames, reads no clock, and
//! does not check numbers against a torrent (a REQUEST's piece and length are the engine's to judge
//! with `metainfo::Geometry`).

pub mod codec;
pub mod error;
pub mod extension;
pub mod handshake;
pub mod message;
pub mod metadata;
pub mod pex;

pub use codec::{DEFAULT_MAX_FRAME, Decoder, check};
pub use error::{HandshakeError, WireError};
pub use extension::ExtendedHandshake;
pub use handshake::{HANDSHAKE_LEN, HANDSHAKE_PREFIX_LEN, Handshake, Reserved};
pub use message::{BlockSpec, Message, PIECE_HEADER_LEN, piece_header};
pub use metadata::MetadataMsg;
pub use pex::{PexMsg, PexPeer};
