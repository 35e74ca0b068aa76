//! The one error type of the crate: what was wrong and at which byte.

use std::fmt;

/// A bencode value that could not be read: the byte offset and what was wrong there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {kind} at byte {pos}")]
pub struct Error {
    /// Byte offset into the input where the problem was found.
    pub pos: usize,
    /// What was wrong.
    pub kind: ErrorKind,
}

/// The ways bencode input can be wrong (or merely incomplete).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ends before the value does: more bytes may complete it.
    Incomplete,
    /// A byte that cannot start or continue a value here.
    UnexpectedByte(u8),
    /// An integer with a leading zero (`i03e`) or a string length with one (`03:abc`).
    LeadingZero,
    /// The integer `-0`, which BEP 3 forbids.
    NegativeZero,
    /// An integer with no digits (`ie`, `i-e`).
    EmptyInteger,
    /// An integer that does not fit in an `i64`.
    IntegerOverflow,
    /// A string length that does not fit the input or overflows.
    LengthOverflow,
    /// A dictionary key that is not a byte string.
    NonStringKey,
    /// A dictionary with a key but no value (`d3:keye`).
    MissingValue,
    /// Lists and dictionaries nested deeper than the limit.
    TooDeep {
        /// The depth limit in force.
        max: usize,
    },
    /// More values in total than the limit.
    TooManyItems {
        /// The item limit in force.
        max: usize,
    },
    /// The input is longer than the limit.
    TooLarge {
        /// The size limit in force.
        max: usize,
    },
    /// Bytes after a complete value where the whole input had to be one value.
    TrailingBytes,
    /// Empty input where a value was expected.
    Empty,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Incomplete => f.write_str("input ends inside a value"),
            ErrorKind::UnexpectedByte(b) if b.is_ascii_graphic() => {
                write!(f, "unexpected byte {:?}", *b as char)
            }
            ErrorKind::UnexpectedByte(b) => write!(f, "unexpected byte 0x{b:02x}"),
            ErrorKind::LeadingZero => f.write_str("number with a leading zero"),
            ErrorKind::NegativeZero => f.write_str("integer -0"),
            ErrorKind::EmptyInteger => f.write_str("integer without digits"),
            ErrorKind::IntegerOverflow => f.write_str("integer does not fit in 64 bits"),
            ErrorKind::LengthOverflow => f.write_str("string length overflows"),
            ErrorKind::NonStringKey => f.write_str("dictionary key is not a byte string"),
            ErrorKind::MissingValue => f.write_str("dictionary key without a value"),
            ErrorKind::TooDeep { max } => write!(f, "nesting deeper than {max}"),
            ErrorKind::TooManyItems { max } => write!(f, "more than {max} values"),
            ErrorKind::TooLarge { max } => write!(f, "input longer than {max} bytes"),
            ErrorKind::TrailingBytes => f.write_str("trailing bytes after the value"),
            ErrorKind::Empty => f.write_str("empty input"),
        }
    }
}

impl Error {
    /// An error of `kind` at byte `pos`.
    pub fn new(pos: usize, kind: ErrorKind) -> Self {
        Error { pos, kind }
    }

    /// True when more input could complete the value (as opposed to the input being invalid).
    pub fn is_incomplete(&self) -> bool {
        self.kind == ErrorKind::Incomplete
    }
}
