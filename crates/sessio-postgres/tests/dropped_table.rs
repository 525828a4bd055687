//! When the table disappears under a running application, operations fail with
//! `StoreError::Backend` (never a panic), and the session layer answers 503 without a
//! cookie.

mod common;

use std::error::Error as _;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use common::{data, meta_at};
use serde_json::json;
use sessio::store::{Changes, Record, StoreError};
use sessio::{KeyRing, Session, SessionError, SessionId, SessionLayer, SessionStore};
use sessio_postgres::Layout;
use tower::ServiceExt as _;

/// The error and its sources, as one line.
fn chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn assert_backend<T: std::fmt::Debug>(operation: &str, result: Result<T, StoreError>) {
    match result {
        Err(error @ StoreError::Backend(_)) => {
            let text = chain(&error);
            assert!(
                text.contains("does not exist"),
                "{operation}: the error does not say what failed: {text}"
            );
        }
        other => panic!("{operation}: expected StoreError::Backend, got {other:?}"),
    }
}

#[tokio::test]
async fn operations_on_a_dropped_table_fail_as_backend_errors() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = common::migrated(Layout::Native, &url).await;

    let now = SystemTime::now();
    let meta = meta_at(now, Duration::from_secs(60));
    let record = Record {
        data: data(json!({"k": 1})),
        meta,
    };
    let id = SessionId::from("dropped");
    // Every statement runs once first, so the pool's connections hold prepared copies.
    store.create(&id, &record).await.expect("create");
    store.load(&id, now).await.expect("load");

    sqlx::query(&format!("DROP TABLE \"{table}\""))
        .execute(&mut common::admin(&url).await)
        .await
        .expect("drop the table");

    let mut changes = Changes::default();
    changes.set("k", json!(2));
    assert_backend("create", store.create(&id, &record).await);
    assert_backend("load", store.load(&id, now).await);
    assert_backend("update", store.update(&id, &changes, &meta).await);
    assert_backend("touch", store.touch(&id, &meta).await);
    assert_backend("delete", store.delete(&id).await);
    assert_backend("delete_expired", store.delete_expired(now).await);
    assert_backend("count", store.count().await);
}

async fn visit(session: Session) -> Result<String, SessionError> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", visits).await?;
    Ok(visits.to_string())
}

fn request(cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).expect("a valid request")
}

#[tokio::test]
async fn the_session_layer_answers_503_without_a_cookie() {
    let Some(url) = common::url() else { return };
    let (store, table, _cleanup) = common::migrated(Layout::Native, &url).await;
    let keys = KeyRing::new(["a test secret that is long enough for the key ring"]).unwrap();
    let app = Router::new()
        .route("/", get(visit))
        .layer(SessionLayer::new(store, keys));

    // While the table exists: a session is created and its cookie sent.
    let first = app.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let set_cookie = first
        .headers()
        .get(header::SET_COOKIE)
        .expect("a new session sends its cookie")
        .to_str()
        .unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let body = http_body_util::BodyExt::collect(first.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], b"1");

    sqlx::query(&format!("DROP TABLE \"{table}\""))
        .execute(&mut common::admin(&url).await)
        .await
        .expect("drop the table");

    // A returning visitor: loading the session fails.
    let returning = app.clone().oneshot(request(Some(&cookie))).await.unwrap();
    assert_eq!(returning.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(returning.headers().get(header::SET_COOKIE).is_none());

    // A new visitor: storing the new session fails.
    let new = app.clone().oneshot(request(None)).await.unwrap();
    assert_eq!(new.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(new.headers().get(header::SET_COOKIE).is_none());
}
