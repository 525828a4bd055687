//! Versioned schema migrations, run on request.

use sqlx::{Executor as _, PgPool, Postgres, Transaction};

use crate::table::TableName;

/// Why [`PostgresStore::migrate`](crate::PostgresStore::migrate) failed. Migrations that
/// completed before the failure stay applied; running `migrate` again resumes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// Connecting, taking the migration lock, or reading the migrations table failed.
    #[error("could not prepare the migrations of session table {table}")]
    Prepare {
        /// The sessions table being migrated.
        table: String,
        /// What PostgreSQL or the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed and was rolled back.
    #[error("migration {version} ({description}) of session table {table} failed")]
    Apply {
        /// The sessions table being migrated.
        table: String,
        /// The failed migration's version.
        version: i32,
        /// What the migration does.
        description: &'static str,
        /// What PostgreSQL or the driver said.
        #[source]
        source: sqlx::Error,
    },
}

/// One schema change, applied once, in its own transaction.
struct Migration {
    version: i32,
    description: &'static str,
    sql: fn(&TableName) -> String,
}

/// Every migration, in the order they are applied. Append only: never edit or reorder.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "create the sessions table",
    sql: v1,
}];

/// The schema version [`migrate`] brings a table to.
pub(crate) const LATEST_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

fn v1(table: &TableName) -> String {
    let t = table.quoted();
    let index = table.expires_index_quoted();
    format!(
        "CREATE TABLE IF NOT EXISTS {t} (
            id BYTEA PRIMARY KEY CHECK (octet_length(id) = 32),
            data JSONB NOT NULL CHECK (jsonb_typeof(data) = 'object'),
            created_at TIMESTAMPTZ NOT NULL,
            last_active TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL,
            idle_timeout_ms BIGINT,
            absolute_lifetime_ms BIGINT
        );
        CREATE INDEX IF NOT EXISTS {index} ON {t} (expires_at);
        COMMENT ON COLUMN {t}.id IS
            'SHA-256 of the session id (sessio::store::storage_key); never the id itself';
        COMMENT ON COLUMN {t}.expires_at IS
            'The session ends at this time unless used again; rows past it are ignored and swept';
        COMMENT ON COLUMN {t}.idle_timeout_ms IS
            'This session''s own idle timeout in milliseconds; NULL for the layer default';
        COMMENT ON COLUMN {t}.absolute_lifetime_ms IS
            'This session''s own absolute lifetime in milliseconds; NULL for the layer default';"
    )
}

/// Where a migration run failed.
enum Failure {
    Prepare(sqlx::Error),
    Apply(&'static Migration, sqlx::Error),
}

/// Applies every migration `table` lacks, each in its own transaction, serialized across
/// processes by a transaction-scoped advisory lock.
pub(crate) async fn migrate(pool: &PgPool, table: &TableName) -> Result<(), MigrateError> {
    run(pool, table).await.map_err(|failure| match failure {
        Failure::Prepare(source) => MigrateError::Prepare {
            table: table.to_string(),
            source,
        },
        Failure::Apply(migration, source) => MigrateError::Apply {
            table: table.to_string(),
            version: migration.version,
            description: migration.description,
            source,
        },
    })
}

async fn run(pool: &PgPool, table: &TableName) -> Result<(), Failure> {
    let record = format!(
        "INSERT INTO {} (version) VALUES ($1)",
        table.migrations_quoted()
    );
    for migration in MIGRATIONS {
        let mut tx = pool.begin().await.map_err(Failure::Prepare)?;
        let pending = lock_and_check(&mut tx, table, migration.version)
            .await
            .map_err(Failure::Prepare)?;
        if !pending {
            tx.rollback().await.map_err(Failure::Prepare)?;
            continue;
        }
        let failed = |source| Failure::Apply(migration, source);
        (&mut *tx)
            .execute((migration.sql)(table).as_str())
            .await
            .map_err(failed)?;
        sqlx::query(&record)
            .persistent(false)
            .bind(migration.version)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(table = %table, version = migration.version, "applied session table migration");
    }
    Ok(())
}

/// Takes the migration lock, creates the schema and migrations table where missing, and
/// tells whether `version` still has to be applied.
async fn lock_and_check(
    tx: &mut Transaction<'static, Postgres>,
    table: &TableName,
    version: i32,
) -> Result<bool, sqlx::Error> {
    if let (Some(schema), Some(schema_lock)) = (table.schema(), table.schema_lock_key()) {
        // Tables of one new schema migrating at once must not race to create it.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(schema_lock)
            .execute(&mut **tx)
            .await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&mut **tx)
                .await?;
        if !exists {
            // Only when missing: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on
            // the database even when the schema exists.
            (&mut **tx)
                .execute(format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"").as_str())
                .await?;
        }
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(table.lock_key())
        .execute(&mut **tx)
        .await?;
    let migrations = table.migrations_quoted();
    (&mut **tx)
        .execute(
            format!(
                "CREATE TABLE IF NOT EXISTS {migrations} (
                    version INT PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )"
            )
            .as_str(),
        )
        .await?;
    let applied: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM {migrations} WHERE version = $1)"
    ))
    .persistent(false)
    .bind(version)
    .fetch_one(&mut **tx)
    .await?;
    Ok(!applied)
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
}
