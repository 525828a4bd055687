//! The compact layout ([`Layout::Compact`]): what it writes into Redis, and that its Lua
//! scripts and the store's decoding agree on every value, on one Redis server.

mod common;

use std::time::{Duration, SystemTime};

use common::{unique_prefix, Fixture, Target};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use redis::Commands;
use serde_json::{json, Value};
use sessio::store::{
    from_unix_millis, unix_millis, Changes, CreateOutcome, Data, Meta, Record, WriteOutcome,
};
use sessio::{Expiry, SessionId, SessionStore};
use sessio_redis::{Layout, MigrateError, RedisStore};

const HOUR: Duration = Duration::from_secs(3600);

/// Now, to the millisecond: the precision the layout keeps.
fn now() -> SystemTime {
    from_unix_millis(unix_millis(SystemTime::now()))
}

fn meta(at: SystemTime, expiry: Option<Expiry>) -> Meta {
    Meta {
        created_at: at,
        last_active: at,
        expires_at: at + HOUR,
        expiry,
    }
}

async fn fixture() -> Option<Fixture> {
    Some(Fixture::new(Target::single()?, Layout::Compact, unique_prefix()).await)
}

#[tokio::test]
async fn a_session_is_one_short_string_expiring_with_it() {
    let Some(url) = sessio::testing::service_url("SESSIO_TEST_REDIS_URL") else {
        return;
    };
    let store = RedisStore::connect(&url)
        .await
        .unwrap()
        .with_layout(Layout::Compact);
    assert_eq!(store.key_prefix(), "s:");
    let Some(fx) = fixture().await else {
        return;
    };
    let id = SessionId::from("the raw session id");
    let at = now();
    let mut data = Data::new();
    data.insert("page_views".into(), json!(1));
    let record = Record {
        data,
        meta: meta(at, None),
    };
    assert_eq!(
        fx.store.create(&id, &record).await.unwrap(),
        CreateOutcome::Created
    );

    let keys = fx.keys();
    let session_keys: Vec<_> = keys.iter().filter(|key| !key.ends_with("layout")).collect();
    assert_eq!(session_keys.len(), 1, "{keys:?}");
    let key = session_keys[0];
    // 12 characters after the prefix: 14 with the default one.
    assert_eq!(key.len(), fx.prefix.len() + 12);
    assert!(!key.contains("raw"));
    let mut conn = fx.target.raw();
    let kind: String = redis::cmd("TYPE").arg(key).query(&mut conn).unwrap();
    assert_eq!(kind, "string");
    let value: Vec<u8> = conn.get(key).unwrap();
    // A counter and a day's timestamps fit where Redis keeps the value and its header in
    // one 48-byte allocation.
    assert!(value.len() <= 28, "{} bytes", value.len());
    let expires: i64 = redis::cmd("PEXPIRETIME").arg(key).query(&mut conn).unwrap();
    assert_eq!(expires, unix_millis(at + HOUR));
    assert_eq!(fx.store.load(&id, at).await.unwrap(), Some(record));
    fx.finish();
}

#[tokio::test]
async fn a_touch_rewrites_the_timestamps_and_keeps_the_data_as_stored() {
    let Some(fx) = fixture().await else {
        return;
    };
    let id = SessionId::from("touched");
    let at = now();
    let mut data = Data::new();
    data.insert("cart".into(), json!([1, 2.5, "ü"]));
    data.insert("user".into(), json!({"id": 7}));
    let record = Record {
        data: data.clone(),
        meta: meta(at, None),
    };
    fx.store.create(&id, &record).await.unwrap();
    let key = fx
        .keys()
        .into_iter()
        .find(|key| !key.ends_with("layout"))
        .unwrap();
    let mut conn = fx.target.raw();
    let before: Vec<u8> = conn.get(&key).unwrap();

    // With an expiry of its own the head grows; the data's bytes follow it unchanged.
    let own = Some(Expiry::new(HOUR, 4 * HOUR));
    let mut later = meta(at, own);
    later.last_active = at + Duration::from_secs(90);
    later.expires_at = later.last_active + HOUR;
    assert_eq!(
        fx.store.touch(&id, &later).await.unwrap(),
        WriteOutcome::Applied
    );
    let after: Vec<u8> = conn.get(&key).unwrap();
    assert!(after.len() > before.len());
    // Each data key after its length, then its JSON after its length (all under 128 bytes
    // here: one byte each).
    let mut stored_data = Vec::new();
    for (key, value) in &data {
        let json = value.to_string();
        stored_data.push(key.len() as u8);
        stored_data.extend_from_slice(key.as_bytes());
        stored_data.push(json.len() as u8);
        stored_data.extend_from_slice(json.as_bytes());
    }
    assert!(before.ends_with(&stored_data), "{before:?}");
    assert!(after.ends_with(&stored_data), "{after:?}");
    let loaded = fx
        .store
        .load(&id, later.last_active)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.meta, later);
    assert_eq!(loaded.data, data);
    let expires: i64 = redis::cmd("PEXPIRETIME")
        .arg(&key)
        .query(&mut conn)
        .unwrap();
    assert_eq!(expires, unix_millis(later.expires_at));
    fx.finish();
}

#[tokio::test]
async fn a_prefix_holds_one_layout() {
    let Some(target) = Target::single() else {
        return;
    };
    let fx = Fixture::new(target, Layout::Compact, unique_prefix()).await;
    fx.store.migrate().await.unwrap();
    fx.store.migrate().await.unwrap();
    // The check that Redis can serve the layout leaves nothing behind.
    assert_eq!(fx.keys(), vec![format!("{}layout", fx.prefix)]);
    let native = fx.target.store(Layout::Native, &fx.prefix).await;
    match native.migrate().await {
        Err(MigrateError::UnknownLayout { found, expected }) => {
            assert_eq!((found.as_str(), expected), ("compact-1", "2"));
        }
        other => panic!("{other:?}"),
    }
    let connect_redis = fx.target.store(Layout::ConnectRedis, &fx.prefix).await;
    assert!(matches!(
        connect_redis.migrate().await,
        Err(MigrateError::NativeLayoutFound { .. })
    ));
    fx.finish();

    let fx = Fixture::new(Target::single().unwrap(), Layout::Native, unique_prefix()).await;
    fx.store.migrate().await.unwrap();
    let compact = fx.target.store(Layout::Compact, &fx.prefix).await;
    match compact.migrate().await {
        Err(MigrateError::UnknownLayout { found, expected }) => {
            assert_eq!((found.as_str(), expected), ("2", "compact-1"));
        }
        other => panic!("{other:?}"),
    }
    fx.finish();
}

/// One step of a session's life.
#[derive(Debug, Clone)]
enum Step {
    /// An update with these changes (`None` removes the key); `true` clears first.
    Update(bool, Vec<(String, Option<Value>)>),
    Touch,
}

fn keys() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_owned()),
        Just("views".to_owned()),
        Just("ü".to_owned()),
        // Lengths of two varint bytes.
        Just("k".repeat(200)),
    ]
}

fn values() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z\u{e9}\u{1f600}\"\\\\]{0,40}".prop_map(Value::from),
        (0usize..3).prop_map(|len| Value::from("x".repeat([127, 128, 20_000][len]))),
        Just(json!({"nested": [null, true, {"": []}]})),
        Just(json!([])),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let change = (keys(), proptest::option::of(values()));
    let update = (
        proptest::bool::weighted(0.2),
        proptest::collection::vec(change, 0..4),
    )
        .prop_map(|(clear, changes)| Step::Update(clear, changes));
    let step = prop_oneof![3 => update, 1 => Just(Step::Touch)];
    proptest::collection::vec(step, 1..6)
}

/// Any sequence of updates and touches, each written by the Lua scripts and read back by
/// the store, leaves what the same changes leave in memory.
#[test]
fn the_scripts_and_the_store_agree_on_every_value() {
    let Some(target) = Target::single() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fx = runtime.block_on(Fixture::new(target, Layout::Compact, unique_prefix()));
    let mut runner = TestRunner::new(Config {
        cases: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let initial = proptest::collection::btree_map(keys(), values(), 0..4);
    let case = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(
            &(initial, steps(), any::<bool>()),
            |(initial, steps, own)| {
                let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = SessionId::from(format!("case {n}"));
                let mut model: Data = initial.into_iter().collect();
                let start = now();
                let mut meta = meta(start, None);
                runtime.block_on(async {
                    let record = Record {
                        data: model.clone(),
                        meta,
                    };
                    prop_assert_eq!(
                        fx.store.create(&id, &record).await.unwrap(),
                        CreateOutcome::Created
                    );
                    for (i, step) in steps.iter().enumerate() {
                        meta.last_active = start + Duration::from_millis(i as u64 + 1);
                        meta.expires_at = meta.last_active + HOUR;
                        // The head changes length when the session gains or loses its own
                        // expiry.
                        meta.expiry = (own ^ (i % 2 == 0)).then(|| Expiry::new(HOUR, 2 * HOUR));
                        let outcome = match step {
                            Step::Touch => fx.store.touch(&id, &meta).await.unwrap(),
                            Step::Update(clear, entries) => {
                                let mut changes = Changes::default();
                                if *clear {
                                    changes.clear();
                                }
                                for (key, value) in entries {
                                    match value {
                                        Some(value) => changes.set(key.clone(), value.clone()),
                                        None => changes.remove(key.clone()),
                                    }
                                }
                                changes.apply(&mut model);
                                fx.store.update(&id, &changes, &meta).await.unwrap()
                            }
                        };
                        prop_assert_eq!(outcome, WriteOutcome::Applied);
                        let loaded = fx.store.load(&id, meta.last_active).await.unwrap();
                        let expected = Record {
                            data: model.clone(),
                            meta,
                        };
                        prop_assert_eq!(loaded, Some(expected), "after {:?}", step);
                    }
                    fx.store.delete(&id).await.unwrap();
                    Ok(())
                })
            },
        )
        .unwrap();
    fx.finish();
}
