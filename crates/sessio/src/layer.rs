//! The tower middleware: [`SessionLayer`], [`SessionService`] and [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE, VARY};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::{for_each_cookie, Transport};
use crate::error::Chain;
use crate::policy::Settings;
use crate::session::{Ended, Finish};
use crate::store::SessionStore;
use crate::{
    Accounts, CacheHeaders, Clock, Compatibility, CookieConfig, CookieConfigError, CookieRefresh,
    Expiry, IdGenerator, KeyRing, NewSessions, OnDestroy, OnServerError, RandomIdGenerator,
    Session, SessionError, SystemClock, UnchangedSessions,
};

/// Adds a [`Session`] to every request under the cookie path, and writes it back before
/// the response leaves.
///
/// ```
/// use std::time::Duration;
/// use sessio::{CookieConfig, Expiry, KeyRing, MemoryStore, SessionLayer};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = SessionLayer::new(MemoryStore::new(), KeyRing::new(["a secret of at least thirty-two bytes"])?)
///     .with_cookie(CookieConfig::default().with_name("__Host-id")?)?
///     .with_expiry(Expiry::new(Duration::from_secs(30 * 60), Duration::from_secs(8 * 3600)));
/// # let _ = layer;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SessionLayer {
    settings: Arc<Settings>,
}

impl SessionLayer {
    /// Sessions kept in `store`, with cookies signed by `keys`, and default settings:
    /// [`CookieConfig::default`], [`Expiry::default`], a touch at most once a minute.
    pub fn new(store: impl SessionStore, keys: KeyRing) -> Self {
        Self {
            settings: Arc::new(Settings {
                store: Arc::new(store),
                keys,
                cookie: CookieConfig::default(),
                expiry: Expiry::default(),
                touch_interval: Duration::from_secs(60),
                clock: Arc::new(SystemClock),
                ids: Arc::new(RandomIdGenerator::default()),
                new_sessions: NewSessions::default(),
                cookie_refresh: CookieRefresh::default(),
                unchanged: UnchangedSessions::default(),
                on_server_error: OnServerError::default(),
                compatibility: Compatibility::default(),
                cache_headers: CacheHeaders::default(),
                on_destroy: OnDestroy::default(),
            }),
        }
    }

    /// The [`Accounts`] of this layer's sessions: its store, its secrets for handles, its
    /// clock. Take it before the layer goes into the router.
    ///
    /// ```
    /// use sessio::{KeyRing, MemoryStore, SessionLayer};
    ///
    /// # fn main() -> Result<(), sessio::SecretError> {
    /// let layer = SessionLayer::new(MemoryStore::new(), KeyRing::new(["x".repeat(32)])?);
    /// let accounts = layer.accounts();
    /// # let _ = accounts;
    /// # Ok(())
    /// # }
    /// ```
    pub fn accounts(&self) -> Accounts {
        let settings = &self.settings;
        Accounts::from_parts(
            settings.store.clone(),
            settings.keys.clone(),
            settings.clock.clone(),
        )
    }

    fn set(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// Sets the cookie's name and attributes.
    ///
    /// # Errors
    /// A configuration that breaks the rules of its name's `__Host-` or `__Secure-`
    /// prefix, which browsers would refuse; see [`CookieConfig::check`].
    pub fn with_cookie(self, cookie: CookieConfig) -> Result<Self, CookieConfigError> {
        cookie.check()?;
        Ok(self.set(|s| {
            s.cookie = cookie;
            s.cookie.express_format = s.compatibility == Compatibility::ExpressSession;
        }))
    }

    /// Shares sessions with another implementation; see [`Compatibility`]. For
    /// express-session this also names the cookie `connect.sid` (a later
    /// [`with_cookie`](Self::with_cookie) can rename it).
    ///
    /// ```
    /// use sessio::{Compatibility, KeyRing, MemoryStore, SessionLayer};
    ///
    /// # fn main() -> Result<(), sessio::SecretError> {
    /// let keys = KeyRing::new(["the secret the Node app uses, 32+ bytes"])?;
    /// let layer = SessionLayer::new(MemoryStore::new(), keys)
    ///     .with_compatibility(Compatibility::ExpressSession);
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_compatibility(self, compatibility: Compatibility) -> Self {
        self.set(|s| {
            s.compatibility = compatibility;
            let express = compatibility == Compatibility::ExpressSession;
            if express {
                s.cookie = s
                    .cookie
                    .clone()
                    .with_name("connect.sid")
                    .expect("connect.sid is a valid cookie name");
            }
            s.cookie.express_format = express;
        })
    }

    /// Sets the default idle timeout and absolute lifetime.
    pub fn with_expiry(self, expiry: Expiry) -> Self {
        self.set(|s| s.expiry = expiry)
    }

    /// Sets how often an unchanged session's expiry is extended (capped at half the idle
    /// timeout).
    pub fn with_touch_interval(self, every: Duration) -> Self {
        self.set(|s| s.touch_interval = every)
    }

    /// Sets whether empty new sessions are stored.
    pub fn with_new_sessions(self, policy: NewSessions) -> Self {
        self.set(|s| s.new_sessions = policy)
    }

    /// Sets when the cookie is sent again.
    pub fn with_cookie_refresh(self, policy: CookieRefresh) -> Self {
        self.set(|s| s.cookie_refresh = policy)
    }

    /// Sets what happens to sessions used but not changed.
    pub fn with_unchanged_sessions(self, policy: UnchangedSessions) -> Self {
        self.set(|s| s.unchanged = policy)
    }

    /// Sets what happens to a session's changes when the handler answers 5xx.
    pub fn with_on_server_error(self, policy: OnServerError) -> Self {
        self.set(|s| s.on_server_error = policy)
    }

    /// Sets what responses that carry the session cookie tell caches.
    pub fn with_cache_headers(self, policy: CacheHeaders) -> Self {
        self.set(|s| s.cache_headers = policy)
    }

    /// Sets what [`Session::destroy`] asks of the browser.
    pub fn with_on_destroy(self, policy: OnDestroy) -> Self {
        self.set(|s| s.on_destroy = policy)
    }

    /// Sets the clock expiry is judged by.
    pub fn with_clock(self, clock: impl Clock) -> Self {
        self.set(|s| s.clock = Arc::new(clock))
    }

    /// Sets the generator of new session ids.
    pub fn with_id_generator(self, ids: impl IdGenerator) -> Self {
        self.set(|s| s.ids = Arc::new(ids))
    }
}

impl std::fmt::Debug for SessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionLayer")
            .field("cookie", &self.settings.cookie)
            .field("expiry", &self.settings.expiry)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = SessionService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

/// The service [`SessionLayer`] wraps around another.
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> std::fmt::Debug for SessionService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let settings = &self.settings;
        let cookie = &settings.cookie;
        if !cookie.path_matches(request.uri().path()) {
            return ResponseFuture::new(self.inner.call(request), None, Transport::Unknown);
        }
        let headers = request.headers();
        let transport = cookie.transport(|| {
            let forwarded = headers.get_all("x-forwarded-proto");
            forwarded.into_iter().map(HeaderValue::as_bytes)
        });
        let mut verified = Vec::new();
        let cookies = headers.get_all(COOKIE);
        for_each_cookie(
            cookies.iter().map(HeaderValue::as_bytes),
            cookie.name(),
            |value| {
                verified.extend(settings.keys.check(value));
            },
        );
        let session = Session::new(settings.clone(), verified);
        request.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(request), Some(session), transport)
    }
}

type Finishing = Pin<Box<dyn Future<Output = Result<Ended, SessionError>> + Send>>;

pin_project! {
    /// The response future of [`SessionService`]: the inner response, then the session
    /// write, then the response with its `Set-Cookie`.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        session: Option<Session>,
        transport: Transport,
        finishing: Option<(Finishing, Response<B>)>,
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn new(inner: F, session: Option<Session>, transport: Transport) -> Self {
        Self {
            inner,
            session,
            transport,
            finishing: None,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if this.finishing.is_none() {
            let response = ready!(this.inner.as_mut().poll(cx))?;
            // An unused session costs no store call, and no allocation either.
            let Some(session) = this.session.take().filter(Session::is_used) else {
                return Poll::Ready(Ok(response));
            };
            let server_error = response.status().is_server_error();
            match session.finish(server_error, *this.transport) {
                Finish::Done(outcome) => return Poll::Ready(Ok(respond(outcome, response))),
                Finish::Pending(finishing) => *this.finishing = Some((finishing, response)),
            }
        }
        let (finishing, _) = this.finishing.as_mut().expect("set above");
        let outcome = ready!(finishing.as_mut().poll(cx));
        let (_, response) = this.finishing.take().expect("set above");
        Poll::Ready(Ok(respond(outcome, response)))
    }
}

/// The response with what the session needs of it: its `Set-Cookie` if it has one, and
/// the headers that keep caches from sharing it; or an error response if the session
/// could not be finished.
fn respond<B: Default>(
    outcome: Result<Ended, SessionError>,
    mut response: Response<B>,
) -> Response<B> {
    let ended = match outcome {
        Ok(ended) => ended,
        Err(error) => {
            tracing::error!(error = %Chain(&error), "session could not be saved; answering with an error");
            return failure(error.status());
        }
    };
    let headers = response.headers_mut();
    // The page was made from this visitor's session: a cache must not serve it to others.
    vary_on_cookie(headers);
    if let Some(set_cookie) = ended.set_cookie {
        let Ok(value) = HeaderValue::try_from(set_cookie) else {
            tracing::error!("session cookie is not a valid header value");
            return failure(StatusCode::INTERNAL_SERVER_ERROR);
        };
        headers.append(SET_COOKIE, value);
        let keep_own = ended.cache_headers == CacheHeaders::NoStoreUnlessSet
            && headers.contains_key(CACHE_CONTROL);
        if !keep_own {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
    }
    if ended.clear_site_data {
        headers.insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
    }
    response
}

/// Adds `Cookie` to `Vary`, unless it is there already (or `Vary: *` covers it).
fn vary_on_cookie(headers: &mut HeaderMap) {
    let covered = headers.get_all(VARY).iter().any(|value| {
        value.as_bytes().split(|&b| b == b',').any(|name| {
            let name = name.trim_ascii();
            name == b"*" || name.eq_ignore_ascii_case(b"cookie")
        })
    });
    if !covered {
        headers.append(VARY, HeaderValue::from_static("cookie"));
    }
}

/// An error response that reveals nothing and sets no cookie.
fn failure<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}
