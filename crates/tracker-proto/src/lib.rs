//! Tracker announce and scrape, both sides, as plain data and bytes: parsing a request's raw
//! query on the tracker, building one on the client, encoding responses straight into a buffer
//! on the tracker and decoding them on the client (BEP 3, 7, 21, 23, 48).
//!
//! It is not a tracker and not an HTTP client: no sockets, no clock, no peer store. Response
//! decoding uses a small borrowing bencode reader of its own (`reader.rs`) so it stays
//! allocation-light and independent of a value tree.

mod announce_request;
mod announce_response;
mod error;
mod query;
mod reader;
mod scrape;
mod writer;

pub use announce_request::{AnnounceRequest, Event, PARAM_BYTES_MAX, ParamBytes};
pub use announce_response::{
    AnnounceReply, AnnounceResponse, MAX_DECODED_PEERS, PeerForm, encode_failure,
};
pub use error::{QueryError, ResponseError};
pub use scrape::{
    DEFAULT_MAX_SCRAPE, MAX_DECODED_FILES, ScrapeRequest, ScrapeResponse, ScrapeStats,
};

/// The error of [`AnnounceRequest::parse_query`] (the same type as scrape's).
pub type AnnounceError = QueryError;
