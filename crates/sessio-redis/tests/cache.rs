//! The client-side cache ([`ClientCache`]): reads served without a round trip, exact within
//! the process however its writes interleave, and emptied or corrected by Redis when
//! another client writes, when the connection drops.

mod common;

use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use sessio::store::{CreateOutcome, Meta, Record, SessionStore, WriteOutcome};
use sessio::testing::check_store;
use sessio::SessionId;
use sessio_redis::{ClientCache, ConnectError, Layout, RedisStore};

use common::{unique_prefix, Cleanup, PrivateRedis, Target};

/// How long another client's write may take to reach the cache before a test fails: far
/// above the sub-millisecond it takes, for a loaded machine.
const PROPAGATION: Duration = Duration::from_secs(5);

async fn cached_store(url: &str, prefix: &str, cache: ClientCache) -> RedisStore {
    cached_store_in(Layout::Native, url, prefix, cache).await
}

async fn cached_store_in(
    layout: Layout,
    url: &str,
    prefix: &str,
    cache: ClientCache,
) -> RedisStore {
    RedisStore::connect(url)
        .await
        .unwrap()
        .with_layout(layout)
        .with_key_prefix(prefix)
        .unwrap()
        .with_client_cache(cache)
        .await
        .expect("open the cache's connection")
}

async fn plain_store(url: &str, prefix: &str) -> RedisStore {
    plain_store_in(Layout::Native, url, prefix).await
}

async fn plain_store_in(layout: Layout, url: &str, prefix: &str) -> RedisStore {
    RedisStore::connect(url)
        .await
        .unwrap()
        .with_layout(layout)
        .with_key_prefix(prefix)
        .unwrap()
}

/// Now, to the millisecond (as Redis keeps it), so that records compare equal.
fn now() -> SystemTime {
    let ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    SystemTime::UNIX_EPOCH + Duration::from_millis(ms as u64)
}

fn record(now: SystemTime, views: u64) -> Record {
    let mut data = sessio::store::Data::new();
    data.insert("views".into(), json!(views));
    Record {
        data,
        meta: Meta {
            created_at: now,
            last_active: now,
            expires_at: now + Duration::from_secs(3600),
            expiry: None,
        },
    }
}

fn views(record: &Option<Record>) -> Option<u64> {
    record
        .as_ref()
        .map(|record| record.data["views"].as_u64().unwrap())
}

/// Loads from `store` until `done` holds of what it read, or [`PROPAGATION`] passed.
async fn load_until(
    store: &RedisStore,
    id: &SessionId,
    what: &str,
    done: impl Fn(&Option<Record>) -> bool,
) {
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let loaded = store.load(id, now()).await.unwrap();
        if done(&loaded) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: still {loaded:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The store contract holds with a cache (every handle a clone of one cached store:
/// handles on other connections see each other's writes when Redis's invalidation
/// arrives, which the suite does not wait for).
#[tokio::test]
async fn a_cached_store_conforms() {
    cached_store_conforms(Layout::Native).await;
}

async fn cached_store_conforms(layout: Layout) {
    let Some(Target::Single(url)) = Target::single() else {
        return;
    };
    let prefix = unique_prefix();
    let cleanup = Cleanup::new(vec![url.clone()], &prefix);
    let store = cached_store_in(layout, &url, &prefix, ClientCache::new()).await;
    check_store(|| {
        let store = store.clone();
        async move { store }
    })
    .await;
    cleanup.finish();
}

#[tokio::test]
async fn sessions_are_read_from_the_cache_and_written_in_one_round_trip() {
    let Some(server) = PrivateRedis::start_or_skip() else {
        return;
    };
    let max_age = Duration::from_secs(30);
    let store = cached_store(
        &server.url(),
        "p:",
        ClientCache::new().with_max_age(max_age),
    )
    .await;
    let plain = plain_store(&server.url(), "p:").await;
    let id = SessionId::from("a session id");
    let t0 = now();

    // A session is cached from its first read on.
    assert_eq!(
        store.create(&id, &record(t0, 1)).await.unwrap(),
        CreateOutcome::Created
    );
    for _ in 0..3 {
        assert_eq!(views(&store.load(&id, t0).await.unwrap()), Some(1));
    }
    assert_eq!(server.calls("hgetall"), 1);

    // A change is one transaction, and the cache holds what Redis holds after it.
    let mut changes = sessio::store::Changes::default();
    changes.set("views", json!(2));
    changes.set("cart", json!([1, 2.5, "x"]));
    let mut meta = record(t0, 0).meta;
    meta.last_active = t0 + Duration::from_millis(1500);
    meta.expires_at = meta.last_active + Duration::from_secs(3600);
    meta.expiry = Some(sessio::Expiry::new(
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    ));
    let transactions = server.calls("exec");
    assert_eq!(
        store.update(&id, &changes, &meta).await.unwrap(),
        WriteOutcome::Applied
    );
    assert_eq!(server.calls("exec"), transactions + 1);
    let cached = store.load(&id, meta.last_active).await.unwrap();
    assert_eq!(server.calls("hgetall"), 1, "the update kept the entry");
    assert_eq!(cached, plain.load(&id, meta.last_active).await.unwrap());
    assert_eq!(views(&cached), Some(2));

    // Past its max age, an entry is read again.
    let reads = server.calls("hgetall");
    let later = meta.last_active + max_age;
    assert_eq!(views(&store.load(&id, later).await.unwrap()), Some(2));
    assert_eq!(server.calls("hgetall"), reads + 1);
    assert_eq!(views(&store.load(&id, later).await.unwrap()), Some(2));
    assert_eq!(server.calls("hgetall"), reads + 1, "and cached again");
    let stats = store.client_cache_stats().unwrap();
    assert_eq!((stats.hits, stats.misses, stats.entries), (4, 2, 1));
    assert_eq!(stats.hit_ratio(), Some(4.0 / 6.0));
    assert_eq!(
        (stats.invalidations, stats.disconnections),
        (0, 0),
        "its own update is not an invalidation"
    );
    assert!(plain.client_cache_stats().is_none());

    // Removed by this store: gone at once.
    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id, later).await.unwrap(), None);
    let stats = store.client_cache_stats().unwrap();
    assert_eq!((stats.misses, stats.entries), (3, 0));
}

#[tokio::test]
async fn another_clients_writes_reach_the_cache() {
    other_clients_writes_reach_the_cache(Layout::Native).await;
}

async fn other_clients_writes_reach_the_cache(layout: Layout) {
    let Some(Target::Single(url)) = Target::single() else {
        return;
    };
    let prefix = unique_prefix();
    let cleanup = Cleanup::new(vec![url.clone()], &prefix);
    // Only an invalidation can refresh an entry within the test.
    let long = ClientCache::new().with_max_age(Duration::from_secs(3600));
    let cached = cached_store_in(layout, &url, &prefix, long).await;
    let other = plain_store_in(layout, &url, &prefix).await;
    let id = SessionId::from("shared session");
    let t0 = now();
    other.create(&id, &record(t0, 1)).await.unwrap();
    assert_eq!(views(&cached.load(&id, t0).await.unwrap()), Some(1));

    let mut changes = sessio::store::Changes::default();
    changes.set("views", json!(2));
    let meta = record(t0, 0).meta;
    other.update(&id, &changes, &meta).await.unwrap();
    load_until(&cached, &id, "another client's update", |r| {
        views(r) == Some(2)
    })
    .await;
    assert!(cached.client_cache_stats().unwrap().invalidations >= 1);

    // After this store's own write too (a write would end Redis's tracking of the key
    // unless the store kept it tracked).
    changes.set("views", json!(3));
    cached.update(&id, &changes, &meta).await.unwrap();
    assert_eq!(views(&cached.load(&id, t0).await.unwrap()), Some(3));
    changes.set("views", json!(4));
    other.update(&id, &changes, &meta).await.unwrap();
    load_until(&cached, &id, "another client's update after ours", |r| {
        views(r) == Some(4)
    })
    .await;

    // Logged out elsewhere: the session goes here too.
    other.delete(&id).await.unwrap();
    load_until(&cached, &id, "another client's delete", Option::is_none).await;
    cleanup.finish();
}

/// Many writes of one process on one session at once, in every interleaving the runtime
/// makes: afterwards the cache holds exactly what Redis holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_leave_the_cache_exact() {
    concurrent_writes_leave_the_cache_exact_in(Layout::Native).await;
}

async fn concurrent_writes_leave_the_cache_exact_in(layout: Layout) {
    let Some(Target::Single(url)) = Target::single() else {
        return;
    };
    let prefix = unique_prefix();
    let cleanup = Cleanup::new(vec![url.clone()], &prefix);
    let cached = cached_store_in(layout, &url, &prefix, ClientCache::new()).await;
    let plain = plain_store_in(layout, &url, &prefix).await;
    for round in 0..40u64 {
        let id = SessionId::from(format!("contended {round}"));
        let t0 = now();
        cached.create(&id, &record(t0, 0)).await.unwrap();
        let mut writers = tokio::task::JoinSet::new();
        for writer in 0..12u64 {
            let (store, id) = (cached.clone(), id.clone());
            writers.spawn(async move {
                // Reading first puts the entry back whenever a write dropped it.
                let _ = store.load(&id, t0).await.unwrap();
                let mut changes = sessio::store::Changes::default();
                // Each its own key, and all of them the same one.
                changes.set(format!("w{writer}"), json!(writer));
                changes.set("views", json!(writer));
                if writer % 4 == 3 {
                    changes.remove("w0");
                }
                let mut meta = record(t0, 0).meta;
                meta.last_active = t0 + Duration::from_millis(writer);
                if writer % 3 == 0 {
                    store.touch(&id, &meta).await.unwrap();
                } else {
                    store.update(&id, &changes, &meta).await.unwrap();
                }
            });
        }
        while let Some(done) = writers.join_next().await {
            done.unwrap();
        }
        let at = t0 + Duration::from_millis(20);
        assert_eq!(
            cached.load(&id, at).await.unwrap(),
            plain.load(&id, at).await.unwrap(),
            "round {round}"
        );
    }
    cleanup.finish();
}

#[tokio::test]
async fn a_dropped_connection_empties_the_cache() {
    let Some(mut server) = PrivateRedis::start_or_skip() else {
        return;
    };
    // Entries would otherwise outlive the test.
    let long = ClientCache::new().with_max_age(Duration::from_secs(3600));
    let cached = cached_store(&server.url(), "p:", long).await;
    let id = SessionId::from("a session id");
    let t0 = now();
    cached.create(&id, &record(t0, 1)).await.unwrap();
    assert_eq!(views(&cached.load(&id, t0).await.unwrap()), Some(1));

    // Redis goes away; meanwhile (no invalidation can reach this store) the session
    // changes; Redis comes back with it.
    server.kill();
    server.spawn();
    let other = plain_store(&server.url(), "p:").await;
    let mut changes = sessio::store::Changes::default();
    changes.set("views", json!(2));
    other
        .update(&id, &changes, &record(t0, 0).meta)
        .await
        .unwrap();

    let deadline = Instant::now() + PROPAGATION;
    loop {
        // Errors while the store notices the restart are fine; stale data for ever is not.
        if let Ok(loaded) = cached.load(&id, t0).await {
            if views(&loaded) == Some(2) {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the cache kept the session from before the connection dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(cached.client_cache_stats().unwrap().disconnections >= 1);
    // And caching resumes on a new connection: two reads make one HGETALL at most.
    let deadline = Instant::now() + PROPAGATION;
    loop {
        let reads = server.calls("hgetall");
        let _ = cached.load(&id, t0).await.unwrap();
        let _ = cached.load(&id, t0).await.unwrap();
        if server.calls("hgetall") <= reads + 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache did not come back after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_cache_needs_one_server() {
    let Some(Target::Cluster(urls)) = Target::cluster() else {
        return;
    };
    let cluster = RedisStore::connect_cluster(&urls)
        .await
        .unwrap()
        .with_client_cache(ClientCache::new())
        .await;
    match cluster {
        Err(error @ ConnectError::CacheUnsupported(_)) => {
            assert!(error.to_string().contains("Cluster"), "{error}");
        }
        other => panic!("{other:?}"),
    }
}

/// In the connect-redis layout reads are cached; a write drops the entry until the next
/// read; another client's writes reach the cache.
#[cfg(feature = "express")]
#[tokio::test]
async fn the_connect_redis_layout_caches_reads() {
    let Some(server) = PrivateRedis::start_or_skip() else {
        return;
    };
    let connect = || async {
        RedisStore::connect(&server.url())
            .await
            .unwrap()
            .with_layout(Layout::ConnectRedis)
    };
    let long = ClientCache::new().with_max_age(Duration::from_secs(3600));
    let cached = connect().await.with_client_cache(long).await.unwrap();
    let other = connect().await;
    let id = SessionId::from("a node session id");
    let t0 = now();
    assert_eq!(
        cached.create(&id, &record(t0, 1)).await.unwrap(),
        CreateOutcome::Created
    );
    let reads = server.calls("get");
    for _ in 0..3 {
        assert_eq!(views(&cached.load(&id, t0).await.unwrap()), Some(1));
    }
    assert_eq!(server.calls("get"), reads + 1, "read once, then cached");

    let mut changes = sessio::store::Changes::default();
    changes.set("views", json!(2));
    let meta = record(t0, 0).meta;
    cached.update(&id, &changes, &meta).await.unwrap();
    assert_eq!(views(&cached.load(&id, t0).await.unwrap()), Some(2));

    changes.set("views", json!(3));
    other.update(&id, &changes, &meta).await.unwrap();
    load_until(&cached, &id, "another client's update", |r| {
        views(r) == Some(3)
    })
    .await;
    other.delete(&id).await.unwrap();
    load_until(&cached, &id, "another client's delete", Option::is_none).await;
}
