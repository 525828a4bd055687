//! What the session layer does at the end of a request, and the settings it runs with.

use std::sync::Arc;
use std::time::Duration;

use crate::store::SessionStore;
use crate::{Clock, CookieConfig, Expiry, IdGenerator, KeyRing};

/// Whether a new session that holds no data is stored (express-session's
/// `saveUninitialized`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NewSessions {
    /// Store a new session only once it holds data (the default): visitors who never log
    /// in or put anything in their session cost no storage, and cannot fill the store.
    #[default]
    SaveWhenModified,
    /// Store every new session a handler touched, even if empty.
    SaveAlways,
}

/// When the session cookie is sent again (express-session's `rolling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CookieRefresh {
    /// When the browser needs a new cookie (the default): for a new session or id, a new
    /// per-session expiry, or a cookie signed with an older secret; in express-session
    /// compatibility also whenever the idle deadline moves, as express-session does.
    #[default]
    WhenNeeded,
    /// On every response for a session the handler used.
    EveryResponse,
}

/// What happens to a session that was used but not changed (express-session's `resave`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UnchangedSessions {
    /// Extend its expiry with a cheap touch, at most once per touch interval (the default).
    #[default]
    Touch,
    /// Write the whole session back on every request.
    Resave,
}

/// What happens to a session's changes when the handler answers with a 5xx status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnServerError {
    /// Drop the changes not yet saved (the default): a failed request leaves no
    /// half-done state behind. Explicit `save`, `regenerate` and `destroy` calls stand.
    #[default]
    DiscardChanges,
    /// Save the changes anyway.
    SaveChanges,
}

/// What a response that carries the session cookie tells caches.
///
/// Whatever the choice, a response whose session was read also gets `Vary: Cookie`, so
/// that a shared cache never hands one visitor's page to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CacheHeaders {
    /// `Cache-Control: no-store`, replacing the handler's own (the default): a cache that
    /// kept the response would hand its `Set-Cookie` to the next visitor.
    #[default]
    NoStore,
    /// `Cache-Control: no-store` unless the handler set a `Cache-Control` of its own
    /// (`private`, say), which is then trusted to keep shared caches out.
    NoStoreUnlessSet,
}

/// What [`Session::destroy`](crate::Session::destroy) asks of the browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnDestroy {
    /// Clear the session cookie (the default).
    #[default]
    ClearCookie,
    /// Clear the session cookie and send `Clear-Site-Data: "cookies"`, which makes the
    /// browser drop every cookie of the site, the application's own included (browsers
    /// honour it over HTTPS only).
    ClearSiteCookies,
}

/// Whose wire format sessions follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Compatibility {
    /// sessio's own (the default). Its signed cookie already has express-session's format.
    #[default]
    Native,
    /// Share sessions with Node's express-session: the cookie is named `connect.sid` and
    /// `Set-Cookie` is written as express-session writes it; the key `cookie` is reserved
    /// (express-session keeps its cookie object there). Pair it with a store in an
    /// express-compatible layout, such as `sessio-redis`'s connect-redis layout or
    /// `sessio-postgres`'s connect-pg-simple layout, which keep ids raw, as Node expects.
    ExpressSession,
}

/// Everything a session needs, shared by the layer and every session handle.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) store: Arc<dyn SessionStore>,
    pub(crate) keys: KeyRing,
    pub(crate) cookie: CookieConfig,
    pub(crate) expiry: Expiry,
    pub(crate) touch_interval: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) new_sessions: NewSessions,
    pub(crate) cookie_refresh: CookieRefresh,
    pub(crate) unchanged: UnchangedSessions,
    pub(crate) on_server_error: OnServerError,
    pub(crate) compatibility: Compatibility,
    pub(crate) cache_headers: CacheHeaders,
    pub(crate) on_destroy: OnDestroy,
}

impl Settings {
    /// Touches closer together than this are skipped; never more than half the idle
    /// timeout, so an active session cannot idle out between touches.
    pub(crate) fn touch_interval(&self, expiry: &Expiry) -> Duration {
        self.touch_interval.min(expiry.idle_timeout() / 2)
    }
}
