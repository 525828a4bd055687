//! Versioned schema migrations, run by the application on request.

use std::time::SystemTime;

use rusqlite::{Connection, TransactionBehavior};
use sessio::store::unix_millis;

use crate::table::TableName;

/// Why [`SqliteStore::migrate`](crate::SqliteStore::migrate) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// The table recording applied migrations could not be created or read.
    #[error("could not read or create the migrations table {table:?}")]
    Bookkeeping {
        /// The migrations table.
        table: String,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A migration failed; it was rolled back, and later ones were not tried.
    #[error("migration {version} ({description}) failed and was rolled back")]
    Apply {
        /// The migration's version.
        version: i64,
        /// What the migration does.
        description: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
}

/// One schema change, applied once, in its own write transaction (append only: never edit
/// or reorder one that was released).
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: fn(&TableName) -> String,
}

/// Every migration of the sessions table, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create the sessions table and its expiry index",
    sql: create_table,
}];

fn create_table(table: &TableName) -> String {
    let table = table.as_str();
    format!(
        r#"CREATE TABLE "{table}" (
             id BLOB PRIMARY KEY NOT NULL,
             data TEXT NOT NULL,
             created_at INTEGER NOT NULL,
             last_active INTEGER NOT NULL,
             expires_at INTEGER NOT NULL,
             idle_timeout_ms INTEGER,
             absolute_lifetime_ms INTEGER
           );
           CREATE INDEX "{table}_expires_at_idx" ON "{table}" (expires_at)"#
    )
}

/// Applies every one of `migrations` that `table` lacks, each in its own write transaction
/// (`BEGIN IMMEDIATE`) with the row that records it, so that processes migrating at once
/// apply each exactly once: the others wait for the lock, see the record and skip it.
pub(crate) fn migrate(
    connection: &mut Connection,
    table: &TableName,
    migrations: &'static [Migration],
) -> Result<(), MigrateError> {
    let migrations_table = format!("{}_migrations", table.as_str());
    let bookkeeping = |source| MigrateError::Bookkeeping {
        table: migrations_table.clone(),
        source,
    };
    connection
        .execute_batch(&format!(
            r#"CREATE TABLE IF NOT EXISTS "{migrations_table}" (
                 version INTEGER PRIMARY KEY NOT NULL,
                 applied_at INTEGER NOT NULL
               )"#
        ))
        .map_err(bookkeeping)?;
    let applied_sql = format!(r#"SELECT COUNT(*) FROM "{migrations_table}" WHERE version = ?1"#);
    let record_sql =
        format!(r#"INSERT INTO "{migrations_table}" (version, applied_at) VALUES (?1, ?2)"#);

    for migration in migrations {
        let apply = |source| MigrateError::Apply {
            version: migration.version,
            description: migration.description,
            source,
        };
        let tx = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(bookkeeping)?;
        let applied: i64 = tx
            .query_row(&applied_sql, [migration.version], |row| row.get(0))
            .map_err(bookkeeping)?;
        if applied > 0 {
            continue; // dropping the transaction rolls it back
        }
        tx.execute_batch(&(migration.sql)(table)).map_err(apply)?;
        tx.execute(
            &record_sql,
            (migration.version, unix_millis(SystemTime::now())),
        )
        .map_err(apply)?;
        tx.commit().map_err(apply)?;
        tracing::info!(
            table = table.as_str(),
            version = migration.version,
            "applied session store migration"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    #[test]
    fn versions_ascend_and_end_at_the_schema_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(versions.last(), Some(&SqliteStore::SCHEMA_VERSION));
    }
}
