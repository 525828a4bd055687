//! `migrate` creates the schema once, records its versions, and tolerates repeats and
//! concurrent runs.

mod common;

use std::time::{Duration, SystemTime};

use common::{data, meta_at};
use serde_json::json;
use sessio::store::{CreateOutcome, Record};
use sessio::{SessionId, SessionStore};
use sessio_postgres::{Layout, PostgresStore};

async fn versions(url: &str, table: &str) -> Vec<i32> {
    let mut conn = common::admin(url).await;
    sqlx::query_scalar(&format!(
        "SELECT version FROM {table}_migrations WHERE applied_at IS NOT NULL ORDER BY version"
    ))
    .fetch_all(&mut conn)
    .await
    .expect("read the migrations table")
}

fn record() -> Record {
    Record {
        data: data(json!({"k": 1})),
        meta: meta_at(SystemTime::now(), Duration::from_secs(60)),
    }
}

#[tokio::test]
async fn migrating_twice_is_harmless_and_records_version_one() {
    let Some(url) = common::url() else { return };
    let table = common::unique_name();
    let _cleanup = common::Cleanup::tables(&url, &table);
    let store = common::store(&url, &table).await;

    store.migrate().await.expect("first migrate");
    let id = SessionId::from("kept across migrations");
    assert_eq!(
        store.create(&id, &record()).await.unwrap(),
        CreateOutcome::Created
    );
    store.migrate().await.expect("second migrate");

    assert_eq!(versions(&url, &table).await, vec![1]);
    assert_eq!(PostgresStore::SCHEMA_VERSION, 1);
    assert!(
        store.load(&id, SystemTime::now()).await.unwrap().is_some(),
        "a second migrate must not touch existing sessions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_migrating_at_once_all_succeed() {
    let Some(url) = common::url() else { return };
    let table = common::unique_name();
    let _cleanup = common::Cleanup::tables(&url, &table);
    // Separate pools, as separate processes starting together.
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(common::store(&url, &table).await);
    }
    let runs: Vec<_> = stores
        .iter()
        .map(|store| {
            let store = store.clone();
            tokio::spawn(async move { store.migrate().await })
        })
        .collect();
    for run in runs {
        run.await
            .expect("migrate task")
            .expect("concurrent migrate");
    }
    assert_eq!(versions(&url, &table).await, vec![1]);
    assert_eq!(stores[0].count().await.unwrap(), 0);
}

#[tokio::test]
async fn migrate_creates_the_table_operators_expect() {
    let Some(url) = common::url() else { return };
    let (_, table, _cleanup) = common::migrated(Layout::Native, &url).await;

    let mut conn = common::admin(&url).await;
    let columns: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text \
         FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
    )
    .bind(&table)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let expected = [
        ("id", "bytea", "NO"),
        ("data", "jsonb", "NO"),
        ("created_at", "timestamp with time zone", "NO"),
        ("last_active", "timestamp with time zone", "NO"),
        ("expires_at", "timestamp with time zone", "NO"),
        ("sweep_after", "timestamp with time zone", "NO"),
        ("idle_timeout_ms", "bigint", "YES"),
        ("absolute_lifetime_ms", "bigint", "YES"),
    ];
    let columns: Vec<_> = columns
        .iter()
        .map(|(n, t, null)| (n.as_str(), t.as_str(), null.as_str()))
        .collect();
    assert_eq!(columns, expected);

    let indexes: Vec<String> =
        sqlx::query_scalar("SELECT indexdef FROM pg_indexes WHERE tablename = $1")
            .bind(&table)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert!(
        indexes.iter().any(|def| def.contains("(sweep_after)")),
        "no index on sweep_after: {indexes:?}"
    );
    // An index on a column every write moves would rule out HOT updates.
    assert!(
        !indexes.iter().any(|def| def.contains("expires_at")),
        "an index on expires_at: {indexes:?}"
    );
    let checks: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
    )
    .bind(format!("\"{table}\""))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(checks, 0, "CHECK constraints cost every write");
}

#[tokio::test]
async fn a_schema_qualified_table_gets_its_schema() {
    let Some(url) = common::url() else { return };
    let schema = common::unique_name();
    let _cleanup = common::Cleanup::schema(&url, &schema);
    let table = format!("{schema}.sessions");
    let store = common::store(&url, &table).await;
    assert_eq!(store.table_name(), table);
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate again");

    let id = SessionId::from("in a schema");
    assert_eq!(
        store.create(&id, &record()).await.unwrap(),
        CreateOutcome::Created
    );
    assert_eq!(store.count().await.unwrap(), 1);
    assert_eq!(
        versions(&url, &format!("\"{schema}\".sessions")).await,
        vec![1]
    );
}
