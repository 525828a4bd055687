//! Versioned migrations, run on request, once, from any number of processes.

mod common;

use common::TempDb;
use sessio::SessionStore;
use sessio_sqlite::SqliteStore;

fn recorded_versions(db: &TempDb, table: &str) -> Vec<(i64, i64)> {
    db.raw()
        .prepare(&format!(
            r#"SELECT version, applied_at FROM "{table}_migrations" ORDER BY version"#
        ))
        .and_then(|mut select| {
            select
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .expect("read the migrations table")
}

#[tokio::test]
async fn migrating_twice_changes_nothing() {
    let db = TempDb::new();
    let store = db.connect().await;
    store.migrate().await.expect("first migrate");
    let first = recorded_versions(&db, "sessio_sessions");
    store.migrate().await.expect("second migrate");
    assert_eq!(recorded_versions(&db, "sessio_sessions"), first);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].0, 1);
    assert_eq!(SqliteStore::SCHEMA_VERSION, 1);
    assert!(first[0].1 > 1_600_000_000_000, "applied_at is unix ms");
    assert_eq!(store.count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_from_separate_stores_apply_once() {
    let db = TempDb::new();
    let stores = connect_many(&db, 4).await;
    let results = {
        let tasks: Vec<_> = stores
            .iter()
            .cloned()
            .map(|store| tokio::spawn(async move { store.migrate().await }))
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        results
    };
    for result in results {
        result.expect("every concurrent migrate succeeds");
    }
    let versions = recorded_versions(&db, "sessio_sessions");
    assert_eq!(versions.iter().map(|v| v.0).collect::<Vec<_>>(), vec![1]);
}

async fn connect_many(db: &TempDb, n: usize) -> Vec<SqliteStore> {
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(db.connect().await);
    }
    stores
}

#[tokio::test]
async fn schema_has_real_columns_and_an_expiry_index() {
    let db = TempDb::new();
    let _migrated = db.store().await;
    let raw = db.raw();
    let columns: Vec<(String, String, bool, bool)> = raw
        .prepare(
            r#"SELECT name, type, "notnull", pk FROM pragma_table_info('sessio_sessions') ORDER BY cid"#,
        )
        .and_then(|mut select| {
            select
                .query_map([], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect()
        })
        .expect("table info");
    let expected = [
        ("id", "BLOB", true, true),
        ("data", "TEXT", true, false),
        ("created_at", "INTEGER", true, false),
        ("last_active", "INTEGER", true, false),
        ("expires_at", "INTEGER", true, false),
        ("idle_timeout_ms", "INTEGER", false, false),
        ("absolute_lifetime_ms", "INTEGER", false, false),
    ];
    let expected: Vec<(String, String, bool, bool)> = expected
        .iter()
        .map(|(n, t, nn, pk)| (n.to_string(), t.to_string(), *nn, *pk))
        .collect();
    assert_eq!(columns, expected);

    let indexed: Vec<String> = raw
        .prepare(
            "SELECT ii.name FROM pragma_index_list('sessio_sessions') AS il, \
             pragma_index_info(il.name) AS ii WHERE il.origin = 'c'",
        )
        .and_then(|mut select| select.query_map([], |row| row.get(0))?.collect())
        .expect("index list");
    assert_eq!(indexed, vec!["expires_at".to_owned()]);
}

#[tokio::test]
async fn a_custom_table_name_gets_its_own_tables() {
    let db = TempDb::new();
    let _default = db.store().await;
    let custom = db
        .connect()
        .await
        .with_table_name("sessions_v2")
        .expect("valid name");
    custom.migrate().await.expect("migrate");
    assert_eq!(recorded_versions(&db, "sessions_v2").len(), 1);
    let tables: Vec<String> = db
        .raw()
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut select| select.query_map([], |row| row.get(0))?.collect())
        .expect("tables");
    assert_eq!(
        tables,
        [
            "sessio_sessions",
            "sessio_sessions_migrations",
            "sessions_v2",
            "sessions_v2_migrations"
        ]
    );
}

#[tokio::test]
async fn an_sql_keyword_is_a_usable_table_name() {
    let db = TempDb::new();
    let store = db.connect().await.with_table_name("order").expect("valid");
    store.migrate().await.expect("migrate");
    assert_eq!(store.count().await.expect("count"), 0);
}

#[tokio::test]
async fn table_names_are_validated() {
    let db = TempDb::new();
    let store = db.connect().await;
    for invalid in [
        "a;drop",
        "",
        "1abc",
        "a b",
        "a\"b",
        "sessions-v2",
        "tablé",
        &"x".repeat(64),
    ] {
        let error = store
            .clone()
            .with_table_name(invalid)
            .expect_err(&format!("{invalid:?} accepted"));
        assert_eq!(error.name(), invalid);
    }
    for valid in ["sessions_v2", "_private", "S", &"x".repeat(63)] {
        let store = store.clone().with_table_name(valid).expect(valid);
        assert_eq!(store.table_name(), valid);
    }
}

#[tokio::test]
async fn a_migration_that_fails_is_reported_with_its_version() {
    let db = TempDb::new();
    let store = db.connect().await;
    // A table of that name that migrations did not create: v1's CREATE TABLE fails.
    db.raw()
        .execute_batch("CREATE TABLE sessio_sessions (x)")
        .expect("create a squatter");
    let error = store.migrate().await.expect_err("migration must fail");
    match &error {
        sessio_sqlite::MigrateError::Apply {
            version, source, ..
        } => {
            assert_eq!(*version, 1);
            assert!(source.to_string().contains("already exists"), "{source}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    // Rolled back: nothing recorded, no index left behind.
    assert!(recorded_versions(&db, "sessio_sessions").is_empty());
}
