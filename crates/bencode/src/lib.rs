//! Zero-copy bencode (BEP 3): a validating scanner, a borrowed value tree, and an encoder.
//!
//! - [`value_len`] checks that one complete value starts a buffer and says how long it is,
//!   telling "incomplete, read more" apart from "invalid", without building anything.
//! - [`decode`] / [`decode_prefix`] build a [`Value`] whose strings borrow from the input;
//!   [`raw_dict`] lists a dictionary's entries with the exact bytes of each value (to hash a
//!   torrent's `info` as it stands in the file).
//! - [`Value::encode`] and the `put_*` helpers write bencode.
//!
//! Reading is strict (no leading zeros, no `-0`, string keys) but accepts unsorted and duplicate
//! dictionary keys, which occur in the wild. Every reader is bounded by [`Limits`]: input
//! length, nesting depth (never more than [`HARD_MAX_DEPTH`]) and number of values. Integers
//! must fit an `i64`. This crate does no I/O and has no serde integration.

mod encode;
mod error;
mod scan;
mod value;

pub use encode::{put_bytes, put_dict_start, put_end, put_int, put_list_start, put_str, put_uint};
pub use error::{Error, ErrorKind};
pub use scan::{HARD_MAX_DEPTH, Limits, RawEntry, raw_dict, value_len, value_len_with};
pub use value::{Value, decode, decode_prefix, decode_prefix_with, decode_with};
