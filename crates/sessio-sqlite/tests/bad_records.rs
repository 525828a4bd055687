//! A stored row that no longer decodes (damaged by hand, by another tool, by a disk) is a
//! `StoreError::Decode`, and through the layer a request carrying its cookie gets a fresh
//! session with a new id instead of a 503; the new session then works.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use common::{now, TempDb};
use http_body_util::BodyExt;
use sessio::store::{storage_key, StoreError};
use sessio::{KeyRing, Session, SessionError, SessionId, SessionLayer, SessionStore};
use sessio_sqlite::SqliteStore;
use tower::ServiceExt;

/// Counts the visits of a session: `1` is a fresh one.
async fn views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(views.to_string())
}

fn app(store: SqliteStore) -> Router {
    let keys = KeyRing::new(["a bad-records test secret of 32 bytes or more"]).unwrap();
    Router::new()
        .route("/", get(views))
        .layer(SessionLayer::new(store, keys))
}

struct Reply {
    status: StatusCode,
    body: String,
    /// The `name=value` of the `Set-Cookie`, if one was sent.
    cookie: Option<String>,
}

async fn visit(app: &Router, cookie: Option<&str>) -> Reply {
    let mut request = Request::get("/");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let cookie = response.headers().get(header::SET_COOKIE).map(|value| {
        let value = value.to_str().unwrap();
        value.split(';').next().unwrap().to_owned()
    });
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        body: String::from_utf8(body.to_vec()).unwrap(),
        cookie,
    }
}

/// The session id in a `name=s%3A{id}.{signature}` cookie.
fn id_of(cookie: &str) -> SessionId {
    let (_, value) = cookie.split_once('=').unwrap();
    let signed = value.strip_prefix("s%3A").expect("a signed cookie");
    SessionId::from(signed.rsplit_once('.').unwrap().0)
}

/// A way of damaging a stored row: what it is, and the SQL (`?1` the row's id) doing it.
struct Damage {
    what: &'static str,
    sql: &'static str,
}

const DAMAGES: &[Damage] = &[
    Damage {
        what: "data is not JSON",
        sql: "UPDATE sessio_sessions SET data = '{\"views\": 2' WHERE id = ?1",
    },
    Damage {
        what: "data is a JSON array",
        sql: "UPDATE sessio_sessions SET data = '[1, 2]' WHERE id = ?1",
    },
    Damage {
        what: "data is a JSON string",
        sql: "UPDATE sessio_sessions SET data = '\"do-not-log-this\"' WHERE id = ?1",
    },
    Damage {
        what: "data is a blob",
        sql: "UPDATE sessio_sessions SET data = x'00ff' WHERE id = ?1",
    },
    Damage {
        what: "data is text that is not UTF-8",
        sql: "UPDATE sessio_sessions SET data = CAST(x'7b2276223affff7d' AS TEXT) WHERE id = ?1",
    },
    Damage {
        what: "created_at is text",
        sql: "UPDATE sessio_sessions SET created_at = 'yesterday' WHERE id = ?1",
    },
    Damage {
        what: "last_active is a real",
        sql: "UPDATE sessio_sessions SET last_active = last_active + 0.5 WHERE id = ?1",
    },
    Damage {
        // Text sorts after every integer in SQLite: the row still counts as live.
        what: "expires_at is text",
        sql: "UPDATE sessio_sessions SET expires_at = 'tomorrow' WHERE id = ?1",
    },
    Damage {
        what: "a negative idle timeout",
        sql: "UPDATE sessio_sessions SET idle_timeout_ms = -1, absolute_lifetime_ms = 1000 \
              WHERE id = ?1",
    },
    Damage {
        what: "half an expiry",
        sql: "UPDATE sessio_sessions SET idle_timeout_ms = 1000, absolute_lifetime_ms = NULL \
              WHERE id = ?1",
    },
];

#[tokio::test]
async fn a_request_whose_row_does_not_decode_gets_a_fresh_session() {
    let db = TempDb::new();
    let store = db.store().await;
    let app = app(store.clone());

    for damage in DAMAGES {
        let what = damage.what;
        // A working session, seen twice.
        let first = visit(&app, None).await;
        assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
        let old_cookie = first.cookie.expect("a new session sets its cookie");
        let second = visit(&app, Some(&old_cookie)).await;
        assert_eq!((second.status, second.body.as_str()), (StatusCode::OK, "2"));
        let old_id = id_of(&old_cookie);

        let damaged = db
            .raw()
            .execute(damage.sql, [&storage_key(&old_id)[..]])
            .unwrap();
        assert_eq!(damaged, 1, "{what}: no row damaged");
        match store.load(&old_id, now()).await {
            Err(StoreError::Decode(source)) => {
                let chain = error_chain(&*source);
                assert!(!chain.contains("do-not-log"), "{what}: data in {chain}");
            }
            other => panic!("{what}: expected a decode error, got {other:?}"),
        }

        // The old cookie: a fresh session under a new id, not a 503.
        let fresh = visit(&app, Some(&old_cookie)).await;
        assert_eq!(
            (fresh.status, fresh.body.as_str()),
            (StatusCode::OK, "1"),
            "{what}"
        );
        let new_cookie = fresh.cookie.expect("the fresh session sets a cookie");
        assert_ne!(
            id_of(&new_cookie),
            old_id,
            "{what}: the damaged id was reused"
        );

        // The new cookie works, and the session counts on.
        let next = visit(&app, Some(&new_cookie)).await;
        assert_eq!(
            (next.status, next.body.as_str()),
            (StatusCode::OK, "2"),
            "{what}"
        );
        assert!(
            next.cookie
                .as_deref()
                .is_none_or(|c| id_of(c) == id_of(&new_cookie)),
            "{what}: the new session moved again"
        );
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
