//! [`PostgresStore`]: the [`SessionStore`] implementation, handing each operation to the
//! chosen [`Layout`]'s backend.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sessio::store::{Changes, CreateOutcome, Meta, Record, SessionStore, StoreError, WriteOutcome};
use sessio::SessionId;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::error::ConnectError;
use crate::layout::{native, Backend, Db, Layout};
use crate::migrate::{self, MigrateError};
use crate::table::{InvalidTableName, TableName};

/// Sessions in a PostgreSQL table, shared by every instance of an application.
///
/// - **One statement per operation**: an update applies the request's changed keys
///   (`jsonb` minus the removed keys, merged with the set ones) and the new expiry in a
///   single `UPDATE`, so concurrent requests writing different keys all keep their writes,
///   and an update of a destroyed session changes nothing (it never inserts).
/// - **Readable rows**: in the default [`Layout::Native`], the id column holds the SHA-256
///   of the session id, never the id itself; timestamps are real `timestamptz` columns,
///   indexed on `expires_at`, so operators can query them.
/// - **Shareable with Node**: [`Layout::ConnectPgSimple`] keeps sessions in the table of
///   connect-pg-simple, in express-session's JSON, so an Express application and this one
///   share them (the id is then stored raw: see the layout).
/// - **Bounded**: every operation is limited to [`with_timeout`](Self::with_timeout) (2 s by
///   default), so a database that hangs gives clients a 503 instead of a hung request.
/// - **Expiry by the application's clock**: records at or past their expiry are neither
///   loaded nor updated, judged by the time the session layer passes in (its
///   [`Clock`](sessio::Clock)) rather than by the database server's clock.
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
    timeout: Duration,
    layout: Layout,
    /// Whether the table name was chosen with `with_table_name`, rather than the layout's
    /// default.
    named: bool,
    table: Arc<Table>,
}

/// The table's name, and the chosen layout's operations on it.
struct Table {
    display: String,
    backend: Arc<dyn Backend>,
}

impl Table {
    fn new(layout: Layout, name: TableName) -> Self {
        Self {
            display: name.to_string(),
            backend: layout.backend(name),
        }
    }
}

impl PostgresStore {
    /// The table sessions are kept in unless told otherwise, in the default
    /// [`Layout::Native`]. ([`Layout::ConnectPgSimple`] defaults to `session`: see
    /// [`Layout::default_table_name`].)
    pub const DEFAULT_TABLE_NAME: &'static str = native::DEFAULT_TABLE_NAME;
    /// The time limit of each operation unless told otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// The most connections the pool [`connect`](Self::connect) builds opens at once.
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    /// The time limit of [`connect`](Self::connect)'s first connection.
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// The schema version [`migrate`](Self::migrate) brings a [`Layout::Native`] table to.
    pub const SCHEMA_VERSION: i32 = native::LATEST_VERSION;

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

    /// A store on an existing pool, with the default layout, table name and time limit.
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
        let layout = Layout::default();
        Self {
            pool,
            timeout: Self::DEFAULT_TIMEOUT,
            layout,
            named: false,
            table: Arc::new(Table::new(layout, default_table(layout))),
        }
    }

    /// Lays sessions out as `layout` says (by default [`Layout::Native`]): sessio's own
    /// table, or connect-pg-simple's to share sessions with Node.
    ///
    /// Unless [`with_table_name`](Self::with_table_name) chose a table (before or after
    /// this call), the table becomes the layout's default: `session` for
    /// [`Layout::ConnectPgSimple`], as connect-pg-simple's.
    ///
    /// ```
    /// use sessio_postgres::{Layout, PostgresStore};
    ///
    /// # fn demo(store: PostgresStore) -> Result<(), sessio_postgres::InvalidTableName> {
    /// let shared = store.clone().with_layout(Layout::ConnectPgSimple);
    /// assert_eq!(shared.layout(), Layout::ConnectPgSimple);
    /// assert_eq!(shared.table_name(), "session");
    ///
    /// let named = store.with_layout(Layout::ConnectPgSimple).with_table_name("web.session")?;
    /// assert_eq!(named.table_name(), "web.session");
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_layout(mut self, layout: Layout) -> Self {
        let name = if self.named {
            self.table.backend.table().clone()
        } else {
            default_table(layout)
        };
        self.layout = layout;
        self.table = Arc::new(Table::new(layout, name));
        self
    }

    /// Keeps sessions in table `name` instead of the layout's default
    /// ([`DEFAULT_TABLE_NAME`](Self::DEFAULT_TABLE_NAME), or `session` for
    /// [`Layout::ConnectPgSimple`]): lowercase letters, digits and underscores, not
    /// starting with a digit, at most 48 characters, optionally qualified with a schema
    /// (`schema.table`).
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
        self.table = Arc::new(Table::new(self.layout, TableName::parse(name)?));
        self.named = true;
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

    /// How sessions are laid out: see [`with_layout`](Self::with_layout).
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates or upgrades the sessions table (and the schema, if named and missing).
    ///
    /// In [`Layout::ConnectPgSimple`], creates connect-pg-simple's table and index only if
    /// the table does not exist (as connect-pg-simple's `createTableIfMissing`): a table
    /// Node created is used as it is.
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
        let backend = &self.table.backend;
        migrate::migrate(&self.pool, backend.table(), backend.migrations()).await
    }

    /// Where operations run.
    fn db(&self) -> Db<'_> {
        Db {
            pool: &self.pool,
            timeout: self.timeout,
        }
    }
}

/// The default table of `layout`.
fn default_table(layout: Layout) -> TableName {
    TableName::parse(layout.default_table_name()).expect("the default names are valid")
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.table.display)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        self.table.backend.create(self.db(), id, record).await
    }

    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.table.backend.load(self.db(), id, now).await
    }

    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        self.table
            .backend
            .update(self.db(), id, changes, meta)
            .await
    }

    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        self.table.backend.touch(self.db(), id, meta).await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.table.backend.delete(self.db(), id).await
    }

    /// Deletes in batches of 1000 rows, each its own statement within the time limit, so
    /// that a large backlog neither holds long locks nor fails as one slow operation.
    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.table.backend.delete_expired(self.db(), now).await
    }

    async fn count(&self) -> Result<u64, StoreError> {
        self.table.backend.count(self.db()).await
    }
}
