//! The memory store keeps the whole store contract.

use std::sync::OnceLock;

use sessio::testing::check_store;
use sessio::MemoryStore;

#[tokio::test]
async fn memory_store_conforms() {
    let shared = OnceLock::new();
    check_store(|| {
        let store = shared.get_or_init(MemoryStore::new).clone();
        async move { store }
    })
    .await;
}

#[tokio::test]
async fn memory_store_keeps_a_user_index() {
    let shared = OnceLock::new();
    sessio::testing::check_user_index(|| {
        let store = shared.get_or_init(MemoryStore::new).clone();
        async move { store }
    })
    .await;
}
