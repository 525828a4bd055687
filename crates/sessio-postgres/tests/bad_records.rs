//! Stored rows that no longer decode, in both layouts: each is a `StoreError::Decode`, and
//! through the layer a request carrying its cookie gets a fresh session with a new id
//! instead of a 503; the new session then works. And rows Node wrote with `\u0000` in a
//! string (connect-pg-simple's `sess` is `json`, which keeps it; `jsonb` refuses it) are
//! read, updated and touched like any other.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use common::meta_at;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, Changes, StoreError, WriteOutcome,
};
use sessio::{
    Compatibility, KeyRing, Session, SessionError, SessionId, SessionLayer, SessionStore,
};
use sessio_postgres::{Layout, PostgresStore};
use tower::ServiceExt;

const HOUR: Duration = Duration::from_secs(3600);

/// Counts the visits of a session: `1` is a fresh one.
async fn views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(views.to_string())
}

/// The app a deployment of `layout` runs: the connect-pg-simple layout shares sessions
/// with express-session.
fn app(store: PostgresStore, layout: Layout) -> Router {
    let keys = KeyRing::new(["a bad-records test secret of 32 bytes or more"]).unwrap();
    let mut layer = SessionLayer::new(store, keys);
    if layout == Layout::ConnectPgSimple {
        layer = layer.with_compatibility(Compatibility::ExpressSession);
    }
    Router::new().route("/", get(views)).layer(layer)
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

/// A new session, seen twice; its cookie.
async fn working_session(app: &Router) -> String {
    let first = visit(app, None).await;
    assert_eq!((first.status, first.body.as_str()), (StatusCode::OK, "1"));
    let cookie = first.cookie.expect("a new session sets its cookie");
    let second = visit(app, Some(&cookie)).await;
    assert_eq!((second.status, second.body.as_str()), (StatusCode::OK, "2"));
    cookie
}

/// A request with `old_cookie`, whose row was damaged: a fresh session under a new id;
/// then the new cookie works.
async fn the_old_cookie_gets_a_fresh_session(app: &Router, old_cookie: &str, what: &str) {
    let fresh = visit(app, Some(old_cookie)).await;
    assert_eq!(
        (fresh.status, fresh.body.as_str()),
        (StatusCode::OK, "1"),
        "{what}"
    );
    let new_cookie = fresh.cookie.expect("the fresh session sets a cookie");
    assert_ne!(
        id_of(&new_cookie),
        id_of(old_cookie),
        "{what}: the damaged id was reused"
    );
    let next = visit(app, Some(&new_cookie)).await;
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

/// Data that must never reach an error message (and so a log).
const SECRET: &str = "do-not-log-this";

/// Asserts that loading `id` is a decode error that quotes no data.
async fn assert_decode_error(store: &PostgresStore, id: &SessionId, what: &str) {
    match store.load(id, SystemTime::now()).await {
        Err(StoreError::Decode(source)) => {
            let chain = error_chain(&*source);
            assert!(!chain.contains(SECRET), "{what}: data in {chain}");
        }
        other => panic!("{what}: expected a decode error, got {other:?}"),
    }
}

/// A way of damaging a stored row: what it is, and the SQL doing it (`{t}` the quoted
/// table, `$1` the row's key: the id's hash in the native layout, the id in
/// connect-pg-simple's).
struct Damage {
    what: &'static str,
    sql: &'static str,
}

const NATIVE_DAMAGES: &[Damage] = &[
    Damage {
        what: "created_at is infinity",
        sql: "UPDATE {t} SET created_at = 'infinity' WHERE id = $1",
    },
    Damage {
        what: "last_active is -infinity",
        sql: "UPDATE {t} SET last_active = '-infinity' WHERE id = $1",
    },
    Damage {
        what: "expires_at is infinity",
        sql: "UPDATE {t} SET expires_at = 'infinity' WHERE id = $1",
    },
    Damage {
        what: "a negative idle timeout",
        sql: "UPDATE {t} SET idle_timeout_ms = -1, absolute_lifetime_ms = 1000 WHERE id = $1",
    },
    Damage {
        what: "half an expiry",
        sql: "UPDATE {t} SET idle_timeout_ms = 1000, absolute_lifetime_ms = NULL WHERE id = $1",
    },
    Damage {
        what: "data holds a number out of a double's range",
        sql: "UPDATE {t} SET data = data || '{\"big\": 1e400}'::jsonb WHERE id = $1",
    },
    // With the table's CHECK dropped (by an operator, another tool's migration...).
    Damage {
        what: "data is a JSON string",
        sql: "UPDATE {t} SET data = '\"do-not-log-this\"'::jsonb WHERE id = $1",
    },
    Damage {
        what: "data is a JSON array",
        sql: "UPDATE {t} SET data = '[\"do-not-log-this\"]'::jsonb WHERE id = $1",
    },
];

/// In connect-pg-simple's table. (Text that is not JSON cannot be written: `sess` is
/// `json`, which PostgreSQL validates.)
const CONNECT_PG_SIMPLE_DAMAGES: &[Damage] = &[
    Damage {
        what: "sess is a JSON array",
        sql: "UPDATE {t} SET sess = '[1, 2]' WHERE sid = $1",
    },
    Damage {
        what: "sess is a JSON string",
        sql: "UPDATE {t} SET sess = '\"do-not-log-this\"' WHERE sid = $1",
    },
    Damage {
        what: "the cookie is not an object",
        sql: "UPDATE {t} SET sess = '{\"cookie\": \"do-not-log-this\", \"views\": 2}' \
              WHERE sid = $1",
    },
    Damage {
        what: "cookie.expires is not a date",
        sql: "UPDATE {t} SET sess = (sess::jsonb || \
              '{\"cookie\": {\"expires\": \"do-not-log-this\", \"originalMaxAge\": 60000}}')::json \
              WHERE sid = $1",
    },
    Damage {
        what: "cookie.originalMaxAge is a string",
        sql: "UPDATE {t} SET sess = jsonb_set(sess::jsonb, '{cookie,originalMaxAge}', \
              '\"do-not-log-this\"')::json WHERE sid = $1",
    },
    Damage {
        // What Node writes for a cookie expiring after 9999 (`maxAge` of some 8,000
        // years): `Date.prototype.toJSON`'s extended year, and connect-pg-simple's
        // `to_timestamp(ceil(expires / 1 s))`.
        what: "Node's cookie expiring in the year 10000",
        sql: "UPDATE {t} SET sess = '{\"cookie\":{\"originalMaxAge\":250000000000000,\
              \"expires\":\"+010000-01-01T00:00:00.000Z\",\"httpOnly\":true,\"path\":\"/\"},\
              \"views\":2}', expire = to_timestamp(253402300800) WHERE sid = $1",
    },
    Damage {
        // What Node writes for half a surrogate pair (`"😀".slice(0, 1)`): JSON.stringify
        // escapes it, `json` keeps it, and no Rust string can hold it.
        what: "Node's lone surrogate",
        sql: "UPDATE {t} SET sess = ('{\"cookie\":' || (sess -> 'cookie')::text || \
              ',\"views\":2,\"emoji\":\"\\ud83d\"}')::json WHERE sid = $1",
    },
    Damage {
        what: "expire is infinity",
        sql: "UPDATE {t} SET expire = 'infinity' WHERE sid = $1",
    },
];

async fn damaged_rows_give_fresh_sessions(layout: Layout, damages: &[Damage]) {
    let Some(url) = common::url() else {
        return;
    };
    let (store, table, _cleanup) = common::migrated(layout, &url).await;
    let quoted = format!("\"{table}\"");
    let mut admin = common::admin(&url).await;
    let app = app(store.clone(), layout);

    for damage in damages {
        let what = damage.what;
        let old_cookie = working_session(&app).await;
        let old_id = id_of(&old_cookie);
        let sql = damage.sql.replace("{t}", &quoted);
        let key = storage_key(&old_id);
        let damaged = match layout {
            Layout::Native => sqlx::query(&sql).bind(&key[..]),
            _ => sqlx::query(&sql).bind(old_id.as_str()),
        }
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(damaged.rows_affected(), 1, "{what}: no row damaged");

        assert_decode_error(&store, &old_id, what).await;
        the_old_cookie_gets_a_fresh_session(&app, &old_cookie, what).await;
    }
}

#[tokio::test]
async fn native_rows_that_do_not_decode_give_fresh_sessions() {
    damaged_rows_give_fresh_sessions(Layout::Native, NATIVE_DAMAGES).await;
}

#[tokio::test]
async fn connect_pg_simple_rows_that_do_not_decode_give_fresh_sessions() {
    damaged_rows_give_fresh_sessions(Layout::ConnectPgSimple, CONNECT_PG_SIMPLE_DAMAGES).await;
}

/// The row of `sid`'s `sess`, parsed (by serde, which reads `\u0000`).
async fn sess_of(url: &str, quoted: &str, sid: &str) -> Value {
    let text: String =
        sqlx::query_scalar(&format!("SELECT sess::text FROM {quoted} WHERE sid = $1"))
            .bind(sid)
            .fetch_one(&mut common::admin(url).await)
            .await
            .expect("the row");
    serde_json::from_str(&text).expect("sess is JSON")
}

/// A value Node can keep in connect-pg-simple's `json` column and `jsonb` cannot hold.
const WITH_NUL: &str = "before\u{0}after";

/// Writes `sess` for `sid` as connect-pg-simple's `set` does: JSON text (JSON.stringify
/// writes U+0000 as `\u0000`) cast to `json`, and `to_timestamp` of the cookie's expiry.
async fn node_sets(url: &str, quoted: &str, sid: &str, sess: &Value) {
    let text = sess.to_string();
    assert!(text.contains("\\u0000"), "{text}");
    let expires = sess["cookie"]["expires"]
        .as_str()
        .and_then(sessio::express::parse_date)
        .expect("a cookie with expires");
    let millis = unix_millis(expires);
    let seconds = millis.div_euclid(1000) + i64::from(millis.rem_euclid(1000) != 0);
    sqlx::query(&format!(
        "INSERT INTO {quoted} (sess, expire, sid) SELECT $1::json, to_timestamp($2), $3 \
         ON CONFLICT (sid) DO UPDATE SET sess=$1::json, expire=to_timestamp($2) RETURNING sid"
    ))
    .bind(text)
    .bind(seconds)
    .bind(sid)
    .execute(&mut common::admin(url).await)
    .await
    .expect("insert as Node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_node_wrote_with_a_nul_escape_are_updated_and_touched() {
    let Some(url) = common::url() else {
        return;
    };
    let (store, table, _cleanup) = common::migrated(Layout::ConnectPgSimple, &url).await;
    let quoted = format!("\"{table}\"");
    let app = app(store.clone(), Layout::ConnectPgSimple);

    // A session sessio created; then Node stores a string holding U+0000 in it.
    let cookie = working_session(&app).await;
    let id = id_of(&cookie);
    let mut sess = sess_of(&url, &quoted, id.as_str()).await;
    assert_eq!(sess["views"], 2);
    sess["name"] = json!(WITH_NUL);
    sess["nested"] = json!({"list": [WITH_NUL, 1]});
    node_sets(&url, &quoted, id.as_str(), &sess).await;
    let loaded = store.load(&id, SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(loaded.data["name"], WITH_NUL);

    // Through the layer: the write goes through, on the same session.
    for expected in ["3", "4"] {
        let reply = visit(&app, Some(&cookie)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (StatusCode::OK, expected)
        );
        assert!(
            reply.cookie.as_deref().is_none_or(|c| id_of(c) == id),
            "the session moved"
        );
        let stored = sess_of(&url, &quoted, id.as_str()).await;
        assert_eq!(stored["views"], expected.parse::<u64>().unwrap());
        assert_eq!(stored["name"], WITH_NUL);
        assert_eq!(stored["nested"], json!({"list": [WITH_NUL, 1]}));
        assert_eq!(stored["cookie"]["httpOnly"], true, "{stored}");
    }

    // Through the store: an update removing a key and setting one, then a touch moving the
    // expiry, each applied and keeping the value.
    let now = from_unix_millis(unix_millis(SystemTime::now()));
    let mut changes = Changes::default();
    changes.remove("views");
    changes.set("other", json!(WITH_NUL));
    assert_eq!(
        store
            .update(&id, &changes, &meta_at(now, HOUR))
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    let later = meta_at(now, 2 * HOUR);
    assert_eq!(
        store.touch(&id, &later).await.unwrap(),
        WriteOutcome::Applied
    );
    let stored = sess_of(&url, &quoted, id.as_str()).await;
    assert_eq!(stored["name"], WITH_NUL);
    assert_eq!(stored["other"], WITH_NUL);
    assert!(stored.get("views").is_none(), "{stored}");
    assert_eq!(
        stored["cookie"]["expires"],
        sessio::express::format_date(later.expires_at)
    );
    let loaded = store.load(&id, now).await.unwrap().expect("live");
    assert_eq!(loaded.meta.expires_at, later.expires_at);
    let expire: i64 = sqlx::query_scalar(&format!(
        "SELECT extract(epoch from expire::timestamptz)::bigint FROM {quoted} WHERE sid = $1"
    ))
    .bind(id.as_str())
    .fetch_one(&mut common::admin(&url).await)
    .await
    .unwrap();
    let expected = unix_millis(later.expires_at).div_euclid(1000)
        + i64::from(unix_millis(later.expires_at).rem_euclid(1000) != 0);
    assert_eq!(expire, expected, "expire did not move with the touch");

    // Still per key atomic: concurrent writers of distinct keys, on two pools, all keep
    // their writes.
    let other = Arc::new(common::cps_store(&url, &table).await);
    let store = Arc::new(store);
    let writers: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 { &store } else { &other }.clone();
            let id = id.clone();
            tokio::spawn(async move {
                let mut changes = Changes::default();
                changes.set(format!("writer{i}"), json!(i));
                store.update(&id, &changes, &meta_at(now, HOUR)).await
            })
        })
        .collect();
    for writer in writers {
        assert_eq!(writer.await.unwrap().unwrap(), WriteOutcome::Applied);
    }
    let stored = sess_of(&url, &quoted, id.as_str()).await;
    for i in 0..16 {
        assert_eq!(stored[format!("writer{i}")], i, "writer {i} lost: {stored}");
    }
    assert_eq!(stored["name"], WITH_NUL);

    // An ended session (the writers' expiry passed) is still neither updated nor touched.
    let ended = meta_at(now + HOUR + Duration::from_millis(1), HOUR);
    assert_eq!(
        store.update(&id, &changes, &ended).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(
        store.touch(&id, &ended).await.unwrap(),
        WriteOutcome::NotFound
    );
    assert!(store.load(&id, now).await.unwrap().is_some());
}

#[tokio::test]
async fn sessions_created_here_with_nul_are_updated_and_touched() {
    let Some(url) = common::url() else {
        return;
    };
    let (store, table, _cleanup) = common::migrated(Layout::ConnectPgSimple, &url).await;
    let quoted = format!("\"{table}\"");
    let now = from_unix_millis(unix_millis(SystemTime::now()));

    // A plain session; an update brings U+0000 in, in a value and in a key.
    let id = SessionId::from("a-session-sessio-created");
    let record = sessio::store::Record {
        data: common::data(json!({"views": 1})),
        meta: meta_at(now, HOUR),
    };
    store.create(&id, &record).await.unwrap();
    let mut changes = Changes::default();
    changes.set("name", json!(WITH_NUL));
    changes.set(WITH_NUL, json!(1));
    changes.remove("views");
    assert_eq!(
        store
            .update(&id, &changes, &meta_at(now, HOUR))
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    // Then plain writes on the row holding it.
    let mut changes = Changes::default();
    changes.set("views", json!(2));
    assert_eq!(
        store
            .update(&id, &changes, &meta_at(now, HOUR))
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    assert_eq!(
        store.touch(&id, &meta_at(now, 2 * HOUR)).await.unwrap(),
        WriteOutcome::Applied
    );
    let stored = sess_of(&url, &quoted, id.as_str()).await;
    assert_eq!(stored["name"], WITH_NUL, "{stored}");
    assert_eq!(stored[WITH_NUL], 1, "{stored}");
    assert_eq!(stored["views"], 2, "{stored}");
    let loaded = store.load(&id, now).await.unwrap().expect("live");
    assert_eq!(loaded.meta.expires_at, now + 2 * HOUR);

    // Created with it, too; an update of a missing session still writes nothing.
    let born = SessionId::from("born-with-nul");
    let record = sessio::store::Record {
        data: common::data(json!({"name": WITH_NUL})),
        meta: meta_at(now, HOUR),
    };
    store.create(&born, &record).await.unwrap();
    assert_eq!(
        store
            .update(&born, &changes, &meta_at(now, HOUR))
            .await
            .unwrap(),
        WriteOutcome::Applied
    );
    assert_eq!(
        store.load(&born, now).await.unwrap().unwrap().data["name"],
        WITH_NUL
    );
    let missing = SessionId::from("never-stored");
    assert_eq!(
        store
            .update(&missing, &changes, &meta_at(now, HOUR))
            .await
            .unwrap(),
        WriteOutcome::NotFound
    );
    let mut with_nul = Changes::default();
    with_nul.set("name", json!(WITH_NUL));
    assert_eq!(
        store
            .update(&missing, &with_nul, &meta_at(now, HOUR))
            .await
            .unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(store.count().await.unwrap(), 2);
}

/// A write of a row holding U+0000 goes through a transaction holding the row's lock; a
/// request dropped halfway through it (its client gone) must not leave that lock behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_write_abandoned_halfway_leaves_no_lock_behind() {
    use std::future::Future;
    use std::task::{Context, Poll, Wake, Waker};

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    let Some(url) = common::url() else {
        return;
    };
    let (store, table, _cleanup) = common::migrated(Layout::ConnectPgSimple, &url).await;
    let store = store.with_timeout(Duration::from_secs(2));
    let quoted = format!("\"{table}\"");
    let app = app(store.clone(), Layout::ConnectPgSimple);
    let cookie = working_session(&app).await;
    let id = id_of(&cookie);
    let mut sess = sess_of(&url, &quoted, id.as_str()).await;
    sess["name"] = json!(WITH_NUL);
    node_sets(&url, &quoted, id.as_str(), &sess).await;

    let now = from_unix_millis(unix_millis(SystemTime::now()));
    let waker = Waker::from(Arc::new(Noop));
    let mut abandoned = 0;
    for round in 0..30u64 {
        let mut changes = Changes::default();
        changes.set("round", json!(round));
        let meta = meta_at(now, HOUR);
        {
            // Polled until it is under way, then dropped, as a cancelled request's is.
            let mut write = std::pin::pin!(store.update(&id, &changes, &meta));
            let mut cx = Context::from_waker(&waker);
            // Dropped at a different point each round: after a few polls, each after a
            // short wait for the database's answers to arrive.
            let mut finished = false;
            for _ in 0..(round % 8) + 1 {
                if let Poll::Ready(done) = write.as_mut().poll(&mut cx) {
                    done.unwrap();
                    finished = true;
                    break;
                }
                tokio::time::sleep(Duration::from_micros(100)).await;
            }
            abandoned += u32::from(!finished);
        }
        let mut next = Changes::default();
        next.set("after", json!(round));
        let outcome = store.update(&id, &next, &meta).await;
        assert!(
            matches!(outcome, Ok(WriteOutcome::Applied)),
            "round {round}: {outcome:?}"
        );
    }
    eprintln!("{abandoned} writes abandoned halfway");
    assert!(
        abandoned > 0,
        "no write was abandoned: the test tested nothing"
    );
}
