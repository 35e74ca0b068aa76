//! A swarm's peers from the Mainline DHT: look the info-hash up and announce our port, again
//! every 15 minutes (every minute while a download has few peers).

use std::sync::Arc;
use std::time::Duration;

use metainfo::InfoHash;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Discovery, FEW_PEERS};
use crate::dht::DhtHandle;
use crate::peer::Driver;

/// Re-announce interval (stored peers expire after 30 minutes).
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// Re-lookup interval while a download is short of peers.
const SHORT_OF_PEERS_INTERVAL: Duration = Duration::from_secs(60);
/// How long the first lookup waits for the node's bootstrap.
const BOOTSTRAP_WAIT: Duration = Duration::from_secs(15);

/// Looks `info_hash` up and announces `port` until `cancel`; found peers go to `discovery`.
pub async fn run(
    dht: DhtHandle,
    info_hash: InfoHash,
    port: u16,
    driver: watch::Receiver<Arc<dyn Driver>>,
    discovery: Discovery,
    cancel: CancellationToken,
) {
    // Lookups before the table has nodes would end at once; give the bootstrap a moment.
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = dht.wait_bootstrapped(BOOTSTRAP_WAIT) => {}
    }
    loop {
        let mut found = 0usize;
        let mut rx = dht.lookup(info_hash, Some(port)).await;
        loop {
            let batch = tokio::select! {
                _ = cancel.cancelled() => return,
                b = rx.recv() => b,
            };
            let Some(peers) = batch else { break };
            found += peers.len();
            discovery.add(peers);
        }
        tracing::debug!(%info_hash, found, "DHT lookup finished");
        let short = {
            let d = driver.borrow().clone();
            !*d.done().borrow() && d.connected().len() < FEW_PEERS
        };
        let wait = if short {
            SHORT_OF_PEERS_INTERVAL
        } else {
            ANNOUNCE_INTERVAL
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
