//! The tower middleware: [`SessionLayer`], [`SessionService`] and [`ResponseFuture`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::cookie::find_cookie;
use crate::error::Chain;
use crate::policy::Settings;
use crate::session::Finish;
use crate::store::SessionStore;
use crate::{
    Clock, Compatibility, CookieConfig, CookieRefresh, Expiry, IdGenerator, KeyRing, NewSessions,
    OnServerError, RandomIdGenerator, Session, SessionError, SystemClock, TrustProxy,
    UnchangedSessions,
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
///     .with_cookie(CookieConfig::default().with_name("app.sid")?)
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
            }),
        }
    }

    fn set(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// Sets the cookie's name and attributes.
    pub fn with_cookie(self, cookie: CookieConfig) -> Self {
        self.set(|s| {
            s.cookie = cookie;
            s.cookie.express_format = s.compatibility == Compatibility::ExpressSession;
        })
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
        let cookie = &self.settings.cookie;
        if !cookie.path_matches(request.uri().path()) {
            return ResponseFuture::new(self.inner.call(request), None, false);
        }
        let https = is_https(&request, cookie.trust_proxy());
        let headers = request.headers().get_all(COOKIE);
        let verified = find_cookie(
            headers.iter().map(HeaderValue::as_bytes),
            cookie.name(),
            |value| self.settings.keys.check(value),
        );
        let session = Session::new(self.settings.clone(), verified);
        request.extensions_mut().insert(session.clone());
        ResponseFuture::new(self.inner.call(request), Some(session), https)
    }
}

fn is_https<B>(request: &Request<B>, trust_proxy: TrustProxy) -> bool {
    if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
        return true;
    }
    match trust_proxy {
        TrustProxy::XForwardedProto => request
            .headers()
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https")),
        _ => false,
    }
}

type Finishing = Pin<Box<dyn Future<Output = Result<Option<String>, SessionError>> + Send>>;

pin_project! {
    /// The response future of [`SessionService`]: the inner response, then the session
    /// write, then the response with its `Set-Cookie`.
    pub struct ResponseFuture<F, B> {
        #[pin]
        inner: F,
        session: Option<Session>,
        https: bool,
        finishing: Option<(Finishing, Response<B>)>,
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn new(inner: F, session: Option<Session>, https: bool) -> Self {
        Self {
            inner,
            session,
            https,
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
            match session.finish(server_error, *this.https) {
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

/// The response, with the session's `Set-Cookie` if it has one, or an error response if
/// the session could not be finished.
fn respond<B: Default>(
    outcome: Result<Option<String>, SessionError>,
    mut response: Response<B>,
) -> Response<B> {
    match outcome {
        Ok(None) => response,
        Ok(Some(set_cookie)) => match HeaderValue::try_from(set_cookie) {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
                response
            }
            Err(error) => {
                tracing::error!(%error, "session cookie is not a valid header value");
                failure(StatusCode::INTERNAL_SERVER_ERROR)
            }
        },
        Err(error) => {
            tracing::error!(error = %Chain(&error), "session could not be saved; answering with an error");
            let status = if error.is_store_failure() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            failure(status)
        }
    }
}

/// An error response that reveals nothing and sets no cookie.
fn failure<B: Default>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::default());
    *response.status_mut() = status;
    response
}
