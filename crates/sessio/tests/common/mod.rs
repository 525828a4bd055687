//! A real router behind a session layer, a browser that keeps one cookie, and a store that
//! counts what it is asked.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use sessio::store::{Changes, CreateOutcome, Meta, Record, StoreError, WriteOutcome};
use sessio::{
    Expiry, KeyRing, ManualClock, MemoryStore, Session, SessionError, SessionId, SessionLayer,
    SessionStore,
};
use tower::ServiceExt;

pub const SECRET: &str = "integration-test secret, 32+ bytes long";
pub const OLD_SECRET: &str = "the previous secret, also 32+ bytes";
pub const COOKIE: &str = "id";

pub fn keys() -> KeyRing {
    KeyRing::new([SECRET]).unwrap()
}

/// Counts store calls per operation; can be made to fail, or to hold a `load`.
#[derive(Clone, Default)]
pub struct CountingStore {
    pub inner: MemoryStore,
    pub counts: Arc<Counts>,
    pub failing: Arc<AtomicBool>,
    pub load_gate: Arc<LoadGate>,
}

/// Once armed, holds the next `load` until released: lets a test act while a store call is
/// in flight.
#[derive(Default)]
pub struct LoadGate {
    armed: AtomicBool,
    waiting: AtomicBool,
    release: tokio::sync::Notify,
}

impl LoadGate {
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Whether a `load` is being held.
    pub fn is_holding(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    pub fn release(&self) {
        self.release.notify_one();
    }

    async fn pass(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.waiting.store(true, Ordering::SeqCst);
            self.release.notified().await;
            self.waiting.store(false, Ordering::SeqCst);
        }
    }
}

#[derive(Default)]
pub struct Counts {
    pub create: AtomicU64,
    pub load: AtomicU64,
    pub update: AtomicU64,
    pub touch: AtomicU64,
    pub delete: AtomicU64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        [
            &self.create,
            &self.load,
            &self.update,
            &self.touch,
            &self.delete,
        ]
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .sum()
    }
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

impl CountingStore {
    pub fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            ..Default::default()
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable(
                "store switched off by the test".into(),
            ))
        } else {
            Ok(())
        }
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl SessionStore for CountingStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        self.counts.create.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        // Let other tasks run first, as a networked store would.
        tokio::task::yield_now().await;
        self.inner.create(id, record).await
    }
    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        self.counts.load.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.load_gate.pass().await;
        tokio::task::yield_now().await;
        self.inner.load(id, now).await
    }
    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        self.counts.update.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        tokio::task::yield_now().await;
        self.inner.update(id, changes, meta).await
    }
    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        self.counts.touch.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.touch(id, meta).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        self.counts.delete.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.delete(id).await
    }
    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.delete_expired(now).await
    }
    async fn count(&self) -> Result<u64, StoreError> {
        self.inner.count().await
    }
    async fn sessions_of(
        &self,
        user: &str,
        now: SystemTime,
    ) -> Result<Vec<sessio::store::UserSession>, StoreError> {
        self.check()?;
        self.inner.sessions_of(user, now).await
    }
    async fn delete_key(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete_key(key).await
    }
}

pub struct App {
    pub router: Router,
    pub clock: ManualClock,
    pub store: CountingStore,
}

pub const WELCOME: &str = "¡Bienvenido a esta página por primera vez!";

pub async fn page_views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("page_views").await?.unwrap_or(0) + 1;
    session.insert("page_views", views).await?;
    Ok(if views == 1 {
        WELCOME.to_owned()
    } else {
        format!("Has visitado esta página {views} veces")
    })
}

pub fn routes() -> Router {
    Router::new()
        .route("/", get(page_views))
        .route("/noop", get(|| async { "no session here" }))
        .route(
            "/get/{key}",
            get(|session: Session, Path(key): Path<String>| async move {
                let value: Option<serde_json::Value> = session.get(&key).await?;
                Ok::<_, SessionError>(match value {
                    Some(serde_json::Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                })
            }),
        )
        .route(
            "/set/{key}/{value}",
            post(
                |session: Session, Path((key, value)): Path<(String, String)>| async move {
                    session.insert(&key, value).await?;
                    Ok::<_, SessionError>("ok")
                },
            ),
        )
        .route(
            "/remove/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                session.remove::<serde_json::Value>(&key).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/clear",
            post(|session: Session| async move {
                session.clear().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/regenerate",
            post(|session: Session| async move {
                session.regenerate().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/login",
            post(|session: Session| async move {
                session.clear().await?;
                session.regenerate().await?;
                session.insert("user", "alice").await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/destroy",
            post(|session: Session| async move {
                session.destroy().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/touch",
            post(|session: Session| async move {
                session.touch().await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/save-then-fail",
            post(|session: Session| async move {
                session.insert("saved", "yes").await?;
                session.save().await?;
                session.insert("unsaved", "yes").await?;
                Ok::<_, SessionError>((StatusCode::INTERNAL_SERVER_ERROR, "boom"))
            }),
        )
        .route(
            "/fail",
            post(|session: Session| async move {
                session.insert("unsaved", "yes").await?;
                Ok::<_, SessionError>((StatusCode::INTERNAL_SERVER_ERROR, "boom"))
            }),
        )
        .route(
            "/remember-me",
            post(|session: Session| async move {
                session
                    .set_expiry(Expiry::new(
                        Duration::from_secs(30 * 86_400),
                        Duration::from_secs(90 * 86_400),
                    ))
                    .await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/id",
            get(|session: Session| async move {
                Ok::<_, SessionError>(
                    session
                        .id()
                        .await?
                        .map(|id| id.as_str().to_owned())
                        .unwrap_or_default(),
                )
            }),
        )
}

/// The test app with a manual clock and a counting memory store, configured by `configure`.
pub fn app(configure: impl FnOnce(SessionLayer) -> SessionLayer) -> App {
    app_with_keys(keys(), configure)
}

pub fn app_with_keys(keys: KeyRing, configure: impl FnOnce(SessionLayer) -> SessionLayer) -> App {
    build(routes(), keys, configure)
}

/// `extra` routes beside the common ones, behind a configured layer.
pub fn app_with_routes(extra: Router, configure: impl FnOnce(SessionLayer) -> SessionLayer) -> App {
    build(routes().merge(extra), keys(), configure)
}

fn build(
    router: Router,
    keys: KeyRing,
    configure: impl FnOnce(SessionLayer) -> SessionLayer,
) -> App {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let store = CountingStore::new(MemoryStore::new());
    let layer = configure(SessionLayer::new(store.clone(), keys).with_clock(clock.clone()));
    App {
        router: router.layer(layer),
        clock,
        store,
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: String,
    pub set_cookies: Vec<String>,
}

impl Reply {
    /// The one `Set-Cookie` for the session cookie, if any.
    pub fn session_cookie(&self) -> Option<&str> {
        let mut cookies = self
            .set_cookies
            .iter()
            .filter(|c| c.starts_with(&format!("{COOKIE}=")));
        let first = cookies.next().map(String::as_str);
        assert!(
            cookies.next().is_none(),
            "more than one session Set-Cookie: {:?}",
            self.set_cookies
        );
        first
    }

    pub fn attribute(&self, name: &str) -> Option<String> {
        let cookie = self.session_cookie()?;
        cookie.split(';').skip(1).map(str::trim).find_map(|attr| {
            let (key, value) = attr.split_once('=').unwrap_or((attr, ""));
            key.eq_ignore_ascii_case(name).then(|| value.to_owned())
        })
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Reply {
    let response: Response<Body> = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        body: String::from_utf8(body.to_vec()).unwrap(),
        set_cookies,
    }
}

/// A client that keeps the session cookie like a browser would.
#[derive(Debug, Default, Clone)]
pub struct Browser {
    /// `name=value` as it would be sent back.
    pub cookie: Option<String>,
}

impl Browser {
    pub fn request(&self, method: &str, path: &str) -> Request<Body> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        request.body(Body::empty()).unwrap()
    }

    pub async fn get(&mut self, app: &App, path: &str) -> Reply {
        self.call(app, "GET", path).await
    }

    pub async fn post(&mut self, app: &App, path: &str) -> Reply {
        self.call(app, "POST", path).await
    }

    pub async fn call(&mut self, app: &App, method: &str, path: &str) -> Reply {
        let reply = send(&app.router, self.request(method, path)).await;
        self.keep(&reply);
        reply
    }

    pub fn keep(&mut self, reply: &Reply) {
        if let Some(set) = reply.session_cookie() {
            let pair = set.split(';').next().unwrap().to_owned();
            let expired = reply.attribute("Max-Age").is_some_and(|age| age == "0");
            self.cookie = if expired { None } else { Some(pair) };
        }
    }

    /// The cookie's value as the browser holds it (still percent-encoded).
    pub fn value(&self) -> Option<&str> {
        self.cookie.as_deref()?.split_once('=').map(|(_, v)| v)
    }
}

impl CountingStore {
    /// How many sessions the store holds.
    pub async fn inner_count(&self) -> u64 {
        self.inner.count().await.unwrap()
    }

    /// The stored data of `browser`'s session, read straight from the store.
    pub async fn inner_snapshot(&self, browser: Browser) -> sessio::store::Data {
        let value = browser.value().expect("browser has a cookie");
        let decoded = value
            .replace("%3A", ":")
            .replace("%2B", "+")
            .replace("%2F", "/");
        let id = decoded
            .strip_prefix("s:")
            .unwrap()
            .rsplit_once('.')
            .unwrap()
            .0;
        self.inner
            .load(&SessionId::from(id), SystemTime::UNIX_EPOCH)
            .await
            .unwrap()
            .expect("session is stored")
            .data
    }
}
