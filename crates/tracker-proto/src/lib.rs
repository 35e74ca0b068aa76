//! Tracker announce and scrape, both sides, as plain data and bytes: parsing a request's raw
//! query on the tracker, building one on the client, encoding responses straight into a buffer
//! on the tracker and decoding them on the client (BEP 3, 7, 21, 23, 48); the UDP tracker
//! protocol's messages in [`udp`] (BEP 15) and its client side as a state machine in
//! [`udp_client`].
//!
//! It is not a tracker and not an HTTP client: no sockets, no clock, no peer store. Bencode
//! reading and the `put_*` writers come from the workspace's `bencode` crate; responses are
//! encoded by hand, keys in sorted order, straight into the caller's buffer.

mod announce_request;
mod announce_response;
mod error;
mod query;
mod scrape;
pub mod udp;
pub mod udp_client;

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
