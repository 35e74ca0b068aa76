//! The typed errors of this crate: a bad request query (server side) and a bad or failed
//! tracker response (client side).

/// Why an announce or scrape query was refused; the message names the problem and is sent back
/// to the client as the `failure reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// A required parameter is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// `info_hash` or `peer_id` did not decode to exactly 20 bytes.
    #[error("{param} must be 20 bytes, got {len}")]
    WrongLength {
        /// The parameter.
        param: &'static str,
        /// Its decoded length (saturating at the decode buffer).
        len: usize,
    },
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in {0}")]
    BadPercentEncoding(&'static str),
    /// A number with something other than decimal digits.
    #[error("{0} is not a number")]
    NotANumber(&'static str),
    /// A number with a minus sign where only non-negative values make sense.
    #[error("{0} must not be negative")]
    Negative(&'static str),
    /// A number that does not fit its type.
    #[error("{0} is too large")]
    NumberTooLarge(&'static str),
    /// `port=0`.
    #[error("port must not be 0")]
    PortZero,
    /// A port above 65535.
    #[error("port must be at most 65535")]
    PortTooLarge,
    /// A known parameter given twice (only scrape's `info_hash` may repeat).
    #[error("duplicate parameter {0}")]
    Duplicate(&'static str),
    /// A value longer than this crate stores.
    #[error("{0} is too long")]
    TooLong(&'static str),
    /// An `event` other than started, completed, stopped, paused or empty.
    #[error("unknown event")]
    UnknownEvent,
    /// A flag (`compact`, `no_peer_id`) other than 0 or 1.
    #[error("{0} must be 0 or 1")]
    BadFlag(&'static str),
    /// A scrape naming more info-hashes than the cap.
    #[error("too many info_hash parameters (at most {0})")]
    TooManyInfoHashes(usize),
}

/// Why a tracker response could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The tracker answered with a `failure reason`.
    #[error("tracker failure: {0}")]
    Failure(String),
    /// The body is not well-formed bencode (or breaks the decoder's caps).
    #[error(transparent)]
    Bencode(#[from] bencode::Error),
    /// The top level is not a dictionary.
    #[error("response is not a dictionary")]
    NotADict,
    /// A known key holds a value of the wrong type or range.
    #[error("bad value for {0}")]
    BadField(&'static str),
}
