//! The store conformance suite, on one Redis server and on a Redis Cluster. Every handle
//! the suite asks for opens its own connection, as separate processes would.

mod common;

use std::time::{Duration, SystemTime};

use common::{unique_prefix, Cleanup, Target};
use sessio::testing::check_store;
use sessio::SessionStore;
use sessio_redis::{Layout, RedisStore};

/// Far enough ahead that every session of the run has expired by then.
fn far_future() -> SystemTime {
    SystemTime::now() + Duration::from_secs(1000 * 86_400)
}

/// The suite on stores in `layout` connected to `target` under a fresh prefix; afterwards
/// everything it left is swept by the far future.
async fn conforms(target: Target, layout: Layout) {
    let prefix = unique_prefix();
    let cleanup = Cleanup::new(target.urls(), &prefix);
    let with_prefix = || target.store(layout, &prefix);
    // On a cluster too, the layout's marker goes wherever its key's slot is.
    with_prefix().await.migrate().await.unwrap();
    check_store(with_prefix).await;

    let store = with_prefix().await;
    let left = store.count().await.unwrap();
    assert_eq!(store.delete_expired(far_future()).await.unwrap(), left);
    assert_eq!(store.count().await.unwrap(), 0);
    cleanup.finish();
}

#[tokio::test]
async fn standalone_redis_conforms() {
    let Some(target) = Target::single() else {
        return;
    };
    conforms(target, Layout::Native).await;
}

#[tokio::test]
async fn redis_cluster_conforms() {
    let Some(target) = Target::cluster() else {
        return;
    };
    conforms(target, Layout::Native).await;
}

/// Sessions spread over every primary, and `count` and `delete_expired` find them all.
#[tokio::test]
async fn cluster_scans_reach_every_primary() {
    let Some(target) = Target::cluster() else {
        return;
    };
    let urls = target.urls();
    let prefix = unique_prefix();
    let cleanup = Cleanup::new(urls.clone(), &prefix);
    let store = RedisStore::connect_url(&format!(
        "redis+cluster://{}",
        urls.iter()
            .map(|url| url.trim_start_matches("redis://"))
            .collect::<Vec<_>>()
            .join(",")
    ))
    .await
    .expect("connect with a redis+cluster:// URL")
    .with_key_prefix(&prefix)
    .unwrap();
    assert!(format!("{store:?}").contains("cluster"));
    store.migrate().await.unwrap();

    let now = SystemTime::now();
    let sessions = 60;
    for i in 0..sessions {
        let ttl = Duration::from_secs(if i % 3 == 0 { 60 } else { 3600 });
        let record = sessio::store::Record {
            data: Default::default(),
            meta: sessio::store::Meta {
                created_at: now,
                last_active: now,
                expires_at: now + ttl,
                expiry: None,
            },
        };
        let id = sessio::SessionId::from(format!("cluster-session-{i}"));
        store.create(&id, &record).await.unwrap();
    }
    // Each primary holds some of them.
    for url in &urls {
        let on_node = common::keys_with_prefix(std::slice::from_ref(url), &prefix);
        assert!(
            on_node.iter().any(|key| !key.ends_with("layout")),
            "no session on {url}"
        );
    }
    assert_eq!(store.count().await.unwrap(), sessions);
    let removed = store
        .delete_expired(now + Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(removed, sessions / 3);
    assert_eq!(store.count().await.unwrap(), sessions - sessions / 3);
    cleanup.finish();
}
