//! What the rows hold: the hashed id, exact millisecond timestamps in real columns, and
//! how the store treats expired and corrupt rows.

mod common;

use std::time::{Duration, SystemTime};

use common::{data, meta_at};
use serde_json::json;
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, CreateOutcome, Data, Meta, Record, StoreError,
};
use sessio::{Clock, Expiry, IdGenerator, ManualClock, RandomIdGenerator, SessionStore};
use sessio_postgres::{Layout, PostgresStore};
use sqlx::postgres::PgPoolOptions;

#[tokio::test]
async fn rows_hold_the_hash_of_the_id_and_never_the_id() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = common::migrated(Layout::Native, &url).await;

    let id = RandomIdGenerator::default().generate();
    let record = Record {
        data: data(json!({"user": 42})),
        meta: meta_at(SystemTime::now(), Duration::from_secs(60)),
    };
    assert_eq!(
        store.create(&id, &record).await.unwrap(),
        CreateOutcome::Created
    );

    let mut conn = common::admin(&url).await;
    let (key, row): (Vec<u8>, String) =
        sqlx::query_as(&format!("SELECT id, t::text FROM \"{table}\" t"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(key, storage_key(&id));
    let raw = id.as_str();
    let raw_hex: String = raw.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!row.contains(raw), "the raw id is in the row: {row}");
    assert!(
        !row.contains(&raw_hex),
        "the raw id is in the row, as hex: {row}"
    );
    // The row's text form doubles the quotes inside its fields.
    assert!(
        row.contains(r#"{""user"": 42}"#),
        "the row is not what was stored: {row}"
    );
}

#[tokio::test]
async fn millisecond_timestamps_round_trip_exactly_in_any_time_zone() {
    let Some(url) = common::url() else { return };
    let (_, table, _cleanup) = common::migrated(Layout::Native, &url).await;
    // Connections in a zone with daylight saving time: conversions must not depend on it.
    let pool = common::new_york_pool(PgPoolOptions::new(), &url).await;
    let store = PostgresStore::from_pool(pool)
        .with_table_name(&table)
        .unwrap();

    let mut conn = common::admin(&url).await;
    for (millis, text) in [
        (1_700_000_000_123_i64, "2023-11-14 22:13:20.123+00"),
        (1_710_054_000_001, "2024-03-10 07:00:00.001+00"),
        (0, "1970-01-01 00:00:00+00"),
        (-1, "1969-12-31 23:59:59.999+00"),
        (-86_400_001, "1969-12-30 23:59:59.999+00"),
        (253_402_300_799_999, "9999-12-31 23:59:59.999+00"),
        (-62_135_596_800_001, "0001-12-31 23:59:59.999+00 BC"),
    ] {
        let at = from_unix_millis(millis);
        let id = RandomIdGenerator::default().generate();
        let meta = Meta {
            created_at: at,
            last_active: at + Duration::from_millis(1),
            expires_at: at + Duration::from_millis(999),
            expiry: Some(Expiry::new(
                Duration::from_millis(1_001),
                Duration::from_millis(86_400_000_007),
            )),
        };
        let record = Record {
            data: Data::new(),
            meta,
        };
        store.create(&id, &record).await.unwrap();
        let loaded = store
            .load(&id, at)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{millis}: not loaded"));
        assert_eq!(loaded.meta, meta, "{millis} did not round-trip");
        assert_eq!(unix_millis(loaded.meta.created_at), millis);

        // And operators see the same instant in the column.
        let exact: bool = sqlx::query_scalar(&format!(
            "SELECT created_at = $2::timestamptz FROM \"{table}\" WHERE id = $1"
        ))
        .bind(&storage_key(&id)[..])
        .bind(text)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(exact, "{millis}: the column does not hold {text}");
    }
}

#[tokio::test]
async fn expired_rows_are_neither_updated_nor_touched_but_may_be_replaced() {
    let Some(url) = common::url() else { return };
    let (store, _table, _cleanup) = common::migrated(Layout::Native, &url).await;
    let clock = ManualClock::new(from_unix_millis(1_700_000_000_000));
    let (id, fresh_meta) =
        common::expired_session_is_neither_updated_nor_touched(&store, &clock).await;

    let new = Record {
        data: data(json!({"new": true})),
        meta: fresh_meta,
    };
    assert_eq!(
        store.create(&id, &new).await.unwrap(),
        CreateOutcome::Created,
        "an expired record blocked its key"
    );
    assert_eq!(store.load(&id, clock.now()).await.unwrap(), Some(new));
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test]
async fn delete_expired_works_through_a_backlog_in_batches() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = common::migrated(Layout::Native, &url).await;

    // 2,500 expired rows (more than two batches) and 3 live ones, straight in SQL.
    let mut conn = common::admin(&url).await;
    sqlx::query(&format!(
        "INSERT INTO \"{table}\" (id, data, created_at, last_active, expires_at, sweep_after) \
         SELECT sha256(n::text::bytea), '{{}}', now(), now(), e, e \
         FROM generate_series(1, 2503) AS n, LATERAL (SELECT CASE WHEN n <= 2500 \
              THEN now() - interval '1 hour' ELSE now() + interval '1 hour' END) AS x(e)"
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    assert_eq!(store.delete_expired(SystemTime::now()).await.unwrap(), 2500);
    assert_eq!(store.count().await.unwrap(), 3);
    assert_eq!(store.delete_expired(SystemTime::now()).await.unwrap(), 0);
}

/// `sweep_after` of the session `id`, in Unix milliseconds.
async fn sweep_after(url: &str, table: &str, id: &sessio::SessionId) -> i64 {
    let mut conn = common::admin(url).await;
    sqlx::query_scalar(&format!(
        "SELECT (extract(epoch from sweep_after) * 1000)::bigint FROM \"{table}\" WHERE id = $1"
    ))
    .bind(&storage_key(id)[..])
    .fetch_one(&mut conn)
    .await
    .unwrap()
}

#[tokio::test]
async fn sweep_after_moves_with_the_expiry_only_across_the_hour() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = common::migrated(Layout::Native, &url).await;
    const HOUR: i64 = 3_600_000;
    // Ten minutes past an hour.
    let start = 1_700_000_000 * 1000 / HOUR * HOUR + 10 * 60_000;
    let ttl = Duration::from_secs(30 * 60);
    let id = RandomIdGenerator::default().generate();
    let first = meta_at(from_unix_millis(start), ttl);
    let record = Record {
        data: data(json!({"n": 1})),
        meta: first,
    };
    store.create(&id, &record).await.unwrap();
    let bucket = sweep_after(&url, &table, &id).await;
    // Expires at 40 past: swept from the next full hour on.
    assert_eq!(bucket, start - 10 * 60_000 + HOUR);

    // Used 15 minutes later: it expires at 55 past, within the same hour.
    let later = meta_at(from_unix_millis(start + 15 * 60_000), ttl);
    store
        .touch(
            &id,
            &Meta {
                created_at: first.created_at,
                ..later
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sweep_after(&url, &table, &id).await,
        bucket,
        "moved within the hour"
    );

    // Used again: it now expires past the hour, and sweep_after follows.
    let past = meta_at(from_unix_millis(start + 40 * 60_000), ttl);
    let mut changes = sessio::store::Changes::default();
    changes.set("n", json!(2));
    store
        .update(
            &id,
            &changes,
            &Meta {
                created_at: first.created_at,
                ..past
            },
        )
        .await
        .unwrap();
    assert_eq!(sweep_after(&url, &table, &id).await, bucket + HOUR);

    // A shorter expiry moves it back, so that the sweep finds the session the moment it
    // expires.
    let short = Meta {
        created_at: first.created_at,
        ..meta_at(
            from_unix_millis(start + 41 * 60_000),
            Duration::from_secs(60),
        )
    };
    store.touch(&id, &short).await.unwrap();
    assert_eq!(sweep_after(&url, &table, &id).await, bucket);
    assert_eq!(
        store
            .delete_expired(from_unix_millis(start + 42 * 60_000 - 1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.delete_expired(short.expires_at).await.unwrap(), 1);
    assert_eq!(store.count().await.unwrap(), 0);
}

#[tokio::test]
async fn corrupt_rows_are_decode_errors_not_panics() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = common::migrated(Layout::Native, &url).await;
    let mut conn = common::admin(&url).await;
    let now = SystemTime::now();

    for (name, corruption) in [
        ("half an expiry", "idle_timeout_ms = 1000"),
        (
            "a negative timeout",
            "idle_timeout_ms = -1, absolute_lifetime_ms = 1000",
        ),
    ] {
        let id = RandomIdGenerator::default().generate();
        let record = Record {
            data: Data::new(),
            meta: meta_at(now, Duration::from_secs(60)),
        };
        store.create(&id, &record).await.unwrap();
        sqlx::query(&format!(
            "UPDATE \"{table}\" SET {corruption} WHERE id = $1"
        ))
        .bind(&storage_key(&id)[..])
        .execute(&mut conn)
        .await
        .unwrap();
        let result = store.load(&id, now).await;
        assert!(
            matches!(result, Err(StoreError::Decode(_))),
            "{name}: {result:?}"
        );
    }

    // Data that is not an object cannot even be stored.
    let refused = sqlx::query(&format!(
        "INSERT INTO \"{table}\" (id, data, created_at, last_active, expires_at) \
         VALUES (sha256('x'), '[1]', now(), now(), now())"
    ))
    .execute(&mut conn)
    .await;
    assert!(refused.is_err(), "a non-object data column was accepted");
}
