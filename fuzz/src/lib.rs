//! Bodies of the fuzz targets, one module per parser family.
//!
//! Each module has `pub fn run(data: &[u8])`, which feeds `data` to the parsers and panics if an
//! invariant breaks (a parser panicking is a bug of its own: they must return errors). The
//! libFuzzer binaries in `fuzz_targets/` call these, and the workspace test
//! `tests/tests/fuzz_seeds.rs` runs every file in `fuzz/seeds/<target>/` through the same
//! functions on stable Rust. Modules are self-contained (no `crate::` paths) so that test can
//! mount them with `#[path]`.

pub mod bencode;
pub mod engine_peer;
pub mod krpc;
pub mod magnet;
pub mod mse_responder;
pub mod resume;
pub mod torrent;
pub mod tracker_query;
pub mod tracker_response;
pub mod udp_tracker_response;
pub mod udp_tracker_request;
pub mod wire_extensions;
pub mod wire_frames;
