//! What production paths need: cookies a client or a sibling site planted, records that do
//! not decode, caches in front, logins and logouts that race, and writes that come too late.

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use common::*;
use sessio::store::{Changes, CreateOutcome, Meta, Record, StoreError, WriteOutcome};
use sessio::{
    CacheHeaders, CookieConfig, CookieConfigError, Expiry, MemoryStore, OnDestroy, SameSite,
    SecurePolicy, Session, SessionError, SessionId, SessionLayer, SessionStore,
};
use tokio::sync::{oneshot, Notify};

fn get_request(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

/// The signed cookie pair for `id`, as a browser would send it back.
fn signed_cookie(id: &str) -> String {
    let value = keys().sign(&SessionId::from(id));
    let encoded = value
        .replace(':', "%3A")
        .replace('+', "%2B")
        .replace('/', "%2F");
    format!("{COOKIE}={encoded}")
}

#[tokio::test]
async fn nothing_in_the_request_target_changes_a_cookie_attribute() {
    for policy in [SecurePolicy::Always, SecurePolicy::Auto] {
        let app = app(|l| {
            l.with_cookie(
                CookieConfig::default()
                    .with_secure(policy)
                    .with_same_site(SameSite::Auto),
            )
            .unwrap()
        });
        let plain = send(&app.router, get_request("/", None)).await;
        let absolute = send(&app.router, get_request("https://example.com/", None)).await;
        for attribute in ["Secure", "SameSite"] {
            assert_eq!(
                plain.attribute(attribute),
                absolute.attribute(attribute),
                "{policy:?}: an absolute https:// target changed {attribute}"
            );
        }
        let secure = policy == SecurePolicy::Always;
        assert_eq!(absolute.attribute("Secure").is_some(), secure, "{policy:?}");
    }
}

#[tokio::test]
async fn a_planted_cookie_neither_hides_nor_ends_the_real_session() {
    let app = app(|l| l);
    let mut real = Browser::default();
    real.get(&app, "/").await;
    let real_cookie = real.cookie.clone().unwrap();
    // Another validly signed session (the planter's own), and one since destroyed.
    let mut planter = Browser::default();
    planter.get(&app, "/").await;
    planter.get(&app, "/").await;
    let planted = planter.cookie.clone().unwrap();
    let mut ended = Browser::default();
    ended.get(&app, "/").await;
    let dead = ended.cookie.clone().unwrap();
    ended.post(&app, "/destroy").await;

    for (header, views) in [
        (format!("{dead}; {real_cookie}"), 2),
        (format!("{COOKIE}=garbage; {dead}; {real_cookie}"), 3),
        // Both live: the first sent wins, as browsers send the more specific first.
        (format!("{real_cookie}; {planted}"), 4),
    ] {
        let reply = send(&app.router, get_request("/", Some(&header))).await;
        assert_eq!(reply.status, StatusCode::OK, "{header}");
        assert_eq!(
            reply.body,
            format!("Has visitado esta página {views} veces"),
            "{header}"
        );
        assert_eq!(
            reply.set_cookies,
            Vec::<String>::new(),
            "a Set-Cookie would replace a session the browser sent: {header}"
        );
    }
    // The planter's session was not touched.
    assert_eq!(
        planter.get(&app, "/").await.body,
        "Has visitado esta página 3 veces"
    );
}

#[tokio::test]
async fn prefix_rules_are_refused_when_the_layer_is_built() {
    let layer = || SessionLayer::new(MemoryStore::new(), keys());
    let host = CookieConfig::default().with_name("__Host-id").unwrap();
    assert!(layer().with_cookie(host.clone()).is_ok());
    let with_domain = host.clone().with_domain("example.com").unwrap();
    assert!(matches!(
        layer().with_cookie(with_domain),
        Err(CookieConfigError::HostPrefixWithDomain { .. })
    ));
    let with_path = host.clone().with_path("/app").unwrap();
    assert!(matches!(
        layer().with_cookie(with_path),
        Err(CookieConfigError::HostPrefixWithPath { .. })
    ));
    let maybe_insecure = CookieConfig::default()
        .with_name("__Secure-id")
        .unwrap()
        .with_secure(SecurePolicy::Auto);
    let error = layer().with_cookie(maybe_insecure).unwrap_err();
    assert_eq!(
        error.to_string(),
        "cookie \"__Secure-id\" needs SecurePolicy::Always: browsers refuse a __Secure- cookie without Secure"
    );

    // The recommended production name works end to end.
    let app = app(|l| l.with_cookie(host).unwrap());
    let reply = send(&app.router, get_request("/", None)).await;
    let set = reply.set_cookies.first().unwrap();
    assert!(set.starts_with("__Host-id=s%3A"), "{set}");
    assert!(set.contains("; Secure") && set.contains("; Path=/") && !set.contains("Domain"));
}

#[tokio::test]
async fn an_overlong_cookie_is_absent_before_any_store_call() {
    let app = app(|l| l);
    // Validly signed, but longer than any session cookie needs to be.
    let long = signed_cookie(&"a".repeat(CookieConfig::MAX_VALUE_LEN));
    let reply = send(&app.router, get_request("/", Some(&long))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, WELCOME);
    assert_eq!(app.store.counts.load.load(Ordering::SeqCst), 0);
    // One just under the limit is read (and, unknown, costs its lookups).
    let short = signed_cookie(&"a".repeat(CookieConfig::MAX_VALUE_LEN - 70));
    assert!(short.len() - COOKIE.len() - 1 <= CookieConfig::MAX_VALUE_LEN);
    send(&app.router, get_request("/", Some(&short))).await;
    assert!(app.store.counts.load.load(Ordering::SeqCst) > 0);
}

#[tokio::test]
async fn a_type_mismatch_never_quotes_the_stored_value() {
    let read = Router::new().route(
        "/wrong-type",
        get(|session: Session| async move {
            let error = session.get::<u64>("secret").await.unwrap_err();
            let mut shown = format!("{error} {error:?}");
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                shown.push_str(&cause.to_string());
                source = cause.source();
            }
            shown
        }),
    );
    let app = app_with_routes(read, |l| l);
    let mut browser = Browser::default();
    browser.post(&app, "/set/secret/hunter2-password").await;
    let shown = browser.get(&app, "/wrong-type").await.body;
    assert!(shown.contains("\"secret\" is not a u64"), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// Every kind of response, and the headers that keep shared caches from mixing visitors.
#[tokio::test]
async fn cache_headers_on_every_response_kind() {
    let extra = Router::new()
        .route(
            "/cached",
            get(|session: Session| async move {
                session.insert("k", "v").await?;
                Ok::<_, SessionError>(([(header::CACHE_CONTROL, "public, max-age=3600")], "ok"))
            }),
        )
        .route(
            "/varied",
            get(|session: Session| async move {
                let _: Option<u64> = session.get("page_views").await?;
                Ok::<_, SessionError>(([(header::VARY, "Accept-Encoding")], "ok"))
            }),
        );
    let app = app_with_routes(extra.clone(), |l| l);
    let mut browser = Browser::default();
    let header = |reply: &ResponseHeaders, name| reply.get(name).map(|v| v.to_owned());

    // A new session's cookie: no-store, replacing the handler's own.
    let new = browser.headers(&app, "GET", "/cached").await;
    assert_eq!(header(&new, "cache-control").as_deref(), Some("no-store"));
    assert_eq!(header(&new, "vary").as_deref(), Some("cookie"));
    // Read, unchanged, no cookie: only Vary, added to the handler's.
    let read = browser.headers(&app, "GET", "/varied").await;
    assert_eq!(read.get("cache-control"), None);
    assert_eq!(read.get_all("vary"), ["Accept-Encoding", "cookie"]);
    // A route that never touches the session is left as it is.
    let untouched = browser.headers(&app, "GET", "/noop").await;
    assert_eq!(untouched.get("vary"), None);
    assert_eq!(untouched.get("cache-control"), None);
    // Destroyed: the clearing cookie is not cacheable either; no Clear-Site-Data by default.
    let destroyed = browser.headers(&app, "POST", "/destroy").await;
    assert!(destroyed.set_cookie.is_some());
    assert_eq!(
        header(&destroyed, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(destroyed.get("clear-site-data"), None);

    // The handler's own Cache-Control, where the configuration trusts it.
    let app = app_with_routes(extra, |l| {
        l.with_cache_headers(CacheHeaders::NoStoreUnlessSet)
            .with_on_destroy(OnDestroy::ClearSiteCookies)
    });
    let mut browser = Browser::default();
    let kept = browser.headers(&app, "GET", "/cached").await;
    assert!(kept.set_cookie.is_some());
    assert_eq!(
        header(&kept, "cache-control").as_deref(),
        Some("public, max-age=3600")
    );
    let new = browser.headers(&app, "POST", "/touch").await;
    assert_eq!(new.set_cookie, None);
    let destroyed = browser.headers(&app, "POST", "/destroy").await;
    assert_eq!(
        header(&destroyed, "clear-site-data").as_deref(),
        Some("\"cookies\"")
    );
    assert_eq!(
        header(&destroyed, "cache-control").as_deref(),
        Some("no-store")
    );
}

/// A response's headers, and the session cookie it set.
struct ResponseHeaders {
    headers: axum::http::HeaderMap,
    set_cookie: Option<String>,
}

impl ResponseHeaders {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn get_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }
}

trait HeadersOf {
    async fn headers(&mut self, app: &App, method: &str, path: &str) -> ResponseHeaders;
}

impl HeadersOf for Browser {
    async fn headers(&mut self, app: &App, method: &str, path: &str) -> ResponseHeaders {
        use tower::ServiceExt as _;
        let response = app
            .router
            .clone()
            .oneshot(self.request(method, path))
            .await
            .unwrap();
        let headers = response.headers().clone();
        let set_cookie = headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned());
        if let Some(set) = &set_cookie {
            let pair = set.split(';').next().unwrap();
            let cleared = set.contains("Max-Age=0");
            self.cookie = (!cleared).then(|| pair.to_owned());
        }
        ResponseHeaders {
            headers,
            set_cookie,
        }
    }
}

#[tokio::test]
async fn a_change_after_the_response_has_left_is_an_error_not_lost_silently() {
    type Outcome = (Result<(), SessionError>, Result<Option<u64>, SessionError>);
    type Channels = Arc<Mutex<Option<(oneshot::Receiver<()>, oneshot::Sender<Outcome>)>>>;
    let (go, wait) = oneshot::channel();
    let (report, outcome) = oneshot::channel();
    let channels: Channels = Arc::new(Mutex::new(Some((wait, report))));
    let late = Router::new()
        .route(
            "/spawn",
            get(
                |State(channels): State<Channels>, session: Session| async move {
                    let views: u64 = session.get("page_views").await?.unwrap_or(0);
                    let (wait, report) = channels.lock().unwrap().take().unwrap();
                    tokio::spawn(async move {
                        wait.await.unwrap();
                        let write = session.insert("late", true).await;
                        let read = session.get::<u64>("page_views").await;
                        let _ = report.send((write, read));
                    });
                    Ok::<_, SessionError>(views.to_string())
                },
            ),
        )
        .with_state(channels);
    let app = app_with_routes(late, |l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    assert_eq!(browser.get(&app, "/spawn").await.body, "1");
    go.send(()).unwrap();
    let (write, read) = outcome.await.unwrap();
    assert!(
        matches!(write, Err(SessionError::ResponseSent)),
        "{write:?}"
    );
    assert_eq!(read.unwrap(), Some(1), "reading stays possible");
    assert_eq!(browser.get(&app, "/get/late").await.body, "");
}

fn lifetime_routes() -> Router {
    Router::new().route(
        "/reauthenticate",
        post(|session: Session| async move {
            session.regenerate_with_new_lifetime().await?;
            Ok::<_, SessionError>("ok")
        }),
    )
}

#[tokio::test]
async fn regenerate_keeps_the_absolute_deadline_unless_asked_for_a_new_lifetime() {
    const MINUTE: Duration = Duration::from_secs(60);
    for (path, survives) in [("/regenerate", false), ("/reauthenticate", true)] {
        let app = app_with_routes(lifetime_routes(), |l| {
            l.with_expiry(Expiry::new(30 * MINUTE, 120 * MINUTE))
        });
        let mut browser = Browser::default();
        browser.get(&app, "/").await;
        for _ in 0..4 {
            app.clock.advance(25 * MINUTE);
            browser.get(&app, "/").await;
        }
        // 100 minutes in: the user logs in again, or the app rotates the id.
        assert_eq!(browser.post(&app, path).await.status, StatusCode::OK);
        app.clock.advance(25 * MINUTE);
        let after = browser.get(&app, "/").await.body;
        if survives {
            assert_eq!(after, "Has visitado esta página 6 veces", "{path}");
        } else {
            assert_eq!(
                after, WELCOME,
                "{path} must not extend the absolute lifetime"
            );
        }
    }
}

/// A memory store that can hold one operation of a kind until the test lets it go, and
/// that fails to decode the records it is told are corrupt.
#[derive(Clone, Default)]
struct ControlledStore {
    inner: MemoryStore,
    pause: Arc<Mutex<Option<(&'static str, usize)>>>,
    reached: Arc<Notify>,
    resume: Arc<Notify>,
    corrupt: Arc<Mutex<HashSet<String>>>,
}

impl ControlledStore {
    /// Holds the `nth` (from 1) call of `operation` from now on.
    fn pause_at(&self, operation: &'static str, nth: usize) {
        *self.pause.lock().unwrap() = Some((operation, nth));
    }

    async fn gate(&self, operation: &'static str) {
        let hold = {
            let mut pause = self.pause.lock().unwrap();
            match pause.as_mut() {
                Some((op, nth)) if *op == operation => {
                    *nth -= 1;
                    let hold = *nth == 0;
                    if hold {
                        *pause = None;
                    }
                    hold
                }
                _ => false,
            }
        };
        if hold {
            self.reached.notify_one();
            self.resume.notified().await;
        }
    }
}

#[async_trait]
impl SessionStore for ControlledStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        self.gate("create").await;
        self.inner.create(id, record).await
    }
    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.gate("load").await;
        if self.corrupt.lock().unwrap().contains(id.as_str()) {
            let json =
                serde_json::from_str::<serde_json::Value>("{\"user\": \"alice\" oops").unwrap_err();
            return Err(StoreError::Decode(Box::new(json)));
        }
        self.inner.load(id, now).await
    }
    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        self.gate("update").await;
        self.inner.update(id, changes, meta).await
    }
    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        self.gate("touch").await;
        self.inner.touch(id, meta).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.gate("delete").await;
        self.inner.delete(id).await
    }
    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.inner.delete_expired(now).await
    }
    async fn count(&self) -> Result<u64, StoreError> {
        self.inner.count().await
    }
}

/// The common routes (`/login` clears, regenerates and sets `user`) over a controlled
/// store, and a browser that has visited once.
async fn visited() -> (ControlledStore, Router, Browser) {
    let store = ControlledStore::default();
    let router = routes().layer(SessionLayer::new(store.clone(), keys()));
    let mut browser = Browser::default();
    call(&router, &mut browser, "GET", "/").await;
    (store, router, browser)
}

/// Sends `request` and keeps the cookie it set, like [`Browser::call`].
async fn call(router: &Router, browser: &mut Browser, method: &str, path: &str) -> Reply {
    let reply = send(router, browser.request(method, path)).await;
    browser.keep(&reply);
    reply
}

/// A login (regenerate) held at each of its store steps while a logout of the same
/// session runs, and a logout right after it: whichever lands first, nothing comes back.
#[tokio::test]
async fn a_logout_racing_a_login_brings_nothing_back() {
    // The login's steps: create the new record, create the marker, check the old one
    // exists, delete it.
    for step in [
        ("create", 1),
        ("create", 2),
        ("touch", 1),
        ("delete", 1),
        ("none", 1),
    ] {
        let (store, router, browser) = visited().await;
        let mut login_tab = browser.clone();
        let mut logout_tab = browser.clone();

        let login_reply = if step.0 == "none" {
            let login = call(&router, &mut login_tab, "POST", "/login").await;
            call(&router, &mut logout_tab, "POST", "/destroy").await;
            login
        } else {
            store.pause_at(step.0, step.1);
            let login = {
                let router = router.clone();
                let mut tab = login_tab.clone();
                tokio::spawn(async move {
                    let reply = call(&router, &mut tab, "POST", "/login").await;
                    (reply, tab)
                })
            };
            store.reached.notified().await;
            let logout = call(&router, &mut logout_tab, "POST", "/destroy").await;
            assert_eq!(logout.status, StatusCode::OK, "{step:?}");
            store.resume.notify_one();
            let (reply, tab) = login.await.unwrap();
            login_tab = tab;
            reply
        };
        let now = SystemTime::now() + Duration::from_secs(3600);
        store.inner.delete_expired(now).await.unwrap();
        assert_eq!(
            store.inner.count().await.unwrap(),
            0,
            "{step:?}: the logged-out session came back (login answered {:?})",
            login_reply.status
        );
        for mut tab in [login_tab, logout_tab, browser] {
            let reply = call(&router, &mut tab, "GET", "/get/user").await;
            assert_ne!(reply.body, "alice", "{step:?}");
        }
    }
}

#[tokio::test]
async fn a_regenerate_of_a_session_ended_meanwhile_fails_and_stores_nothing() {
    let (store, router, browser) = visited().await;
    let mut logout_tab = browser.clone();
    // The login's first store call after it loaded: creating the new record.
    store.pause_at("create", 1);
    let login = {
        let (router, mut tab) = (router.clone(), browser.clone());
        tokio::spawn(async move { call(&router, &mut tab, "POST", "/login").await })
    };
    store.reached.notified().await;
    call(&router, &mut logout_tab, "POST", "/destroy").await;
    store.resume.notify_one();
    let login = login.await.unwrap();
    assert_eq!(login.status, StatusCode::CONFLICT);
    assert!(login.set_cookies.is_empty());
    assert_eq!(store.inner.count().await.unwrap(), 0);
}

#[tokio::test]
async fn a_logout_with_the_old_id_moments_after_a_login_ends_the_new_session() {
    let (store, router, mut browser) = visited().await;
    let mut stale_tab = browser.clone();
    call(&router, &mut browser, "POST", "/login").await;
    assert_eq!(
        call(&router, &mut browser, "GET", "/get/user").await.body,
        "alice"
    );
    let logout = call(&router, &mut stale_tab, "POST", "/destroy").await;
    assert_eq!(logout.status, StatusCode::OK);
    assert_eq!(store.inner.count().await.unwrap(), 0);
    assert_eq!(
        call(&router, &mut browser, "GET", "/get/user").await.body,
        ""
    );
}

#[tokio::test]
async fn an_undecodable_record_is_a_fresh_session_with_a_warning_that_quotes_nothing() {
    let (store, router, mut browser) = visited().await;
    let old = browser.cookie.clone().unwrap();
    let value = old.split_once('=').unwrap().1.replace("%3A", ":");
    let id = value
        .strip_prefix("s:")
        .unwrap()
        .rsplit_once('.')
        .unwrap()
        .0;
    store.corrupt.lock().unwrap().insert(id.to_owned());

    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let reply = call(&router, &mut browser, "GET", "/").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, WELCOME);
    assert_ne!(browser.cookie.as_deref(), Some(old.as_str()), "a new id");
    assert_eq!(
        call(&router, &mut browser, "GET", "/").await.body,
        "Has visitado esta página 2 veces"
    );
    let logged = logs.text();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(logged.contains("could not be decoded"), "{logged}");
    assert!(
        logged.contains("ControlledStore"),
        "the store is named: {logged}"
    );
    assert!(
        logged.contains("JSON Syntax error"),
        "the reason is given: {logged}"
    );
    assert!(
        !logged.contains("alice") && !logged.contains(id),
        "{logged}"
    );
}

/// A log sink the test can read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn a_request_with_a_just_moved_id_changes_nothing_and_sets_no_cookie() {
    let (store, router, mut browser) = visited().await;
    let mut stale_tab = browser.clone();
    call(&router, &mut browser, "POST", "/login").await;
    let stored = store.inner.count().await.unwrap();
    for (method, path) in [
        ("GET", "/"),
        ("POST", "/set/user/mallory"),
        ("GET", "/get/user"),
    ] {
        let reply = call(&router, &mut stale_tab, method, path).await;
        assert_eq!(reply.status, StatusCode::CONFLICT, "{method} {path}");
        assert!(reply.set_cookies.is_empty(), "{method} {path}");
    }
    assert_eq!(store.inner.count().await.unwrap(), stored);
    assert_eq!(
        call(&router, &mut browser, "GET", "/get/user").await.body,
        "alice"
    );
}
