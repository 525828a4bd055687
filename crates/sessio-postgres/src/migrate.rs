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

/// One schema change, applied once, in its own transaction. Each layout has its own list
/// (append only: never edit or reorder one).
pub(crate) struct Migration {
    pub(crate) version: i32,
    pub(crate) description: &'static str,
    pub(crate) sql: fn(&TableName) -> String,
}

/// Where a migration run failed.
enum Failure {
    Prepare(sqlx::Error),
    Apply(&'static Migration, sqlx::Error),
}

/// Applies every one of `migrations` that `table` lacks, each in its own transaction,
/// serialized across processes by a transaction-scoped advisory lock.
pub(crate) async fn migrate(
    pool: &PgPool,
    table: &TableName,
    migrations: &'static [Migration],
) -> Result<(), MigrateError> {
    run(pool, table, migrations)
        .await
        .map_err(|failure| match failure {
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

async fn run(
    pool: &PgPool,
    table: &TableName,
    migrations: &'static [Migration],
) -> Result<(), Failure> {
    let record = format!(
        "INSERT INTO {} (version) VALUES ($1)",
        table.migrations_quoted()
    );
    for migration in migrations {
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
