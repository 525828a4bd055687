//! The validated table name and the statements built from it.

/// A table name that [`SqliteStore::with_table_name`](crate::SqliteStore::with_table_name)
/// rejected: it must be 1 to 63 ASCII letters, digits and underscores, not starting with a
/// digit.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sessio_sqlite::SqliteStore::connect("sqlite::memory:").await?;
/// let error = store.with_table_name("1abc").unwrap_err();
/// assert_eq!(error.name(), "1abc");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid table name {name:?}: use 1 to 63 ASCII letters, digits and underscores, not starting with a digit")]
pub struct InvalidTableName {
    pub(crate) name: String,
}

impl InvalidTableName {
    /// The rejected name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The sessions table's name unless configured otherwise.
pub(crate) const DEFAULT_NAME: &str = "sessio_sessions";

/// A table name that is safe to put into SQL: `[A-Za-z_][A-Za-z0-9_]{0,62}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName(String);

impl TableName {
    pub(crate) const MAX_LEN: usize = 63;

    pub(crate) fn new(name: &str) -> Result<Self, InvalidTableName> {
        let mut chars = name.chars();
        let valid_start = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let valid_rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid_start && valid_rest && name.len() <= Self::MAX_LEN {
            Ok(Self(name.to_owned()))
        } else {
            Err(InvalidTableName {
                name: name.to_owned(),
            })
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TableName {
    fn default() -> Self {
        Self(DEFAULT_NAME.to_owned())
    }
}

/// Every statement the store runs, with the table name filled in.
///
/// Names are always double-quoted, so that a valid name that is also an SQL keyword
/// (`order`) works too.
#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) table: TableName,
    /// Binds id, data, created_at, last_active, expires_at, idle, absolute, now.
    /// Inserts, or replaces a row that expired at `now`; affects no row if the id is live.
    pub(crate) insert: String,
    /// Binds id, now.
    pub(crate) select: String,
    /// Binds id, now.
    pub(crate) select_data: String,
    /// Binds data, created_at, last_active, expires_at, idle, absolute, id, now.
    pub(crate) replace: String,
    /// Binds created_at, last_active, expires_at, idle, absolute, id, now.
    pub(crate) touch: String,
    /// Binds id.
    pub(crate) delete: String,
    /// Binds now, batch size.
    pub(crate) delete_expired: String,
    pub(crate) count: String,
}

impl Sql {
    pub(crate) fn new(table: TableName) -> Self {
        let t = table.as_str();
        Self {
            insert: format!(
                r#"INSERT INTO "{t}"
                     (id, data, created_at, last_active, expires_at, idle_timeout_ms, absolute_lifetime_ms)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                   ON CONFLICT (id) DO UPDATE SET
                     data = excluded.data,
                     created_at = excluded.created_at,
                     last_active = excluded.last_active,
                     expires_at = excluded.expires_at,
                     idle_timeout_ms = excluded.idle_timeout_ms,
                     absolute_lifetime_ms = excluded.absolute_lifetime_ms
                   WHERE "{t}".expires_at <= ?8"#
            ),
            select: format!(
                r#"SELECT data, created_at, last_active, expires_at, idle_timeout_ms, absolute_lifetime_ms
                   FROM "{t}" WHERE id = ?1 AND expires_at > ?2"#
            ),
            select_data: format!(r#"SELECT data FROM "{t}" WHERE id = ?1 AND expires_at > ?2"#),
            replace: format!(
                r#"UPDATE "{t}" SET data = ?1, created_at = ?2, last_active = ?3, expires_at = ?4,
                     idle_timeout_ms = ?5, absolute_lifetime_ms = ?6
                   WHERE id = ?7 AND expires_at > ?8"#
            ),
            touch: format!(
                r#"UPDATE "{t}" SET created_at = ?1, last_active = ?2, expires_at = ?3,
                     idle_timeout_ms = ?4, absolute_lifetime_ms = ?5
                   WHERE id = ?6 AND expires_at > ?7"#
            ),
            delete: format!(r#"DELETE FROM "{t}" WHERE id = ?1"#),
            delete_expired: format!(
                r#"DELETE FROM "{t}" WHERE id IN
                     (SELECT id FROM "{t}" WHERE expires_at <= ?1 LIMIT ?2)"#
            ),
            count: format!(r#"SELECT COUNT(*) FROM "{t}""#),
            table,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_pattern() {
        for valid in ["a", "_", "sessions_v2", "A_1", &"x".repeat(63)] {
            assert!(TableName::new(valid).is_ok(), "{valid:?} rejected");
        }
        for invalid in [
            "",
            "1abc",
            "a;drop",
            "a-b",
            "a b",
            "\"a\"",
            "sessiön",
            &"x".repeat(64),
        ] {
            assert!(TableName::new(invalid).is_err(), "{invalid:?} accepted");
        }
    }
}
