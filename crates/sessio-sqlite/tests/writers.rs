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
