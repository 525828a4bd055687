//! The PostgreSQL store keeps the whole store contract, across connection pools.

mod common;

use sessio_postgres::Layout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(url) = common::url() else { return };
    let table = common::unique_name();
    let _cleanup = common::Cleanup::tables(&url, &table);
    // Every store the suite asks for opens its own pool: its concurrent writers then race
    // on distinct connections, as distinct processes would.
    common::check_store_in(Layout::Native, url, table).await;
}
