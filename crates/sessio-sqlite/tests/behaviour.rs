//! What the conformance suite does not cover: persistence, awkward keys, hashed ids,
//! replacing expired rows, batched sweeps, bad rows and a locked database.

mod common;

use std::time::Duration;

use common::{now, record, TempDb};
use serde_json::{json, Value};
use sessio::store::{storage_key, Changes, CreateOutcome, Meta, StoreError, WriteOutcome};
use sessio::{Clock, Expiry, ManualClock, SessionId, SessionStore};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn data_survives_reopening_the_file() {
    let db = TempDb::new();
    let id = SessionId::from("survivor");
    let t0 = now();
    let mut stored = record(json!({"user": 42, "cart": [1, 2]}), t0, HOUR);
    stored.meta.expiry = Some(Expiry::new(HOUR, 2 * HOUR));
    {
        let store = db.store().await;
        assert_eq!(
            store.create(&id, &stored).await.unwrap(),
            CreateOutcome::Created
        );
        let mut changes = Changes::default();
        changes.set("cart", json!([3]));
        assert_eq!(
            store.update(&id, &changes, &stored.meta).await.unwrap(),
            WriteOutcome::Applied
        );
        drop(store);
    }
    let reopened = db.store().await;
    let loaded = reopened.load(&id, t0).await.unwrap().expect("still there");
    assert_eq!(Value::Object(loaded.data), json!({"user": 42, "cart": [3]}));
    assert_eq!(loaded.meta, stored.meta);
}

#[tokio::test]
async fn awkward_keys_are_set_and_removed_exactly() {
    let db = TempDb::new();
    let store = db.store().await;
    let id = SessionId::from("awkward");
    let t0 = now();
    let initial = json!({
        "a.b": 1, "q\"uote": 2, "$": 3, "ü": 4, "": 5,
        "a": {"b": "nested, not the key a.b"}, "[0]": 6, "keep": 7
    });
    let created = record(initial, t0, HOUR);
    store.create(&id, &created).await.unwrap();

    let mut changes = Changes::default();
    changes.set("a.b", json!({"replaced": true}));
    changes.remove("q\"uote");
    changes.set("$", json!("dollar"));
    changes.remove("ü");
    changes.set("", Value::Null);
    changes.set("[0]", json!([0]));
    changes.set("new\"key.with$all[0]", json!("x"));
    changes.set("\\", json!("backslash"));
    assert_eq!(
        store.update(&id, &changes, &created.meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let loaded = store.load(&id, t0).await.unwrap().expect("exists");
    assert_eq!(
        Value::Object(loaded.data),
        json!({
            "a.b": {"replaced": true}, "$": "dollar", "": null,
            "a": {"b": "nested, not the key a.b"}, "[0]": [0], "keep": 7,
            "new\"key.with$all[0]": "x", "\\": "backslash"
        })
    );
}

#[tokio::test]
async fn the_id_column_holds_the_hash_and_the_raw_id_is_nowhere() {
    let db = TempDb::new();
    let store = db.store().await;
    let raw = "raw-session-id-that-must-not-be-stored";
    let id = SessionId::from(raw);
    let t0 = now();
    store
        .create(&id, &record(json!({"user": "alice"}), t0, HOUR))
        .await
        .unwrap();

    let raw_db = db.raw();
    let (stored_id, data, hex): (Vec<u8>, String, String) = raw_db
        .query_row("SELECT id, data, hex(id) FROM sessio_sessions", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })
        .unwrap();
    assert_eq!(stored_id, storage_key(&id));
    assert_eq!(stored_id.len(), 32);
    assert!(!data.contains(raw));
    assert!(!hex.to_lowercase().contains(&raw.to_lowercase()));
    let mentions: i64 = raw_db
        .query_row(
            "SELECT COUNT(*) FROM sessio_sessions WHERE instr(CAST(id AS TEXT), ?1) > 0 \
             OR instr(data, ?1) > 0 OR instr(CAST(created_at AS TEXT), ?1) > 0",
            [raw],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(mentions, 0);

    // Nor in any byte of the files, read while the pool is open (closing the last
    // connection checkpoints and deletes the write-ahead log, which holds the write).
    let mut saw_data = false;
    for name in ["sessions.db", "sessions.db-wal"] {
        let bytes = std::fs::read(db.dir.path().join(name)).unwrap();
        assert!(
            !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
            "the raw id is in {name}"
        );
        saw_data |= bytes.windows(5).any(|w| w == b"alice");
    }
    // The search can find stored text at all: the session's data is in the files.
    assert!(saw_data);
}

#[tokio::test]
async fn create_replaces_an_expired_row_but_never_a_live_one() {
    let db = TempDb::new();
    let clock = ManualClock::new(now());
    let store = db.store().await;
    let id = SessionId::from("reused");
    let first = record(
        json!({"owner": "first"}),
        clock.now(),
        Duration::from_secs(10),
    );
    assert_eq!(
        store.create(&id, &first).await.unwrap(),
        CreateOutcome::Created
    );
    clock.advance(Duration::from_secs(9));
    let second = record(json!({"owner": "second"}), clock.now(), HOUR);
    assert_eq!(
        store.create(&id, &second).await.unwrap(),
        CreateOutcome::IdTaken
    );
    // A create tells the time by its record's `last_active`.
    clock.advance(Duration::from_secs(1));
    let second = record(json!({"owner": "second"}), clock.now(), HOUR);
    assert_eq!(
        store.create(&id, &second).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(store.load(&id, clock.now()).await.unwrap(), Some(second));
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn expired_rows_are_neither_updated_nor_touched() {
    let db = TempDb::new();
    let clock = ManualClock::new(now());
    let store = db.store().await;
    let id = SessionId::from("stale");
    let stored = record(json!({"k": 1}), clock.now(), Duration::from_secs(10));
    store.create(&id, &stored).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let fresh = Meta {
        last_active: clock.now(),
        expires_at: clock.now() + HOUR,
        ..stored.meta
    };
    let mut changes = Changes::default();
    changes.set("k", json!(2));
    assert_eq!(
        store.update(&id, &changes, &fresh).await.unwrap(),
        WriteOutcome::NotFound
    );
    let mut clearing = Changes::default();
    clearing.clear();
    assert_eq!(
        store.update(&id, &clearing, &fresh).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(
        store.touch(&id, &fresh).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(store.load(&id, clock.now()).await.unwrap(), None);
}

#[tokio::test]
async fn an_update_with_only_a_new_expiry_keeps_the_data() {
    let db = TempDb::new();
    let store = db.store().await;
    let id = SessionId::from("remember-me");
    let t0 = now();
    let stored = record(json!({"k": "v"}), t0, HOUR);
    store.create(&id, &stored).await.unwrap();
    let meta = Meta {
        expires_at: t0 + 24 * HOUR,
        expiry: Some(Expiry::new(24 * HOUR, 48 * HOUR)),
        ..stored.meta
    };
    assert_eq!(
        store.update(&id, &Changes::default(), &meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let loaded = store.load(&id, t0).await.unwrap().unwrap();
    assert_eq!(loaded.data, stored.data);
    assert_eq!(loaded.meta, meta);
}

#[tokio::test]
async fn delete_expired_works_through_many_batches() {
    let db = TempDb::new();
    let store = db.store().await;
    let t0 = now();
    // More than two batches of 1000, written in one transaction to keep the test quick.
    let expired = 2_345_u64;
    let mut raw_db = db.raw();
    let tx = raw_db.transaction().unwrap();
    for i in 0..expired {
        let key = storage_key(&SessionId::from(format!("old{i}")));
        tx.execute(
            "INSERT INTO sessio_sessions (id, data, created_at, last_active, expires_at) \
             VALUES (?1, '{}', ?2, ?2, ?2)",
            (&key[..], sessio::store::unix_millis(t0)),
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let live = SessionId::from("live");
    store
        .create(&live, &record(json!({}), t0, HOUR))
        .await
        .unwrap();
    assert_eq!(store.count().await.unwrap(), expired + 1);
    assert_eq!(store.delete_expired(t0).await.unwrap(), expired);
    assert_eq!(store.count().await.unwrap(), 1);
    assert!(store.load(&live, t0).await.unwrap().is_some());
    assert_eq!(store.delete_expired(t0).await.unwrap(), 0);
}

#[tokio::test]
async fn rows_that_do_not_decode_are_decode_errors() {
    let db = TempDb::new();
    let store = db.store().await;
    let t0 = now();
    let secret = "do-not-log-this";
    let cases = [
        ("not json", "'not json'", "1000", "2000"),
        ("an array", "'[1, 2]'", "1000", "2000"),
        (
            "a string",
            &format!("'\"{secret}\"'") as &str,
            "1000",
            "2000",
        ),
        ("a blob", "x'00ff'", "1000", "2000"),
        ("negative idle", "'{}'", "-1", "2000"),
        ("half an expiry", "'{}'", "1000", "NULL"),
    ];
    for (i, (what, data, idle, absolute)) in cases.iter().enumerate() {
        let id = SessionId::from(format!("bad{i}"));
        let key = storage_key(&id);
        db.raw()
            .execute(
                &format!(
                    "INSERT INTO sessio_sessions VALUES (?1, {data}, ?2, ?2, ?3, {idle}, {absolute})"
                ),
                (
                    &key[..],
                    sessio::store::unix_millis(t0),
                    sessio::store::unix_millis(t0 + HOUR),
                ),
            )
            .unwrap();
        let error = store.load(&id, t0).await.expect_err(what);
        assert!(matches!(error, StoreError::Decode(_)), "{what}: {error:?}");
        let chain = error_chain(&error);
        assert!(
            !chain.contains(secret),
            "{what}: data in the error: {chain}"
        );

        if what.contains("json") || what.contains("array") {
            let mut changes = Changes::default();
            changes.set("k", json!(1));
            let error = store
                .update(&id, &changes, &record(json!({}), t0, HOUR).meta)
                .await
                .expect_err(what);
            assert!(matches!(error, StoreError::Decode(_)), "{what}: {error:?}");
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_times_out_instead_of_hanging() {
    let db = TempDb::new();
    let store = db.store().await.with_timeout(Duration::from_millis(200));
    let id = SessionId::from("locked");
    let t0 = now();
    let stored = record(json!({"k": 1}), t0, HOUR);
    store.create(&id, &stored).await.unwrap();

    // Another "process" holds the write lock until told to let go.
    let other = db.raw();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();

    let mut changes = Changes::default();
    changes.set("k", json!(2));
    let error = store
        .update(&id, &changes, &stored.meta)
        .await
        .expect_err("the write lock is held");
    assert!(matches!(error, StoreError::Timeout(_)), "{error:?}");
    let error = store.create(&SessionId::from("new"), &stored).await;
    assert!(matches!(error, Err(StoreError::Timeout(_))), "{error:?}");
    // Readers are not blocked in WAL mode.
    assert!(store.load(&id, t0).await.unwrap().is_some());

    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    let store = store.with_timeout(Duration::from_secs(10));
    assert_eq!(
        store.update(&id, &changes, &stored.meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let loaded = store.load(&id, t0).await.unwrap().unwrap();
    assert_eq!(loaded.data.get("k"), Some(&json!(2)));
}

#[tokio::test]
async fn debug_shows_the_table_but_no_data() {
    let db = TempDb::new();
    let store = db.store().await;
    store
        .create(
            &SessionId::from("secret-id"),
            &record(json!({"secret": "value"}), now(), HOUR),
        )
        .await
        .unwrap();
    let debug = format!("{store:?}");
    assert!(debug.contains("sessio_sessions"), "{debug}");
    assert!(!debug.contains("secret"), "{debug}");
    assert!(!debug.contains("sessions.db"), "{debug}");
}

#[tokio::test]
async fn connect_creates_the_file_and_rejects_bad_urls() {
    let db = TempDb::new();
    let path = db.dir.path().join("sessions.db");
    assert!(!path.exists());
    let _store = db.store().await;
    assert!(path.exists());
    let journal: String = db
        .raw()
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");

    assert!(matches!(
        sessio_sqlite::SqliteStore::connect("mysql://localhost/x").await,
        Err(sessio_sqlite::ConnectError::NotSqlite)
    ));
    assert!(matches!(
        sessio_sqlite::SqliteStore::connect("sqlite://x.db?mode=bogus").await,
        Err(sessio_sqlite::ConnectError::InvalidUrl(_))
    ));
    let missing = format!(
        "sqlite://{}?mode=rw",
        db.dir.path().join("absent.db").display()
    );
    assert!(matches!(
        sessio_sqlite::SqliteStore::connect(&missing).await,
        Err(sessio_sqlite::ConnectError::Open(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_checkpoints_its_log_into_the_database_file() {
    let db = TempDb::new();
    let store = db.store().await;
    let t0 = now();
    // More writes than the store lets pass between checkpoints; SQLite's own is off.
    for i in 0..1200 {
        let data = json!({ "marker": format!("checkpointed-{i:04}") });
        store
            .create(&SessionId::from(format!("s{i}")), &record(data, t0, HOUR))
            .await
            .unwrap();
    }
    // The checkpoint runs in the background: wait for it, for a bounded time.
    let file = db.dir.path().join("sessions.db");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let bytes = std::fs::read(&file).unwrap();
        if bytes.windows(17).any(|w| w == b"checkpointed-0000") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first writes never reached the database file"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(store.count().await.unwrap(), 1200);
}
