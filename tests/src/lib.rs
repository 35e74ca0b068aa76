//! Helpers for swarm's scenario tests: real processes and in-process nodes on 127.0.0.1, and
//! interop with real BitTorrent programs (libtorrent, aria2, Transmission).
//!
//! The scenarios themselves live in `tests/*.rs`. This library is test support, not a test
//! framework: it finds programs ([`programs`]) and the workspace's binaries ([`bins`]), builds
//! our client's command lines ([`client`]), runs processes with bounded waits ([`process`]),
//! makes and compares deterministic data ([`files`]), picks loopback ports ([`ports`]), drives
//! real peers ([`peers`]) and runs our tracker in-process ([`tracker`], with [`http`] to query
//! it). For fault scenarios: a stage of tracker + seeder ([`seeded`]), a scripted tracker
//! ([`fake_tracker`]), resume-data readings ([`resume`]), tmpfs mounts ([`mount`]) and network
//! namespaces joined by a veth pair or a bridge ([`netns`]).
//! Nothing here talks to any address outside 127.0.0.0/8, except inside the namespaces
//! [`netns`] makes (10.199.0.0/16 and fd99:199::/64, on links of their own).

pub mod bins;
pub mod client;
pub mod fake_tracker;
pub mod files;
pub mod http;
pub mod mount;
pub mod netns;
pub mod peers;
pub mod ports;
pub mod process;
pub mod programs;
pub mod resume;
pub mod seeded;
pub mod tracker;

pub use programs::Program;
