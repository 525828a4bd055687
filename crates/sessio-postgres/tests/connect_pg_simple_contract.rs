//! The store contract in the connect-pg-simple layout.
//!
//! express-session's JSON keeps no creation time and no absolute lifetime, so the
//! conformance suite's rule "create then load returns the same record" (which stores an
//! absolute lifetime and a `last_active` apart from `created_at`) cannot hold; nor can the
//! exact `Meta` comparisons of its update and touch rules. The first test pins down that
//! the suite stops exactly there; the others check every rule directly, with the meta this
//! shape keeps: `expires_at` to the millisecond, `last_active = created_at = expires_at -
//! idle timeout`, and an idle-only expiry.

mod common;

use std::time::{Duration, SystemTime};

use common::{data, meta_at};
use serde_json::{json, Value};
use sessio::store::{
    from_unix_millis, unix_millis, Changes, CreateOutcome, Data, Meta, Record, WriteOutcome,
};
use sessio::{Clock, Expiry, IdGenerator, ManualClock, RandomIdGenerator, SessionId, SessionStore};
use sessio_postgres::{Layout, PostgresStore};

const HOUR: Duration = Duration::from_secs(3600);

fn new_id() -> SessionId {
    RandomIdGenerator::default().generate()
}

/// A clock at the current time with 123 ms past the second, so that connect-pg-simple's
/// rounding up to whole seconds always differs from the cookie's exact expiry.
fn clock() -> ManualClock {
    let now = unix_millis(SystemTime::now());
    ManualClock::new(from_unix_millis(now - now % 1000 + 123))
}

/// The meta a session stored at `now` expiring after `ttl` of idleness loads with.
fn express_meta(now: SystemTime, ttl: Duration) -> Meta {
    Meta {
        created_at: now,
        last_active: now,
        expires_at: now + ttl,
        expiry: Some(Expiry::new(ttl, Duration::MAX)),
    }
}

/// A migrated connect-pg-simple store on a table of its own, and the table's cleanup.
async fn setup(url: &str) -> (PostgresStore, String, common::Cleanup) {
    common::migrated(Layout::ConnectPgSimple, url).await
}

async fn rows_with_sid(url: &str, table: &str, id: &SessionId) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\" WHERE sid = $1"))
        .bind(id.as_str())
        .fetch_one(&mut common::admin(url).await)
        .await
        .expect("count rows")
}

async fn stored_sess(url: &str, table: &str, id: &SessionId) -> Value {
    let sess: String = sqlx::query_scalar(&format!(
        "SELECT sess::text FROM \"{table}\" WHERE sid = $1"
    ))
    .bind(id.as_str())
    .fetch_one(&mut common::admin(url).await)
    .await
    .expect("the row");
    serde_json::from_str(&sess).expect("sess is JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_stops_only_where_the_shape_keeps_less() {
    let Some(url) = common::url() else { return };
    let table = common::unique_name();
    let _cleanup = common::Cleanup::tables(&url, &table);
    let suite = tokio::spawn(common::check_store_in(Layout::ConnectPgSimple, url, table));
    let panic = suite
        .await
        .expect_err("the suite passed: this layout now keeps created_at and the absolute lifetime; run check_store plainly")
        .into_panic();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| format!("{:?}", panic.downcast_ref::<&str>()));
    // The first rule that needs what the shape cannot hold, and only it: every rule
    // before it (an empty store counts 0) passed.
    assert!(
        message.starts_with("store conformance: create then load returns the same record: "),
        "the suite failed elsewhere: {message}"
    );
}

#[tokio::test]
async fn create_then_load_keeps_data_and_expiry_to_the_millisecond() {
    let Some(url) = common::url() else { return };
    let (store, _table, _cleanup) = setup(&url).await;
    let clock = clock();
    assert_eq!(store.count().await.unwrap(), 0, "a new store is empty");

    let now = clock.now();
    let mut record = Record {
        data: data(
            json!({"n": 1, "s": "é\"'\\", "b": true, "nested": {"a": [1, 2.5, null]}, "": 0}),
        ),
        meta: meta_at(now, HOUR),
    };
    // What the shape cannot keep: an absolute lifetime, and last use apart from creation.
    record.meta.expiry = Some(Expiry::new(HOUR, 2 * HOUR));
    record.meta.last_active = now + Duration::from_millis(1);
    record.meta.expires_at = record.meta.last_active + HOUR;
    let id = new_id();
    assert_eq!(
        store.create(&id, &record).await.unwrap(),
        CreateOutcome::Created
    );
    let loaded = store.load(&id, clock.now()).await.unwrap().expect("loaded");
    assert_eq!(loaded.data, record.data);
    assert_eq!(
        loaded.meta,
        express_meta(record.meta.last_active, HOUR),
        "the meta of express-session's shape"
    );
    assert_eq!(store.count().await.unwrap(), 1);

    // Without an expiry of its own, the idle timeout is the time from last use to expiry.
    let plain = Record {
        data: data(json!({"k": "v"})),
        meta: meta_at(now, Duration::from_millis(90_001)),
    };
    let id = new_id();
    store.create(&id, &plain).await.unwrap();
    let loaded = store.load(&id, now).await.unwrap().expect("loaded");
    assert_eq!(
        loaded.meta,
        express_meta(now, Duration::from_millis(90_001))
    );
}

#[tokio::test]
async fn create_never_overwrites_and_unknown_ids_load_nothing() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = setup(&url).await;
    let now = clock().now();
    let first = Record {
        data: data(json!({"owner": "first"})),
        meta: meta_at(now, HOUR),
    };
    let id = new_id();
    assert_eq!(
        store.create(&id, &first).await.unwrap(),
        CreateOutcome::Created
    );
    let second = Record {
        data: data(json!({"owner": "second"})),
        meta: meta_at(now, 2 * HOUR),
    };
    assert_eq!(
        store.create(&id, &second).await.unwrap(),
        CreateOutcome::IdTaken
    );
    let loaded = store.load(&id, now).await.unwrap().expect("loaded");
    assert_eq!(loaded.data, first.data);
    assert_eq!(loaded.meta.expires_at, first.meta.expires_at);
    assert_eq!(rows_with_sid(&url, &table, &id).await, 1);

    assert_eq!(store.load(&new_id(), now).await.unwrap(), None);
}

#[tokio::test]
async fn load_ignores_a_session_from_its_cookie_expiry_to_the_millisecond() {
    let Some(url) = common::url() else { return };
    let (store, _table, _cleanup) = setup(&url).await;
    let clock = clock();
    let record = Record {
        data: data(json!({"k": 1})),
        meta: meta_at(clock.now(), Duration::from_secs(60)),
    };
    let id = new_id();
    store.create(&id, &record).await.unwrap();
    clock.advance(Duration::from_millis(59_999));
    assert!(
        store.load(&id, clock.now()).await.unwrap().is_some(),
        "1 ms before expiry"
    );
    // `expire` holds the next whole second, so only the cookie's expiry hides it now.
    clock.advance(Duration::from_millis(1));
    assert_eq!(
        store.load(&id, clock.now()).await.unwrap(),
        None,
        "at expiry"
    );
}

#[tokio::test]
async fn update_applies_only_the_changed_keys_and_keeps_the_cookie() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = setup(&url).await;
    let clock = clock();
    let record = Record {
        data: data(json!({"keep": 1, "change": 1, "drop": 1})),
        meta: meta_at(clock.now(), HOUR),
    };
    let id = new_id();
    store.create(&id, &record).await.unwrap();

    let mut changes = Changes::default();
    changes.set("change", json!({"to": [2]}));
    changes.set("add", json!("new"));
    changes.remove("drop");
    changes.remove("never-existed");
    // The cookie is not data: removing it changes nothing.
    changes.remove("cookie");
    clock.advance(Duration::from_millis(1500));
    let loaded = store.load(&id, clock.now()).await.unwrap().expect("loaded");
    let meta = Meta {
        last_active: clock.now(),
        expires_at: clock.now() + HOUR,
        ..loaded.meta
    };
    assert_eq!(
        store.update(&id, &changes, &meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let loaded = store.load(&id, clock.now()).await.unwrap().expect("loaded");
    assert_eq!(
        Value::Object(loaded.data),
        json!({"keep": 1, "change": {"to": [2]}, "add": "new"})
    );
    assert_eq!(loaded.meta, express_meta(clock.now(), HOUR));

    let sess = stored_sess(&url, &table, &id).await;
    assert_eq!(
        sess["cookie"],
        json!({
            "originalMaxAge": 3_600_000,
            "expires": sessio::express::format_date(clock.now() + HOUR),
            "httpOnly": true,
            "path": "/",
        })
    );
}

#[tokio::test]
async fn an_update_that_clears_keeps_only_the_cookie_and_the_set_keys() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = setup(&url).await;
    let now = clock().now();
    let record = Record {
        data: data(json!({"a": 1, "b": 2})),
        meta: meta_at(now, HOUR),
    };
    let id = new_id();
    store.create(&id, &record).await.unwrap();
    let mut changes = Changes::default();
    changes.clear();
    changes.set("c", json!(3));
    // Data named like the cookie never replaces it.
    changes.set("cookie", json!("not a cookie"));
    assert_eq!(
        store.update(&id, &changes, &record.meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let loaded = store.load(&id, now).await.unwrap().expect("loaded");
    assert_eq!(Value::Object(loaded.data), json!({"c": 3}));
    let sess = stored_sess(&url, &table, &id).await;
    assert_eq!(sess["cookie"]["httpOnly"], json!(true));
    assert_eq!(sess["cookie"]["path"], json!("/"));
    assert_eq!(sess["cookie"]["originalMaxAge"], json!(3_600_000));
}

#[tokio::test]
async fn update_and_touch_of_a_missing_sid_are_not_found_and_create_nothing() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = setup(&url).await;
    let now = clock().now();
    let meta = meta_at(now, HOUR);
    let mut changes = Changes::default();
    changes.set("k", json!(2));

    // Never created.
    let unknown = new_id();
    assert_eq!(
        store.update(&unknown, &changes, &meta).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(
        store.touch(&unknown, &meta).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(rows_with_sid(&url, &table, &unknown).await, 0);

    // Created, then destroyed.
    let destroyed = new_id();
    let record = Record {
        data: data(json!({"k": 1})),
        meta,
    };
    store.create(&destroyed, &record).await.unwrap();
    store.delete(&destroyed).await.unwrap();
    assert_eq!(
        store.update(&destroyed, &changes, &meta).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(
        store.touch(&destroyed, &meta).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(rows_with_sid(&url, &table, &destroyed).await, 0);
    assert_eq!(store.load(&destroyed, now).await.unwrap(), None);
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn touch_moves_the_expiry_and_leaves_the_data() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = setup(&url).await;
    let clock = clock();
    let record = Record {
        data: data(json!({"k": "v"})),
        meta: meta_at(clock.now(), HOUR),
    };
    let id = new_id();
    store.create(&id, &record).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let meta = Meta {
        last_active: clock.now(),
        expires_at: clock.now() + 2 * HOUR,
        ..record.meta
    };
    assert_eq!(
        store.touch(&id, &meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let loaded = store.load(&id, clock.now()).await.unwrap().expect("loaded");
    assert_eq!(loaded.data, record.data);
    assert_eq!(loaded.meta, express_meta(clock.now(), 2 * HOUR));

    // And `expire` moved with it, as connect-pg-simple's touch moves it.
    let expected = (unix_millis(meta.expires_at) + 999) / 1000;
    let moved: bool = sqlx::query_scalar(&format!(
        "SELECT expire = to_timestamp($2) FROM \"{table}\" WHERE sid = $1"
    ))
    .bind(id.as_str())
    .bind(expected)
    .fetch_one(&mut common::admin(&url).await)
    .await
    .unwrap();
    assert!(moved, "expire is not to_timestamp({expected})");
}

#[tokio::test]
async fn delete_removes_and_tolerates_missing() {
    let Some(url) = common::url() else { return };
    let (store, _table, _cleanup) = setup(&url).await;
    let now = clock().now();
    let id = new_id();
    let record = Record {
        data: Data::new(),
        meta: meta_at(now, HOUR),
    };
    store.create(&id, &record).await.unwrap();
    assert_eq!(store.count().await.unwrap(), 1);
    store.delete(&id).await.unwrap();
    assert_eq!(store.load(&id, now).await.unwrap(), None);
    assert_eq!(store.count().await.unwrap(), 0);
    store.delete(&id).await.expect("deleting again is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_distinct_keys_all_survive() {
    const WRITERS: usize = 32;
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = setup(&url).await;
    // A second pool: distinct connections, as a second process.
    let other = common::cps_store(&url, &table).await;
    let now = clock().now();
    let record = Record {
        data: data(json!({"base": true})),
        meta: meta_at(now, HOUR),
    };
    let id = new_id();
    store.create(&id, &record).await.unwrap();

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        let id = id.clone();
        let meta = Meta {
            last_active: now + Duration::from_millis(i as u64),
            expires_at: now + Duration::from_millis(i as u64) + HOUR,
            ..record.meta
        };
        tasks.spawn(async move {
            let mut changes = Changes::default();
            changes.set(format!("key{i}"), json!(i));
            store.update(&id, &changes, &meta).await
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        assert_eq!(
            outcome.expect("task").expect("update"),
            WriteOutcome::Applied
        );
    }
    let loaded = store.load(&id, now).await.unwrap().expect("loaded");
    let mut expected = json!({"base": true});
    for i in 0..WRITERS {
        expected[format!("key{i}")] = json!(i);
    }
    assert_eq!(Value::Object(loaded.data), expected);
    let sess = stored_sess(&url, &table, &id).await;
    assert_eq!(sess["cookie"]["httpOnly"], json!(true));
}

#[tokio::test]
async fn expired_rows_are_neither_updated_nor_touched_but_may_be_replaced() {
    let Some(url) = common::url() else { return };
    let (store, _table, _cleanup) = setup(&url).await;
    let clock = clock();
    // Exactly at the cookie's expiry: `expire` (the next whole second) still lies ahead,
    // so only the cookie decides.
    let (id, fresh) = common::expired_session_is_neither_updated_nor_touched(&store, &clock).await;

    let new = Record {
        data: data(json!({"new": true})),
        meta: fresh,
    };
    assert_eq!(
        store.create(&id, &new).await.unwrap(),
        CreateOutcome::Created,
        "an expired record blocked its sid"
    );
    let loaded = store.load(&id, clock.now()).await.unwrap().expect("loaded");
    assert_eq!(loaded.data, new.data);
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn delete_expired_removes_exactly_the_expired_sessions_in_batches() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = setup(&url).await;
    let clock = clock();
    let short = new_id();
    let long = new_id();
    for (id, ttl) in [(&short, Duration::from_secs(5)), (&long, 100 * HOUR)] {
        let record = Record {
            data: Data::new(),
            meta: meta_at(clock.now(), ttl),
        };
        store.create(id, &record).await.unwrap();
    }
    // 2,500 more expired rows (more than two batches) and 3 live ones, as Node writes them.
    sqlx::query(&format!(
        "INSERT INTO \"{table}\" (sid, sess, expire) \
         SELECT 'node-' || n, '{{\"cookie\":{{\"originalMaxAge\":null}}}}', \
                to_timestamp($1 + CASE WHEN n <= 2500 THEN -3600 ELSE 3600 * 1000 END) \
         FROM generate_series(1, 2503) AS n"
    ))
    .bind(unix_millis(clock.now()) / 1000)
    .execute(&mut common::admin(&url).await)
    .await
    .unwrap();

    clock.advance(10 * HOUR);
    assert_eq!(store.delete_expired(clock.now()).await.unwrap(), 2501);
    assert_eq!(store.count().await.unwrap(), 4);
    assert_eq!(store.load(&short, clock.now()).await.unwrap(), None);
    assert!(store.load(&long, clock.now()).await.unwrap().is_some());
    assert_eq!(store.delete_expired(clock.now()).await.unwrap(), 0);
}
