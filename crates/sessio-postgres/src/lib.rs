//! A PostgreSQL [`SessionStore`](sessio::SessionStore) for [sessio]: sessions
//! shared by every instance of an application, in a table operators can query.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use axum::{routing::get, Router};
//! use sessio::{ExpiredCleanup, KeyRing, Session, SessionError, SessionLayer, SystemClock};
//! use sessio_postgres::PostgresStore;
//!
//! async fn visits(session: Session) -> Result<String, SessionError> {
//!     let n: u64 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", n).await?;
//!     Ok(format!("visit number {n}"))
//! }
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect(&std::env::var("DATABASE_URL")?).await?;
//! // Creates the table on first run, upgrades it after a release that changed it.
//! store.migrate().await?;
//!
//! let keys = KeyRing::new([std::env::var("SESSION_SECRET")?])?;
//! let app: Router = Router::new()
//!     .route("/", get(visits))
//!     .layer(SessionLayer::new(store.clone(), keys));
//!
//! // Removes sessions nobody came back for; keep the handle as long as the app runs.
//! let cleanup = ExpiredCleanup::spawn(store, Duration::from_secs(300), SystemClock);
//! # let _ = (app, cleanup);
//! # Ok(())
//! # }
//! ```
//!
//! # The table
//!
//! [`PostgresStore::migrate`] creates (by default) `sessio_sessions`:
//!
//! | column | type | holds |
//! | --- | --- | --- |
//! | `id` | `BYTEA PRIMARY KEY` | SHA-256 of the session id ([`storage_key`](sessio::store::storage_key)): a dump of the table holds no usable cookie |
//! | `data` | `JSONB NOT NULL` | the session's key/value data, an object |
//! | `created_at` | `TIMESTAMPTZ NOT NULL` | when the session was created |
//! | `last_active` | `TIMESTAMPTZ NOT NULL` | when it was last written or touched |
//! | `expires_at` | `TIMESTAMPTZ NOT NULL`, indexed | when it ends unless used again |
//! | `idle_timeout_ms` | `BIGINT` | its own idle timeout, or `NULL` for the layer's |
//! | `absolute_lifetime_ms` | `BIGINT` | its own absolute lifetime, or `NULL` for the layer's |
//!
//! and records applied migrations in `sessio_sessions_migrations`. Timestamps keep the
//! store's millisecond precision exactly.
//!
//! PostgreSQL's `jsonb` cannot hold the character U+0000: a session value containing it
//! fails to save with [`StoreError::Backend`](sessio::store::StoreError::Backend).
//!
//! # TLS
//!
//! This crate enables no TLS backend of its own: to connect with `sslmode=require`,
//! enable one of sqlx's `tls-*` features in your own `Cargo.toml` (features unify).
#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod migrate;
mod store;
mod table;

pub use error::ConnectError;
pub use migrate::MigrateError;
pub use store::PostgresStore;
pub use table::InvalidTableName;
