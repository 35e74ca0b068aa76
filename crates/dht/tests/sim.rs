//! A simulated DHT network on virtual time (5,000 nodes, 10-100 ms latency, 5% loss, churn):
//! get_peers lookups must find the announced peers and reach the true closest nodes. A longer
//! run with more lookups is `cargo run --release -p dht --example sim`.

mod simnet;

use std::time::Duration;

use simnet::{SimConfig, run};

#[test]
fn lookups_succeed_under_loss_and_churn() {
    let report = run(SimConfig {
        nodes: 5000,
        seed: 7,
        loss: 0.05,
        latency_ms: (10, 100),
        join_window: Duration::from_secs(60),
        announced: 50,
        lookups: 500,
        measure_window: Duration::from_secs(60),
        // 0.1% of the nodes replaced per second: 300 leave and 300 join in the minute.
        churn_per_sec: 0.001,
    });
    report.print("sim 5000 nodes");
    assert!(report.lookups >= 480, "lookups started: {}", report.lookups);
    assert!(report.churned >= 250);
    assert!(report.success() >= 0.99, "success {:.4}", report.success());
    assert!(report.recall() >= 0.90, "recall {:.4}", report.recall());
    assert_eq!(report.finished, report.lookups, "every lookup ends");
}
