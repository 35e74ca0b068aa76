//! The crate's error types: why a KRPC packet could not be read, and why a command was refused.

/// What was wrong with a KRPC packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// Not valid bencode (or over the size, depth or item limits).
    #[error("{0}")]
    Bencode(#[from] bencode::Error),
    /// The packet (or its `a` / `r` part) is not a dictionary.
    #[error("not a dictionary")]
    NotDict,
    /// A required key is absent.
    #[error("missing key {0:?}")]
    Missing(&'static str),
    /// A key holds the wrong bencode type.
    #[error("key {0:?} has the wrong type")]
    WrongType(&'static str),
    /// A string has the wrong length (ids, hashes, compact nodes and peers, `t`, `token`).
    #[error("key {key:?}: bad length {len}")]
    BadLength {
        /// The key.
        key: &'static str,
        /// The length found.
        len: usize,
    },
    /// An integer is out of range (a port above 65535, an error code beyond i32).
    #[error("key {0:?} out of range")]
    OutOfRange(&'static str),
    /// `y` is not `q`, `r` or `e`.
    #[error("unknown message type")]
    UnknownType,
    /// A query whose method (`q`) we do not implement.
    #[error("unknown method")]
    UnknownMethod,
}

/// A KRPC packet that could not be read, and whether it can be answered with an error reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("krpc: {kind}")]
pub struct DecodeError {
    /// What was wrong.
    pub kind: DecodeErrorKind,
    /// The transaction id when the packet was recognisably a query with a valid `t`, so that
    /// an error reply (203 or 204) can be sent back.
    pub query_tid: Option<Vec<u8>>,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind) -> Self {
        DecodeError {
            kind,
            query_tid: None,
        }
    }
}

impl From<DecodeErrorKind> for DecodeError {
    fn from(kind: DecodeErrorKind) -> Self {
        DecodeError::new(kind)
    }
}

/// A command the [`crate::Dht`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DhtError {
    /// [`crate::Config::max_lookups`] lookups are already running.
    #[error("too many lookups in progress (max {0})")]
    TooManyLookups(usize),
}
