//! A [`sessio`] session store on Redis: one server or a Redis Cluster.
//!
//! - **One hash per session**, under `{prefix}{base64url(sha256(id)[..16])}`: a dump of Redis
//!   holds no usable session id, and each session lives in one hash slot. Or, to share
//!   sessions with Node, **connect-redis's layout** (`Layout::ConnectRedis`).
//! - **Atomic per-key writes**: every write is one `MULTI` transaction on that one key (an
//!   update that clears every key, one Lua script), so concurrent requests writing
//!   different keys of a session all keep their writes, and a destroyed session is never
//!   written back, on a single server and in a cluster alike.
//! - **Expiry by Redis**: each key expires at its session's `expires_at` (`PEXPIREAT`), so
//!   Redis drops stale sessions by itself; nothing needs to sweep.
//! - **Resilient**: the connection reconnects by itself after Redis restarts, and every
//!   operation is bounded ([`RedisStore::with_timeout`], 2 s by default), so while Redis is
//!   down requests get a prompt `503` instead of hanging.
//! - **Optionally cached in the process** ([`RedisStore::with_client_cache`]): returning
//!   visitors' sessions are read without a round trip, kept fresh by Redis's key tracking
//!   (see [`ClientCache`] for what that trades).
//!
//! # One server
//!
//! ```no_run
//! use axum::{routing::get, Router};
//! use sessio::{KeyRing, Session, SessionError, SessionLayer};
//! use sessio_redis::RedisStore;
//!
//! async fn handler(session: Session) -> Result<String, SessionError> {
//!     let views: u32 = session.get("page_views").await?.unwrap_or(0) + 1;
//!     session.insert("page_views", views).await?;
//!     Ok(format!("{views} views"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379")
//!     .await?
//!     .with_key_prefix("myapp:session:")?;
//! store.migrate().await?;
//!
//! let keys = KeyRing::new([std::env::var("SESSION_SECRET")?])?;
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(SessionLayer::new(store, keys));
//! # let _ = app;
//! # Ok(())
//! # }
//! ```
//!
//! # Redis Cluster
//!
//! Give the URLs of some of its nodes; the rest are discovered, and each command goes to
//! the node serving the session's slot.
//!
//! ```no_run
//! use sessio_redis::RedisStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect_cluster([
//!     "redis://10.0.0.1:6379",
//!     "redis://10.0.0.2:6379",
//!     "redis://10.0.0.3:6379",
//! ])
//! .await?;
//! // Or from one configuration string:
//! let same = RedisStore::connect_url("redis+cluster://10.0.0.1:6379,10.0.0.2:6379").await?;
//! # let _ = (store, same);
//! # Ok(())
//! # }
//! ```
//!
//! # Layouts
//!
//! ## Native (default)
//!
//! | hash field | value |
//! |---|---|
//! | `c` | created_at, milliseconds since the Unix epoch |
//! | `l` | last_active, milliseconds |
//! | `e` | expires_at, milliseconds (also the key's expiry); then `/{idle}/{absolute}`, milliseconds, for a session with an expiry of its own |
//! | `d:{key}` | data key `key`, as JSON text |
//!
//! under the key `{prefix}{base64url(sha256(id)[..16])}` (22 characters after the prefix).
//! `{prefix}layout` records the layout version (`2`); [`RedisStore::migrate`] writes and
//! checks it.
//!
//! ## connect-redis (feature `express`)
//!
//! [`RedisStore::with_layout`]`(``Layout::ConnectRedis``)` keeps sessions exactly as
//! Node's connect-redis (v9, v10) does, so that an Express application with
//! express-session and a Rust service can share them (with
//! `SessionLayer::with_compatibility(Compatibility::ExpressSession)` on the Rust side):
//!
//! | | |
//! |---|---|
//! | key | `{prefix}{id}`, default prefix `sess:`: **the raw session id** |
//! | value | the session as express-session's JSON: `{"cookie":{"originalMaxAge":86400000,"expires":"2026-11-26T03:27:50.000Z","httpOnly":true,"path":"/"},"views":2}` |
//! | expiry | `SET key value EX ttl`, `ttl = ceil((expires - now) / 1 s)`; a `ttl <= 0` deletes |
//!
//! **In this layout a dump of Redis holds usable session ids** (Node looks sessions up by
//! them): protect backups and replicas as you would the cookies themselves.
//!
//! Updates and touches merge into the stored JSON by compare-and-set on the one key
//! (retried when another writer got in first), so concurrent requests writing different
//! keys all keep their writes and nothing brings a deleted session back; a touch rewrites
//! the cookie's `expires` and `originalMaxAge` along with the TTL. The JSON has no creation
//! time and no absolute lifetime: a session read back has
//! `created_at = last_active = expires - originalMaxAge` and slides like express's.
//!
//! ```no_run
//! use sessio::{Compatibility, KeyRing, SessionLayer};
//! use sessio_redis::{Layout, RedisStore};
//!
//! # #[cfg(feature = "express")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::connect("redis://127.0.0.1:6379")
//!     .await?
//!     .with_layout(Layout::ConnectRedis); // keys `sess:{id}`
//! store.migrate().await?;
//! let keys = KeyRing::new([std::env::var("SESSION_SECRET")?])?;
//! let layer = SessionLayer::new(store, keys).with_compatibility(Compatibility::ExpressSession);
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `express`: `Layout::ConnectRedis`, for sharing sessions with Node.
//!
//! # TLS
//!
//! `rediss://` URLs need the `redis` crate built with one of its TLS features; enable it
//! in your own `Cargo.toml` (for example
//! `redis = { version = "1", features = ["tokio-rustls-comp", "tls-rustls-webpki-roots"] }`).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cache;
mod conn;
mod context;
mod error;
mod layout;
mod scripts;
mod store;

pub use cache::{ClientCache, ClientCacheStats};
#[cfg(feature = "express")]
pub use error::WriteContention;
pub use error::{ConnectError, InvalidKeyPrefix, MigrateError};
pub use layout::Layout;
pub use store::RedisStore;

/// The Redis client this crate uses, for naming the errors inside [`ConnectError`].
pub use redis;
