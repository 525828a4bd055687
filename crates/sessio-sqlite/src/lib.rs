//! A [`SessionStore`] for [`sessio`] that keeps sessions in a SQLite database: one
//! file that every process on the machine shares, with nothing else to run.
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{routing::get, Router};
//! use sessio::{ExpiredCleanup, KeyRing, Session, SessionError, SessionLayer, SystemClock};
//! use sessio_sqlite::SqliteStore;
//!
//! async fn handler(session: Session) -> Result<String, SessionError> {
//!     let views: u32 = session.get("page_views").await?.unwrap_or(0) + 1;
//!     session.insert("page_views", views).await?;
//!     Ok(format!("{views} views"))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("sessions.db");
//! # let path = path.display();
//! // The file is created if it does not exist.
//! let store = SqliteStore::connect(&format!("sqlite://{path}"))
//!     .await?
//!     .with_timeout(Duration::from_secs(1));
//! // Creates or upgrades the table; safe to run at every start, from every process.
//! store.migrate().await?;
//!
//! let keys = KeyRing::new([std::env::var("SESSION_SECRET").unwrap_or_else(|_| "x".repeat(32))])?;
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(SessionLayer::new(store.clone(), keys));
//! // Removes sessions nobody came back for, every ten minutes.
//! let cleanup = ExpiredCleanup::spawn(store, Duration::from_secs(600), SystemClock);
//! // ... serve `app` ...
//! # let _ = app;
//! cleanup.stop();
//! # Ok(())
//! # }
//! ```
//!
//! # Schema
//!
//! [`SqliteStore::migrate`] creates a table (`sessio_sessions` unless
//! [`with_table_name`](SqliteStore::with_table_name) says otherwise) with real columns, so
//! that operators can query it:
//!
//! | column                 | type              | holds                                                         |
//! |------------------------|-------------------|---------------------------------------------------------------|
//! | `id`                   | `BLOB PRIMARY KEY`| SHA-256 of the session id ([`storage_key`]), never the id     |
//! | `data`                 | `TEXT NOT NULL`   | the session's data, a JSON object                             |
//! | `created_at`           | `INTEGER NOT NULL`| Unix milliseconds                                             |
//! | `last_active`          | `INTEGER NOT NULL`| Unix milliseconds                                             |
//! | `expires_at`           | `INTEGER NOT NULL`| Unix milliseconds; indexed, for the expired-session sweep     |
//! | `idle_timeout_ms`      | `INTEGER`         | the session's own idle timeout, when it has its own [`Expiry`] |
//! | `absolute_lifetime_ms` | `INTEGER`         | the session's own absolute lifetime, likewise                 |
//!
//! Migrations are versioned: the table `{table}_migrations(version, applied_at)` records
//! which were applied. Each runs once, in its own write transaction.
//!
//! # How updates stay atomic
//!
//! [`SessionStore::update`] must apply only the keys a request changed, so that two
//! requests (in any processes) writing different keys both keep their writes. This store
//! reads the stored JSON, applies the [`Changes`] in Rust and writes the result back, inside
//! a write transaction begun with `BEGIN IMMEDIATE`, which takes SQLite's write lock
//! before the read: no other writer, in this process or another, can slip in between.
//!
//! The alternative, one `UPDATE` built from SQLite's JSON functions, was rejected because
//! it is not correct for every key: `json_patch` merges nested objects instead of
//! replacing a value, and `json_set`/`json_remove` address keys through JSON paths, in
//! which a key containing `"` cannot be written at all. An update that clears every key
//! needs no read, and is a single `UPDATE`.
//!
//! # One connection, writes in batches
//!
//! SQLite runs one write transaction at a time per database, and committing one costs
//! more than the statements in it. So the store has one connection. Reads run on it
//! directly, on the caller's thread: each is one lookup by primary key, done in
//! microseconds. Writes are queued, and a task of the store's takes every write waiting
//! when its turn comes, runs them in one transaction and commits once; each caller hears
//! back after that commit. The busier the store, the more writes share a commit, and no
//! write ever waits in SQLite's busy handler behind another of this process.
//!
//! Nothing the store does on the runtime's threads waits for a lock or the disk: when
//! another process holds the write lock, the store sleeps asynchronously and tries again
//! (up to [`BUSY_TIMEOUT`](SqliteStore::BUSY_TIMEOUT)); WAL checkpoints, the one step that
//! syncs the disk, run on a blocking thread.
//!
//! Why [rusqlite] rather than sqlx: sqlx runs each SQLite connection on a thread of its own
//! and hands every statement there and back, which costs several times what the statement
//! does; rusqlite runs the statement where it is called, with prepared statements cached.
//! rusqlite 0.32 links the same SQLite (`libsqlite3-sys` 0.30) as sqlx 0.8, so an
//! application can use sqlx for its own tables beside this store.
//!
//! [rusqlite]: https://docs.rs/rusqlite

//! # Time
//!
//! Which sessions have expired is decided by the caller's time: the `now` that `load` and
//! `delete_expired` are given, and the `last_active` of the meta that `create`, `update` and
//! `touch` write. Every operation is limited to
//! [`DEFAULT_TIMEOUT`](SqliteStore::DEFAULT_TIMEOUT) (see
//! [`with_timeout`](SqliteStore::with_timeout)); past it, the request gets
//! [`StoreError::Timeout`] (a `503`) instead of hanging on a locked database.
//!
//! [`SessionStore`]: sessio::SessionStore
//! [`SessionStore::update`]: sessio::SessionStore::update
//! [`storage_key`]: sessio::store::storage_key
//! [`Expiry`]: sessio::Expiry
//! [`Changes`]: sessio::store::Changes
//! [`StoreError::Timeout`]: sessio::store::StoreError::Timeout
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod checkpoint;
mod connection;
mod error;
mod migrate;
mod store;
mod table;
mod writer;

pub use error::ConnectError;
pub use migrate::MigrateError;
pub use store::SqliteStore;
pub use table::InvalidTableName;
