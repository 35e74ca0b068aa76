//! The 5,000-node DHT simulation (10-100 ms latency, 5% loss, churn) on virtual time; prints
//! lookup success, recall of the true 8 closest, rounds, queries per lookup and time to first
//! peer. Run: `cargo run --release -p dht --example sim [nodes] [seed]`.

#[path = "../tests/simnet/mod.rs"]
mod simnet;

use std::time::Duration;

use simnet::{SimConfig, run};

fn main() {
    let mut args = std::env::args().skip(1);
    let nodes = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let seed = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let report = run(SimConfig {
        nodes,
        seed,
        loss: 0.05,
        latency_ms: (10, 100),
        join_window: Duration::from_secs(120),
        announced: 100,
        lookups: 2000,
        measure_window: Duration::from_secs(120),
        churn_per_sec: 0.001,
    });
    report.print(&format!("sim {nodes} nodes"));
    let ok = report.success() >= 0.99 && report.recall() >= 0.90;
    if !ok {
        eprintln!("below target: success >= 99% and recall >= 90% expected");
        std::process::exit(1);
    }
}
