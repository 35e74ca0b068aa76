//! Why an MSE/PE handshake failed.

/// Why an MSE/PE handshake failed. Every failure of the peer's bytes is one of these; nothing
/// in the handshake panics on input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The responder did not find HASH('req1', S) within the first
    /// [`RESPONDER_SYNC_WINDOW`](crate::RESPONDER_SYNC_WINDOW) bytes.
    #[error("no req1 marker within the sync window")]
    Req1NotFound,
    /// The initiator did not find the encrypted verification constant within the first
    /// [`INITIATOR_SYNC_WINDOW`](crate::INITIATOR_SYNC_WINDOW) bytes.
    #[error("no verification constant within the sync window")]
    VcNotFound,
    /// The initiator asked for a torrent we do not serve (or got the keys wrong).
    #[error("unknown info-hash (SKEY)")]
    UnknownSkey,
    /// The decrypted verification constant is not 8 zero bytes: the peer's keys differ.
    #[error("bad verification constant")]
    BadVc,
    /// A pad longer than [`MAX_PAD`](crate::MAX_PAD).
    #[error("pad of {0} bytes (at most 512)")]
    PadTooLong(u16),
    /// An initial payload longer than [`MAX_IA`](crate::MAX_IA).
    #[error("initial payload of {0} bytes is too long")]
    IaTooLong(u16),
    /// The initiator offers no method we allow.
    #[error("no common crypto method (offered {0:#x})")]
    NoCommonMethod(u32),
    /// The responder selected something other than exactly one method we offered.
    #[error("bad crypto_select {0:#x}")]
    BadSelect(u32),
    /// The stream ended before the handshake did.
    #[error("stream ended during the handshake")]
    Truncated,
    /// Input after the handshake finished (it was handed over already).
    #[error("handshake already finished")]
    Finished,
}
