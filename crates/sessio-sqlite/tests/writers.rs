//! Many concurrent writers in one process take turns before SQLite's lock: none of them
//! meets `SQLITE_BUSY`, even with no busy timeout at all to hide the contention.

mod common;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::{now, record, TempDb};
use serde_json::json;
use sessio::store::{Changes, CreateOutcome, WriteOutcome};
use sessio::{SessionId, SessionStore};
use sessio_sqlite::SqliteStore;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::Executor as _;
use tokio::sync::Barrier;

const WRITERS: usize = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_never_meet_a_busy_database() {
    let db = TempDb::new();
    let _migrated = db.store().await;
    // Several connections, and SQLite's busy handler off once each is open: two of them
    // writing at once would fail at once with SQLITE_BUSY.
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 0").await?;
                Ok(())
            })
        })
        .connect_with(SqliteConnectOptions::from_str(&db.url).unwrap())
        .await
        .unwrap();
    let store = SqliteStore::from_pool(pool);
    let start = Arc::new(Barrier::new(WRITERS));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                let id = SessionId::from(format!("writer-{i}"));
                let t = now();
                start.wait().await;
                let created = store
                    .create(&id, &record(json!({"n": 0}), t, Duration::from_secs(60)))
                    .await?;
                assert_eq!(created, CreateOutcome::Created);
                let mut changes = Changes::default();
                changes.set("n", json!(i));
                let meta = store.load(&id, t).await?.expect("created").meta;
                let updated = store.update(&id, &changes, &meta).await?;
                assert_eq!(updated, WriteOutcome::Applied);
                store.delete(&id).await
            })
        })
        .collect();
    let mut failures = Vec::new();
    for writer in writers {
        if let Err(error) = writer.await.unwrap() {
            failures.push(error.to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} writers failed: {failures:?}",
        failures.len()
    );
    assert_eq!(store.count().await.unwrap(), 0);
}

/// A request cancelled in the middle of its write (its client went away, say) leaves
/// nothing locked: the next write goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_abandoned_halfway_leaves_no_lock_behind() {
    use std::future::Future;
    use std::task::{Context, Poll};

    let db = TempDb::new();
    let store = db.store().await.with_timeout(Duration::from_secs(2));
    let id = SessionId::from("abandoned");
    let t = now();
    store
        .create(&id, &record(json!({"n": 0}), t, Duration::from_secs(600)))
        .await
        .unwrap();
    let meta = store.load(&id, t).await.unwrap().unwrap().meta;
    for round in 0..50 {
        let mut changes = Changes::default();
        changes.set("n", json!(round));
        {
            // Polled until it is under way, then dropped, as a cancelled request's is.
            let mut write = std::pin::pin!(store.update(&id, &changes, &meta));
            let waker = futures_waker();
            let mut cx = Context::from_waker(&waker);
            for _ in 0..(round % 5) + 1 {
                if let Poll::Ready(done) = write.as_mut().poll(&mut cx) {
                    done.unwrap();
                    break;
                }
                tokio::task::yield_now().await;
            }
        }
        let mut next = Changes::default();
        next.set("m", json!(round));
        let outcome = store.update(&id, &next, &meta).await;
        assert!(
            matches!(outcome, Ok(WriteOutcome::Applied)),
            "round {round}: {outcome:?}"
        );
    }
}

fn futures_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }
    std::task::Waker::from(Arc::new(Noop))
}
