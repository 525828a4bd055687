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
//! does it in a write transaction started with `BEGIN IMMEDIATE`: it reads the stored
//! JSON, applies the [`Changes`] in Rust and writes the result
//! back. `BEGIN IMMEDIATE` takes SQLite's write lock before the read, so no other writer
//! can slip in between, and waiting for the lock goes through SQLite's busy timeout
//! (a plain `BEGIN` that upgrades from read to write fails at once with `SQLITE_BUSY`
//! instead when another process wrote meanwhile).
//!
//! The alternative, one `UPDATE` built from SQLite's JSON functions, was rejected because
//! it is not correct for every key: `json_patch` merges nested objects instead of
//! replacing a value, and `json_set`/`json_remove` address keys through JSON paths, in
//! which a key containing `"` cannot be written at all. SQLite runs one writer at a time
//! anyway, so the transaction costs no concurrency. An update that clears every key needs
//! no read, and is a single `UPDATE`.
//!
//! # One writer at a time
//!
//! SQLite runs one write at a time per database. Left to race for its lock, a pool's
//! connections would each wait in SQLite's busy handler, which sleeps and retries (up to
//! 100 ms a sleep), so that under load most of a write's time is spent asleep and requests
//! run past their time limit. Instead the store's writes take their turn in the process
//! first, in arrival order (a fair asynchronous lock), and reach SQLite one after the other;
//! reads go to the pool's other connections, which WAL journaling lets run beside the
//! writer. Writers in other processes still meet at SQLite's lock, through the busy timeout.
//!
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
#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod migrate;
mod store;
mod table;

pub use error::ConnectError;
pub use migrate::MigrateError;
pub use store::SqliteStore;
pub use table::InvalidTableName;
