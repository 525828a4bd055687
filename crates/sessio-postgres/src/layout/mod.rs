//! Table layouts: how a store lays its sessions out in PostgreSQL.
//!
//! Each layout is its own module implementing [`Backend`]; the store picks one and hands
//! it every operation.

pub(crate) mod connect_pg_simple;
pub(crate) mod native;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sessio::store::{with_timeout, Changes, CreateOutcome, Meta, Record, StoreError, WriteOutcome};
use sessio::SessionId;
use sqlx::PgPool;

use crate::error::{store_error, CorruptRow};
use crate::migrate::Migration;
use crate::table::{TableName, DELETE_BATCH};

/// How a [`PostgresStore`](crate::PostgresStore) lays its sessions out in the table.
///
/// Chosen with [`PostgresStore::with_layout`](crate::PostgresStore::with_layout); the
/// layout also decides the default table name (see [`default_table_name`](Self::default_table_name)).
///
/// ```
/// use sessio_postgres::Layout;
///
/// assert_eq!(Layout::default(), Layout::Native);
/// assert_eq!(Layout::Native.default_table_name(), "sessio_sessions");
/// assert_eq!(Layout::ConnectPgSimple.default_table_name(), "session");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Layout {
    /// sessio's own table (the default): the SHA-256 of the id as key, `jsonb` data,
    /// `timestamptz` columns kept at exact millisecond precision, and the session's own
    /// expiry. See the [crate documentation](crate#the-table).
    #[default]
    Native,
    /// The table of Node's [connect-pg-simple] (v10), to share sessions with an Express
    /// application using express-session:
    ///
    /// ```sql
    /// CREATE TABLE "session" (
    ///   "sid" varchar NOT NULL COLLATE "default",   -- the session id, RAW
    ///   "sess" json NOT NULL,                        -- express-session's JSON
    ///   "expire" timestamp(6) NOT NULL               -- no time zone: the connection's
    /// ) WITH (OIDS=FALSE);
    /// ALTER TABLE "session" ADD CONSTRAINT "session_pkey" PRIMARY KEY ("sid") NOT DEFERRABLE INITIALLY IMMEDIATE;
    /// CREATE INDEX "IDX_session_expire" ON "session" ("expire");
    /// ```
    ///
    /// **The `sid` column holds the session id itself**, as Node reads it: anyone who can
    /// read the table can use its sessions (the native layout stores only a hash). Grant
    /// access to it accordingly.
    ///
    /// `sess` is express-session's JSON (see [`sessio::express`]): the data keys beside a
    /// `cookie` object. That shape keeps no creation time and no absolute lifetime, so
    /// sessions slide like express's: a loaded session's `created_at` and `last_active`
    /// are `expires - originalMaxAge`, and its expiry is `originalMaxAge` of idleness with
    /// no absolute limit. `expire` is written as connect-pg-simple writes it,
    /// `to_timestamp(ceil(expires / 1 s))`, in the connection's `TimeZone`; see the
    /// [crate documentation](crate#time-zones) for making it match Node's.
    ///
    /// [connect-pg-simple]: https://github.com/voxpelli/node-connect-pg-simple
    ConnectPgSimple,
}

impl Layout {
    /// The table sessions are kept in unless
    /// [`with_table_name`](crate::PostgresStore::with_table_name) says otherwise:
    /// `sessio_sessions`, or connect-pg-simple's `session`.
    pub const fn default_table_name(self) -> &'static str {
        match self {
            Self::Native => native::DEFAULT_TABLE_NAME,
            Self::ConnectPgSimple => connect_pg_simple::DEFAULT_TABLE_NAME,
        }
    }

    /// The operations of this layout on `table`.
    pub(crate) fn backend(self, table: TableName) -> Arc<dyn Backend> {
        match self {
            Self::Native => Arc::new(native::Native::new(table)),
            Self::ConnectPgSimple => Arc::new(connect_pg_simple::ConnectPgSimple::new(table)),
        }
    }
}

/// Where a store's statements run: the pool, and the time limit of each operation.
#[derive(Clone, Copy)]
pub(crate) struct Db<'a> {
    pub(crate) pool: &'a PgPool,
    pub(crate) timeout: Duration,
}

impl Db<'_> {
    /// Runs `operation` within the time limit.
    pub(crate) async fn bounded<T>(
        self,
        operation: impl Future<Output = Result<T, sqlx::Error>> + Send,
    ) -> Result<T, StoreError> {
        with_timeout(self.timeout, async { operation.await.map_err(store_error) }).await
    }

    /// Runs `sql` (`$1` a time bound, `$2` the batch size) until a batch removes fewer
    /// than [`DELETE_BATCH`] rows; each batch is its own statement within the time limit,
    /// so that a large backlog neither holds long locks nor fails as one slow operation.
    pub(crate) async fn delete_in_batches(self, sql: &str, bound: i64) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let batch = self
                .bounded(
                    sqlx::query(sql)
                        .bind(bound)
                        .bind(DELETE_BATCH)
                        .execute(self.pool),
                )
                .await?
                .rows_affected();
            removed += batch;
            if batch < DELETE_BATCH as u64 {
                return Ok(removed);
            }
        }
    }

    /// Runs a `SELECT count(*)`.
    pub(crate) async fn count(self, sql: &str) -> Result<u64, StoreError> {
        let count: i64 = self
            .bounded(sqlx::query_scalar(sql).fetch_one(self.pool))
            .await?;
        u64::try_from(count).map_err(|_| corrupt("negative count"))
    }
}

/// A row that the driver could read but that is not a valid session.
pub(crate) fn corrupt(reason: &'static str) -> StoreError {
    StoreError::Decode(Box::new(CorruptRow(reason)))
}

/// An update or touch that changed `rows` rows.
pub(crate) fn written(rows: u64) -> WriteOutcome {
    match rows {
        0 => WriteOutcome::NotFound,
        _ => WriteOutcome::Applied,
    }
}

/// An insert that changed `rows` rows.
pub(crate) fn created(rows: u64) -> CreateOutcome {
    match rows {
        0 => CreateOutcome::IdTaken,
        _ => CreateOutcome::Created,
    }
}

/// One layout's operations on one table: the [`SessionStore`](sessio::SessionStore)
/// methods, given where to run them.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// The table, as validated.
    fn table(&self) -> &TableName;

    /// The migrations that create and upgrade this layout's table, in order.
    fn migrations(&self) -> &'static [Migration];

    async fn create(
        &self,
        db: Db<'_>,
        id: &SessionId,
        record: &Record,
    ) -> Result<CreateOutcome, StoreError>;

    async fn load(
        &self,
        db: Db<'_>,
        id: &SessionId,
        now: SystemTime,
    ) -> Result<Option<Record>, StoreError>;

    async fn update(
        &self,
        db: Db<'_>,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError>;

    async fn touch(
        &self,
        db: Db<'_>,
        id: &SessionId,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError>;

    async fn delete(&self, db: Db<'_>, id: &SessionId) -> Result<(), StoreError>;

    async fn delete_expired(&self, db: Db<'_>, now: SystemTime) -> Result<u64, StoreError>;

    async fn count(&self, db: Db<'_>) -> Result<u64, StoreError>;
}
