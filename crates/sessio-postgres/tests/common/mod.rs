//! Helpers shared by the tests: the server URL, unique table names, stores on them, cleanup
//! that runs whether the test passed or not, and the records and checks several tests use.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::json;
use sessio::store::{storage_key, Changes, Data, Meta, Record, WriteOutcome};
use sessio::testing::check_store;
use sessio::{Clock, IdGenerator, ManualClock, RandomIdGenerator, SessionId, SessionStore};
use sessio_postgres::{Layout, PostgresStore};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};

/// The variable naming the PostgreSQL server the tests run against.
pub const URL_VAR: &str = "SESSIO_TEST_POSTGRES_URL";

/// The server's URL, or `None` (the test prints SKIPPED and passes) when it is unset.
pub fn url() -> Option<String> {
    sessio::testing::service_url(URL_VAR)
}

/// A name no other test run uses: `sessio_test_` and 12 random hex digits.
pub fn unique_name() -> String {
    let random = storage_key(&RandomIdGenerator::default().generate());
    let hex: String = random[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("sessio_test_{hex}")
}

/// A store in `layout`, on its own pool, keeping sessions in `table`.
pub async fn store_in(layout: Layout, url: &str, table: &str) -> PostgresStore {
    PostgresStore::connect(url)
        .await
        .expect("connect to the test database")
        .with_layout(layout)
        .with_table_name(table)
        .expect("valid table name")
}

/// A store on its own pool, keeping sessions in `table`.
pub async fn store(url: &str, table: &str) -> PostgresStore {
    store_in(Layout::Native, url, table).await
}

/// A store in the connect-pg-simple layout, on its own pool, keeping sessions in `table`.
pub async fn cps_store(url: &str, table: &str) -> PostgresStore {
    store_in(Layout::ConnectPgSimple, url, table).await
}

/// A migrated store in `layout` on a table of the test's own; the table goes when the
/// returned [`Cleanup`] is dropped.
pub async fn migrated(layout: Layout, url: &str) -> (PostgresStore, String, Cleanup) {
    let table = unique_name();
    let cleanup = Cleanup::tables(url, &table);
    let store = store_in(layout, url, &table).await;
    store.migrate().await.expect("migrate");
    (store, table, cleanup)
}

/// The conformance suite on stores in `layout` keeping sessions in `table`: every store on
/// a pool of its own (so the suite's concurrent writers race on distinct connections, as
/// distinct processes would), the first one migrating the table.
pub async fn check_store_in(layout: Layout, url: String, table: String) {
    let migrated = AtomicBool::new(false);
    check_store(|| {
        let (url, table, first) = (
            url.clone(),
            table.clone(),
            !migrated.swap(true, Ordering::SeqCst),
        );
        async move {
            let store = store_in(layout, &url, &table).await;
            if first {
                store.migrate().await.expect("migrate");
            }
            store
        }
    })
    .await;
}

/// A pool whose connections are in the America/New_York time zone (with daylight saving
/// time), checked. sqlx starts every connection in UTC, overriding a startup
/// `options=-c TimeZone=`: the zone is set once connected.
pub async fn new_york_pool(options: PgPoolOptions, url: &str) -> PgPool {
    let pool = options
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET TimeZone = 'America/New_York'").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .unwrap();
    let zone: String = sqlx::query_scalar("SHOW TimeZone")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        zone, "America/New_York",
        "the option did not reach the server"
    );
    pool
}

/// Session data from a JSON object.
pub fn data(value: serde_json::Value) -> Data {
    value.as_object().cloned().expect("an object")
}

/// The meta of a session last used at `now`, expiring `ttl` later, with no expiry of its
/// own.
pub fn meta_at(now: SystemTime, ttl: Duration) -> Meta {
    Meta {
        created_at: now,
        last_active: now,
        expires_at: now + ttl,
        expiry: None,
    }
}

/// Creates a session expiring in 10 s, moves `clock` to exactly its expiry and checks that
/// neither an update nor a touch writes it; returns its id and the meta those tried to write.
pub async fn expired_session_is_neither_updated_nor_touched(
    store: &PostgresStore,
    clock: &ManualClock,
) -> (SessionId, Meta) {
    let id = RandomIdGenerator::default().generate();
    let old = Record {
        data: data(json!({"old": true})),
        meta: meta_at(clock.now(), Duration::from_secs(10)),
    };
    store.create(&id, &old).await.unwrap();
    clock.advance(Duration::from_secs(10));

    let mut changes = Changes::default();
    changes.set("k", json!(1));
    let fresh = meta_at(clock.now(), Duration::from_secs(60));
    assert_eq!(
        store.update(&id, &changes, &fresh).await.unwrap(),
        WriteOutcome::NotFound,
        "an expired session was updated"
    );
    assert_eq!(
        store.touch(&id, &fresh).await.unwrap(),
        WriteOutcome::NotFound,
        "an expired session was touched"
    );
    (id, fresh)
}

/// A connection for the test's own SQL.
pub async fn admin(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .expect("connect to the test database")
}

/// Runs SQL when dropped, whether the test passed or is unwinding from a failure: for
/// dropping the tables a test made.
pub struct Cleanup {
    url: String,
    sql: String,
}

impl Cleanup {
    /// Runs `sql` against `url` when dropped.
    pub fn new(url: &str, sql: String) -> Self {
        Self {
            url: url.to_owned(),
            sql,
        }
    }

    /// Drops `table` and its migrations table when dropped.
    pub fn tables(url: &str, table: &str) -> Self {
        Self::new(
            url,
            format!("DROP TABLE IF EXISTS \"{table}\", \"{table}_migrations\""),
        )
    }
}

impl Cleanup {
    /// Drops `schema` and everything in it when dropped.
    pub fn schema(url: &str, schema: &str) -> Self {
        Self::new(url, format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, sql) = (self.url.clone(), self.sql.clone());
        // The test's runtime cannot be blocked on from inside it: clean up on a thread
        // of its own, and wait for it.
        let done = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime")
                .block_on(async {
                    let mut conn = admin(&url).await;
                    sqlx::raw_sql(&sql).execute(&mut conn).await
                })
        })
        .join();
        match done {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => eprintln!("cleanup `{}` failed: {error}", self.sql),
            Err(_) => eprintln!("cleanup `{}` panicked", self.sql),
        }
    }
}
