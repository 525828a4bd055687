//! The connect-pg-simple layout: the table of Node's connect-pg-simple (v10), shared with
//! an Express application running express-session.
//!
//! - `sid`: the session id, raw.
//! - `sess`: express-session's JSON ([`sessio::express`]).
//! - `expire`: `to_timestamp(ceil(expires / 1 s))` into a `timestamp` without time zone,
//!   so in the connection's `TimeZone`, as connect-pg-simple writes it.
//!
//! # When a session ends
//!
//! A row is live at `now` when both hold:
//! - `expire >= to_timestamp(ceil(now / 1 s))`: connect-pg-simple's own `get` filter;
//! - its *effective expiry* is after `now`. That is the cookie's `expires` (millisecond
//!   precision), except when `expire` is later than `ceil(cookie.expires / 1 s)`, or the
//!   cookie has no `expires`: then `expire`. connect-pg-simple's `touch` moves only
//!   `expire` and leaves the stored cookie as it was, so a session Node touched is judged
//!   by its `expire`, as Node judges it.
//!
//! `load` checks the first in SQL and the second in Rust; `update`, `touch` and `create`
//! (which may replace a dead row) check both in SQL, with the same definitions.
//! `delete_expired` sweeps by `expire` alone, like connect-pg-simple's pruning: a row goes
//! once `expire < to_timestamp(ceil(now / 1 s))`, up to a second after its cookie expired.
//!
//! # U+0000
//!
//! `sess` is `json`, which keeps its text as written, so it can hold a string with the
//! character U+0000 (JSON `\u0000`, as `JSON.stringify` writes it). PostgreSQL refuses
//! that character in `jsonb` and in `text`, so every JSON function or operator fails on
//! such a row (even `->` on another key), and the one-statement update and touch cannot
//! run on it. They skip such rows (see [`NUL_ESCAPE`]); when they wrote nothing, the row is
//! locked (`SELECT ... FOR UPDATE`, in a transaction) and, if it holds the escape, its
//! liveness is checked and the changes merged in Rust ([`read`], [`express::merge`]) and
//! the result written back, all under the lock: concurrent writers still apply one after
//! the other, each to the JSON the previous one left. An update whose changes hold U+0000
//! (which its `jsonb` and `text[]` parameters cannot carry) goes that way from the start.
//! `create` counts such a row under its sid as taken, and `load` reads `sess` as text,
//! never through SQL's JSON.

use std::time::SystemTime;

use async_trait::async_trait;
use serde_json::{Map, Value};
use sessio::express::{self, COOKIE_KEY};
use sessio::store::{
    from_unix_millis, unix_millis, with_timeout, Changes, CreateOutcome, Data, Meta, Record,
    StoreError, WriteOutcome,
};
use sessio::SessionId;
use sqlx::types::Json;
use sqlx::{PgConnection, PgExecutor};

use super::{corrupt, created, Backend, Db};
use crate::error::store_error;
use crate::migrate::Migration;
use crate::table::{from_millis, to_millis, TableName};

/// connect-pg-simple's default table name.
pub(crate) const DEFAULT_TABLE_NAME: &str = "session";

/// Every migration of this layout, in the order they are applied. Append only: never
/// edit or reorder.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create connect-pg-simple's session table unless it exists",
    sql: v1,
}];

/// connect-pg-simple's `table.sql`, run only when the table does not exist yet (as its
/// `createTableIfMissing` does): a table Node created is left exactly as it is. For its
/// own `session` table the constraint and index names are connect-pg-simple's; for other
/// table names they are derived from the table's (connect-pg-simple keeps them fixed, so
/// that two such tables in one schema would collide).
fn v1(table: &TableName) -> String {
    // Validated names hold no quotes of either kind: they fit in the literal as they are.
    let t = table.quoted();
    let primary_key = table.primary_key_quoted();
    let index = table.expire_index_quoted();
    format!(
        "DO $sessio$
        BEGIN
            IF to_regclass('{t}') IS NULL THEN
                CREATE TABLE {t} (
                  \"sid\" varchar NOT NULL COLLATE \"default\",
                  \"sess\" json NOT NULL,
                  \"expire\" timestamp(6) NOT NULL
                )
                WITH (OIDS=FALSE);
                ALTER TABLE {t} ADD CONSTRAINT {primary_key} PRIMARY KEY (\"sid\") NOT DEFERRABLE INITIALLY IMMEDIATE;
                CREATE INDEX {index} ON {t} (\"expire\");
            END IF;
        END
        $sessio$"
    )
}

/// A date as JavaScript's `Date.prototype.toJSON` writes it (and as
/// [`express::parse_date`] reads it): only those are cast, so that no stored text can make
/// a statement fail.
const JS_DATE: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?Z?$";

/// SQL for row `t`'s `cookie.expires`, truncated to the millisecond, or NULL.
fn cookie_expires() -> String {
    let text = "(t.sess -> 'cookie' ->> 'expires')";
    format!(
        "date_trunc('milliseconds', CASE WHEN {text} ~ '{JS_DATE}' \
         THEN {text}::timestamp AT TIME ZONE 'UTC' END)"
    )
}

/// SQL for row `t`'s `expire`, as the instant the connection's time zone makes of it,
/// truncated to the millisecond.
const EXPIRE: &str = "date_trunc('milliseconds', t.expire::timestamptz)";

/// SQL: whether row `t` is live, given `now` as ceil(seconds) in `now_seconds` and as
/// milliseconds in `now_millis` (see the module documentation).
fn live(now_seconds: &str, now_millis: &str) -> String {
    let cookie = cookie_expires();
    format!(
        "(t.expire >= to_timestamp({now_seconds}) AND \
         (CASE WHEN {cookie} IS NOT NULL \
               AND {EXPIRE} <= to_timestamp(ceil(extract(epoch from {cookie}))) \
          THEN {cookie} ELSE {EXPIRE} END) > {now})",
        now = from_millis(now_millis),
    )
}

/// SQL: whether row `t`'s `sess` holds the escape `\u0000`, the only spelling of U+0000 in
/// JSON text (or a backslash followed by `u0000`, which costs only the slower write).
/// Tested in a `CASE` before anything reads `sess` as JSON: `CASE` evaluates its branches
/// in order, where `AND` may evaluate its operands in any order.
const NUL_ESCAPE: &str = "strpos(t.sess::text, E'\\\\u0000') > 0";

/// SQL for row `t`'s cookie object (the given defaults where it has none), with the
/// times in `times` (a jsonb parameter) laid over it.
fn cookie(defaults: &str, times: &str) -> String {
    format!(
        "(COALESCE(CASE WHEN jsonb_typeof(t.sess::jsonb -> 'cookie') = 'object' \
         THEN t.sess::jsonb -> 'cookie' END, {defaults}::jsonb) || {times}::jsonb)"
    )
}

/// Every statement this layout runs, built once per table name.
#[derive(Debug)]
struct Statements {
    create: String,
    load: String,
    update: String,
    touch: String,
    lock: String,
    replace: String,
    delete: String,
    delete_expired: String,
    count: String,
}

impl Statements {
    fn new(table: &TableName) -> Self {
        let t = table.quoted();
        Self {
            // $1 sid, $2 sess, $3 expire (s), $4 now (ceil s), $5 now (ms). A dead row
            // under the same sid counts as absent and is replaced.
            create: format!(
                "INSERT INTO {t} AS t (sid, sess, expire) VALUES ($1, $2::json, to_timestamp($3)) \
                 ON CONFLICT (sid) DO UPDATE SET sess = EXCLUDED.sess, expire = EXCLUDED.expire \
                 WHERE CASE WHEN {NUL_ESCAPE} THEN false ELSE NOT {live} END",
                live = live("$4", "$5"),
            ),
            // $1 sid, $2 now (ceil s): connect-pg-simple's `get`. The rest of the check is
            // made on the decoded record.
            load: format!(
                "SELECT t.sess::text, {expire} \
                 FROM {t} AS t WHERE t.sid = $1 AND t.expire >= to_timestamp($2)",
                expire = to_millis(EXPIRE),
            ),
            // $1 sid, $2 clear, $3 removed keys, $4 set keys, $5 cookie times, $6 default
            // cookie, $7 expire (s), $8 now (ceil s), $9 now (ms). One statement: the row
            // lock makes concurrent updates apply one after the other, each to the JSON
            // the previous one left. The cookie is laid over last, so no change can remove
            // or replace it.
            update: format!(
                "UPDATE {t} AS t SET \
                 sess = (((CASE WHEN $2 THEN '{{}}'::jsonb ELSE t.sess::jsonb END) - $3::text[]) \
                         || $4::jsonb || jsonb_build_object('cookie', {cookie}))::json, \
                 expire = to_timestamp($7) \
                 WHERE t.sid = $1 AND CASE WHEN {NUL_ESCAPE} THEN false \
                 ELSE jsonb_typeof(t.sess::jsonb) = 'object' AND {live} END",
                cookie = cookie("$6", "$5"),
                live = live("$8", "$9"),
            ),
            // $1 sid, $2 cookie times, $3 default cookie, $4 expire (s), $5 now (ceil s),
            // $6 now (ms).
            touch: format!(
                "UPDATE {t} AS t SET \
                 sess = (t.sess::jsonb || jsonb_build_object('cookie', {cookie}))::json, \
                 expire = to_timestamp($4) \
                 WHERE t.sid = $1 AND CASE WHEN {NUL_ESCAPE} THEN false \
                 ELSE jsonb_typeof(t.sess::jsonb) = 'object' AND {live} END",
                cookie = cookie("$3", "$2"),
                live = live("$5", "$6"),
            ),
            // $1 sid, $2 now (ceil s): `load`'s query, locking the row (see the module
            // documentation on U+0000).
            lock: format!(
                "SELECT t.sess::text, {expire} \
                 FROM {t} AS t WHERE t.sid = $1 AND t.expire >= to_timestamp($2) FOR UPDATE",
                expire = to_millis(EXPIRE),
            ),
            // $1 sid, $2 sess, $3 expire (s): the write of a row merged in Rust.
            replace: format!(
                "UPDATE {t} SET sess = $2::json, expire = to_timestamp($3) WHERE sid = $1"
            ),
            delete: format!("DELETE FROM {t} WHERE sid = $1"),
            // $1 now (ceil s), $2 batch size: connect-pg-simple's pruning, in batches.
            // SKIP LOCKED lets several instances sweep at once.
            delete_expired: format!(
                "DELETE FROM {t} WHERE sid IN (SELECT sid FROM {t} \
                 WHERE expire < to_timestamp($1) LIMIT $2 FOR UPDATE SKIP LOCKED)"
            ),
            count: format!("SELECT count(*) FROM {t}"),
        }
    }
}

/// The connect-pg-simple layout on one table.
pub(crate) struct ConnectPgSimple {
    table: TableName,
    sql: Statements,
}

impl ConnectPgSimple {
    pub(crate) fn new(table: TableName) -> Self {
        Self {
            sql: Statements::new(&table),
            table,
        }
    }
}

/// `ceil(millis / 1000)`: the whole seconds connect-pg-simple writes and compares.
fn ceil_seconds(millis: i64) -> i64 {
    millis.div_euclid(1000) + i64::from(millis.rem_euclid(1000) != 0)
}

/// `now` as the two bind parameters `live` takes: ceil(seconds), and milliseconds.
fn now_params(now: SystemTime) -> (i64, i64) {
    let millis = unix_millis(now);
    (ceil_seconds(millis), millis)
}

/// The `expire` connect-pg-simple writes for a cookie expiring at `expires_at`.
fn expire_seconds(expires_at: SystemTime) -> i64 {
    ceil_seconds(unix_millis(expires_at))
}

fn decode_error(error: express::DecodeError) -> StoreError {
    StoreError::Decode(Box::new(error))
}

/// The cookie's `originalMaxAge` and `expires` for `meta`, as express-session writes them.
fn cookie_times(meta: &Meta) -> Result<Value, StoreError> {
    let record = Record {
        data: Data::new(),
        meta: *meta,
    };
    // The one definition of these times: `express::encode`'s, read back.
    let encoded = express::encode(&record, &Map::new());
    let mut value: Value = serde_json::from_str(&encoded)
        .map_err(|error| decode_error(express::DecodeError::Json(error)))?;
    value
        .get_mut(COOKIE_KEY)
        .map(Value::take)
        .ok_or_else(|| decode_error(express::DecodeError::Shape))
}

/// What [`NUL_ESCAPE`] tests, on a row's `sess` as read.
fn has_nul_escape(sess: &str) -> bool {
    sess.contains("\\u0000")
}

/// Whether `value` holds U+0000, in a string or an object's key.
fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}

/// An update's changes, or a touch.
#[derive(Clone, Copy)]
enum Write<'a> {
    Update(&'a Changes),
    Touch,
}

impl Write<'_> {
    /// Whether a changed key or a new value holds U+0000, which the one statement's
    /// `jsonb` and `text[]` parameters cannot carry.
    fn holds_nul(self) -> bool {
        match self {
            Write::Update(changes) => changes
                .iter()
                .any(|(key, value)| key.contains('\0') || value.is_some_and(holds_nul)),
            Write::Touch => false,
        }
    }
}

/// Reads a stored row: `sess`, and `expire` in Unix milliseconds. `None` when the row is
/// not live at `now` (see the module documentation).
fn read(sess: &str, expire_millis: i64, now: SystemTime) -> Result<Option<Record>, StoreError> {
    let expire = from_unix_millis(expire_millis);
    let mut record = express::decode(sess, expire).map_err(decode_error)?;
    let cookie_expire = ceil_seconds(unix_millis(record.meta.expires_at)).saturating_mul(1000);
    if expire_millis > cookie_expire {
        // Touched by a store that moves only `expire` (connect-pg-simple's `touch`): the
        // session was last used `originalMaxAge` before it.
        let max_age = record
            .meta
            .expiry
            .map_or(express::DEFAULT_MAX_AGE, |expiry| expiry.idle_timeout());
        let last_active = expire
            .checked_sub(max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        record.meta = Meta {
            created_at: last_active,
            last_active,
            expires_at: expire,
            expiry: record.meta.expiry,
        };
    }
    Ok((record.meta.expires_at > now).then_some(record))
}

#[async_trait]
impl Backend for ConnectPgSimple {
    fn table(&self) -> &TableName {
        &self.table
    }

    fn migrations(&self) -> &'static [Migration] {
        MIGRATIONS
    }

    async fn create(
        &self,
        db: Db<'_>,
        id: &SessionId,
        record: &Record,
    ) -> Result<CreateOutcome, StoreError> {
        let sess = express::encode(record, &express::default_cookie_attributes());
        // The caller's time: `last_active` of a new record is now.
        let (now_seconds, now_millis) = now_params(record.meta.last_active);
        let result = db
            .bounded(
                sqlx::query(&self.sql.create)
                    .bind(id.as_str())
                    .bind(sess)
                    .bind(expire_seconds(record.meta.expires_at))
                    .bind(now_seconds)
                    .bind(now_millis)
                    .execute(db.pool),
            )
            .await?;
        Ok(created(result.rows_affected()))
    }

    async fn load(
        &self,
        db: Db<'_>,
        id: &SessionId,
        now: SystemTime,
    ) -> Result<Option<Record>, StoreError> {
        let (now_seconds, _) = now_params(now);
        let row: Option<(String, Option<i64>)> = db
            .bounded(
                sqlx::query_as(&self.sql.load)
                    .bind(id.as_str())
                    .bind(now_seconds)
                    .fetch_optional(db.pool),
            )
            .await?;
        match row {
            Some((sess, Some(expire))) => read(&sess, expire, now),
            // `expire` is `infinity` (see `to_millis`).
            Some((_, None)) => Err(corrupt("expire is not a finite time")),
            None => Ok(None),
        }
    }

    async fn update(
        &self,
        db: Db<'_>,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        self.write(db, id, Write::Update(changes), meta).await
    }

    async fn touch(
        &self,
        db: Db<'_>,
        id: &SessionId,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        self.write(db, id, Write::Touch, meta).await
    }

    async fn delete(&self, db: Db<'_>, id: &SessionId) -> Result<(), StoreError> {
        db.bounded(
            sqlx::query(&self.sql.delete)
                .bind(id.as_str())
                .execute(db.pool),
        )
        .await?;
        Ok(())
    }

    async fn delete_expired(&self, db: Db<'_>, now: SystemTime) -> Result<u64, StoreError> {
        let (now_seconds, _) = now_params(now);
        db.delete_in_batches(&self.sql.delete_expired, now_seconds)
            .await
    }

    async fn count(&self, db: Db<'_>) -> Result<u64, StoreError> {
        db.count(&self.sql.count).await
    }
}

impl ConnectPgSimple {
    /// An update or touch: the one statement, and for a row it skipped because it holds
    /// U+0000 (or changes it cannot carry), the write under the row's lock (see the module
    /// documentation).
    async fn write(
        &self,
        db: Db<'_>,
        id: &SessionId,
        write: Write<'_>,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        with_timeout(db.timeout, async {
            if !write.holds_nul() && self.statement(db.pool, id, write, meta).await? > 0 {
                return Ok(WriteOutcome::Applied);
            }
            self.write_locked(db, id, write, meta).await
        })
        .await
    }

    /// The row, locked: one holding U+0000 (or about to) is checked and merged here; any
    /// other is left to the statement, run again under the lock (the row may have changed
    /// since the statement skipped it).
    async fn write_locked(
        &self,
        db: Db<'_>,
        id: &SessionId,
        write: Write<'_>,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let mut tx = db.pool.begin().await.map_err(store_error)?;
        match self.write_in(&mut tx, id, write, meta).await {
            Ok(0) => {
                // Ended explicitly, not by dropping the transaction: that queues the
                // rollback for the connection's next use, and the row stays locked until
                // then.
                tx.rollback().await.map_err(store_error)?;
                Ok(WriteOutcome::NotFound)
            }
            Ok(_) => {
                tx.commit().await.map_err(store_error)?;
                Ok(WriteOutcome::Applied)
            }
            Err(error) => {
                // The error is the one to report; a connection too broken to roll back is
                // closed by the pool.
                let _ = tx.rollback().await;
                Err(error)
            }
        }
    }

    /// [`write_locked`](Self::write_locked)'s work inside its transaction: how many rows
    /// it wrote.
    async fn write_in(
        &self,
        conn: &mut PgConnection,
        id: &SessionId,
        write: Write<'_>,
        meta: &Meta,
    ) -> Result<u64, StoreError> {
        let (now_seconds, _) = now_params(meta.last_active);
        let row: Option<(String, Option<i64>)> = sqlx::query_as(&self.sql.lock)
            .bind(id.as_str())
            .bind(now_seconds)
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
        match row {
            None => Ok(0),
            Some((sess, _)) if !has_nul_escape(&sess) && !write.holds_nul() => {
                self.statement(conn, id, write, meta).await
            }
            Some((_, None)) => Err(corrupt("expire is not a finite time")),
            Some((sess, Some(expire))) => {
                if read(&sess, expire, meta.last_active)?.is_none() {
                    return Ok(0);
                }
                let none = Changes::default();
                let changes = match write {
                    Write::Update(changes) => changes,
                    Write::Touch => &none,
                };
                let merged = express::merge(&sess, changes, meta).map_err(decode_error)?;
                let result = sqlx::query(&self.sql.replace)
                    .bind(id.as_str())
                    .bind(merged)
                    .bind(expire_seconds(meta.expires_at))
                    .execute(conn)
                    .await
                    .map_err(store_error)?;
                Ok(result.rows_affected())
            }
        }
    }

    /// The one-statement update or touch, over `executor`; how many rows it wrote.
    async fn statement<'e>(
        &self,
        executor: impl PgExecutor<'e>,
        id: &SessionId,
        write: Write<'_>,
        meta: &Meta,
    ) -> Result<u64, StoreError> {
        let (now_seconds, now_millis) = now_params(meta.last_active);
        let Write::Update(changes) = write else {
            let result = sqlx::query(&self.sql.touch)
                .bind(id.as_str())
                .bind(Json(cookie_times(meta)?))
                .bind(Json(express::default_cookie_attributes()))
                .bind(expire_seconds(meta.expires_at))
                .bind(now_seconds)
                .bind(now_millis)
                .execute(executor)
                .await
                .map_err(store_error)?;
            return Ok(result.rows_affected());
        };
        let mut set = Data::new();
        let mut removed = Vec::new();
        for (name, value) in changes.iter() {
            match value {
                Some(value) => {
                    set.insert(name.to_owned(), value.clone());
                }
                None => removed.push(name),
            }
        }
        let result = sqlx::query(&self.sql.update)
            .bind(id.as_str())
            .bind(changes.clears_all())
            .bind(&removed)
            .bind(Json(&set))
            .bind(Json(cookie_times(meta)?))
            .bind(Json(express::default_cookie_attributes()))
            .bind(expire_seconds(meta.expires_at))
            .bind(now_seconds)
            .bind(now_millis)
            .execute(executor)
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn seconds_round_up_like_math_ceil() {
        assert_eq!(ceil_seconds(0), 0);
        assert_eq!(ceil_seconds(1), 1);
        assert_eq!(ceil_seconds(999), 1);
        assert_eq!(ceil_seconds(1000), 1);
        assert_eq!(ceil_seconds(1001), 2);
        assert_eq!(ceil_seconds(1_764_127_670_123), 1_764_127_671);
        assert_eq!(ceil_seconds(-1), 0);
        assert_eq!(ceil_seconds(-1000), -1);
        assert_eq!(ceil_seconds(-1001), -1);
    }

    #[test]
    fn cookie_times_are_express_session_s() {
        let expires = from_unix_millis(1_764_127_670_123);
        let meta = Meta {
            created_at: expires - Duration::from_secs(120),
            last_active: expires - Duration::from_secs(60),
            expires_at: expires,
            expiry: None,
        };
        assert_eq!(
            cookie_times(&meta).unwrap(),
            json!({"originalMaxAge": 60000, "expires": "2025-11-26T03:27:50.123Z"})
        );
    }

    const STORED: &str = r#"{"cookie":{"originalMaxAge":60000,"expires":"2025-11-26T03:27:50.123Z","httpOnly":true,"path":"/"},"n":1}"#;

    #[test]
    fn the_cookie_decides_while_expire_is_what_a_save_writes() {
        let expires = from_unix_millis(1_764_127_670_123);
        let record = read(
            STORED,
            1_764_127_671_000,
            expires - Duration::from_millis(1),
        )
        .unwrap()
        .expect("live 1 ms before the cookie expires");
        assert_eq!(record.meta.expires_at, expires);
        assert_eq!(record.meta.last_active, expires - Duration::from_secs(60));
        assert_eq!(read(STORED, 1_764_127_671_000, expires).unwrap(), None);
    }

    #[test]
    fn a_later_expire_means_a_touch_that_left_the_cookie_behind() {
        let expire = from_unix_millis(1_764_127_700_000);
        let record = read(
            STORED,
            1_764_127_700_000,
            from_unix_millis(1_764_127_690_000),
        )
        .unwrap()
        .expect("live until its expire");
        assert_eq!(record.meta.expires_at, expire);
        assert_eq!(record.meta.last_active, expire - Duration::from_secs(60));
        assert_eq!(record.meta.created_at, record.meta.last_active);
        assert_eq!(read(STORED, 1_764_127_700_000, expire).unwrap(), None);
    }

    #[test]
    fn a_cookie_without_expires_uses_expire() {
        let stored =
            r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"}}"#;
        let expire = from_unix_millis(1_764_127_700_000);
        let record = read(stored, 1_764_127_700_000, expire - Duration::from_secs(1))
            .unwrap()
            .unwrap();
        assert_eq!(record.meta.expires_at, expire);
        assert_eq!(record.meta.last_active, expire - express::DEFAULT_MAX_AGE);
    }

    #[test]
    fn bad_json_is_a_decode_error() {
        for bad in ["[]", r#"{"cookie":{"expires":"soon"}}"#, "{"] {
            assert!(
                matches!(
                    read(bad, 0, SystemTime::UNIX_EPOCH),
                    Err(StoreError::Decode(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn versions_increase_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1);
        }
    }

    #[test]
    fn u0000_is_found_in_rows_and_in_changes() {
        assert!(has_nul_escape(r#"{"a":"x\u0000y"}"#));
        assert!(!has_nul_escape(r#"{"a":"x\u0001y","b":"\\"}"#));
        let mut changes = Changes::default();
        changes.set("plain", json!({"list": ["x", 1]}));
        assert!(!Write::Update(&changes).holds_nul());
        assert!(!Write::Touch.holds_nul());
        let mut nested = changes.clone();
        nested.set("k", json!({"list": ["x\u{0}y"]}));
        assert!(Write::Update(&nested).holds_nul());
        let mut key = changes.clone();
        key.set("k\u{0}", json!(1));
        assert!(Write::Update(&key).holds_nul());
        let mut removed = changes;
        removed.remove("k\u{0}");
        assert!(Write::Update(&removed).holds_nul());
    }

    #[test]
    fn the_table_is_connect_pg_simple_s() {
        let sql = v1(&TableName::parse("session").unwrap());
        for part in [
            "IF to_regclass('\"session\"') IS NULL",
            "CREATE TABLE \"session\"",
            "\"sid\" varchar NOT NULL COLLATE \"default\"",
            "\"sess\" json NOT NULL",
            "\"expire\" timestamp(6) NOT NULL",
            "WITH (OIDS=FALSE)",
            "ALTER TABLE \"session\" ADD CONSTRAINT \"session_pkey\" PRIMARY KEY (\"sid\") NOT DEFERRABLE INITIALLY IMMEDIATE",
            "CREATE INDEX \"IDX_session_expire\" ON \"session\" (\"expire\")",
        ] {
            assert!(sql.contains(part), "missing {part}: {sql}");
        }
    }
}
