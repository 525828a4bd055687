//! A [`sessio`] session store on Redis: one server or a Redis Cluster.
//!
//! - **One hash per session**, under `{prefix}{base64url(sha256(id))}`: a dump of Redis
//!   holds no usable session id, and each session lives in one hash slot.
//! - **Atomic per-key writes**: every write is one Lua script on that one key, so
//!   concurrent requests writing different keys of a session all keep their writes, and a
//!   destroyed session is never written back, on a single server and in a cluster alike.
//! - **Expiry by Redis**: each key expires at its session's `expires_at` (`PEXPIREAT`), so
//!   Redis drops stale sessions by itself; nothing needs to sweep.
//! - **Resilient**: the connection reconnects by itself after Redis restarts, and every
//!   operation is bounded ([`RedisStore::with_timeout`], 2 s by default), so while Redis is
//!   down requests get a prompt `503` instead of hanging.
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
//! # Layout
//!
//! | hash field | value |
//! |---|---|
//! | `c` | created_at, milliseconds since the Unix epoch |
//! | `l` | last_active, milliseconds |
//! | `e` | expires_at, milliseconds (also the key's expiry) |
//! | `i`, `a` | the session's own idle timeout and absolute lifetime, milliseconds; absent when it has none |
//! | `d:{key}` | data key `key`, as JSON text |
//!
//! `{prefix}layout` records the layout version (`1`); [`RedisStore::migrate`] writes and
//! checks it.
//!
//! # TLS
//!
//! `rediss://` URLs need the `redis` crate built with one of its TLS features; enable it
//! in your own `Cargo.toml` (for example
//! `redis = { version = "1", features = ["tokio-rustls-comp", "tls-rustls-webpki-roots"] }`).
#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod conn;
mod error;
mod layout;
mod scripts;
mod store;

pub use error::{ConnectError, InvalidKeyPrefix, MigrateError};
pub use store::RedisStore;

/// The Redis client this crate uses, for naming the errors inside [`ConnectError`].
pub use redis;
