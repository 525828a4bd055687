//! The table a store keeps its sessions in: name validation, the names derived from it,
//! and SQL helpers shared by the layouts.

use std::fmt;

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueFormat, PgValueRef, Postgres};
use sqlx::{Decode, Encode, Type};

/// The longest table name accepted: PostgreSQL truncates identifiers at 63 bytes, and the
/// longest names derived from the table's, `{table}_migrations` and `IDX_{table}_expire`,
/// add 11 (the others: `{table}_sweep_idx` 10, `{table}_pkey` 5).
pub(crate) const MAX_TABLE_LEN: usize = 48;
/// The longest schema name accepted: PostgreSQL's identifier limit.
pub(crate) const MAX_SCHEMA_LEN: usize = 63;

/// Why a table name was refused by
/// [`PostgresStore::with_table_name`](crate::PostgresStore::with_table_name).
///
/// A table name is lowercase ASCII letters, digits and underscores, not starting with a
/// digit, at most 48 characters (so that the migrations table and the index named after
/// it fit PostgreSQL's 63-byte identifier limit); it may be qualified with a schema
/// (`schema.table`, the schema named by the same rules, up to 63 characters).
///
/// ```
/// use sessio_postgres::PostgresStore;
///
/// # fn demo(store: PostgresStore) {
/// let error = store.with_table_name("sessions; DROP TABLE users").unwrap_err();
/// assert_eq!(error.name(), "sessions; DROP TABLE users");
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid table name {name:?}: use lowercase letters, digits and underscores, not \
     starting with a digit, at most {MAX_TABLE_LEN} characters, optionally as schema.table"
)]
pub struct InvalidTableName {
    name: String,
}

impl InvalidTableName {
    /// The refused name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A validated, optionally schema-qualified table name.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    schema: Option<String>,
    table: String,
}

fn is_identifier(part: &str, max_len: usize) -> bool {
    let mut chars = part.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    part.len() <= max_len
        && (first.is_ascii_lowercase() || first == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl TableName {
    pub(crate) fn parse(name: &str) -> Result<Self, InvalidTableName> {
        let invalid = || InvalidTableName {
            name: name.to_owned(),
        };
        let (schema, table) = match name.split_once('.') {
            Some((schema, table)) => (Some(schema), table),
            None => (None, name),
        };
        if !is_identifier(table, MAX_TABLE_LEN)
            || schema.is_some_and(|schema| !is_identifier(schema, MAX_SCHEMA_LEN))
        {
            return Err(invalid());
        }
        Ok(Self {
            schema: schema.map(str::to_owned),
            table: table.to_owned(),
        })
    }

    /// The schema, if the name has one.
    pub(crate) fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The name quoted for SQL, with `suffix` appended to the table part.
    fn quoted_with_suffix(&self, suffix: &str) -> String {
        // Validated names hold no quotes, so quoting needs no escaping.
        match &self.schema {
            Some(schema) => format!("\"{schema}\".\"{}{suffix}\"", self.table),
            None => format!("\"{}{suffix}\"", self.table),
        }
    }

    /// The table, quoted for SQL.
    pub(crate) fn quoted(&self) -> String {
        self.quoted_with_suffix("")
    }

    /// The migrations table, quoted for SQL.
    pub(crate) fn migrations_quoted(&self) -> String {
        self.quoted_with_suffix("_migrations")
    }

    /// The name of the native layout's index on `sweep_after` (unqualified: an index lives
    /// in its table's schema), quoted for SQL.
    pub(crate) fn sweep_index_quoted(&self) -> String {
        format!("\"{}_sweep_idx\"", self.table)
    }

    /// The name of the connect-pg-simple layout's index on `expire` (unqualified),
    /// quoted for SQL: `"IDX_session_expire"` for connect-pg-simple's `session` table.
    pub(crate) fn expire_index_quoted(&self) -> String {
        format!("\"IDX_{}_expire\"", self.table)
    }

    /// The name of the connect-pg-simple layout's primary key constraint (unqualified),
    /// quoted for SQL: `"session_pkey"` for connect-pg-simple's `session` table.
    pub(crate) fn primary_key_quoted(&self) -> String {
        format!("\"{}_pkey\"", self.table)
    }

    /// The advisory-lock key that serializes migrations of this table across processes.
    pub(crate) fn lock_key(&self) -> i64 {
        lock_key(&format!("sessio-postgres:table:{self}"))
    }

    /// The advisory-lock key that serializes creating this table's schema, if it has one.
    pub(crate) fn schema_lock_key(&self) -> Option<i64> {
        let schema = self.schema.as_ref()?;
        Some(lock_key(&format!("sessio-postgres:schema:{schema}")))
    }
}

/// A 64-bit FNV-1a hash of `label`: stable across versions, processes and platforms.
fn lock_key(label: &str) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = label.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    // Reinterpreting the bits: the key only needs to be the same everywhere.
    hash as i64
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

impl fmt::Debug for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Unix milliseconds from 1970 to 2000, PostgreSQL's epoch for timestamps on the wire.
const PG_EPOCH_MILLIS: i64 = 946_684_800_000;

/// A `timestamptz` as Unix milliseconds, sent and read in PostgreSQL's binary form
/// (microseconds since 2000), so that no statement converts timestamps in SQL: those
/// conversions cost more than the rest of a lookup. `infinity` and `-infinity`, which no
/// millisecond count holds, read as `None` (which writes `infinity`); sub-millisecond
/// digits are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgMillis(pub(crate) Option<i64>);

impl PgMillis {
    /// The `timestamptz` OID.
    const TYPE: PgTypeInfo = PgTypeInfo::with_oid(Oid(1184));
}

impl Type<Postgres> for PgMillis {
    fn type_info() -> PgTypeInfo {
        Self::TYPE
    }
}

impl Encode<'_, Postgres> for PgMillis {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let micros = match self.0 {
            None => i64::MAX,
            Some(millis) => millis
                .checked_sub(PG_EPOCH_MILLIS)
                .and_then(|m| m.checked_mul(1000))
                .ok_or("timestamp out of PostgreSQL's range")?,
        };
        buf.extend(&micros.to_be_bytes());
        Ok(IsNull::No)
    }
}

impl Decode<'_, Postgres> for PgMillis {
    fn decode(value: PgValueRef<'_>) -> Result<Self, BoxDynError> {
        if value.format() != PgValueFormat::Binary {
            return Err("timestamptz not in binary form".into());
        }
        let micros = i64::from_be_bytes(value.as_bytes()?.try_into()?);
        if micros == i64::MAX || micros == i64::MIN {
            return Ok(Self(None));
        }
        Ok(Self(Some(micros.div_euclid(1000) + PG_EPOCH_MILLIS)))
    }
}

/// SQL for the timestamp that bigint parameter `param` holds as Unix milliseconds.
///
/// Exact over the whole range (about ±245,000 years), and independent of the session's
/// time zone: the whole hours are added as integer microseconds, the rest (under an hour)
/// as seconds, rounded to the microsecond. (`to_timestamp($1 / 1000.0)` and
/// `$1 * interval '1 millisecond'` both go through a double and lose microseconds on
/// large values.)
pub(crate) fn from_millis(param: &str) -> String {
    format!(
        "('epoch'::timestamptz + make_interval(hours => ({param} / 3600000)::int, \
         secs => ({param} % 3600000)::float8 / 1000))"
    )
}

/// SQL for the Unix milliseconds of timestamp column `column`, as bigint; NULL for
/// `infinity` and `-infinity`, which no bigint holds. Cast, they would fail the whole
/// statement (a `Backend` error: a 503 on every request while the row lives); as NULL, the
/// row fails to decode instead (`StoreError::Decode`: the session counts as absent).
pub(crate) fn to_millis(column: &str) -> String {
    format!("CASE WHEN isfinite({column}) THEN (extract(epoch from {column}) * 1000)::bigint END")
}

/// Rows `delete_expired` removes per statement.
pub(crate) const DELETE_BATCH: i64 = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_schema_qualified_names() {
        for name in ["sessions", "sessions_v2", "_s", "app.sessions", "a1.b2"] {
            assert_eq!(TableName::parse(name).unwrap().to_string(), name);
        }
        assert_eq!(
            TableName::parse("app.sessions").unwrap().quoted(),
            "\"app\".\"sessions\""
        );
        assert_eq!(
            TableName::parse("app.sessions")
                .unwrap()
                .migrations_quoted(),
            "\"app\".\"sessions_migrations\""
        );
        assert_eq!(
            TableName::parse("sessions").unwrap().sweep_index_quoted(),
            "\"sessions_sweep_idx\""
        );
        // connect-pg-simple's own names, for its own table.
        let session = TableName::parse("app.session").unwrap();
        assert_eq!(session.expire_index_quoted(), "\"IDX_session_expire\"");
        assert_eq!(session.primary_key_quoted(), "\"session_pkey\"");
    }

    #[test]
    fn refuses_anything_that_is_not_a_plain_identifier() {
        let too_long = "a".repeat(MAX_TABLE_LEN + 1);
        let long_schema = format!("{}.t", "s".repeat(MAX_SCHEMA_LEN + 1));
        for name in [
            "",
            "a;drop",
            "A-b",
            "Sessions",
            "1abc",
            "a b",
            "a\"b",
            ".t",
            "s.",
            "a.b.c",
            "é",
            &too_long,
            &long_schema,
        ] {
            assert!(TableName::parse(name).is_err(), "{name:?} was accepted");
        }
        assert!(TableName::parse(&"a".repeat(MAX_TABLE_LEN)).is_ok());
        assert!(TableName::parse(&format!("{}.t", "s".repeat(MAX_SCHEMA_LEN))).is_ok());
    }

    #[test]
    fn derived_names_fit_the_identifier_limit() {
        let longest = TableName::parse(&"a".repeat(MAX_TABLE_LEN)).unwrap();
        // Quotes excluded.
        assert!(longest.migrations_quoted().len() - 2 <= 63);
        assert!(longest.sweep_index_quoted().len() - 2 <= 63);
        assert!(longest.expire_index_quoted().len() - 2 <= 63);
        assert!(longest.primary_key_quoted().len() - 2 <= 63);
    }

    #[test]
    fn lock_keys_are_stable_and_differ_per_table() {
        let a = TableName::parse("sessions").unwrap();
        let b = TableName::parse("app.sessions").unwrap();
        assert_eq!(
            a.lock_key(),
            TableName::parse("sessions").unwrap().lock_key()
        );
        assert_ne!(a.lock_key(), b.lock_key());
        assert_eq!(a.schema_lock_key(), None);
        assert_ne!(b.schema_lock_key(), Some(b.lock_key()));
        // FNV-1a's published test vector: the hash must never change between releases.
        assert_eq!(lock_key("a") as u64, 0xaf63_dc4c_8601_ec8c);
    }
}
