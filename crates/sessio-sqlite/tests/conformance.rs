//! The SQLite store keeps the whole store contract, with every handle on its own pool.

mod common;

use sessio::testing::check_store;
use sessio_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms_across_pools() {
    let db = common::TempDb::new();
    check_store(|| {
        let url = db.url.clone();
        async move {
            // A new pool each call: the concurrency rule then runs across "processes".
            let store = SqliteStore::connect(&url).await.expect("connect");
            store.migrate().await.expect("migrate");
            store
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_sqlite_store_conforms_within_its_pool() {
    let base = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("connect");
    check_store(|| {
        // Handles on the one pool: an in-memory database is not shared with other pools.
        let store = base.clone();
        async move {
            store.migrate().await.expect("migrate");
            store
        }
    })
    .await;
}
