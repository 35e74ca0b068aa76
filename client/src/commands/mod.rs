//! The subcommands: each a `run` taking its parsed flags ([`crate::cli`]).

pub mod create;
pub mod fetch;
pub mod info;
pub mod seed;

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long a stop waits for stopped announces, the disk tasks' last writes and resume saves,
/// and the DHT table.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until one of `done` changes or one of `stopped` is cancelled.
pub async fn any_change(done: &mut [watch::Receiver<bool>], stopped: &[CancellationToken]) {
    let mut futs: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
    for rx in done.iter_mut() {
        futs.push(Box::pin(async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
    }
    for t in stopped {
        futs.push(Box::pin(t.cancelled()));
    }
    std::future::poll_fn(|cx| {
        for f in &mut futs {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}
