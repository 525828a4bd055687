//! The SQLite store keeps the whole store contract, with every handle a store of its own.

mod common;

use sessio::testing::check_store;
use sessio_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms_across_stores() {
    let db = common::TempDb::new();
    check_store(|| {
        let url = db.url.clone();
        async move {
            // A new store each call: the concurrency rule then runs across "processes".
            let store = SqliteStore::connect(&url).await.expect("connect");
            store.migrate().await.expect("migrate");
            store
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_sqlite_store_conforms_across_its_clones() {
    let base = SqliteStore::connect("sqlite::memory:")
        .await
        .expect("connect");
    check_store(|| {
        // Clones of one store: an in-memory database belongs to one store.
        let store = base.clone();
        async move {
            store.migrate().await.expect("migrate");
            store
        }
    })
    .await;
}
