//! Stored sessions that no longer decode, in every layout, on one server and on a cluster:
//! each is a `StoreError::Decode`, and through the layer a request carrying its cookie gets
//! a fresh session with a new id instead of a 503; the new session then works.

mod common;

use std::time::SystemTime;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{unique_prefix, Fixture, Target};
use http_body_util::BodyExt;
use sessio::store::{storage_key, StoreError};
use sessio::{
    Compatibility, KeyRing, Session, SessionError, SessionId, SessionLayer, SessionStore,
};
use sessio_redis::{Layout, RedisStore};
use tower::ServiceExt;

/// Counts the visits of a session: `1` is a fresh one.
async fn views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("views").await?.unwrap_or(0) + 1;
    session.insert("views", views).await?;
    Ok(views.to_string())
}

/// The app a deployment of `layout` runs: the connect-redis layout shares sessions with
/// express-session.
fn app(store: RedisStore, layout: Layout) -> Router {
    let keys = KeyRing::new(["a bad-records test secret of 32 bytes or more"]).unwrap();
    let mut layer = SessionLayer::new(store, keys);
    if layout != Layout::Native {
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

/// The Redis key of session `id` in `layout` under `prefix`, as the layouts document it.
fn session_key(layout: Layout, prefix: &str, id: &SessionId) -> String {
    let hash = storage_key(id);
    match layout {
        Layout::Native => format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&hash[..16])),
        _ => format!("{prefix}{}", id.as_str()),
    }
}

/// A plain connection: one server, or the cluster (commands routed by key).
fn raw(target: &Target) -> Box<dyn redis::ConnectionLike> {
    match target {
        Target::Cluster(nodes) => {
            let client = redis::cluster::ClusterClient::new(nodes.clone()).unwrap();
            Box::new(client.get_connection().unwrap())
        }
        Target::Single(url) => Box::new(
            redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap(),
        ),
    }
}

fn run<T: redis::FromRedisValue>(conn: &mut dyn redis::ConnectionLike, cmd: &redis::Cmd) -> T {
    cmd.query(conn).unwrap()
}

/// Data that must never reach an error message (and so a log).
const SECRET: &str = "do-not-log-this";

/// A way of damaging a stored session: what it is, and what it does to the session's key.
struct Damage {
    what: &'static str,
    apply: fn(&mut dyn redis::ConnectionLike, &str),
}

#[cfg(feature = "express")]
/// Replaces the value of string `key`, keeping its time to live.
fn set_keeping_ttl(conn: &mut dyn redis::ConnectionLike, key: &str, value: &[u8]) {
    let _: () = run(conn, redis::cmd("SET").arg(key).arg(value).arg("KEEPTTL"));
}

/// Replaces `key` by a value of another type, expiring in an hour.
fn replace_by(conn: &mut dyn redis::ConnectionLike, key: &str, create: &mut redis::Cmd) {
    let _: i64 = run(conn, redis::cmd("DEL").arg(key));
    let _: redis::Value = run(conn, create);
    let _: i64 = run(conn, redis::cmd("EXPIRE").arg(key).arg(3600));
}

#[cfg(feature = "express")]
/// The stored string of `key`, changed by `change`, stored back.
fn edit_string(conn: &mut dyn redis::ConnectionLike, key: &str, change: fn(&mut Vec<u8>)) {
    let mut value: Vec<u8> = run(conn, redis::cmd("GET").arg(key));
    change(&mut value);
    set_keeping_ttl(conn, key, &value);
}

const NATIVE_DAMAGES: &[Damage] = &[
    Damage {
        what: "a string where a hash is expected",
        apply: |conn, key| replace_by(conn, key, redis::cmd("SET").arg(key).arg(SECRET)),
    },
    Damage {
        what: "a list where a hash is expected",
        apply: |conn, key| replace_by(conn, key, redis::cmd("RPUSH").arg(key).arg(SECRET)),
    },
    Damage {
        what: "no expires_at field",
        apply: |conn, key| {
            let _: i64 = run(conn, redis::cmd("HDEL").arg(key).arg("e"));
        },
    },
    Damage {
        what: "a timestamp that is not a number",
        apply: |conn, key| {
            let _: i64 = run(conn, redis::cmd("HSET").arg(key).arg("l").arg(SECRET));
        },
    },
    Damage {
        what: "half an expiry",
        apply: |conn, key| {
            let _: i64 = run(
                conn,
                redis::cmd("HSET")
                    .arg(key)
                    .arg("e")
                    .arg("9999999999999/1000"),
            );
        },
    },
    Damage {
        what: "a negative duration",
        apply: |conn, key| {
            let _: i64 = run(
                conn,
                redis::cmd("HSET")
                    .arg(key)
                    .arg("e")
                    .arg("9999999999999/-5/1000"),
            );
        },
    },
    Damage {
        what: "a data value that is not JSON",
        apply: |conn, key| {
            let _: i64 = run(
                conn,
                redis::cmd("HSET")
                    .arg(key)
                    .arg("d:views")
                    .arg(format!("{{{SECRET}")),
            );
        },
    },
    Damage {
        what: "a data field name that is not UTF-8",
        apply: |conn, key| {
            let _: i64 = run(conn, redis::cmd("HSET").arg(key).arg(b"d:\xff").arg(1));
        },
    },
];

#[cfg(feature = "express")]
/// The JSON connect-redis keeps for a session ending in an hour, with `views` and `extra`
/// (raw JSON text) beside the cookie, as Node writes it.
fn node_json(extra: &str) -> String {
    let expires =
        sessio::express::format_date(SystemTime::now() + std::time::Duration::from_secs(3600));
    format!(
        "{{\"cookie\":{{\"originalMaxAge\":3600000,\"expires\":\"{expires}\",\"httpOnly\":true,\
         \"path\":\"/\"}},\"views\":2{extra}}}"
    )
}

#[cfg(feature = "express")]
const CONNECT_REDIS_DAMAGES: &[Damage] = &[
    Damage {
        what: "a hash where a string is expected",
        apply: |conn, key| {
            replace_by(
                conn,
                key,
                redis::cmd("HSET").arg(key).arg("cookie").arg(SECRET),
            )
        },
    },
    Damage {
        what: "not JSON",
        apply: |conn, key| set_keeping_ttl(conn, key, format!("{{\"{SECRET}\"").as_bytes()),
    },
    Damage {
        what: "truncated JSON",
        apply: |conn, key| {
            edit_string(conn, key, |value| {
                value.truncate(value.len() / 2);
            })
        },
    },
    Damage {
        what: "a JSON array",
        apply: |conn, key| set_keeping_ttl(conn, key, format!("[\"{SECRET}\"]").as_bytes()),
    },
    Damage {
        what: "a JSON string",
        apply: |conn, key| set_keeping_ttl(conn, key, format!("\"{SECRET}\"").as_bytes()),
    },
    Damage {
        what: "not UTF-8",
        apply: |conn, key| set_keeping_ttl(conn, key, b"{\"views\":\"\xff\xfe\"}"),
    },
    Damage {
        what: "the cookie is not an object",
        apply: |conn, key| {
            let value = format!("{{\"cookie\":\"{SECRET}\",\"views\":2}}");
            set_keeping_ttl(conn, key, value.as_bytes())
        },
    },
    Damage {
        what: "cookie.expires is not a date",
        apply: |conn, key| {
            let value = node_json("").replace("\"expires\":\"", &format!("\"expires\":\"{SECRET}"));
            set_keeping_ttl(conn, key, value.as_bytes())
        },
    },
    Damage {
        // What Node writes for a cookie expiring after 9999 (`maxAge` of some 8,000
        // years): `Date.prototype.toJSON`'s extended year.
        what: "Node's cookie expiring in the year 10000",
        apply: |conn, key| {
            let value = "{\"cookie\":{\"originalMaxAge\":250000000000000,\
                         \"expires\":\"+010000-01-01T00:00:00.000Z\",\"httpOnly\":true,\
                         \"path\":\"/\"},\"views\":2}";
            set_keeping_ttl(conn, key, value.as_bytes())
        },
    },
    Damage {
        // What Node writes for half a surrogate pair (`"😀".slice(0, 1)`): JSON.stringify
        // escapes it, and no Rust string can hold it.
        what: "Node's lone surrogate",
        apply: |conn, key| {
            let value = node_json(",\"emoji\":\"\\ud83d\"");
            set_keeping_ttl(conn, key, value.as_bytes())
        },
    },
];

/// For each damage: a session made through the layer, damaged in Redis; loading it is a
/// decode error that quotes no data, and its cookie then gets a fresh session.
async fn damaged_sessions_give_fresh_sessions(target: Target, layout: Layout, damages: &[Damage]) {
    let prefix = match layout {
        Layout::Native => unique_prefix(),
        _ => format!("{}sess:", unique_prefix()),
    };
    let fx = Fixture::new(target, layout, prefix).await;
    fx.store.migrate().await.expect("migrate");
    let app = app(fx.store.clone(), layout);
    let mut conn = raw(&fx.target);

    for damage in damages {
        let what = damage.what;
        // A working session, seen twice.
        let first = visit(&app, None).await;
        assert_eq!(
            (first.status, first.body.as_str()),
            (StatusCode::OK, "1"),
            "{what}"
        );
        let old_cookie = first.cookie.expect("a new session sets its cookie");
        let second = visit(&app, Some(&old_cookie)).await;
        assert_eq!(
            (second.status, second.body.as_str()),
            (StatusCode::OK, "2"),
            "{what}"
        );
        let old_id = id_of(&old_cookie);

        let key = session_key(layout, &fx.prefix, &old_id);
        let exists: bool = run(&mut *conn, redis::cmd("EXISTS").arg(&key));
        assert!(exists, "{what}: the session is not under {key}");
        (damage.apply)(&mut *conn, &key);
        let ttl: i64 = run(&mut *conn, redis::cmd("TTL").arg(&key));
        assert!(ttl > 0, "{what}: the damaged key expires in {ttl}");

        match fx.store.load(&old_id, SystemTime::now()).await {
            Err(StoreError::Decode(source)) => {
                let chain = error_chain(&*source);
                assert!(!chain.contains(SECRET), "{what}: data in {chain}");
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
    drop(conn);
    fx.finish();
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

#[tokio::test]
async fn native_sessions_that_do_not_decode_give_fresh_sessions() {
    let Some(target) = Target::single() else {
        return;
    };
    damaged_sessions_give_fresh_sessions(target, Layout::Native, NATIVE_DAMAGES).await;
}

#[cfg(feature = "express")]
#[tokio::test]
async fn connect_redis_sessions_that_do_not_decode_give_fresh_sessions() {
    let Some(target) = Target::single() else {
        return;
    };
    damaged_sessions_give_fresh_sessions(target, Layout::ConnectRedis, CONNECT_REDIS_DAMAGES).await;
}

#[tokio::test]
async fn cluster_native_sessions_that_do_not_decode_give_fresh_sessions() {
    let Some(target) = Target::cluster() else {
        return;
    };
    damaged_sessions_give_fresh_sessions(target, Layout::Native, NATIVE_DAMAGES).await;
}

#[cfg(feature = "express")]
#[tokio::test]
async fn cluster_connect_redis_sessions_that_do_not_decode_give_fresh_sessions() {
    let Some(target) = Target::cluster() else {
        return;
    };
    damaged_sessions_give_fresh_sessions(target, Layout::ConnectRedis, CONNECT_REDIS_DAMAGES).await;
}
