//! The Mainline DHT (BEP 5) as a sans-IO state machine: KRPC over bencode, a routing table, a
//! peer store and iterative lookups, driven by one [`Dht`] per node.
//!
//! It is **not** a network service: it opens no socket, reads no clock and spawns nothing. The
//! shell owns a UDP socket and a timer and drives the [`Dht`] the way quinn-proto is driven:
//!
//! - inputs: [`Dht::handle_packet`] (a datagram and its sender), [`Dht::handle_timeout`], and
//!   commands [`Dht::bootstrap`], [`Dht::get_peers`], [`Dht::announce`], [`Dht::find_node`],
//!   each with `now`;
//! - outputs: [`Dht::poll_transmit`] (datagrams to send), [`Dht::poll_timeout`] (when to call
//!   `handle_timeout`), [`Dht::poll_event`] ([`DhtEvent`]s: peers found, lookups done,
//!   bootstrapped).
//!
//! Randomness comes from the `Rng` given to [`Dht::new`], so a seeded run is reproducible and a
//! whole network can be simulated on virtual time (see `tests/sim.rs` and `examples/sim.rs`).
//!
//! Lookups ask `alpha` nodes at a time, ask a node that timed out once more, and end when the
//! `k` closest nodes seen (that have not failed) have answered. After bootstrapping, every
//! bucket farther than our own is refreshed with a lookup, and any bucket unchanged for 15
//! minutes is refreshed again.
//!
//! Only IPv4 is spoken (26-byte compact nodes, 6-byte peers); IPv6 (BEP 32), secure node ids
//! (BEP 42), read-only mode for ourselves and storage (BEP 44) are not implemented. Incoming
//! `ro` (BEP 43) is honoured: such nodes are answered but not added to the routing table.
//!
//! # Bounds
//!
//! Everything input can grow is capped (defaults in [`Config`]):
//!
//! | what | cap | at the cap |
//! |---|---|---|
//! | packet decoded | 8 KiB, depth 4, 1024 values | dropped |
//! | routing table | k = 8 per bucket, <= 160 buckets, k replacements each, one entry per IP | newcomer waits in the replacement cache; oldest replacement dropped |
//! | lookups running | 32 | [`DhtError::TooManyLookups`] |
//! | candidates per lookup | 48 closest (+ those in flight) | farthest forgotten |
//! | requests in flight per lookup | alpha = 3 | the lookup waits |
//! | outstanding transactions | 256 | lookups wait; pings skipped |
//! | transmit / event queues | 1024 each | newest dropped (logged) |
//! | info-hashes stored | 4096 | announce answered with error 202 |
//! | peers per info-hash | 256 | stalest replaced |
//! | peers per get_peers reply | 50 | random choice |
//! | peer expiry | 30 min | forgotten |
//! | token secret | rotated every 5 min, previous accepted | tokens live 5-10 min |
//! | queries per IP | 20/s sustained, 40 burst | dropped silently |
//! | rate-limited IPs tracked | 4096 | queries from new IPs dropped |
//! | request timeout | 2 s | counts as a failure; 2 in a row make a node bad |

mod compact;
mod config;
mod dht;
mod error;
mod id;
mod lookup;
pub mod message;
mod ratelimit;
mod routing;
mod server;
mod store;
mod token;

pub use compact::{COMPACT_NODE_LEN, COMPACT_PEER_LEN, NodeInfo};
pub use config::Config;
pub use dht::{Dht, DhtEvent, LookupStats};
pub use error::{DecodeError, DecodeErrorKind, DhtError};
pub use id::{Distance, ID_BITS, NodeId};
pub use lookup::LookupId;
pub use ratelimit::RateLimiter;
pub use routing::{Heard, RoutingTable, Status};
pub use store::PeerStore;
pub use token::TokenSecrets;
