//! The PostgreSQL store keeps the whole store contract, across connection pools.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};

use sessio::testing::check_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(url) = common::url() else { return };
    let table = common::unique_name();
    let _cleanup = common::Cleanup::tables(&url, &table);
    let migrated = AtomicBool::new(false);
    check_store(|| {
        let (url, table, first) = (
            url.clone(),
            table.clone(),
            !migrated.swap(true, Ordering::SeqCst),
        );
        async move {
            // Every call opens its own pool: the suite's concurrent writers then race on
            // distinct connections, as distinct processes would.
            let store = common::store(&url, &table).await;
            if first {
                store.migrate().await.expect("migrate");
            }
            store
        }
    })
    .await;
}
