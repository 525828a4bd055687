//! What the store writes into Redis, and the edges around it, on one Redis server.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{unique_prefix, Fixture, Target};
use redis::Commands;
use serde_json::json;
use sessio::store::{
    from_unix_millis, unix_millis, Changes, CreateOutcome, Data, Meta, Record, StoreError,
    WriteOutcome,
};
use sessio::testing::service_url;
use sessio::{Expiry, IdGenerator, RandomIdGenerator, SessionId, SessionStore};
use sessio_redis::{ConnectError, InvalidKeyPrefix, Layout, MigrateError, RedisStore};

const HOUR: Duration = Duration::from_secs(3600);

/// Now, to the millisecond: the precision stores keep.
fn now() -> SystemTime {
    from_unix_millis(unix_millis(SystemTime::now()))
}

fn record(data: serde_json::Value) -> Record {
    let now = now();
    let serde_json::Value::Object(data) = data else {
        panic!("data is an object")
    };
    Record {
        data,
        meta: Meta {
            created_at: now,
            last_active: now,
            expires_at: now + HOUR,
            expiry: None,
        },
    }
}

/// A native store under a key prefix of the test's own on the one server; `None` skips the
/// test.
async fn fixture() -> Option<Fixture> {
    Some(Fixture::new(Target::single()?, Layout::Native, unique_prefix()).await)
}

#[tokio::test]
async fn key_prefixes_are_validated() {
    let Some(url) = service_url("SESSIO_TEST_REDIS_URL") else {
        return;
    };
    let store = RedisStore::connect(&url).await.unwrap();
    assert_eq!(store.key_prefix(), "sessio:");
    assert_eq!(store.timeout(), Duration::from_secs(2));

    let store = store.with_key_prefix("app.v2_sessions-x:").unwrap();
    assert_eq!(store.key_prefix(), "app.v2_sessions-x:");
    assert!(store.clone().with_key_prefix("x".repeat(64)).is_ok());

    let refused = |prefix: &str| store.clone().with_key_prefix(prefix).unwrap_err();
    assert_eq!(refused(""), InvalidKeyPrefix::Empty);
    assert_eq!(
        refused(&"x".repeat(65)),
        InvalidKeyPrefix::TooLong { len: 65 }
    );
    for (prefix, found) in [
        ("{tag}:", '{'),
        ("app}", '}'),
        ("app*", '*'),
        ("a?", '?'),
        ("a[b]", '['),
        ("a b", ' '),
        ("sessión:", 'ó'),
        ("a/b", '/'),
    ] {
        assert_eq!(
            refused(prefix),
            InvalidKeyPrefix::InvalidChar { found },
            "{prefix:?}"
        );
    }
    assert!(refused("{x}").to_string().contains("A-Z a-z 0-9"));
}

#[tokio::test]
async fn the_raw_session_id_is_in_no_key_or_field() {
    let Some(fx) = fixture().await else {
        return;
    };
    let prefix = &fx.prefix;
    let store = &fx.store;
    let ids: Vec<SessionId> = (0..5)
        .map(|_| RandomIdGenerator::default().generate())
        .collect();
    for id in &ids {
        assert_eq!(
            store.create(id, &record(json!({"user": 7}))).await.unwrap(),
            CreateOutcome::Created
        );
        let mut changes = Changes::default();
        changes.set("cart", json!([1, 2]));
        let meta = store
            .load(id, SystemTime::now())
            .await
            .unwrap()
            .unwrap()
            .meta;
        store.update(id, &changes, &meta).await.unwrap();
        store.touch(id, &meta).await.unwrap();
    }

    let mut conn = fx.target.raw();
    let keys = fx.keys();
    assert_eq!(keys.len(), ids.len());
    for key in &keys {
        // The prefix and the base64url of 16 bytes of the id's SHA-256.
        assert_eq!(key.len(), prefix.len() + 22, "{key}");
        let hash: Vec<(Vec<u8>, Vec<u8>)> = conn.hgetall(key).unwrap();
        assert!(!hash.is_empty());
        // Data keys as `d:{key}`, each holding its value's compact JSON text.
        let field = |name: &[u8]| hash.iter().find(|(f, _)| f == name).map(|(_, v)| v.clone());
        assert_eq!(field(b"d:user").as_deref(), Some(&b"7"[..]));
        assert_eq!(field(b"d:cart").as_deref(), Some(&b"[1,2]"[..]));
        for id in &ids {
            let id = id.as_str().as_bytes();
            let contains = |hay: &[u8]| hay.windows(id.len()).any(|w| w == id);
            assert!(!contains(key.as_bytes()), "key {key} holds a raw id");
            for (field, value) in &hash {
                assert!(!contains(field) && !contains(value), "{key} holds a raw id");
            }
        }
    }
    fx.finish();
}

#[tokio::test]
async fn awkward_keys_round_trip() {
    let Some(fx) = fixture().await else {
        return;
    };
    let store = &fx.store;
    let awkward = ["a.b", "q\"uote", "d:x", "ü", "", "c", "e", "d:", "*", "\n"];
    let id = RandomIdGenerator::default().generate();
    let rec = record(json!({"keep": true}));
    store.create(&id, &rec).await.unwrap();

    let mut changes = Changes::default();
    for (i, key) in awkward.iter().enumerate() {
        changes.set(*key, json!({"i": i, "text": format!("value of {key}")}));
    }
    assert_eq!(
        store.update(&id, &changes, &rec.meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let loaded = store.load(&id, SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(loaded.data.len(), awkward.len() + 1);
    for (i, key) in awkward.iter().enumerate() {
        assert_eq!(
            loaded.data.get(*key),
            Some(&json!({"i": i, "text": format!("value of {key}")})),
            "{key:?}"
        );
    }
    assert_eq!(loaded.meta, rec.meta, "data keys named like meta fields");

    // Remove every other one.
    let mut changes = Changes::default();
    for key in awkward.iter().step_by(2) {
        changes.remove(*key);
    }
    store.update(&id, &changes, &rec.meta).await.unwrap();
    let loaded = store.load(&id, SystemTime::now()).await.unwrap().unwrap();
    let mut expected = Data::new();
    expected.insert("keep".into(), json!(true));
    for (i, key) in awkward.iter().enumerate().skip(1).step_by(2) {
        expected.insert(
            (*key).into(),
            json!({"i": i, "text": format!("value of {key}")}),
        );
    }
    assert_eq!(loaded.data, expected);
    assert_eq!(loaded.meta, rec.meta);

    // Clearing removes the awkward ones too, and leaves the meta.
    let mut changes = Changes::default();
    changes.clear();
    changes.set("d:x", json!("again"));
    store.update(&id, &changes, &rec.meta).await.unwrap();
    let loaded = store.load(&id, SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(
        serde_json::Value::Object(loaded.data),
        json!({"d:x": "again"})
    );
    assert_eq!(loaded.meta, rec.meta);
    fx.finish();
}

#[tokio::test]
async fn the_session_expiry_is_kept_and_cleared_and_sets_the_ttl() {
    let Some(fx) = fixture().await else {
        return;
    };
    let store = &fx.store;
    let id = RandomIdGenerator::default().generate();
    let mut rec = record(json!({}));
    rec.meta.expiry = Some(Expiry::new(HOUR, 24 * HOUR));
    store.create(&id, &rec).await.unwrap();
    let loaded = store.load(&id, SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(loaded.meta.expiry, rec.meta.expiry);

    let key = fx.keys().remove(0);
    let mut conn = fx.target.raw();
    let expire_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&key)
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        expire_at,
        unix_millis(rec.meta.expires_at),
        "Redis expires the key when the session ends"
    );

    // A write with another expiry of its own replaces it.
    let longer = Meta {
        expiry: Some(Expiry::new(2 * HOUR, 48 * HOUR)),
        expires_at: rec.meta.expires_at + HOUR,
        ..rec.meta
    };
    let mut changes = Changes::default();
    changes.set("k", json!(1));
    store.update(&id, &changes, &longer).await.unwrap();
    let loaded = store.load(&id, SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(loaded.meta, longer);

    let meta = Meta {
        expiry: None,
        expires_at: rec.meta.expires_at + HOUR,
        ..rec.meta
    };
    store.touch(&id, &meta).await.unwrap();
    let loaded = store.load(&id, SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(loaded.meta, meta);
    let e: String = conn.hget(&key, "e").unwrap();
    assert_eq!(
        e,
        unix_millis(meta.expires_at).to_string(),
        "no own expiry left in e"
    );
    let expire_at: i64 = redis::cmd("PEXPIRETIME")
        .arg(&key)
        .query(&mut conn)
        .unwrap();
    assert_eq!(expire_at, unix_millis(meta.expires_at));

    // A record whose expiry has passed in real time is dropped by Redis itself.
    let gone = RandomIdGenerator::default().generate();
    let mut past = record(json!({}));
    past.meta.expires_at = SystemTime::now() - Duration::from_secs(1);
    past.meta.last_active = past.meta.expires_at - Duration::from_secs(1);
    store.create(&gone, &past).await.unwrap();
    assert!(store
        .load(&gone, SystemTime::UNIX_EPOCH)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.count().await.unwrap(), 1);
    fx.finish();
}

#[tokio::test]
async fn bad_stored_content_is_a_decode_error() {
    let Some(fx) = fixture().await else {
        return;
    };
    let store = &fx.store;
    let id = RandomIdGenerator::default().generate();
    store.create(&id, &record(json!({"k": 1}))).await.unwrap();
    let key = fx.keys().remove(0);
    let mut conn = fx.target.raw();

    let _: i64 = conn.hset(&key, "d:k", "{not json").unwrap();
    let error = store.load(&id, SystemTime::now()).await.unwrap_err();
    assert!(matches!(error, StoreError::Decode(_)), "{error:?}");

    let _: i64 = conn.hset(&key, "d:k", "1").unwrap();
    let _: i64 = conn.hset(&key, "c", "yesterday").unwrap();
    let error = store.load(&id, SystemTime::now()).await.unwrap_err();
    assert!(matches!(error, StoreError::Decode(_)), "{error:?}");
    fx.finish();
}

#[tokio::test]
async fn migrate_records_the_layout_and_refuses_an_unknown_one() {
    let Some(fx) = fixture().await else {
        return;
    };
    let prefix = &fx.prefix;
    let store = &fx.store;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let mut conn = fx.target.raw();
    let layout_key = format!("{prefix}layout");
    let layout: String = conn.get(&layout_key).unwrap();
    assert_eq!(layout, "2");
    // The layout key is not a session.
    assert_eq!(store.count().await.unwrap(), 0);

    let _: () = conn.set(&layout_key, "3").unwrap();
    match store.migrate().await {
        Err(MigrateError::UnknownLayout { found, expected }) => {
            assert_eq!((found.as_str(), expected), ("3", "2"));
        }
        other => panic!("migrate over layout 3 returned {other:?}"),
    }
    let layout: String = conn.get(&layout_key).unwrap();
    assert_eq!(layout, "3", "migrate changed an unknown layout");
    fx.finish();
}

#[tokio::test]
async fn nested_prefixes_do_not_see_each_other() {
    let Some(target) = Target::single() else {
        return;
    };
    let outer_prefix = unique_prefix();
    let fx = Fixture::new(target, Layout::Native, outer_prefix.clone()).await;
    let outer = &fx.store;
    let inner = fx
        .target
        .store(Layout::Native, &format!("{outer_prefix}inner:"))
        .await;
    for store in [outer, &inner] {
        store.migrate().await.unwrap();
        for _ in 0..3 {
            let id = RandomIdGenerator::default().generate();
            store.create(&id, &record(json!({}))).await.unwrap();
        }
    }
    assert_eq!(outer.count().await.unwrap(), 3);
    assert_eq!(inner.count().await.unwrap(), 3);
    let later = SystemTime::now() + 2 * HOUR;
    assert_eq!(outer.delete_expired(later).await.unwrap(), 3);
    assert_eq!(inner.count().await.unwrap(), 3);
    assert_eq!(inner.delete_expired(later).await.unwrap(), 3);
    fx.finish();
}

#[tokio::test]
async fn delete_expired_keeps_a_session_touched_since() {
    let Some(fx) = fixture().await else {
        return;
    };
    let store = &fx.store;
    let id = RandomIdGenerator::default().generate();
    let rec = record(json!({}));
    store.create(&id, &rec).await.unwrap();
    let meta = Meta {
        expires_at: rec.meta.expires_at + 2 * HOUR,
        ..rec.meta
    };
    store.touch(&id, &meta).await.unwrap();
    // Expired by the first expiry, not by the one the touch set.
    assert_eq!(
        store
            .delete_expired(rec.meta.expires_at + HOUR)
            .await
            .unwrap(),
        0
    );
    assert!(store.load(&id, SystemTime::now()).await.unwrap().is_some());
    fx.finish();
}

#[tokio::test]
async fn debug_shows_prefix_and_mode_only() {
    let Some(target) = Target::single() else {
        return;
    };
    let store = target.store(Layout::Native, "dbg:").await;
    let debug = format!("{store:?}");
    assert!(
        debug.contains("\"dbg:\"") && debug.contains("standalone"),
        "{debug}"
    );
    assert!(
        !debug.contains("127.0.0.1") && !debug.contains("redis://"),
        "{debug}"
    );
}

/// Reports the Redis memory a session takes beyond its data (not asserted: it depends on
/// the server's version and allocator).
#[tokio::test]
async fn memory_per_session_is_reported() {
    let Some(target) = Target::single() else {
        return;
    };
    // As long as the default prefix `sessio:`, so the key is as long as in production.
    let probe = format!("m{}:", &common::random_hex()[..5]);
    let fx = Fixture::new(target, Layout::Native, probe).await;
    let store = &fx.store;
    let id = RandomIdGenerator::default().generate();
    store.create(&id, &record(json!({}))).await.unwrap();
    let key = fx.keys().remove(0);
    let mut conn = fx.target.raw();
    let usage: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&key)
        .query(&mut conn)
        .unwrap();
    let with_expiry = RandomIdGenerator::default().generate();
    let mut rec = record(json!({}));
    rec.meta.expiry = Some(Expiry::new(HOUR, 24 * HOUR));
    store.create(&with_expiry, &rec).await.unwrap();
    let keys = fx.keys();
    let other = keys.iter().find(|k| **k != key).unwrap();
    let usage_expiry: i64 = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(other)
        .query(&mut conn)
        .unwrap();
    eprintln!(
        "MEMORY USAGE of an empty session: {usage} bytes ({usage_expiry} with its own expiry); \
         key of {} characters",
        key.len()
    );
    fx.finish();
}

#[tokio::test]
async fn connecting_to_nothing_fails_promptly() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let error = RedisStore::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::Unavailable(_)), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let error = RedisStore::connect_url("memcached://127.0.0.1")
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::UnsupportedScheme { .. }));
    let error = RedisStore::connect("redis://user:secret@[bad")
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::InvalidUrl(_)), "{error:?}");
    assert!(!error.to_string().contains("secret"));
    assert!(!format!("{error:?}").contains("secret"));
    let error = RedisStore::connect_cluster(Vec::<String>::new())
        .await
        .unwrap_err();
    assert!(matches!(error, ConnectError::NoNodes));
}

/// A write of a session that is gone (destroyed, or never there) answers `NotFound` and
/// leaves no key behind, on a server and on a cluster.
#[tokio::test]
async fn a_write_of_a_missing_session_leaves_nothing_behind() {
    for target in [Target::single(), Target::cluster()].into_iter().flatten() {
        let prefix = unique_prefix();
        let store = target.store(Layout::Native, &prefix).await;
        let id = RandomIdGenerator::default().generate();
        let rec = record(json!({"k": 1}));
        store.create(&id, &rec).await.unwrap();
        store.delete(&id).await.unwrap();
        let mut changes = Changes::default();
        changes.set("k", json!(2));
        changes.remove("gone");
        assert_eq!(
            store.update(&id, &changes, &rec.meta).await.unwrap(),
            WriteOutcome::NotFound
        );
        assert_eq!(
            store.touch(&id, &rec.meta).await.unwrap(),
            WriteOutcome::NotFound
        );
        assert_eq!(store.load(&id, now()).await.unwrap(), None);
        assert_eq!(store.count().await.unwrap(), 0, "a partial hash was left");
    }
}
