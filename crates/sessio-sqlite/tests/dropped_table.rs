//! A table that disappears under a running application: errors, never panics, and the
//! HTTP layer answers 503 without a cookie.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use common::{now, record, TempDb};
use http_body_util::BodyExt;
use serde_json::json;
use sessio::store::{Changes, StoreError};
use sessio::{KeyRing, Session, SessionError, SessionId, SessionLayer, SessionStore};
use tower::ServiceExt;

const HOUR: Duration = Duration::from_secs(3600);
const TABLE: &str = "dropped_sessions";

fn assert_backend_error_naming_the_table<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    operation: &str,
) {
    match result {
        Err(StoreError::Backend(source)) => assert!(
            source.to_string().contains(TABLE),
            "{operation}: the error does not name the table: {source}"
        ),
        other => panic!("{operation}: expected a backend error, got {other:?}"),
    }
}

#[tokio::test]
async fn operations_on_a_dropped_table_are_backend_errors() {
    let db = TempDb::new();
    let store = db.connect().await.with_table_name(TABLE).unwrap();
    store.migrate().await.unwrap();
    let id = SessionId::from("doomed");
    let t0 = now();
    let stored = record(json!({"k": 1}), t0, HOUR);
    store.create(&id, &stored).await.unwrap();
    // Warm the statement cache, so that stale prepared statements are exercised too.
    store.load(&id, t0).await.unwrap();

    db.raw()
        .execute_batch(&format!("DROP TABLE {TABLE}"))
        .unwrap();

    assert_backend_error_naming_the_table(store.load(&id, t0).await, "load");
    let mut changes = Changes::default();
    changes.set("k", json!(2));
    assert_backend_error_naming_the_table(
        store.update(&id, &changes, &stored.meta).await,
        "update",
    );
    let mut clearing = Changes::default();
    clearing.clear();
    assert_backend_error_naming_the_table(
        store.update(&id, &clearing, &stored.meta).await,
        "update (clearing)",
    );
    assert_backend_error_naming_the_table(store.touch(&id, &stored.meta).await, "touch");
    assert_backend_error_naming_the_table(store.create(&id, &stored).await, "create");
    assert_backend_error_naming_the_table(store.delete(&id).await, "delete");
    assert_backend_error_naming_the_table(store.delete_expired(t0).await, "delete_expired");
    assert_backend_error_naming_the_table(store.count().await, "count");
}

async fn count_views(session: Session) -> Result<String, SessionError> {
    let views: u32 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(views.to_string())
}

#[tokio::test]
async fn a_request_after_the_table_was_dropped_gets_503_and_no_cookie() {
    let db = TempDb::new();
    let store = db.connect().await.with_table_name(TABLE).unwrap();
    store.migrate().await.unwrap();
    let keys = KeyRing::new(["a test secret that is at least 32 bytes"]).unwrap();
    let app = Router::new()
        .route("/", get(count_views))
        .layer(SessionLayer::new(store.clone(), keys));

    // A working session first.
    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(store.count().await.unwrap(), 1);

    db.raw()
        .execute_batch(&format!("DROP TABLE {TABLE}"))
        .unwrap();

    // With the cookie: loading fails. Without it: storing the new session fails.
    for cookie in [Some(cookie), None] {
        let mut request = Request::get("/");
        if let Some(cookie) = &cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "cookie sent: {}",
            cookie.is_some()
        );
        assert!(
            response.headers().get(header::SET_COOKIE).is_none(),
            "a cookie was set on a failed request"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.is_empty(), "the error body reveals {body:?}");
    }
}
