//! Redis killed and restarted under a running app: requests answer 503 promptly while it
//! is down, and the same store serves them again once it is back, with every acknowledged
//! write kept.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use sessio::{KeyRing, Session, SessionError, SessionLayer};
use sessio_redis::{ClientCache, RedisStore};
use tower::ServiceExt;

use common::PrivateRedis;

/// The store's limit on each operation. Short, so that a request to a Redis that stopped
/// answering fails soon; not so short that a loaded machine trips it while Redis is up (a
/// fresh server's first write, which loads its script, once took more than 300 ms in CI).
const STORE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a request may take while Redis is down: the store's limit plus slack for a
/// loaded machine. Far below what a hung request would take.
const PROMPT: Duration = Duration::from_secs(2);

async fn page_views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("page_views").await?.unwrap_or(0) + 1;
    session.insert("page_views", views).await?;
    Ok(views.to_string())
}

struct Reply {
    status: StatusCode,
    body: String,
    set_cookie: Option<String>,
    took: Duration,
}

impl Reply {
    /// Asserts the request was refused with a 503, promptly.
    fn assert_prompt_503(&self) {
        assert_eq!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            self.body
        );
        assert!(self.took < PROMPT, "a request took {:?}", self.took);
    }
}

async fn visit(app: &Router, cookie: Option<&str>) -> Reply {
    let mut request = Request::builder().uri("https://example.com/");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let started = Instant::now();
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        body: String::from_utf8(body.to_vec()).unwrap(),
        set_cookie,
        took: started.elapsed(),
    }
}

#[tokio::test]
async fn redis_killed_and_restarted() {
    killed_and_restarted(None).await;
}

/// The same with the client cache, which must not serve what it held while Redis was gone
/// (every request still answers 503: the write cannot be made) and comes back with it.
#[tokio::test]
async fn redis_killed_and_restarted_under_a_cached_store() {
    killed_and_restarted(Some(ClientCache::new())).await;
}

async fn killed_and_restarted(cache: Option<ClientCache>) {
    let Some(mut server) = PrivateRedis::start_or_skip() else {
        return;
    };

    let store = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_timeout(STORE_TIMEOUT);
    let store = match cache {
        Some(cache) => store.with_client_cache(cache).await.unwrap(),
        None => store,
    };
    let keys = KeyRing::new(["a restart-test secret, 32 bytes or more"]).unwrap();
    let app = Router::new()
        .route("/", get(page_views))
        .layer(SessionLayer::new(store, keys));

    // A session, counted up to 3.
    let first = visit(&app, None).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    let cookie = first
        .set_cookie
        .expect("a new session sets its cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    for expected in ["2", "3"] {
        let reply = visit(&app, Some(&cookie)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, expected)
        );
    }

    // Redis dies: each request answers 503 promptly, says nothing, sets no cookie.
    server.kill();
    for _ in 0..3 {
        let reply = visit(&app, Some(&cookie)).await;
        reply.assert_prompt_503();
        assert!(reply.set_cookie.is_none());
        let body = reply.body.to_lowercase();
        for detail in ["redis", "refused", "127.0.0.1", "connection", "timeout"] {
            assert!(
                !body.contains(detail),
                "the body reveals {detail:?}: {body}"
            );
        }
        let fresh = visit(&app, None).await;
        assert_eq!(fresh.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(fresh.set_cookie.is_none());
    }

    // Redis comes back on the same port, with its data: the same store (no reconnect by
    // hand) serves the session again, and the count goes on from 3.
    server.spawn();
    let deadline = Instant::now() + Duration::from_secs(15);
    let reply = loop {
        let reply = visit(&app, Some(&cookie)).await;
        if reply.status == StatusCode::OK {
            break reply;
        }
        reply.assert_prompt_503();
        assert!(
            Instant::now() < deadline,
            "the store did not recover within 15 s of Redis restarting"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(reply.body, "4", "acknowledged writes were lost");
    let reply = visit(&app, Some(&cookie)).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "5"));
    // The server (and its files) go with `server`, also when an assertion failed above.
}

/// Redis forgets its scripts (`SCRIPT FLUSH`, as after a restart or a failover): the next
/// write loads its script again and goes through, with and without the client cache.
#[tokio::test]
async fn writes_load_their_scripts_again_after_a_flush() {
    use sessio::store::{Changes, Meta, Record, SessionStore, WriteOutcome};
    use sessio::SessionId;

    let Some(server) = PrivateRedis::start_or_skip() else {
        return;
    };
    let plain = RedisStore::connect(&server.url()).await.unwrap();
    let cached = RedisStore::connect(&server.url())
        .await
        .unwrap()
        .with_client_cache(ClientCache::new())
        .await
        .unwrap();
    let now = std::time::SystemTime::now();
    let meta = Meta {
        created_at: now,
        last_active: now,
        expires_at: now + Duration::from_secs(3600),
        expiry: None,
    };
    let flush = || {
        let mut conn = redis::Client::open(server.url())
            .unwrap()
            .get_connection()
            .unwrap();
        redis::cmd("SCRIPT").arg("FLUSH").exec(&mut conn).unwrap();
    };
    for (n, store) in [plain, cached].into_iter().enumerate() {
        let id = SessionId::from(format!("session {n}"));
        let record = Record {
            data: Default::default(),
            meta,
        };
        flush();
        store.create(&id, &record).await.unwrap();
        let _ = store.load(&id, now).await.unwrap();
        for views in 1..=2 {
            flush();
            let mut changes = Changes::default();
            changes.set("views", views.into());
            assert_eq!(
                store.update(&id, &changes, &meta).await.unwrap(),
                WriteOutcome::Applied
            );
            let loaded = store.load(&id, now).await.unwrap().unwrap();
            assert_eq!(loaded.data["views"], views);
        }
    }
}
