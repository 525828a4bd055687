//! HTTP sessions for tower and axum.
//!
//! A session gives each client an opaque, signed id in a cookie; the data lives on the
//! server, in a [`SessionStore`], keyed by that id. [`SessionLayer`] reads the cookie, hands
//! each request a [`Session`], and writes the changes back before the response leaves.
//!
//! - **Lazy**: a request that never touches its session costs no store call, and a new
//!   session that stays empty is neither stored nor sent.
//! - **Per-key changes**: only the keys a request set or removed are written, atomically,
//!   so concurrent requests do not lose each other's writes, and a write never brings back
//!   a session that was destroyed meanwhile.
//! - **Expiry**: an idle timeout and an absolute lifetime at once ([`Expiry`]), enforced
//!   from server-side timestamps; an active session is kept alive by a cheap touch.
//! - **express-session's cookie**: the same signed format, with secret rotation
//!   ([`KeyRing`]).
//!
//! ```
//! use axum::{routing::get, Router};
//! use sessio::{KeyRing, MemoryStore, Session, SessionError, SessionLayer};
//!
//! async fn handler(session: Session) -> Result<String, SessionError> {
//!     let views: u32 = session.get("page_views").await?.unwrap_or(0) + 1;
//!     session.insert("page_views", views).await?;
//!     Ok(format!("{views} views"))
//! }
//!
//! # fn main() -> Result<(), sessio::SecretError> {
//! let keys = KeyRing::new([std::env::var("SESSION_SECRET").unwrap_or_else(|_| "x".repeat(32))])?;
//! let app: Router = Router::new()
//!     .route("/", get(handler))
//!     .layer(SessionLayer::new(MemoryStore::new(), keys));
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//! - `tower` (default): [`SessionLayer`] and [`SessionService`].
//! - `axum` (default): [`Session`] as an axum extractor, [`SessionError`] as a response.
//! - `testing`: the store conformance suite, `sessio::testing::check_store`.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod accounts;
mod cookie;
mod error;
mod expiry;
pub mod express;
mod id;
mod moved;
mod policy;
mod scratch;
mod session;
mod signing;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "axum")]
mod extract;
#[cfg(feature = "tower")]
mod layer;

pub use accounts::{Accounts, AccountsError, Handle, InvalidHandle, SessionInfo};
pub use cookie::{
    CookieConfig, CookieConfigError, CookieLifetime, Priority, SameSite, SecurePolicy, TrustProxy,
};
pub use error::SessionError;
pub use expiry::{Clock, Expiry, ManualClock, SystemClock};
pub use id::{IdGenerator, RandomIdGenerator, SessionId};
pub use policy::{
    CacheHeaders, Compatibility, CookieRefresh, NewSessions, OnDestroy, OnServerError,
    UnchangedSessions,
};
pub use session::Session;
pub use signing::{KeyRing, SecretError};
pub use store::{ExpiredCleanup, MemoryStore, SessionStore};

#[cfg(feature = "axum")]
pub use extract::MissingSession;
#[cfg(feature = "tower")]
pub use layer::{ResponseFuture, SessionLayer, SessionService};
