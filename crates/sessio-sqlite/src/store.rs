//! [`SqliteStore`]: the [`SessionStore`] on a SQLite database.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, with_timeout, Changes, CreateOutcome, Data, Meta,
    Record, SessionStore, StoreError, WriteOutcome,
};
use sessio::{Expiry, SessionId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::Mutex;

use crate::error::{store_error, ConnectError, DecodeError};
use crate::migrate::{self, MigrateError, MIGRATIONS};
use crate::table::{self, InvalidTableName, Sql, TableName};

/// Rows removed per statement by [`SessionStore::delete_expired`].
const DELETE_BATCH: i64 = 1000;

/// Sessions in a SQLite database, shared by every process that opens the same file.
///
/// Cloning is cheap: clones share the connection pool.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use sessio_sqlite::SqliteStore;
///
/// let store = SqliteStore::connect("sqlite::memory:")
///     .await?
///     .with_table_name("web_sessions")?
///     .with_timeout(Duration::from_millis(500));
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    sql: Arc<Sql>,
    timeout: Duration,
    /// Taken by every write, so that this process's writes reach SQLite one at a time.
    writer: Arc<Mutex<()>>,
}

impl SqliteStore {
    /// The table name used unless [`with_table_name`](Self::with_table_name) says otherwise.
    pub const DEFAULT_TABLE_NAME: &'static str = table::DEFAULT_NAME;

    /// The limit on each operation unless [`with_timeout`](Self::with_timeout) says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// How long a connection waits for another process's write lock before giving up.
    pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

    /// Opens a pool onto the database at `url`, creating the file if it is missing.
    ///
    /// `url` is a sqlx SQLite URL: `sqlite://PATH` (relative to the working directory, or
    /// `sqlite:///absolute/path`), optionally with `?mode=ro|rw|rwc` (the default here is
    /// `rwc`: create if missing). `sqlite::memory:` gives a database that lives as long as
    /// the pool, shared by its connections but by no other process: for tests only.
    ///
    /// Every connection uses WAL journaling (readers do not block the writer),
    /// `synchronous = NORMAL` (durable across application crashes, the usual setting with
    /// WAL) and a [`BUSY_TIMEOUT`](Self::BUSY_TIMEOUT) wait for locks.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use sessio_sqlite::{ConnectError, SqliteStore};
    ///
    /// let error = SqliteStore::connect("postgres://localhost/db").await.unwrap_err();
    /// assert!(matches!(error, ConnectError::NotSqlite));
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        // sqlx reads anything without the scheme as a file name.
        if !url.starts_with("sqlite:") {
            return Err(ConnectError::NotSqlite);
        }
        let mut options = SqliteConnectOptions::from_str(url).map_err(ConnectError::InvalidUrl)?;
        let query = url.split_once('?').map_or("", |(_, query)| query);
        if !query.split('&').any(|pair| pair.starts_with("mode=")) {
            options = options.create_if_missing(true);
        }
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Self::BUSY_TIMEOUT);
        let mut pool = SqlitePoolOptions::new();
        if is_in_memory(url) {
            // The database lives only while a connection to it is open: keep one open.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool
            .connect_with(options)
            .await
            .map_err(ConnectError::Connect)?;
        Ok(Self::from_pool(pool))
    }

    /// A store using an existing pool, with default settings.
    ///
    /// The pool's connections should have a busy timeout (sqlx's default is 5 s) and, for
    /// several processes, WAL journaling, as [`connect`](Self::connect) sets up.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sessio_sqlite::SqliteStore;
    ///
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// let store = SqliteStore::from_pool(pool);
    /// assert_eq!(store.table_name(), "sessio_sessions");
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_pool(pool: SqlitePool) -> Self {
        Self {
            pool,
            sql: Arc::new(Sql::new(TableName::default())),
            timeout: Self::DEFAULT_TIMEOUT,
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// Keeps sessions in the table `name` (and its migrations in `{name}_migrations`).
    ///
    /// The name must be 1 to 63 ASCII letters, digits and underscores, not starting with
    /// a digit.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sessio_sqlite::SqliteStore;
    ///
    /// let store = SqliteStore::connect("sqlite::memory:").await?;
    /// assert!(store.clone().with_table_name("sessions; DROP TABLE users").is_err());
    /// let store = store.with_table_name("sessions_v2")?;
    /// assert_eq!(store.table_name(), "sessions_v2");
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_table_name(mut self, name: &str) -> Result<Self, InvalidTableName> {
        self.sql = Arc::new(Sql::new(TableName::new(name)?));
        Ok(self)
    }

    /// Limits every operation to `limit`; past it, the operation fails with
    /// [`StoreError::Timeout`]. For [`SessionStore::delete_expired`] the limit applies to
    /// each batch of rows.
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// The table sessions are kept in.
    pub fn table_name(&self) -> &str {
        self.sql.table.as_str()
    }

    /// The newest schema version this crate knows.
    pub const SCHEMA_VERSION: i64 = 1;

    /// Brings the schema up to [`SCHEMA_VERSION`](Self::SCHEMA_VERSION): applies, in
    /// order, every migration not yet recorded in `{table}_migrations`.
    ///
    /// Each migration runs in its own write transaction (`BEGIN IMMEDIATE`) together with
    /// the row that records it, so it is applied exactly once even when several processes
    /// migrate at the same time: the others wait for the lock, see the record and skip it.
    /// Running it again when up to date changes nothing.
    ///
    /// It is not subject to the per-operation [timeout](Self::with_timeout); each
    /// statement waits at most [`BUSY_TIMEOUT`](Self::BUSY_TIMEOUT) for the lock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sessio::SessionStore;
    /// use sessio_sqlite::SqliteStore;
    ///
    /// let store = SqliteStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// store.migrate().await?; // already up to date
    /// assert_eq!(store.count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        migrate::migrate(&self.pool, &self.sql.table, MIGRATIONS).await
    }

    /// The connection pool, for health checks or to close it.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("table", &self.table_name())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Milliseconds of a duration, as a column holds them.
fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The meta columns, in the order every statement binds them.
/// A statement taking the five meta columns, in schema order.
trait BindMeta {
    fn bind_meta(self, meta: &MetaColumns) -> Self;
}

impl<'q> BindMeta for sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    fn bind_meta(self, meta: &MetaColumns) -> Self {
        self.bind(meta.created_at)
            .bind(meta.last_active)
            .bind(meta.expires_at)
            .bind(meta.idle_timeout_ms)
            .bind(meta.absolute_lifetime_ms)
    }
}

struct MetaColumns {
    created_at: i64,
    last_active: i64,
    expires_at: i64,
    idle_timeout_ms: Option<i64>,
    absolute_lifetime_ms: Option<i64>,
}

impl From<&Meta> for MetaColumns {
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

fn encode_data(data: &Data) -> Result<String, StoreError> {
    serde_json::to_string(data).map_err(|e| StoreError::Backend(e.into()))
}

fn decode_data(text: &str) -> Result<Data, StoreError> {
    // Parsed as any value first: serde's "invalid type" messages would quote the data.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(data)) => Ok(data),
        Ok(_) => Err(StoreError::Decode(DecodeError::NotAnObject.into())),
        Err(error) => Err(StoreError::Decode(DecodeError::Json(error).into())),
    }
}

fn decode_millis(row: &SqliteRow, column: &'static str) -> Result<Option<Duration>, StoreError> {
    match row.try_get::<Option<i64>, _>(column).map_err(store_error)? {
        None => Ok(None),
        Some(millis) => u64::try_from(millis)
            .map(|millis| Some(Duration::from_millis(millis)))
            .map_err(|_| StoreError::Decode(DecodeError::NegativeDuration { column }.into())),
    }
}

fn decode_record(row: &SqliteRow) -> Result<Record, StoreError> {
    let time = |column: &str| -> Result<SystemTime, StoreError> {
        Ok(from_unix_millis(row.try_get(column).map_err(store_error)?))
    };
    let expiry = match (
        decode_millis(row, "idle_timeout_ms")?,
        decode_millis(row, "absolute_lifetime_ms")?,
    ) {
        (Some(idle), Some(absolute)) => Some(Expiry::new(idle, absolute)),
        (None, None) => None,
        _ => return Err(StoreError::Decode(DecodeError::HalfExpiry.into())),
    };
    let data: String = row.try_get("data").map_err(store_error)?;
    Ok(Record {
        data: decode_data(&data)?,
        meta: Meta {
            created_at: time("created_at")?,
            last_active: time("last_active")?,
            expires_at: time("expires_at")?,
            expiry,
        },
    })
}

fn write_outcome(rows_affected: u64) -> WriteOutcome {
    if rows_affected == 0 {
        WriteOutcome::NotFound
    } else {
        WriteOutcome::Applied
    }
}

impl SqliteStore {
    /// Replaces the meta of a live session.
    async fn touch_now(
        &self,
        key: &[u8; 32],
        meta: &Meta,
        now: i64,
    ) -> Result<WriteOutcome, StoreError> {
        let meta = MetaColumns::from(meta);
        let done = sqlx::query(&self.sql.touch)
            .bind_meta(&meta)
            .bind(&key[..])
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(write_outcome(done.rows_affected()))
    }

    /// Replaces data and meta of a live session in one statement.
    async fn replace(
        &self,
        key: &[u8; 32],
        data: &Data,
        meta: &Meta,
        now: i64,
    ) -> Result<WriteOutcome, StoreError> {
        let data = encode_data(data)?;
        let meta = MetaColumns::from(meta);
        let done = sqlx::query(&self.sql.replace)
            .bind(data)
            .bind_meta(&meta)
            .bind(&key[..])
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(write_outcome(done.rows_affected()))
    }

    /// Reads, changes and writes back a live session's data inside one write transaction.
    async fn read_modify_write(
        &self,
        key: &[u8; 32],
        changes: &Changes,
        meta: &Meta,
        now: i64,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(store_error)?;
        let stored: Option<String> = sqlx::query_scalar(&self.sql.select_data)
            .bind(&key[..])
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(stored) = stored else {
            tx.rollback().await.map_err(store_error)?;
            return Ok(WriteOutcome::NotFound);
        };
        let mut data = decode_data(&stored)?;
        changes.apply(&mut data);
        let data = encode_data(&data)?;
        let meta = MetaColumns::from(meta);
        sqlx::query(&self.sql.replace)
            .bind(data)
            .bind_meta(&meta)
            .bind(&key[..])
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        tx.commit().await.map_err(store_error)?;
        Ok(WriteOutcome::Applied)
    }
}

impl SqliteStore {
    /// Runs `write` on a task of its own, in this process's turn (see the crate
    /// documentation), within the time limit. The task runs to the end whatever becomes of
    /// the caller: a write dropped halfway, by a request whose client went away, would leave
    /// its transaction open, and the database locked for every other writer, until its
    /// connection happened to be used again.
    async fn write<T, F, Fut>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(SqliteStore) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let store = self.clone();
        let task = tokio::spawn(async move {
            let _turn = Arc::clone(&store.writer).lock_owned().await;
            write(store).await
        });
        with_timeout(self.timeout, async {
            task.await
                .map_err(|error| StoreError::Backend(Box::new(error)))?
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        let key = storage_key(id);
        let now = unix_millis(record.meta.last_active);
        let data = encode_data(&record.data)?;
        let meta = MetaColumns::from(&record.meta);
        self.write(move |store| async move {
            let done = sqlx::query(&store.sql.insert)
                .bind(&key[..])
                .bind(data)
                .bind_meta(&meta)
                .bind(now)
                .execute(&store.pool)
                .await
                .map_err(store_error)?;
            Ok(if done.rows_affected() == 0 {
                CreateOutcome::IdTaken
            } else {
                CreateOutcome::Created
            })
        })
        .await
    }

    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let key = storage_key(id);
        with_timeout(self.timeout, async {
            let row = sqlx::query(&self.sql.select)
                .bind(&key[..])
                .bind(unix_millis(now))
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
            row.as_ref().map(decode_record).transpose()
        })
        .await
    }

    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
        let now = unix_millis(meta.last_active);
        let (changes, meta) = (changes.clone(), *meta);
        self.write(move |store| async move {
            if changes.is_empty() {
                store.touch_now(&key, &meta, now).await
            } else if changes.clears_all() {
                // The new data does not depend on the stored data: no read needed.
                let mut data = Data::new();
                changes.apply(&mut data);
                store.replace(&key, &data, &meta, now).await
            } else {
                store.read_modify_write(&key, &changes, &meta, now).await
            }
        })
        .await
    }

    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
        let now = unix_millis(meta.last_active);
        let meta = *meta;
        self.write(move |store| async move { store.touch_now(&key, &meta, now).await })
            .await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = storage_key(id);
        self.write(move |store| async move {
            sqlx::query(&store.sql.delete)
                .bind(&key[..])
                .execute(&store.pool)
                .await
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = unix_millis(now);
        let mut removed = 0;
        loop {
            let batch = self
                .write(move |store| async move {
                    let done = sqlx::query(&store.sql.delete_expired)
                        .bind(now)
                        .bind(DELETE_BATCH)
                        .execute(&store.pool)
                        .await
                        .map_err(store_error)?;
                    Ok(done.rows_affected())
                })
                .await?;
            removed += batch;
            if batch < DELETE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    async fn count(&self) -> Result<u64, StoreError> {
        with_timeout(self.timeout, async {
            let count: i64 = sqlx::query_scalar(&self.sql.count)
                .fetch_one(&self.pool)
                .await
                .map_err(store_error)?;
            // COUNT(*) is never negative.
            Ok(count.unsigned_abs())
        })
        .await
    }
}
