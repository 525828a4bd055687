//! A background task that removes expired sessions.

use std::time::Duration;

use tokio::task::JoinHandle;

use super::SessionStore;
use crate::Clock;

/// Periodically deletes expired sessions from a store, so that sessions nobody comes back
/// for do not pile up. The task stops when this handle is stopped or dropped.
///
/// ```
/// use std::time::Duration;
/// use sessio::{ExpiredCleanup, MemoryStore, SystemClock};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MemoryStore::new();
/// let cleanup = ExpiredCleanup::spawn(store.clone(), Duration::from_secs(60), SystemClock);
/// // ... serve requests ...
/// cleanup.stop();
/// # }
/// ```
#[derive(Debug)]
#[must_use = "the cleanup task stops when its handle is dropped"]
pub struct ExpiredCleanup {
    task: JoinHandle<()>,
}

impl ExpiredCleanup {
    /// Starts the task on the current tokio runtime: a sweep every `every`, the first one
    /// right away. A failed sweep is logged and retried at the next tick.
    pub fn spawn<S, C>(store: S, every: Duration, clock: C) -> Self
    where
        S: SessionStore,
        C: Clock,
    {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.delete_expired(clock.now()).await {
                    Ok(0) => {}
                    Ok(removed) => tracing::debug!(removed, "removed expired sessions"),
                    Err(error) => {
                        tracing::warn!(error = %crate::error::Chain(&error), "expired-session cleanup failed")
                    }
                }
            }
        });
        Self { task }
    }

    /// Stops the task.
    pub fn stop(self) {
        // Dropping aborts.
    }
}

impl Drop for ExpiredCleanup {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::tests::record;
    use crate::{ManualClock, MemoryStore, SessionId};
    use std::time::SystemTime;

    #[tokio::test(start_paused = true)]
    async fn sweeps_on_its_own_until_stopped() {
        let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000));
        let store = MemoryStore::new();
        let now = clock.now();
        let record = |ttl| record(now, ttl);
        store
            .create(&SessionId::from("a"), &record(5))
            .await
            .unwrap();
        store
            .create(&SessionId::from("b"), &record(50))
            .await
            .unwrap();

        let cleanup = ExpiredCleanup::spawn(store.clone(), Duration::from_secs(60), clock.clone());
        clock.advance(Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(store.count().await.unwrap(), 1);

        cleanup.stop();
        clock.advance(Duration::from_secs(100));
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(
            store.count().await.unwrap(),
            1,
            "a stopped task sweeps no more"
        );
    }
}
