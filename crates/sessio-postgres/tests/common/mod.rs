//! Helpers shared by the tests: the server URL, unique table names, and cleanup that runs
//! whether the test passed or not.

#![allow(dead_code)]

use sessio::store::storage_key;
use sessio::{IdGenerator, RandomIdGenerator};
use sessio_postgres::{Layout, PostgresStore};
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

/// A store on its own pool, keeping sessions in `table`.
pub async fn store(url: &str, table: &str) -> PostgresStore {
    PostgresStore::connect(url)
        .await
        .expect("connect to the test database")
        .with_table_name(table)
        .expect("valid table name")
}

/// A store in the connect-pg-simple layout, on its own pool, keeping sessions in `table`.
pub async fn cps_store(url: &str, table: &str) -> PostgresStore {
    PostgresStore::connect(url)
        .await
        .expect("connect to the test database")
        .with_layout(Layout::ConnectPgSimple)
        .with_table_name(table)
        .expect("valid table name")
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
