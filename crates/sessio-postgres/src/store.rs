//! [`PostgresStore`]: the [`SessionStore`] implementation.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, with_timeout, Changes, CreateOutcome, Data, Meta,
    Record, SessionStore, StoreError, WriteOutcome,
};
use sessio::{Expiry, SessionId};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::error::{store_error, ConnectError, CorruptRow};
use crate::migrate::{self, MigrateError};
use crate::table::{InvalidTableName, Statements, TableName, DELETE_BATCH};

/// Sessions in a PostgreSQL table, shared by every instance of an application.
///
/// - **One statement per operation**: an update applies the request's changed keys
///   (`jsonb` minus the removed keys, merged with the set ones) and the new expiry in a
///   single `UPDATE`, so concurrent requests writing different keys all keep their writes,
///   and an update of a destroyed session changes nothing (it never inserts).
/// - **Readable rows**: the id column holds the SHA-256 of the session id, never the id
///   itself; timestamps are real `timestamptz` columns, indexed on `expires_at`, so
///   operators can query them.
/// - **Bounded**: every operation is limited to [`with_timeout`](Self::with_timeout) (2 s by
///   default), so a database that hangs gives clients a 503 instead of a hung request.
/// - **Expiry by the application's clock**: records at or past their `expires_at` are
///   neither loaded nor updated, judged by the [`Clock`] given to
///   [`with_clock`](Self::with_clock) rather than the database server's.
///
/// Clones share the connection pool.
///
/// ```no_run
/// use std::time::Duration;
/// use sessio_postgres::PostgresStore;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let store = PostgresStore::connect("postgres://app@db.internal/app")
///     .await?
///     .with_table_name("app.sessions")?
///     .with_timeout(Duration::from_secs(1));
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    table: Arc<Table>,
    timeout: Duration,
}

/// A table's name, and the statements built from it.
struct Table {
    name: TableName,
    display: String,
    sql: Statements,
}

impl Table {
    fn new(name: TableName) -> Self {
        Self {
            display: name.to_string(),
            sql: Statements::new(&name),
            name,
        }
    }
}

impl PostgresStore {
    /// The table sessions are kept in unless told otherwise.
    pub const DEFAULT_TABLE_NAME: &'static str = "sessio_sessions";
    /// The time limit of each operation unless told otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// The most connections the pool [`connect`](Self::connect) builds opens at once.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    /// The time limit of [`connect`](Self::connect)'s first connection.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The schema version [`migrate`](Self::migrate) brings the table to.
    pub const SCHEMA_VERSION: i32 = migrate::LATEST_VERSION;

    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with any option sqlx understands) and builds a pool of up to
    /// [`DEFAULT_MAX_CONNECTIONS`](Self::DEFAULT_MAX_CONNECTIONS) connections, each waited
    /// for at most [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    ///
    /// One connection is opened right away, within
    /// [`CONNECT_TIMEOUT`](Self::CONNECT_TIMEOUT), so that a wrong host, password or
    /// database name fails here, with the server's reason. For other pool settings (sizes,
    /// TLS, statement caching), build a [`PgPool`] yourself and use
    /// [`from_pool`](Self::from_pool).
    ///
    /// ```no_run
    /// use sessio_postgres::PostgresStore;
    ///
    /// # async fn demo() -> Result<(), sessio_postgres::ConnectError> {
    /// let store = PostgresStore::connect("postgres://app@localhost/app").await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        let options: PgConnectOptions = url.parse().map_err(ConnectError::InvalidUrl)?;
        let first =
            tokio::time::timeout(Self::CONNECT_TIMEOUT, PgConnection::connect_with(&options))
                .await
                .map_err(|_| ConnectError::Timeout(Self::CONNECT_TIMEOUT))?
                .map_err(ConnectError::Connect)?;
        // The pool would retry a refused connection until its timeout and report only
        // that it timed out; the check above keeps the server's reason. Its connection is
        // not kept: a pool opens its own.
        let _ = first.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(Self::DEFAULT_MAX_CONNECTIONS)
            .acquire_timeout(Self::DEFAULT_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self::from_pool(pool))
    }

    /// A store on an existing pool, with the default table name and time limit.
    ///
    /// ```no_run
    /// use sqlx::postgres::PgPoolOptions;
    /// use sessio_postgres::PostgresStore;
    ///
    /// # async fn demo() -> Result<(), sqlx::Error> {
    /// let pool = PgPoolOptions::new()
    ///     .max_connections(32)
    ///     .connect("postgres://app@localhost/app")
    ///     .await?;
    /// let store = PostgresStore::from_pool(pool);
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pool(pool: PgPool) -> Self {
        let name = TableName::parse(Self::DEFAULT_TABLE_NAME).expect("the default name is valid");
        Self {
            pool,
            table: Arc::new(Table::new(name)),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// Keeps sessions in table `name` instead of
    /// [`DEFAULT_TABLE_NAME`](Self::DEFAULT_TABLE_NAME): lowercase letters, digits and
    /// underscores, not starting with a digit, at most 48 characters, optionally qualified
    /// with a schema (`schema.table`).
    ///
    /// Migrations are recorded in `{name}_migrations`, beside the table.
    ///
    /// ```
    /// use sessio_postgres::PostgresStore;
    ///
    /// # fn demo(store: PostgresStore) -> Result<(), sessio_postgres::InvalidTableName> {
    /// let store = store.with_table_name("auth.web_sessions")?;
    /// assert_eq!(store.table_name(), "auth.web_sessions");
    /// assert!(store.clone().with_table_name("web-sessions").is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_table_name(mut self, name: &str) -> Result<Self, InvalidTableName> {
        self.table = Arc::new(Table::new(TableName::parse(name)?));
        Ok(self)
    }

    /// Limits each operation to `limit`: past it, the operation fails with
    /// [`StoreError::Timeout`] and the session layer answers 503.
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// The table sessions are kept in, as given (`schema.table` or `table`).
    pub fn table_name(&self) -> &str {
        &self.table.display
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or upgrades the sessions table (and the schema, if named and missing).
    ///
    /// Each migration is applied once, in its own transaction, and recorded in
    /// `{table}_migrations`; an advisory lock derived from the table name makes processes
    /// that migrate at the same time wait for each other. Running it again, or from every
    /// instance at startup, is harmless. It is not limited by
    /// [`with_timeout`](Self::with_timeout): a migration may take longer than a request.
    ///
    /// ```no_run
    /// # async fn demo(store: sessio_postgres::PostgresStore) -> Result<(), sessio_postgres::MigrateError> {
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        migrate::migrate(&self.pool, &self.table.name).await
    }

    /// Runs `operation` within the time limit.
    async fn bounded<T>(
        &self,
        operation: impl std::future::Future<Output = Result<T, sqlx::Error>> + Send,
    ) -> Result<T, StoreError> {
        with_timeout(self.timeout, async { operation.await.map_err(store_error) }).await
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.table.display)
            .finish_non_exhaustive()
    }
}

/// A [`Meta`] as bind parameters.
struct MetaParams {
    created_at: i64,
    last_active: i64,
    expires_at: i64,
    idle_timeout_ms: Option<i64>,
    absolute_lifetime_ms: Option<i64>,
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl From<&Meta> for MetaParams {
    fn from(meta: &Meta) -> Self {
        Self {
            created_at: unix_millis(meta.created_at),
            last_active: unix_millis(meta.last_active),
            expires_at: unix_millis(meta.expires_at),
            idle_timeout_ms: meta.expiry.map(|e| duration_millis(e.idle_timeout())),
            absolute_lifetime_ms: meta.expiry.map(|e| duration_millis(e.absolute_lifetime())),
        }
    }
}

fn corrupt(reason: &'static str) -> StoreError {
    StoreError::Decode(Box::new(CorruptRow(reason)))
}

fn non_negative(millis: i64, reason: &'static str) -> Result<Duration, StoreError> {
    u64::try_from(millis)
        .map(Duration::from_millis)
        .map_err(|_| corrupt(reason))
}

/// Reads a row of the load query.
fn decode(row: &PgRow) -> Result<Record, StoreError> {
    let Json(data): Json<Data> = row.try_get(0).map_err(store_error)?;
    let created_at: i64 = row.try_get(1).map_err(store_error)?;
    let last_active: i64 = row.try_get(2).map_err(store_error)?;
    let expires_at: i64 = row.try_get(3).map_err(store_error)?;
    let idle: Option<i64> = row.try_get(4).map_err(store_error)?;
    let absolute: Option<i64> = row.try_get(5).map_err(store_error)?;
    let expiry = match (idle, absolute) {
        (None, None) => None,
        (Some(idle), Some(absolute)) => Some(Expiry::new(
            non_negative(idle, "negative idle_timeout_ms")?,
            non_negative(absolute, "negative absolute_lifetime_ms")?,
        )),
        _ => {
            return Err(corrupt(
                "idle_timeout_ms and absolute_lifetime_ms must be both set or both NULL",
            ))
        }
    };
    Ok(Record {
        data,
        meta: Meta {
            created_at: from_unix_millis(created_at),
            last_active: from_unix_millis(last_active),
            expires_at: from_unix_millis(expires_at),
            expiry,
        },
    })
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        let key = storage_key(id);
        let meta = MetaParams::from(&record.meta);
        // The caller's time: `last_active` of a new record is now.
        let now = unix_millis(record.meta.last_active);
        let result = self
            .bounded(
                sqlx::query(&self.table.sql.create)
                    .bind(&key[..])
                    .bind(Json(&record.data))
                    .bind(meta.created_at)
                    .bind(meta.last_active)
                    .bind(meta.expires_at)
                    .bind(meta.idle_timeout_ms)
                    .bind(meta.absolute_lifetime_ms)
                    .bind(now)
                    .execute(&self.pool),
            )
            .await?;
        Ok(match result.rows_affected() {
            0 => CreateOutcome::IdTaken,
            _ => CreateOutcome::Created,
        })
    }

    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let key = storage_key(id);
        let row = self
            .bounded(
                sqlx::query(&self.table.sql.load)
                    .bind(&key[..])
                    .bind(unix_millis(now))
                    .fetch_optional(&self.pool),
            )
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
        let mut set = Data::new();
        let mut removed = Vec::new();
        for (name, value) in changes.iter() {
            match value {
                Some(value) => {
                    set.insert(name.to_owned(), value.clone());
                }
                None => removed.push(name),
            }
        }
        let now = unix_millis(meta.last_active);
        let meta = MetaParams::from(meta);
        let result = self
            .bounded(
                sqlx::query(&self.table.sql.update)
                    .bind(&key[..])
                    .bind(changes.clears_all())
                    .bind(&removed)
                    .bind(Json(&set))
                    .bind(meta.created_at)
                    .bind(meta.last_active)
                    .bind(meta.expires_at)
                    .bind(meta.idle_timeout_ms)
                    .bind(meta.absolute_lifetime_ms)
                    .bind(now)
                    .execute(&self.pool),
            )
            .await?;
        Ok(written(result.rows_affected()))
    }

    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
        let now = unix_millis(meta.last_active);
        let meta = MetaParams::from(meta);
        let result = self
            .bounded(
                sqlx::query(&self.table.sql.touch)
                    .bind(&key[..])
                    .bind(meta.created_at)
                    .bind(meta.last_active)
                    .bind(meta.expires_at)
                    .bind(meta.idle_timeout_ms)
                    .bind(meta.absolute_lifetime_ms)
                    .bind(now)
                    .execute(&self.pool),
            )
            .await?;
        Ok(written(result.rows_affected()))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = storage_key(id);
        self.bounded(
            sqlx::query(&self.table.sql.delete)
                .bind(&key[..])
                .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    /// Deletes in batches of 1000 rows, each its own statement within the time limit, so
    /// that a large backlog neither holds long locks nor fails as one slow operation.
    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = unix_millis(now);
        let mut removed = 0;
        loop {
            let batch = self
                .bounded(
                    sqlx::query(&self.table.sql.delete_expired)
                        .bind(now)
                        .bind(DELETE_BATCH)
                        .execute(&self.pool),
                )
                .await?
                .rows_affected();
            removed += batch;
            if batch < DELETE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .bounded(sqlx::query_scalar(&self.table.sql.count).fetch_one(&self.pool))
            .await?;
        u64::try_from(count).map_err(|_| corrupt("negative count"))
    }
}

fn written(rows: u64) -> WriteOutcome {
    match rows {
        0 => WriteOutcome::NotFound,
        _ => WriteOutcome::Applied,
    }
}
