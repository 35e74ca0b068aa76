//! The errors of the wire codec: every way a peer's bytes can be wrong.

/// A handshake that is not the BitTorrent protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first byte is not 19 (the length of "BitTorrent protocol").
    #[error("handshake pstrlen is {0}, expected 19")]
    BadPstrLen(u8),
    /// The protocol string is not "BitTorrent protocol".
    #[error("handshake protocol string is not \"BitTorrent protocol\"")]
    BadProtocol,
}

/// A frame or message a peer sent that breaks the protocol; the connection should be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The length prefix announces a frame over the cap (checked before the body arrives).
    #[error("frame of {len} bytes exceeds the cap of {max}")]
    FrameTooLarge {
        /// The announced length (after the prefix).
        len: u32,
        /// The cap in force.
        max: u32,
    },
    /// A message whose length is wrong for its id (e.g. HAVE that is not 5 bytes).
    #[error("message id {id} with invalid length {len}")]
    BadLength {
        /// The message id.
        id: u8,
        /// The frame length after the prefix (id included).
        len: u32,
    },
    /// A PIECE message carrying more than one block (16 KiB).
    #[error("piece payload of {len} bytes exceeds the block size")]
    BlockTooLarge {
        /// The payload length.
        len: u32,
    },
    /// The 68-byte handshake is malformed.
    #[error("bad handshake: {0}")]
    BadHandshake(#[from] HandshakeError),
    /// An extension payload that is not valid bencode (or exceeds the bencode limits).
    #[error("bad bencode in extension message: {0}")]
    Bencode(#[from] bencode::Error),
    /// An extension message that is valid bencode but breaks the extension's rules.
    #[error("bad extension message: {0}")]
    BadExtension(&'static str),
    /// An integer in an extension message outside the range its key allows.
    #[error("extension key {key:?} has out-of-range value {value}")]
    ExtensionValue {
        /// The key.
        key: &'static str,
        /// The value received.
        value: i64,
    },
    /// A `ut_metadata` DATA message whose bytes are not the length of its piece (for the
    /// `total_size` it names): a wrong-length piece, told apart so a fetch can drop its sender.
    #[error("ut_metadata piece {piece} has {got} bytes, not {want}")]
    MetadataPieceLength {
        /// The piece number.
        piece: u32,
        /// The length of that piece for the announced total size.
        want: u32,
        /// The bytes received.
        got: usize,
    },
    /// More entries than the cap in an extension message's list or dictionary.
    #[error("{what}: {count} entries exceed the cap of {max}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many were received.
        count: usize,
        /// The cap.
        max: usize,
    },
}
