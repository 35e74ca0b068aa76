//! The timer task of a driver (a torrent's engine, a magnet's metadata fetch): it sleeps until
//! the state machine's next deadline, or until a call under the machine's lock moved that
//! deadline earlier, then calls the machine's timeout handler.

use std::time::Instant;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The deadline the timer task sleeps until, kept beside the state machine under its lock.
#[derive(Debug, Default)]
pub struct TimerAt(Option<Instant>);

impl TimerAt {
    /// Notes the machine's next deadline after a call; true when it is earlier than the one the
    /// timer task sleeps until (the caller then wakes the task, after releasing the lock).
    pub fn moved_earlier(&mut self, next: Option<Instant>) -> bool {
        let earlier = match (next, self.0) {
            (Some(n), Some(at)) => n < at,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if earlier {
            self.0 = next;
        }
        earlier
    }

    /// The timer task is about to sleep until `next`; returns it.
    pub fn sleeping_until(&mut self, next: Option<Instant>) -> Option<Instant> {
        self.0 = next;
        next
    }
}

/// Runs until `cancel`: sleeps until the deadline `next` returns (it reads the machine's
/// deadline under the lock and records it with [`TimerAt::sleeping_until`]), or until `moved`
/// is notified, then calls `fire` when the deadline passed.
pub async fn run(
    cancel: &CancellationToken,
    moved: &Notify,
    mut next: impl FnMut() -> Option<Instant>,
    mut fire: impl FnMut(),
) {
    loop {
        let at = next();
        let due = async {
            match at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            // A call moved the deadline earlier: sleep again until the new one.
            _ = moved.notified() => continue,
            _ = due => {}
        }
        fire();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn only_an_earlier_deadline_wakes_the_task() {
        let now = Instant::now();
        let mut t = TimerAt::default();
        assert!(!t.moved_earlier(None), "no deadline, nothing to wake for");
        assert!(t.moved_earlier(Some(now + Duration::from_secs(5))));
        assert!(!t.moved_earlier(Some(now + Duration::from_secs(6))));
        assert!(!t.moved_earlier(None));
        assert!(t.moved_earlier(Some(now + Duration::from_secs(1))));
        assert_eq!(t.sleeping_until(None), None);
        assert!(t.moved_earlier(Some(now + Duration::from_secs(9))));
    }

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_and_follows_an_earlier_one() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cancel = CancellationToken::new();
        let moved = Arc::new(Notify::new());
        let start = Instant::now();
        let deadline = Arc::new(parking_lot::Mutex::new(Some(
            start + Duration::from_secs(60),
        )));
        let fired = Arc::new(AtomicUsize::new(0));
        let task = {
            let (cancel, moved, deadline, fired) = (
                cancel.clone(),
                moved.clone(),
                deadline.clone(),
                fired.clone(),
            );
            tokio::spawn(async move {
                let mut at = TimerAt::default();
                run(
                    &cancel,
                    &moved,
                    || at.sleeping_until(*deadline.lock()),
                    || {
                        fired.fetch_add(1, Ordering::SeqCst);
                        *deadline.lock() = None;
                    },
                )
                .await;
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        *deadline.lock() = Some(start + Duration::from_secs(2));
        moved.notify_one();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            fired.load(Ordering::SeqCst),
            1,
            "woke for the earlier deadline"
        );
        cancel.cancel();
        task.await.unwrap();
    }
}
