//! The native layout: sessio's own table, keyed by the SHA-256 of the id, with exact
//! millisecond `timestamptz` columns.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, Changes, CreateOutcome, Data, Meta, Record,
    StoreError, WriteOutcome,
};
use sessio::{Expiry, SessionId};
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::Row;

use super::{corrupt, created, written, Backend, Db};
use crate::error::store_error;
use crate::migrate::Migration;
use crate::table::{from_millis, PgMillis, TableName};

/// The table sessions are kept in unless told otherwise.
pub(crate) const DEFAULT_TABLE_NAME: &str = "sessio_sessions";

/// Every migration, in the order they are applied. Append only: never edit or reorder.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create the sessions table",
    sql: v1,
}];

/// The schema version `migrate` brings a native table to.
pub(crate) const LATEST_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

fn v1(table: &TableName) -> String {
    let t = table.quoted();
    let index = table.sweep_index_quoted();
    // No CHECK constraints: PostgreSQL prepares them again for every write, and `load`
    // checks what they would (a row that breaks them is a missing session). The sweep
    // index is on `sweep_after`, not `expires_at`: `expires_at` moves on every write, and
    // a write that changes an indexed column cannot be a HOT update.
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
            id BYTEA PRIMARY KEY,
            data JSONB NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            last_active TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            sweep_after TIMESTAMPTZ NOT NULL,
            idle_timeout_ms BIGINT,
            absolute_lifetime_ms BIGINT
        );
        CREATE INDEX IF NOT EXISTS {index} ON {t} (sweep_after);
        COMMENT ON COLUMN {t}.id IS
            'SHA-256 of the session id (sessio::store::storage_key); never the id itself';
        COMMENT ON COLUMN {t}.expires_at IS
            'The session ends at this time unless used again; rows past it are ignored and swept';
        COMMENT ON COLUMN {t}.sweep_after IS
            'expires_at rounded up to the next hour: most writes leave it as it is';
        COMMENT ON COLUMN {t}.idle_timeout_ms IS
            'This session''s own idle timeout in milliseconds; NULL for the layer default';
        COMMENT ON COLUMN {t}.absolute_lifetime_ms IS
            'This session''s own absolute lifetime in milliseconds; NULL for the layer default';"
    )
}

/// Every statement the native layout runs, built once per table name.
#[derive(Debug)]
struct Statements {
    create: String,
    load: String,
    update: String,
    touch: String,
    delete: String,
    delete_expired: String,
    count: String,
}

impl Statements {
    fn new(table: &TableName) -> Self {
        let t = table.quoted();
        Self {
            // $1 id, $2 data, $3..$5 timestamps, $6..$7 expiry, $8 sweep_after, $9 now. An
            // expired record under the same key counts as absent and is replaced.
            create: format!(
                "INSERT INTO {t} AS t (id, data, created_at, last_active, expires_at, \
                 idle_timeout_ms, absolute_lifetime_ms, sweep_after) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, \
                 created_at = EXCLUDED.created_at, last_active = EXCLUDED.last_active, \
                 expires_at = EXCLUDED.expires_at, idle_timeout_ms = EXCLUDED.idle_timeout_ms, \
                 absolute_lifetime_ms = EXCLUDED.absolute_lifetime_ms, \
                 sweep_after = EXCLUDED.sweep_after \
                 WHERE t.expires_at <= $9"
            ),
            // $1 id, $2 now.
            load: format!(
                "SELECT data, created_at, last_active, expires_at, idle_timeout_ms, \
                 absolute_lifetime_ms FROM {t} WHERE id = $1 AND expires_at > $2"
            ),
            // $1 id, $2 clear, $3 removed keys, $4 set keys, $5..$7 timestamps,
            // $8..$9 expiry, $10 sweep_after, $11 now. One statement: the row lock makes
            // concurrent updates apply one after the other, each to the data the previous
            // one left.
            update: format!(
                "UPDATE {t} SET \
                 data = (CASE WHEN $2 THEN '{{}}'::jsonb ELSE data END - $3::text[]) || $4::jsonb, \
                 created_at = $5, last_active = $6, expires_at = $7, \
                 idle_timeout_ms = $8, absolute_lifetime_ms = $9, sweep_after = $10 \
                 WHERE id = $1 AND expires_at > $11"
            ),
            // $1 id, $2..$4 timestamps, $5..$6 expiry, $7 sweep_after, $8 now.
            touch: format!(
                "UPDATE {t} SET created_at = $2, last_active = $3, expires_at = $4, \
                 idle_timeout_ms = $5, absolute_lifetime_ms = $6, sweep_after = $7 \
                 WHERE id = $1 AND expires_at > $8"
            ),
            delete: format!("DELETE FROM {t} WHERE id = $1"),
            // $1 now (Unix milliseconds, as every layout's sweep takes it), $2 batch size.
            // A record expired at `now` has `sweep_after` before `now` plus the
            // granularity: the index finds those, and the few that expire within that
            // window are left. SKIP LOCKED lets several instances sweep at once without
            // waiting on each other.
            delete_expired: format!(
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} \
                 WHERE sweep_after <= {now} + interval '{SWEEP_GRANULARITY_MS} milliseconds' \
                 AND expires_at <= {now} LIMIT $2 FOR UPDATE SKIP LOCKED)",
                now = from_millis("$1"),
            ),
            count: format!("SELECT count(*) FROM {t}"),
        }
    }
}

/// The native layout on one table.
pub(crate) struct Native {
    table: TableName,
    sql: Statements,
}

impl Native {
    pub(crate) fn new(table: TableName) -> Self {
        Self {
            sql: Statements::new(&table),
            table,
        }
    }
}

/// A statement taking the meta parameters: the five of [`Meta`] in schema order, then
/// `sweep_after`.
trait BindMeta {
    fn bind_meta(self, meta: &MetaParams) -> Self;
}

impl<'q> BindMeta for sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    fn bind_meta(self, meta: &MetaParams) -> Self {
        self.bind(meta.created_at)
            .bind(meta.last_active)
            .bind(meta.expires_at)
            .bind(meta.idle_timeout_ms)
            .bind(meta.absolute_lifetime_ms)
            .bind(meta.sweep_after)
    }
}

/// How far `sweep_after` rounds `expires_at` up: a session active all along moves it (and
/// its index entry) once an hour. A write that leaves it equal leaves the index alone.
const SWEEP_GRANULARITY_MS: i64 = 3_600_000;

/// `sweep_after` for a record ending at `expires_at` (Unix milliseconds).
fn sweep_after(expires_at: i64) -> i64 {
    expires_at
        .div_euclid(SWEEP_GRANULARITY_MS)
        .saturating_add(1)
        .saturating_mul(SWEEP_GRANULARITY_MS)
}

struct MetaParams {
    created_at: PgMillis,
    last_active: PgMillis,
    expires_at: PgMillis,
    idle_timeout_ms: Option<i64>,
    absolute_lifetime_ms: Option<i64>,
    sweep_after: PgMillis,
}

fn millis(time: SystemTime) -> PgMillis {
    PgMillis(Some(unix_millis(time)))
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl From<&Meta> for MetaParams {
    fn from(meta: &Meta) -> Self {
        Self {
            created_at: millis(meta.created_at),
            last_active: millis(meta.last_active),
            expires_at: millis(meta.expires_at),
            sweep_after: PgMillis(Some(sweep_after(unix_millis(meta.expires_at)))),
            idle_timeout_ms: meta.expiry.map(|e| duration_millis(e.idle_timeout())),
            absolute_lifetime_ms: meta.expiry.map(|e| duration_millis(e.absolute_lifetime())),
        }
    }
}

fn non_negative(millis: i64, reason: &'static str) -> Result<Duration, StoreError> {
    u64::try_from(millis)
        .map(Duration::from_millis)
        .map_err(|_| corrupt(reason))
}

/// A timestamp column of the load query, in Unix milliseconds; `infinity` and `-infinity`
/// are corrupt.
fn finite_millis(row: &PgRow, index: usize, reason: &'static str) -> Result<i64, StoreError> {
    let PgMillis(millis) = row.try_get(index).map_err(store_error)?;
    millis.ok_or_else(|| corrupt(reason))
}

/// Reads a row of the load query.
fn decode(row: &PgRow) -> Result<Record, StoreError> {
    // Read as any JSON value, then checked: read straight into a map, a non-object would
    // fail with serde's "invalid type" message, which quotes the value, in the error (and
    // so in the log line of the session layer, which treats the session as absent).
    let Json(data): Json<Value> = row.try_get(0).map_err(store_error)?;
    let Value::Object(data) = data else {
        return Err(corrupt("data is not a JSON object"));
    };
    let created_at = finite_millis(row, 1, "created_at is not a finite time")?;
    let last_active = finite_millis(row, 2, "last_active is not a finite time")?;
    let expires_at = finite_millis(row, 3, "expires_at is not a finite time")?;
    let idle: Option<i64> = row.try_get(4).map_err(store_error)?;
    let absolute: Option<i64> = row.try_get(5).map_err(store_error)?;
    let expiry = match (idle, absolute) {
        (None, None) => None,
        (Some(idle), Some(absolute)) => Some(Expiry::new(
            non_negative(idle, "negative idle_timeout_ms")?,
            non_negative(absolute, "negative absolute_lifetime_ms")?,
        )),
        _ => {
            return Err(corrupt(
                "idle_timeout_ms and absolute_lifetime_ms must be both set or both NULL",
            ))
        }
    };
    Ok(Record {
        data,
        meta: Meta {
            created_at: from_unix_millis(created_at),
            last_active: from_unix_millis(last_active),
            expires_at: from_unix_millis(expires_at),
            expiry,
        },
    })
}

#[async_trait]
impl Backend for Native {
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
        let key = storage_key(id);
        let meta = MetaParams::from(&record.meta);
        // The caller's time: `last_active` of a new record is now.
        let now = millis(record.meta.last_active);
        let result = db
            .bounded(
                sqlx::query(&self.sql.create)
                    .bind(&key[..])
                    .bind(Json(&record.data))
                    .bind_meta(&meta)
                    .bind(now)
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
        let key = storage_key(id);
        let row = db
            .bounded(
                sqlx::query(&self.sql.load)
                    .bind(&key[..])
                    .bind(millis(now))
                    .fetch_optional(db.pool),
            )
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn update(
        &self,
        db: Db<'_>,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
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
        let now = millis(meta.last_active);
        let meta = MetaParams::from(meta);
        let result = db
            .bounded(
                sqlx::query(&self.sql.update)
                    .bind(&key[..])
                    .bind(changes.clears_all())
                    .bind(&removed)
                    .bind(Json(&set))
                    .bind_meta(&meta)
                    .bind(now)
                    .execute(db.pool),
            )
            .await?;
        Ok(written(result.rows_affected()))
    }

    async fn touch(
        &self,
        db: Db<'_>,
        id: &SessionId,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let key = storage_key(id);
        let now = millis(meta.last_active);
        let meta = MetaParams::from(meta);
        let result = db
            .bounded(
                sqlx::query(&self.sql.touch)
                    .bind(&key[..])
                    .bind_meta(&meta)
                    .bind(now)
                    .execute(db.pool),
            )
            .await?;
        Ok(written(result.rows_affected()))
    }

    async fn delete(&self, db: Db<'_>, id: &SessionId) -> Result<(), StoreError> {
        let key = storage_key(id);
        db.bounded(
            sqlx::query(&self.sql.delete)
                .bind(&key[..])
                .execute(db.pool),
        )
        .await?;
        Ok(())
    }

    async fn delete_expired(&self, db: Db<'_>, now: SystemTime) -> Result<u64, StoreError> {
        db.delete_in_batches(&self.sql.delete_expired, unix_millis(now))
            .await
    }

    async fn count(&self, db: Db<'_>) -> Result<u64, StoreError> {
        db.count(&self.sql.count).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1);
        }
        assert_eq!(LATEST_VERSION, MIGRATIONS.len() as i32);
    }

    #[test]
    fn sweep_after_rounds_up_to_the_next_hour() {
        let hour = SWEEP_GRANULARITY_MS;
        assert_eq!(sweep_after(0), hour);
        assert_eq!(sweep_after(1), hour);
        assert_eq!(sweep_after(hour - 1), hour);
        assert_eq!(sweep_after(hour), 2 * hour);
        assert_eq!(sweep_after(-1), 0);
        assert_eq!(sweep_after(i64::MAX), i64::MAX);
        for millis in [-5 * hour - 3, 17, 1_800_000_000_123] {
            assert!(sweep_after(millis) > millis);
            assert!(sweep_after(millis) - millis <= hour);
        }
    }
}
