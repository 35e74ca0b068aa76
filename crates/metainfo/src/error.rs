//! Why a torrent or info dictionary was refused, naming the field and the problem.

use crate::path::PathError;

/// A .torrent file or info dictionary that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetainfoError {
    /// The input is larger than the cap.
    #[error("torrent is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// Not valid bencode (or nested too deep, too many values...).
    #[error("{field}: {error}")]
    Bencode {
        /// Which part of the torrent (`torrent` or `info`).
        field: &'static str,
        /// The decoder's error, with the byte position.
        error: bencode::Error,
    },
    /// A field is missing, of the wrong type, or out of range.
    #[error("{field}: {problem}")]
    Field {
        /// Dotted path of the field, e.g. `info.files[3].length`.
        field: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// A file path (or the name) that could escape the output directory or is otherwise unusable.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The `pieces` string does not hold one hash per piece of the total length.
    #[error(
        "piece count {pieces} does not match total length {total_len} with piece length \
         {piece_len} ({expected} pieces expected)"
    )]
    PieceCount {
        /// Hashes present in `pieces`.
        pieces: u64,
        /// Pieces the total length needs.
        expected: u64,
        /// Sum of the file lengths.
        total_len: u64,
        /// The `piece length`.
        piece_len: u64,
    },
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A required key is absent.
    #[error("missing")]
    Missing,
    /// The value has the wrong bencode type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// The type required.
        expected: &'static str,
        /// The type present.
        found: &'static str,
    },
    /// The key appears more than once in its dictionary (readers could disagree on its value).
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// The value is present and typed correctly but not acceptable; the text says why.
    #[error("{0}")]
    Invalid(String),
}

impl MetainfoError {
    /// A [`MetainfoError::Field`] error.
    pub(crate) fn field(field: impl Into<String>, problem: Problem) -> Self {
        MetainfoError::Field {
            field: field.into(),
            problem,
        }
    }

    /// A [`Problem::Invalid`] error for `field` with the message `why`.
    pub(crate) fn invalid(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self::field(field, Problem::Invalid(why.into()))
    }
}
