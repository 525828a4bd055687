//! `migrate` upgrading a key prefix written in layout 1 (keys holding the whole SHA-256 of
//! the id) to layout 2, on one Redis server and on a Redis Cluster, with two instances
//! upgrading at once.

mod common;

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{unique_prefix, Cleanup, Target};
use serde_json::json;
use sessio::store::{from_unix_millis, storage_key, unix_millis, Meta, Record};
use sessio::{Expiry, IdGenerator, RandomIdGenerator, SessionId, SessionStore};
use sessio_redis::{Layout, MigrateError};

const HOUR: Duration = Duration::from_secs(3600);

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

fn v1_key(prefix: &str, id: &SessionId) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(storage_key(id)))
}

fn v2_key(prefix: &str, id: &SessionId) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(&storage_key(id)[..16]))
}

/// Writes `record` as layout 1 did: a hash of `c`, `l`, `e`, `i`/`a`, `d:{key}`, expiring
/// at `e`.
fn write_v1(conn: &mut dyn redis::ConnectionLike, key: &str, record: &Record) {
    let meta = &record.meta;
    let mut hset = redis::cmd("HSET");
    hset.arg(key)
        .arg("c")
        .arg(unix_millis(meta.created_at))
        .arg("l")
        .arg(unix_millis(meta.last_active))
        .arg("e")
        .arg(unix_millis(meta.expires_at));
    if let Some(expiry) = meta.expiry {
        hset.arg("i")
            .arg(expiry.idle_timeout().as_millis() as u64)
            .arg("a")
            .arg(expiry.absolute_lifetime().as_millis() as u64);
    }
    for (name, value) in &record.data {
        hset.arg(format!("d:{name}")).arg(value.to_string());
    }
    let _: i64 = hset.query(conn).unwrap();
    let _: i64 = redis::cmd("PEXPIREAT")
        .arg(key)
        .arg(unix_millis(meta.expires_at))
        .query(conn)
        .unwrap();
}

fn record(i: u64) -> Record {
    let now = from_unix_millis(unix_millis(SystemTime::now()));
    let serde_json::Value::Object(data) = json!({"n": i, "cart": [i, "x"], "d:odd": null}) else {
        unreachable!()
    };
    Record {
        data,
        meta: Meta {
            created_at: now - Duration::from_millis(i),
            last_active: now,
            expires_at: now + HOUR + Duration::from_millis(i),
            expiry: i.is_multiple_of(3).then(|| Expiry::new(HOUR, 24 * HOUR)),
        },
    }
}

async fn upgrades(target: Target) {
    let prefix = unique_prefix();
    let cleanup = Cleanup::new(target.urls(), &prefix);
    let mut conn = raw(&target);
    let layout_key = format!("{prefix}layout");
    let _: () = redis::cmd("SET")
        .arg(&layout_key)
        .arg("1")
        .query(conn.as_mut())
        .unwrap();

    let sessions: Vec<(SessionId, Record)> = (0..40)
        .map(|i| (RandomIdGenerator::default().generate(), record(i)))
        .collect();
    for (id, record) in &sessions {
        write_v1(conn.as_mut(), &v1_key(&prefix, id), record);
    }
    // A session already written in layout 2 under the same id: the newer one stays.
    let (taken, _) = &sessions[1];
    let newer = record(1000);
    write_v1(conn.as_mut(), &v2_key(&prefix, taken), &newer);
    // Keys under the prefix that are not layout 1 sessions are left alone.
    let foreign = [
        format!("{prefix}other"),
        format!("{prefix}{}", "!".repeat(43)),
    ];
    for key in &foreign {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("mine")
            .query(conn.as_mut())
            .unwrap();
    }

    let (a, b) = (
        target.store(Layout::Native, &prefix).await,
        target.store(Layout::Native, &prefix).await,
    );
    let (first, second) = tokio::join!(a.migrate(), b.migrate());
    first.unwrap();
    second.unwrap();

    let layout: String = redis::cmd("GET")
        .arg(&layout_key)
        .query(conn.as_mut())
        .unwrap();
    assert_eq!(layout, "2");
    for (i, (id, record)) in sessions.iter().enumerate() {
        let old: i64 = redis::cmd("EXISTS")
            .arg(v1_key(&prefix, id))
            .query(conn.as_mut())
            .unwrap();
        assert_eq!(old, 0, "session {i} kept its layout 1 key");
        let expected = if id == taken { &newer } else { record };
        let loaded = a.load(id, SystemTime::now()).await.unwrap();
        assert_eq!(loaded.as_ref(), Some(expected), "session {i}");
        // The key still expires with its session (RESTORE takes a relative TTL).
        let expire_at: i64 = redis::cmd("PEXPIRETIME")
            .arg(v2_key(&prefix, id))
            .query(conn.as_mut())
            .unwrap();
        let off = (expire_at - unix_millis(expected.meta.expires_at)).abs();
        assert!(off < 5_000, "session {i} expires {off} ms off");
    }
    for key in &foreign {
        let value: Option<String> = redis::cmd("GET").arg(key).query(conn.as_mut()).unwrap();
        assert_eq!(value.as_deref(), Some("mine"), "{key}");
    }
    assert_eq!(a.count().await.unwrap(), sessions.len() as u64);
    let left = cleanup.keys();
    assert_eq!(left.len(), sessions.len() + foreign.len() + 1, "{left:?}");

    // The upgraded store works, and upgrading again does nothing.
    let (id, record) = &sessions[2];
    let mut changes = sessio::store::Changes::default();
    changes.set("n", json!("after"));
    let applied = a.update(id, &changes, &record.meta).await.unwrap();
    assert_eq!(applied, sessio::store::WriteOutcome::Applied);
    b.migrate().await.unwrap();
    let loaded = b.load(id, SystemTime::now()).await.unwrap().unwrap();
    assert_eq!(loaded.data["n"], json!("after"));

    // A later layout is still refused, and left as it is.
    let _: () = redis::cmd("SET")
        .arg(&layout_key)
        .arg("3")
        .query(conn.as_mut())
        .unwrap();
    match a.migrate().await {
        Err(MigrateError::UnknownLayout { found, expected }) => {
            assert_eq!((found.as_str(), expected), ("3", "2"));
        }
        other => panic!("migrate over layout 3 returned {other:?}"),
    }
    cleanup.finish();
}

#[tokio::test]
async fn standalone_layout_1_is_upgraded() {
    let Some(target) = Target::single() else {
        return;
    };
    upgrades(target).await;
}

#[tokio::test]
async fn cluster_layout_1_is_upgraded() {
    let Some(target) = Target::cluster() else {
        return;
    };
    upgrades(target).await;
}
