//! Versioned schema migrations, run by the application on request.

use sessio::store::unix_millis;
use std::time::SystemTime;

use crate::error::MigrateError;
use crate::SqliteStore;

/// One step of the schema's history. `{table}` in a statement stands for the sessions
/// table's (validated) name.
struct Migration {
    version: i64,
    description: &'static str,
    statements: &'static [&'static str],
}

/// Every migration, oldest first. Never edit one that was released: add a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create the sessions table and its expiry index",
    statements: &[
        r#"CREATE TABLE "{table}" (
             id BLOB PRIMARY KEY NOT NULL,
             data TEXT NOT NULL,
             created_at INTEGER NOT NULL,
             last_active INTEGER NOT NULL,
             expires_at INTEGER NOT NULL,
             idle_timeout_ms INTEGER,
             absolute_lifetime_ms INTEGER
           )"#,
        r#"CREATE INDEX "{table}_expires_at_idx" ON "{table}" (expires_at)"#,
    ],
}];

impl SqliteStore {
    /// The newest schema version this crate knows.
    pub const SCHEMA_VERSION: i64 = 1;

    /// Brings the schema up to [`SCHEMA_VERSION`](Self::SCHEMA_VERSION): applies, in
    /// order, every migration not yet recorded in `{table}_migrations`.
    ///
    /// Each migration runs in its own write transaction (`BEGIN IMMEDIATE`) together with
    /// the row that records it, so it is applied exactly once even when several processes
    /// migrate at the same time: the others wait for the lock, see the record and skip it.
    /// Running it again when up to date changes nothing.
    ///
    /// It is not subject to the per-operation [timeout](Self::with_timeout); each
    /// statement waits at most [`BUSY_TIMEOUT`](Self::BUSY_TIMEOUT) for the lock.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use sessio::SessionStore;
    /// use sessio_sqlite::SqliteStore;
    ///
    /// let store = SqliteStore::connect("sqlite::memory:").await?;
    /// store.migrate().await?;
    /// store.migrate().await?; // already up to date
    /// assert_eq!(store.count().await?, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        let table = self.table_name();
        let migrations = format!("{table}_migrations");
        let bookkeeping = |source| MigrateError::Bookkeeping {
            table: migrations.clone(),
            source,
        };
        sqlx::query(&format!(
            r#"CREATE TABLE IF NOT EXISTS "{migrations}" (
                 version INTEGER PRIMARY KEY NOT NULL,
                 applied_at INTEGER NOT NULL
               )"#
        ))
        .execute(self.pool())
        .await
        .map_err(bookkeeping)?;
        let applied_sql = format!(r#"SELECT COUNT(*) FROM "{migrations}" WHERE version = ?1"#);
        let record_sql =
            format!(r#"INSERT INTO "{migrations}" (version, applied_at) VALUES (?1, ?2)"#);

        for migration in MIGRATIONS {
            let apply = |source| MigrateError::Apply {
                version: migration.version,
                description: migration.description,
                source,
            };
            let mut tx = self
                .pool()
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(bookkeeping)?;
            let applied: i64 = sqlx::query_scalar(&applied_sql)
                .bind(migration.version)
                .fetch_one(&mut *tx)
                .await
                .map_err(bookkeeping)?;
            if applied > 0 {
                tx.rollback().await.map_err(bookkeeping)?;
                continue;
            }
            for statement in migration.statements {
                sqlx::query(&statement.replace("{table}", table))
                    .execute(&mut *tx)
                    .await
                    .map_err(apply)?;
            }
            sqlx::query(&record_sql)
                .bind(migration.version)
                .bind(unix_millis(SystemTime::now()))
                .execute(&mut *tx)
                .await
                .map_err(apply)?;
            tx.commit().await.map_err(apply)?;
            tracing::info!(
                table,
                version = migration.version,
                "applied session store migration"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_ascend_and_end_at_the_schema_version() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(versions.last(), Some(&SqliteStore::SCHEMA_VERSION));
    }
}
