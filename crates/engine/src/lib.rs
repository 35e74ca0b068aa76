//! Per-torrent sans-IO state machine: piece picker, choker, request pipeline, and the peer
//! extensions a torrent speaks (serving metadata, peer exchange, PORT for the DHT), and
//! super-seeding (BEP 16) for an initial seeder.
//!
//! Everything here is pure: time arrives as `std::time::Instant` arguments and randomness as a
//! `&mut impl rand::Rng`. The crate opens no sockets, reads no clock and touches no files; the
//! client shell drives it and performs the I/O it asks for.
//!
//! - [`fetch`]: a magnet link's info dictionary from peers (`ut_metadata`) before the torrent
//!   exists, on connections the torrent then adopts.
//! - [`picker`]: which blocks to request from which peer (rarest first, end-game).
//! - [`choker`]: which peers we upload to (tit-for-tat, optimistic unchoke, anti-snubbing).
//! - [`pipeline`]: how many requests to keep outstanding per peer.
//! - [`rate`]: a sliding-window bytes/second estimator.

pub mod buffer;
pub mod choker;
pub mod fetch;
pub mod peer;
pub mod picker;
pub mod pipeline;
pub mod rate;
pub mod torrent;

/// Hash maps and sets whose iteration order is the same in every run (SipHash with fixed
/// keys), for state the engine iterates to make decisions (peers, requests, super-seed
/// windows): a simulation replays exactly from its seed. Keys are the engine's own (peer
/// keys, piece indices, blocks it requested), not chosen by peers.
pub(crate) type FixedMap<K, V> =
    std::collections::HashMap<K, V, std::hash::BuildHasherDefault<std::hash::DefaultHasher>>;
/// The set of [`FixedMap`].
pub(crate) type FixedSet<K> =
    std::collections::HashSet<K, std::hash::BuildHasherDefault<std::hash::DefaultHasher>>;

pub use buffer::{PIECE_ALIGN, PieceData};
pub use fetch::{FetchEvent, FetchStatus, Handover, MetadataFetch};
pub use peer::{PeerKey, Upload};
pub use torrent::{Config, Event, PeerError, PieceOutcome, SUPER_SEED_MIN_WINDOW, Stats, Torrent};
