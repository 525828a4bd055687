//! [`SqliteStore`]: the [`SessionStore`] on a SQLite database.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::Value;
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, with_timeout, Changes, CreateOutcome, Data, Meta,
    Record, SessionStore, StoreError, WriteOutcome,
};
use sessio::{Expiry, SessionId};

use crate::connection::{lock, Target, BUSY_TIMEOUT};
use crate::error::{is_busy, store_error, ConnectError, DecodeError};
use crate::migrate::{self, MigrateError, MIGRATIONS};
use crate::table::{self, InvalidTableName, Sql, TableName};
use crate::writer::Writer;

/// Rows removed per statement by [`SessionStore::delete_expired`].
const DELETE_BATCH: i64 = 1000;

/// How long a read waits before trying a busy database again.
const READ_RETRY: Duration = Duration::from_millis(1);

/// Sessions in a SQLite database, shared by every process that opens the same file.
///
/// Cloning is cheap: clones share the connection and the writer.
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
    writer: Writer,
    /// Reads run on it directly; writes, through the writer, in batches.
    connection: Arc<Mutex<Connection>>,
    target: Arc<Target>,
    sql: Arc<Sql>,
    timeout: Duration,
}

impl SqliteStore {
    /// The table name used unless [`with_table_name`](Self::with_table_name) says otherwise.
    pub const DEFAULT_TABLE_NAME: &'static str = table::DEFAULT_NAME;

    /// The limit on each operation unless [`with_timeout`](Self::with_timeout) says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// How long the store waits for another process's lock before giving up.
    pub const BUSY_TIMEOUT: Duration = BUSY_TIMEOUT;

    /// Opens the database at `url`, creating the file if it is missing.
    ///
    /// `url` is `sqlite://PATH` (relative to the working directory, or
    /// `sqlite:///absolute/path`), optionally with `?mode=ro|rw|rwc` (the default is `rwc`:
    /// create if missing). `sqlite::memory:` gives a database of this store (and its
    /// clones) alone, gone when the last clone is dropped: for tests.
    ///
    /// The database uses WAL journaling (other processes read while this one writes) and
    /// `synchronous = NORMAL` (durable across application crashes, the usual setting with
    /// WAL). The store waits up to [`BUSY_TIMEOUT`](Self::BUSY_TIMEOUT) for another
    /// process's write lock, asynchronously.
    ///
    /// The store's writes run in a task spawned here, on the current Tokio runtime: use
    /// the store on the runtime that connected it.
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
        let target = Target::parse(url)?;
        // Opening may wait for another process's lock: not on the runtime's threads.
        let target = Arc::new(target);
        let opening = Arc::clone(&target);
        let connection = tokio::task::spawn_blocking(move || opening.open())
            .await
            .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
            .map_err(ConnectError::Open)?;
        let connection = Arc::new(Mutex::new(connection));
        Ok(Self {
            writer: Writer::spawn(Arc::clone(&connection), Arc::clone(&target)),
            connection,
            target,
            sql: Arc::new(Sql::new(TableName::default())),
            timeout: Self::DEFAULT_TIMEOUT,
        })
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
        let (target, table) = (Arc::clone(&self.target), self.sql.table.clone());
        tokio::task::spawn_blocking(move || {
            let mut connection =
                target
                    .open_waiting()
                    .map_err(|source| MigrateError::Bookkeeping {
                        table: format!("{}_migrations", table.as_str()),
                        source,
                    })?;
            migrate::migrate(&mut connection, &table, MIGRATIONS)
        })
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()))
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

/// Milliseconds of a duration, as a column holds them.
fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The five meta columns, in schema order, as every statement binds them.
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

fn decode_millis(
    row: &Row<'_>,
    index: usize,
    column: &'static str,
) -> Result<Option<Duration>, StoreError> {
    match row.get::<_, Option<i64>>(index).map_err(store_error)? {
        None => Ok(None),
        Some(millis) => u64::try_from(millis)
            .map(|millis| Some(Duration::from_millis(millis)))
            .map_err(|_| StoreError::Decode(DecodeError::NegativeDuration { column }.into())),
    }
}

/// A row of [`Sql::select`]: data, created_at, last_active, expires_at, idle, absolute.
fn decode_record(row: &Row<'_>) -> Result<Record, StoreError> {
    let time = |index| -> Result<SystemTime, StoreError> {
        Ok(from_unix_millis(row.get(index).map_err(store_error)?))
    };
    let expiry = match (
        decode_millis(row, 4, "idle_timeout_ms")?,
        decode_millis(row, 5, "absolute_lifetime_ms")?,
    ) {
        (Some(idle), Some(absolute)) => Some(Expiry::new(idle, absolute)),
        (None, None) => None,
        _ => return Err(StoreError::Decode(DecodeError::HalfExpiry.into())),
    };
    let data: String = row.get(0).map_err(store_error)?;
    Ok(Record {
        data: decode_data(&data)?,
        meta: Meta {
            created_at: time(1)?,
            last_active: time(2)?,
            expires_at: time(3)?,
            expiry,
        },
    })
}

fn write_outcome(rows_changed: usize) -> WriteOutcome {
    if rows_changed == 0 {
        WriteOutcome::NotFound
    } else {
        WriteOutcome::Applied
    }
}

/// The statements of each write, run on the writer's connection inside its transaction.
mod writes {
    use super::*;

    pub(super) fn insert(
        db: &Connection,
        sql: &Sql,
        key: &[u8; 32],
        data: &str,
        meta: &MetaColumns,
        now: i64,
    ) -> Result<CreateOutcome, StoreError> {
        let m = meta;
        let inserted = db
            .prepare_cached(&sql.insert)
            .and_then(|mut insert| {
                insert.execute((
                    &key[..],
                    data,
                    m.created_at,
                    m.last_active,
                    m.expires_at,
                    m.idle_timeout_ms,
                    m.absolute_lifetime_ms,
                    now,
                ))
            })
            .map_err(store_error)?;
        Ok(if inserted == 0 {
            CreateOutcome::IdTaken
        } else {
            CreateOutcome::Created
        })
    }

    /// Replaces data and meta of a live session.
    pub(super) fn replace(
        db: &Connection,
        sql: &Sql,
        key: &[u8; 32],
        data: &str,
        meta: &MetaColumns,
        now: i64,
    ) -> Result<WriteOutcome, StoreError> {
        let m = meta;
        db.prepare_cached(&sql.replace)
            .and_then(|mut replace| {
                replace.execute((
                    data,
                    m.created_at,
                    m.last_active,
                    m.expires_at,
                    m.idle_timeout_ms,
                    m.absolute_lifetime_ms,
                    &key[..],
                    now,
                ))
            })
            .map(write_outcome)
            .map_err(store_error)
    }

    /// Replaces the meta of a live session.
    pub(super) fn touch(
        db: &Connection,
        sql: &Sql,
        key: &[u8; 32],
        meta: &MetaColumns,
        now: i64,
    ) -> Result<WriteOutcome, StoreError> {
        let m = meta;
        db.prepare_cached(&sql.touch)
            .and_then(|mut touch| {
                touch.execute((
                    m.created_at,
                    m.last_active,
                    m.expires_at,
                    m.idle_timeout_ms,
                    m.absolute_lifetime_ms,
                    &key[..],
                    now,
                ))
            })
            .map(write_outcome)
            .map_err(store_error)
    }

    /// Reads a live session's data, applies `changes` and writes it back: atomic, since
    /// the writer's transaction holds SQLite's write lock throughout.
    pub(super) fn read_modify_write(
        db: &Connection,
        sql: &Sql,
        key: &[u8; 32],
        changes: &Changes,
        meta: &MetaColumns,
        now: i64,
    ) -> Result<WriteOutcome, StoreError> {
        let stored: Option<String> = db
            .prepare_cached(&sql.select_data)
            .and_then(|mut select| {
                select
                    .query_row((&key[..], now), |row| row.get(0))
                    .optional()
            })
            .map_err(store_error)?;
        let Some(stored) = stored else {
            return Ok(WriteOutcome::NotFound);
        };
        let mut data = decode_data(&stored)?;
        changes.apply(&mut data);
        replace(db, sql, key, &encode_data(&data)?, meta, now)
    }

    pub(super) fn execute(
        db: &Connection,
        statement: &str,
        params: impl rusqlite::Params,
    ) -> Result<usize, StoreError> {
        db.prepare_cached(statement)
            .and_then(|mut statement| statement.execute(params))
            .map_err(store_error)
    }
}

impl SqliteStore {
    /// Runs `write` on the writer's connection, in its next transaction, within the time
    /// limit. A caller that stops waiting leaves nothing half done: the writer finishes
    /// the write and commits it with the others of its transaction.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection, &Sql) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let sql = Arc::clone(&self.sql);
        with_timeout(
            self.timeout,
            self.writer.write(move |connection| write(connection, &sql)),
        )
        .await
    }

    /// Runs `read` on the store's connection, on the caller's thread: reads are single-row
    /// lookups by primary key, done in microseconds, and a hop to another thread would
    /// cost more. A busy database (rare in WAL mode) is tried again after a pause, within
    /// the time limit.
    async fn read<T>(
        &self,
        read: impl Fn(&Connection, &Sql) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        with_timeout(self.timeout, async {
            loop {
                let done = read(&lock(&self.connection), &self.sql);
                match done {
                    Err(error) if is_busy(&error) => tokio::time::sleep(READ_RETRY).await,
                    done => return done.map_err(store_error),
                }
            }
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
        self.write(move |db, sql| writes::insert(db, sql, &key, &data, &meta, now))
            .await
    }

    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let key = storage_key(id);
        let now = unix_millis(now);
        self.read(|db, sql| {
            db.prepare_cached(&sql.select)?
                .query_row((&key[..], now), |row| Ok(decode_record(row)))
                .optional()
        })
        .await?
        .transpose()
    }

    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
        let now = unix_millis(meta.last_active);
        let meta = MetaColumns::from(meta);
        if changes.is_empty() {
            return self
                .write(move |db, sql| writes::touch(db, sql, &key, &meta, now))
                .await;
        }
        if changes.clears_all() {
            // The new data does not depend on the stored data: no read needed.
            let mut data = Data::new();
            changes.apply(&mut data);
            let data = encode_data(&data)?;
            return self
                .write(move |db, sql| writes::replace(db, sql, &key, &data, &meta, now))
                .await;
        }
        let changes = changes.clone();
        self.write(move |db, sql| writes::read_modify_write(db, sql, &key, &changes, &meta, now))
            .await
    }

    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
        let now = unix_millis(meta.last_active);
        let meta = MetaColumns::from(meta);
        self.write(move |db, sql| writes::touch(db, sql, &key, &meta, now))
            .await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = storage_key(id);
        self.write(move |db, sql| writes::execute(db, &sql.delete, [&key[..]]).map(drop))
            .await
    }

    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = unix_millis(now);
        let mut removed = 0;
        loop {
            let batch = self
                .write(move |db, sql| writes::execute(db, &sql.delete_expired, (now, DELETE_BATCH)))
                .await?;
            removed += batch as u64;
            if batch < DELETE_BATCH as usize {
                return Ok(removed);
            }
        }
    }

    async fn count(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .read(|db, sql| {
                db.prepare_cached(&sql.count)?
                    .query_row([], |row| row.get(0))
            })
            .await?;
        // COUNT(*) is never negative.
        Ok(count.unsigned_abs())
    }
}
