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
//! In the default [`Layout::Native`], [`PostgresStore::migrate`] creates (by default)
//! `sessio_sessions`:
//!
//! | column | type | holds |
//! | --- | --- | --- |
//! | `id` | `BYTEA PRIMARY KEY` | SHA-256 of the session id ([`storage_key`](sessio::store::storage_key)): a dump of the table holds no usable cookie |
//! | `data` | `JSONB NOT NULL` | the session's key/value data, an object |
//! | `created_at` | `TIMESTAMPTZ NOT NULL` | when the session was created |
//! | `last_active` | `TIMESTAMPTZ NOT NULL` | when it was last written or touched |
//! | `expires_at` | `TIMESTAMPTZ NOT NULL` | when it ends unless used again |
//! | `sweep_after` | `TIMESTAMPTZ NOT NULL`, indexed | `expires_at` rounded up to the next hour, so that most writes leave it, and the index, alone (HOT updates); what `delete_expired` searches by |
//! | `idle_timeout_ms` | `BIGINT` | its own idle timeout, or `NULL` for the layer's |
//! | `absolute_lifetime_ms` | `BIGINT` | its own absolute lifetime, or `NULL` for the layer's |
//!
//! and records applied migrations in `sessio_sessions_migrations`. Timestamps keep the
//! store's millisecond precision exactly.
//!
//! PostgreSQL's `jsonb` cannot hold the character U+0000: a session value containing it
//! fails to save with [`StoreError::Backend`](sessio::store::StoreError::Backend).
//!
//! # Layouts
//!
//! [`Layout::Native`] (the default) is the table above. [`Layout::ConnectPgSimple`] keeps
//! sessions in the table of Node's [connect-pg-simple] (v10), in express-session's JSON, so
//! that an Express application and this one share their sessions:
//!
//! ```no_run
//! use sessio::{Compatibility, KeyRing, SessionLayer};
//! use sessio_postgres::{Layout, PostgresStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect("postgres://app@localhost/app")
//!     .await?
//!     .with_layout(Layout::ConnectPgSimple); // table `session`, as connect-pg-simple's
//! store.migrate().await?; // creates it unless Node already did
//!
//! // express-session's secret(s), and its cookie (`connect.sid`) and JSON.
//! let keys = KeyRing::new([std::env::var("SESSION_SECRET")?])?;
//! let layer = SessionLayer::new(store, keys).with_compatibility(Compatibility::ExpressSession);
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! | column | type | holds |
//! | --- | --- | --- |
//! | `sid` | `varchar PRIMARY KEY` | **the session id itself, raw**, as Node looks it up |
//! | `sess` | `json NOT NULL` | express-session's JSON: the data keys beside a `cookie` object (see [`sessio::express`]) |
//! | `expire` | `timestamp(6) NOT NULL`, indexed (`IDX_session_expire`) | `to_timestamp(ceil(cookie.expires / 1 s))`, without time zone |
//!
//! - **The ids are stored raw.** Unlike the native layout's hashes, a copy of this table
//!   holds usable session cookies' ids: restrict who can read it, and keep it out of
//!   backups you would not hand a session cookie to.
//! - **`migrate`** runs connect-pg-simple's `table.sql` only when the table does not exist
//!   (as its `createTableIfMissing`), so a table Node created is used as it is. It records
//!   this in `{table}_migrations`, a table Node never looks at. For the `session` table the
//!   constraint and index names are connect-pg-simple's (`session_pkey`,
//!   `IDX_session_expire`); for another table name they are derived from it
//!   (`{table}_pkey`, `IDX_{table}_expire`), where connect-pg-simple would reuse the fixed
//!   names and collide with a second table in the same schema.
//! - **Writes are per key and atomic, as in the native layout**: an update is one
//!   `UPDATE` that removes and sets the changed keys in `sess` (through `jsonb`, so the
//!   text is rewritten in `jsonb`'s canonical form, which Node reads the same), lays the
//!   new `cookie.expires` and `originalMaxAge` over the stored cookie (keeping its other
//!   attributes: a removed or cleared key never takes the cookie with it) and moves
//!   `expire`. It never inserts: a session Node destroyed stays destroyed. `touch` moves
//!   the cookie's times and `expire` the same way. `create` never overwrites a live row.
//! - **Less meta.** express-session's JSON keeps no creation time and no absolute
//!   lifetime: a loaded session has `created_at = last_active = expires - originalMaxAge`
//!   and an idle-only expiry (sessions slide as express's do; an absolute lifetime set in
//!   sessio is not enforced). This is the one part of the store contract this layout cannot
//!   keep: the conformance suite's "create then load returns the same record" fails on it.
//! - **When a session ends.** As connect-pg-simple's `get`, a row with
//!   `expire < to_timestamp(ceil(now / 1 s))` is ignored. Otherwise the cookie's `expires`
//!   decides, to the millisecond, unless `expire` is later than what a save would have
//!   written for it (connect-pg-simple's `touch` moves only `expire`, leaving the stored
//!   cookie behind): then `expire` decides, as it does for Node. A cookie without
//!   `expires` (a browser-session cookie) ends at `expire`.
//! - **Cleanup** ([`delete_expired`](sessio::SessionStore::delete_expired)) deletes the rows
//!   with `expire < to_timestamp(ceil(now / 1 s))`, as connect-pg-simple's pruning, in
//!   batches: a session is swept up to a second after its cookie expired. Node's pruning
//!   and this one can run side by side.
//! - `sess` is `json`, so it can hold the character U+0000 (JSON `"\u0000"`, stored by
//!   Node or created here), which `jsonb` cannot: the one-statement update and touch
//!   skip such a session, and it is then read, merged in Rust and written back in a
//!   transaction holding the row's lock, as atomic per key as the statement (a few more
//!   round trips, for these sessions and for writes that find no live session).
//!
//! ## Time zones
//!
//! `expire` has no time zone: connect-pg-simple writes `to_timestamp(...)` into it and
//! compares it with `to_timestamp(...)`, so PostgreSQL converts in each connection's
//! `TimeZone` setting, and this layout does exactly the same. Node's connections use the
//! server's default zone (`SHOW TimeZone` in psql). **sqlx's connections always start in
//! UTC** (it sends `TimeZone=UTC` when connecting, which also overrides a
//! `?options=-c TimeZone=...` in the URL). Both agree when the server's zone is UTC (the
//! default of the official Docker image and of the major managed services). Otherwise
//! make them agree, either way:
//!
//! - Node in UTC: `ALTER DATABASE app SET TimeZone = 'UTC'` (or `ALTER ROLE`), which
//!   Node's connections pick up and sqlx's already use; or `PGOPTIONS='-c TimeZone=UTC'`
//!   in Node's environment.
//! - This store in Node's zone: build the pool yourself and set the zone once connected:
//!
//! ```no_run
//! use sqlx::postgres::PgPoolOptions;
//! use sessio_postgres::{Layout, PostgresStore};
//!
//! # async fn demo() -> Result<(), sqlx::Error> {
//! let pool = PgPoolOptions::new()
//!     .after_connect(|conn, _| {
//!         Box::pin(async move {
//!             sqlx::Executor::execute(conn, "SET TimeZone = 'Europe/Madrid'").await?;
//!             Ok(())
//!         })
//!     })
//!     .connect("postgres://app@localhost/app")
//!     .await?;
//! let store = PostgresStore::from_pool(pool).with_layout(Layout::ConnectPgSimple);
//! # let _ = store;
//! # Ok(())
//! # }
//! ```
//!
//! Zones with daylight saving time make a wall-clock `expire` ambiguous for an hour each
//! autumn, for Node as for this store: UTC avoids that too. (The native layout's columns
//! are `timestamptz` and do not depend on the zone.)
//!
//! [connect-pg-simple]: https://github.com/voxpelli/node-connect-pg-simple
//!
//! # TLS
//!
//! This crate enables no TLS backend of its own: to connect with `sslmode=require`,
//! enable one of sqlx's `tls-*` features in your own `Cargo.toml` (features unify).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod layout;
mod migrate;
mod store;
mod table;

pub use error::ConnectError;
pub use layout::Layout;
pub use migrate::MigrateError;
pub use store::PostgresStore;
pub use table::InvalidTableName;
