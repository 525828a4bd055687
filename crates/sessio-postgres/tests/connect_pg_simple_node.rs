//! The connect-pg-simple layout shares its table with Node: the table and rows are
//! exactly what connect-pg-simple creates and writes, and rows Node wrote (or touched)
//! read as Node meant them.

mod common;

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use sessio::express::format_date;
use sessio::store::{from_unix_millis, unix_millis, Changes, Data, Meta, Record, WriteOutcome};
use sessio::{Expiry, SessionId, SessionStore};
use sessio_postgres::{Layout, PostgresStore};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgConnection;

/// connect-pg-simple's `table.sql` (v10), verbatim. Like connect-pg-simple, apply it with
/// every `"session"` replaced by the quoted table name.
const TABLE_SQL: &str = "CREATE TABLE \"session\" (
  \"sid\" varchar NOT NULL COLLATE \"default\",
\t\"sess\" json NOT NULL,
\t\"expire\" timestamp(6) NOT NULL
)
WITH (OIDS=FALSE);

ALTER TABLE \"session\" ADD CONSTRAINT \"session_pkey\" PRIMARY KEY (\"sid\") NOT DEFERRABLE INITIALLY IMMEDIATE;

CREATE INDEX \"IDX_session_expire\" ON \"session\" (\"expire\");
";

/// 2035-06-01T12:00:00.250Z: far enough ahead that rows written for it stay live.
const EXPIRES_MS: i64 = 2_064_312_000_250;

fn expires() -> SystemTime {
    from_unix_millis(EXPIRES_MS)
}

/// The meta of a session last used at `now` that ends at [`expires`].
fn meta_until_expires(now: SystemTime) -> Meta {
    Meta {
        created_at: now,
        last_active: now,
        expires_at: expires(),
        expiry: None,
    }
}

/// As connect-pg-simple: `Math.ceil(expires / 1000)`.
fn ceil_seconds(millis: i64) -> i64 {
    millis.div_euclid(1000) + i64::from(millis.rem_euclid(1000) != 0)
}

/// A migrated connect-pg-simple store on a table of the test's own, the table's name
/// quoted, and its cleanup.
async fn migrated(url: &str) -> (PostgresStore, String, common::Cleanup) {
    let (store, table, cleanup) = common::migrated(Layout::ConnectPgSimple, url).await;
    (store, format!("\"{table}\""), cleanup)
}

/// Runs connect-pg-simple's `table.sql` for `quoted_table`, as its `createTableIfMissing`.
async fn node_creates_table(conn: &mut PgConnection, quoted_table: &str) {
    sqlx::raw_sql(&TABLE_SQL.replace("\"session\"", quoted_table))
        .execute(conn)
        .await
        .expect("connect-pg-simple's table.sql");
}

/// Writes a row as connect-pg-simple's `set` does.
async fn node_sets(conn: &mut PgConnection, quoted_table: &str, sid: &str, sess: &Value) {
    let expires = sess["cookie"]["expires"]
        .as_str()
        .and_then(sessio::express::parse_date)
        .expect("a cookie with expires");
    sqlx::query(&format!(
        "INSERT INTO {quoted_table} (sess, expire, sid) SELECT $1::json, to_timestamp($2), $3 \
         ON CONFLICT (sid) DO UPDATE SET sess=$1::json, expire=to_timestamp($2) RETURNING sid"
    ))
    .bind(sess.to_string())
    .bind(ceil_seconds(unix_millis(expires)))
    .bind(sid)
    .execute(conn)
    .await
    .expect("insert as Node");
}

async fn sess_of(conn: &mut PgConnection, quoted_table: &str, sid: &str) -> Value {
    let text: String = sqlx::query_scalar(&format!(
        "SELECT sess::text FROM {quoted_table} WHERE sid = $1"
    ))
    .bind(sid)
    .fetch_one(conn)
    .await
    .expect("the row");
    serde_json::from_str(&text).expect("sess is JSON")
}

/// A column as `information_schema` describes it.
type Column = (
    String,
    String,
    String,
    Option<i32>,
    Option<String>,
    Option<i32>,
);

async fn columns(conn: &mut PgConnection, schema: &str, table: &str) -> Vec<Column> {
    sqlx::query_as(
        "SELECT column_name::text, data_type::text, is_nullable::text, \
                character_maximum_length::int, collation_name::text, datetime_precision::int \
         FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 \
         ORDER BY ordinal_position",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(conn)
    .await
    .unwrap()
}

/// The table's indexes and constraints, with the schema name taken out.
async fn indexes_and_constraints(
    conn: &mut PgConnection,
    schema: &str,
    table: &str,
) -> Vec<String> {
    let mut found: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text || ': ' || indexdef FROM pg_indexes \
         WHERE schemaname = $1 AND tablename = $2 \
         UNION ALL \
         SELECT conname::text || ': ' || pg_get_constraintdef(c.oid) \
                || CASE WHEN condeferrable THEN ' DEFERRABLE' ELSE '' END \
         FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = r.relnamespace \
         WHERE n.nspname = $1 AND r.relname = $2 ORDER BY 1",
    )
    .bind(schema)
    .bind(table)
    .fetch_all(conn)
    .await
    .unwrap();
    for line in &mut found {
        *line = line.replace(&format!("{schema}."), "");
    }
    found
}

#[tokio::test]
async fn migrate_creates_exactly_connect_pg_simple_s_table() {
    let Some(url) = common::url() else { return };
    let ours = common::unique_name();
    let node = common::unique_name();
    let _ours_cleanup = common::Cleanup::schema(&url, &ours);
    let _node_cleanup = common::Cleanup::schema(&url, &node);
    let mut conn = common::admin(&url).await;

    // Ours: the layout's default name, in a schema of the test's own.
    let store = PostgresStore::connect(&url)
        .await
        .unwrap()
        .with_layout(Layout::ConnectPgSimple);
    assert_eq!(store.table_name(), "session");
    let store = store.with_table_name(&format!("{ours}.session")).unwrap();
    store.migrate().await.expect("migrate");
    store.migrate().await.expect("migrate again");

    // Node's: connect-pg-simple's table.sql.
    sqlx::raw_sql(&format!("CREATE SCHEMA \"{node}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    node_creates_table(&mut conn, &format!("\"{node}\".\"session\"")).await;

    let expected_columns: Vec<Column> = vec![
        (
            "sid".into(),
            "character varying".into(),
            "NO".into(),
            None,
            None,
            None,
        ),
        ("sess".into(), "json".into(), "NO".into(), None, None, None),
        (
            "expire".into(),
            "timestamp without time zone".into(),
            "NO".into(),
            None,
            None,
            Some(6),
        ),
    ];
    assert_eq!(columns(&mut conn, &ours, "session").await, expected_columns);
    assert_eq!(columns(&mut conn, &node, "session").await, expected_columns);

    let expected_indexes = [
        "IDX_session_expire: CREATE INDEX \"IDX_session_expire\" ON session USING btree (expire)",
        "session_pkey: CREATE UNIQUE INDEX session_pkey ON session USING btree (sid)",
        "session_pkey: PRIMARY KEY (sid)",
    ];
    assert_eq!(
        indexes_and_constraints(&mut conn, &ours, "session").await,
        expected_indexes
    );
    assert_eq!(
        indexes_and_constraints(&mut conn, &node, "session").await,
        expected_indexes
    );

    // The collation is the column's default one, named explicitly as table.sql does.
    let collations: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, coalesce(co.collname::text, '-') \
         FROM pg_attribute a JOIN pg_class r ON r.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = r.relnamespace \
         LEFT JOIN pg_collation co ON co.oid = a.attcollation \
         WHERE r.relname = 'session' AND n.nspname IN ($1, $2) AND a.attname = 'sid' \
         ORDER BY n.nspname = $2",
    )
    .bind(&ours)
    .bind(&node)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        collations,
        [
            (ours.clone(), "default".into()),
            (node.clone(), "default".into())
        ]
    );

    // Bookkeeping lives beside the table, where Node never looks.
    let versions: Vec<i32> = sqlx::query_scalar(&format!(
        "SELECT version FROM \"{ours}\".session_migrations ORDER BY version"
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(versions, [1]);
}

#[tokio::test]
async fn migrate_uses_a_table_node_created_as_it_is() {
    let Some(url) = common::url() else { return };
    let schema = common::unique_name();
    let _cleanup = common::Cleanup::schema(&url, &schema);
    let mut conn = common::admin(&url).await;
    sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&mut conn)
        .await
        .unwrap();

    // Node created its table (under a custom name, where connect-pg-simple keeps its
    // fixed constraint and index names) and wrote a session.
    let quoted = format!("\"{schema}\".\"web_sessions\"");
    node_creates_table(&mut conn, &quoted).await;
    let sess = json!({"cookie": {"originalMaxAge": 86_400_000, "expires": format_date(expires()), "httpOnly": true, "path": "/"}, "user": "ana"});
    node_sets(&mut conn, &quoted, "node-sid", &sess).await;
    let before = indexes_and_constraints(&mut conn, &schema, "web_sessions").await;

    let store = common::cps_store(&url, &format!("{schema}.web_sessions")).await;
    store.migrate().await.expect("migrate over Node's table");
    store.migrate().await.expect("and again");

    assert_eq!(
        indexes_and_constraints(&mut conn, &schema, "web_sessions").await,
        before,
        "migrate changed Node's table"
    );
    let loaded = store
        .load(
            &SessionId::from("node-sid"),
            expires() - Duration::from_secs(1),
        )
        .await
        .unwrap()
        .expect("Node's session");
    assert_eq!(loaded.data["user"], "ana");
}

#[tokio::test]
async fn rows_are_what_connect_pg_simple_writes() {
    let Some(url) = common::url() else { return };
    let (store, quoted, _cleanup) = migrated(&url).await;
    let mut conn = common::admin(&url).await;

    let id = SessionId::from("V1StGXR8_Z5jdHi6B-myTV1StGXR8_Z5");
    let now = expires() - Duration::from_secs(86_400);
    let record = Record {
        data: json!({"page_views": 1, "user": {"name": "ana", "roles": []}})
            .as_object()
            .cloned()
            .unwrap(),
        meta: meta_until_expires(now),
    };
    store.create(&id, &record).await.unwrap();

    // sid: the id itself.
    let (sid, expire_matches, expire_text): (String, bool, String) = sqlx::query_as(&format!(
        "SELECT sid, expire = to_timestamp($1), expire::text FROM {quoted}"
    ))
    .bind(ceil_seconds(EXPIRES_MS))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(sid, id.as_str());
    // expire: to_timestamp(ceil(expires / 1000)), here (UTC connections) the next second.
    assert!(expire_matches, "expire is {expire_text}");
    assert_eq!(expire_text, "2035-06-01 12:00:01");

    // sess: express-session's JSON, data beside the cookie.
    let sess = sess_of(&mut conn, &quoted, id.as_str()).await;
    assert_eq!(
        sess,
        json!({
            "cookie": {
                "originalMaxAge": 86_400_000,
                "expires": "2035-06-01T12:00:00.250Z",
                "httpOnly": true,
                "path": "/",
            },
            "page_views": 1,
            "user": {"name": "ana", "roles": []},
        })
    );

    // After an update and a touch, still the same shape.
    let mut changes = Changes::default();
    changes.set("page_views", json!(2));
    let later = Meta {
        last_active: now + Duration::from_millis(60_500),
        expires_at: expires() + Duration::from_millis(60_500),
        ..record.meta
    };
    assert_eq!(
        store.update(&id, &changes, &later).await.unwrap(),
        WriteOutcome::Applied
    );
    let sess = sess_of(&mut conn, &quoted, id.as_str()).await;
    assert_eq!(sess["page_views"], 2);
    assert_eq!(
        sess["cookie"],
        json!({"originalMaxAge": 86_400_000, "expires": "2035-06-01T12:01:00.750Z", "httpOnly": true, "path": "/"})
    );
    let expire: String = sqlx::query_scalar(&format!("SELECT expire::text FROM {quoted}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(expire, "2035-06-01 12:01:01");
}

#[tokio::test]
async fn a_row_node_wrote_loads_typed_and_survives_an_update_of_another_key() {
    let Some(url) = common::url() else { return };
    let (store, quoted, _cleanup) = migrated(&url).await;
    let mut conn = common::admin(&url).await;

    // As express-session 1.19 serializes it, key order and all.
    let node_json = format!(
        r#"{{"cookie":{{"originalMaxAge":86400000,"expires":"{}","secure":false,"httpOnly":true,"path":"/","sameSite":"lax"}},"max":9007199254740991,"neg":-42,"float":2.5,"s":"ñandú \"quoted\" \\ /","t":true,"f":false,"nothing":null,"nested":{{"a":{{"b":[1,{{"c":"d"}}]}}}},"list":[1,"two",false],"empty":[],"emptyObj":{{}}}}"#,
        format_date(expires())
    );
    sqlx::query(&format!(
        "INSERT INTO {quoted} VALUES ($1, $2::json, to_timestamp($3))"
    ))
    .bind("node-made-sid")
    .bind(&node_json)
    .bind(ceil_seconds(EXPIRES_MS))
    .execute(&mut conn)
    .await
    .unwrap();

    let id = SessionId::from("node-made-sid");
    let now = expires() - Duration::from_secs(3600);
    let loaded = store.load(&id, now).await.unwrap().expect("Node's session");
    let expected_data = json!({
        "max": 9_007_199_254_740_991_u64,
        "neg": -42,
        "float": 2.5,
        "s": "ñandú \"quoted\" \\ /",
        "t": true,
        "f": false,
        "nothing": null,
        "nested": {"a": {"b": [1, {"c": "d"}]}},
        "list": [1, "two", false],
        "empty": [],
        "emptyObj": {},
    });
    assert_eq!(Value::Object(loaded.data.clone()), expected_data);
    assert_eq!(loaded.data["max"].as_u64(), Some(9_007_199_254_740_991));
    assert_eq!(
        loaded.meta,
        Meta {
            created_at: expires() - Duration::from_secs(86_400),
            last_active: expires() - Duration::from_secs(86_400),
            expires_at: expires(),
            expiry: Some(Expiry::new(Duration::from_secs(86_400), Duration::MAX)),
        }
    );

    // Rust changes another key; everything Node wrote stays as it was.
    let mut changes = Changes::default();
    changes.set("page_views", json!(1));
    let meta = Meta {
        last_active: now,
        expires_at: now + Duration::from_secs(86_400),
        ..loaded.meta
    };
    assert_eq!(
        store.update(&id, &changes, &meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let mut expected: Value = serde_json::from_str(&node_json).unwrap();
    expected["page_views"] = json!(1);
    expected["cookie"]["expires"] = json!(format_date(now + Duration::from_secs(86_400)));
    let stored = sess_of(&mut conn, &quoted, "node-made-sid").await;
    assert_eq!(stored, expected);
    assert_eq!(stored["max"].as_u64(), Some(9_007_199_254_740_991));
    let reloaded = store.load(&id, now).await.unwrap().expect("still there");
    let mut expected_data = expected_data;
    expected_data["page_views"] = json!(1);
    assert_eq!(Value::Object(reloaded.data), expected_data);
}

#[tokio::test]
async fn a_session_node_touched_lives_until_its_expire() {
    let Some(url) = common::url() else { return };
    let (store, quoted, _cleanup) = migrated(&url).await;
    let mut conn = common::admin(&url).await;

    let sess = json!({"cookie": {"originalMaxAge": 60_000, "expires": format_date(expires()), "httpOnly": true, "path": "/"}, "k": 1});
    node_sets(&mut conn, &quoted, "touched", &sess).await;
    // connect-pg-simple's touch moves `expire` only: the cookie keeps its old expires.
    let touched_until = EXPIRES_MS + 45_000;
    sqlx::query(&format!(
        "UPDATE {quoted} SET expire = to_timestamp($1) WHERE sid = $2 RETURNING sid"
    ))
    .bind(ceil_seconds(touched_until))
    .bind("touched")
    .execute(&mut conn)
    .await
    .unwrap();

    let id = SessionId::from("touched");
    let expire = from_unix_millis(ceil_seconds(touched_until) * 1000);
    let past_cookie = expires() + Duration::from_secs(10);
    let loaded = store
        .load(&id, past_cookie)
        .await
        .unwrap()
        .expect("Node still serves it: so must we");
    assert_eq!(loaded.meta.expires_at, expire);
    assert_eq!(loaded.meta.last_active, expire - Duration::from_secs(60));

    // And it can be written, which brings the cookie back in line.
    let mut changes = Changes::default();
    changes.set("k", json!(2));
    let meta = Meta {
        last_active: past_cookie,
        expires_at: past_cookie + Duration::from_secs(60),
        ..loaded.meta
    };
    assert_eq!(
        store.update(&id, &changes, &meta).await.unwrap(),
        WriteOutcome::Applied
    );
    let stored = sess_of(&mut conn, &quoted, "touched").await;
    assert_eq!(
        stored["cookie"]["expires"],
        json!(format_date(meta.expires_at))
    );

    // Past its `expire`, it is gone for both.
    let end = meta.expires_at;
    assert_eq!(store.load(&id, end).await.unwrap(), None);
    assert_eq!(
        store
            .touch(
                &id,
                &Meta {
                    last_active: end,
                    ..meta
                }
            )
            .await
            .unwrap(),
        WriteOutcome::NotFound
    );
}

#[tokio::test]
async fn expire_follows_the_connection_time_zone_like_node_s() {
    let Some(url) = common::url() else { return };
    let (_, table, _cleanup) = common::migrated(Layout::ConnectPgSimple, &url).await;
    let quoted = format!("\"{table}\"");

    // Connections in the zone Node's use (here: a server whose TimeZone is
    // America/New_York), given to the store as its pool.
    let pool = common::new_york_pool(PgPoolOptions::new().max_connections(1), &url).await;
    let store = PostgresStore::from_pool(pool.clone())
        .with_layout(Layout::ConnectPgSimple)
        .with_table_name(&table)
        .unwrap();

    // Written as Node's connection in that zone writes it: the local wall time.
    let id = SessionId::from("in-new-york");
    let now = expires() - Duration::from_secs(3600);
    let record = Record {
        data: Data::new(),
        meta: meta_until_expires(now),
    };
    store.create(&id, &record).await.unwrap();
    let mut conn = common::admin(&url).await;
    let expire: String = sqlx::query_scalar(&format!(
        "SELECT expire::text FROM {quoted} WHERE sid = 'in-new-york'"
    ))
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        expire, "2035-06-01 08:00:01",
        "not New York's wall time (EDT)"
    );

    // A row Node wrote through such a connection reads back to the same instant.
    let sess =
        json!({"cookie": {"originalMaxAge": null, "expires": null, "httpOnly": true, "path": "/"}});
    sqlx::query(&format!(
        "INSERT INTO {quoted} (sess, expire, sid) SELECT $1::json, to_timestamp($2), $3"
    ))
    .bind(sess.to_string())
    .bind(ceil_seconds(EXPIRES_MS))
    .bind("browser-session")
    .execute(&pool)
    .await
    .unwrap();
    let loaded = store
        .load(&SessionId::from("browser-session"), now)
        .await
        .unwrap()
        .expect("loaded");
    assert_eq!(
        loaded.meta.expires_at,
        from_unix_millis(ceil_seconds(EXPIRES_MS) * 1000),
        "a cookie without expires ends at expire"
    );
    assert_eq!(
        store
            .load(&id, now)
            .await
            .unwrap()
            .map(|r| r.meta.expires_at),
        Some(expires())
    );
}

#[tokio::test]
async fn corrupt_rows_are_decode_errors_and_never_break_writes_of_others() {
    let Some(url) = common::url() else { return };
    let (store, quoted, _cleanup) = migrated(&url).await;
    let mut conn = common::admin(&url).await;
    let now = expires() - Duration::from_secs(60);

    for (sid, sess) in [
        ("array", "[1, 2]"),
        ("cookie-string", r#"{"cookie": "x"}"#),
        ("bad-date", r#"{"cookie": {"expires": "tomorrow"}}"#),
        ("bad-age", r#"{"cookie": {"originalMaxAge": "long"}}"#),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {quoted} VALUES ($1, $2::json, to_timestamp($3))"
        ))
        .bind(sid)
        .bind(sess)
        .bind(ceil_seconds(EXPIRES_MS))
        .execute(&mut conn)
        .await
        .unwrap();
        let result = store.load(&SessionId::from(sid), now).await;
        assert!(
            matches!(result, Err(sessio::store::StoreError::Decode(_))),
            "{sid}: {result:?}"
        );
    }
    // A non-object is never "merged" into something else.
    let mut changes = Changes::default();
    changes.set("k", json!(1));
    let meta = meta_until_expires(now);
    assert_eq!(
        store
            .update(&SessionId::from("array"), &changes, &meta)
            .await
            .unwrap(),
        WriteOutcome::NotFound
    );
    assert_eq!(sess_of(&mut conn, &quoted, "array").await, json!([1, 2]));
    // The sweep works whatever the rows hold.
    assert_eq!(
        store
            .delete_expired(expires() + Duration::from_secs(2))
            .await
            .unwrap(),
        4
    );
}
