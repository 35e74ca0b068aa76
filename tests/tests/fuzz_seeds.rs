//! The fuzz targets' regression pass for CI, on stable Rust and without libFuzzer: every file in
//! `fuzz/seeds/<target>/` (hand-picked valid inputs and minimised crash reproducers), and every
//! prefix of it, goes through the same `run` function the fuzz target calls. The bodies live in
//! `fuzz/src/` and are mounted here with `#[path]`, so nothing is duplicated.

use std::fs;
use std::path::PathBuf;

#[path = "../../fuzz/src/bencode.rs"]
mod bencode_target;
#[path = "../../fuzz/src/engine_peer.rs"]
mod engine_peer;
#[path = "../../fuzz/src/krpc.rs"]
mod krpc;
#[path = "../../fuzz/src/magnet.rs"]
mod magnet;
#[path = "../../fuzz/src/mse_responder.rs"]
mod mse_responder;
#[path = "../../fuzz/src/resume.rs"]
mod resume;
#[path = "../../fuzz/src/torrent.rs"]
mod torrent;
#[path = "../../fuzz/src/tracker_query.rs"]
mod tracker_query;
#[path = "../../fuzz/src/tracker_response.rs"]
mod tracker_response;
#[path = "../../fuzz/src/udp_tracker_request.rs"]
mod udp_tracker_request;
#[path = "../../fuzz/src/udp_tracker_response.rs"]
mod udp_tracker_response;
#[path = "../../fuzz/src/wire_extensions.rs"]
mod wire_extensions;
#[path = "../../fuzz/src/wire_frames.rs"]
mod wire_frames;

/// Runs `run` on every seed of `target` and on every prefix of each; a target without seeds fails.
fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    for path in files {
        let data = fs::read(&path).expect("read seed");
        for end in 0..=data.len() {
            let input = data.get(..end).expect("prefix");
            if let Err(e) = std::panic::catch_unwind(|| run(input)) {
                let msg = e
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| e.downcast_ref::<&str>().copied())
                    .unwrap_or("(no message)");
                panic!("{} (first {end} bytes): {msg}", path.display());
            }
        }
    }
}

#[test]
fn bencode_seeds() {
    replay("bencode", bencode_target::run);
}

#[test]
fn torrent_seeds() {
    replay("torrent", torrent::run);
}

#[test]
fn magnet_seeds() {
    replay("magnet", magnet::run);
}

#[test]
fn wire_frames_seeds() {
    replay("wire_frames", wire_frames::run);
}

#[test]
fn wire_extensions_seeds() {
    replay("wire_extensions", wire_extensions::run);
}

#[test]
fn tracker_query_seeds() {
    replay("tracker_query", tracker_query::run);
}

#[test]
fn tracker_response_seeds() {
    replay("tracker_response", tracker_response::run);
}

#[test]
fn resume_seeds() {
    replay("resume", resume::run);
}

#[test]
fn engine_peer_seeds() {
    replay("engine_peer", engine_peer::run);
}

#[test]
fn krpc_seeds() {
    replay("krpc", krpc::run);
}

#[test]
fn mse_responder_seeds() {
    replay("mse_responder", mse_responder::run);
}

#[test]
fn udp_tracker_response_seeds() {
    replay("udp_tracker_response", udp_tracker_response::run);
}

#[test]
fn udp_tracker_request_seeds() {
    replay("udp_tracker_request", udp_tracker_request::run);
}
