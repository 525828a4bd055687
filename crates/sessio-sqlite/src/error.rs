//! Errors of connecting, and how sqlx errors map to [`StoreError`].

use sessio::store::StoreError;

/// Why [`SqliteStore::connect`](crate::SqliteStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not start with `sqlite:`.
    #[error("not a SQLite URL: expected sqlite://PATH or sqlite::memory:")]
    NotSqlite,
    /// The URL starts with `sqlite:` but sqlx cannot parse the rest.
    #[error("invalid SQLite URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The database could not be opened (or created).
    #[error("could not open the SQLite database")]
    Connect(#[source] sqlx::Error),
}

/// Why a stored row could not be turned into a record. Never quotes the stored data.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("the data column is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("the data column is JSON but not an object")]
    NotAnObject,
    #[error("the column {column} holds a negative duration")]
    NegativeDuration { column: &'static str },
    #[error("only one of idle_timeout_ms and absolute_lifetime_ms is set")]
    HalfExpiry,
}

/// SQLite's primary result codes that mean "cannot get at the database right now".
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CANTOPEN: i64 = 14;

/// Sorts a sqlx error into the store error kinds the session layer acts on.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    match &error {
        E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Io(_) | E::Tls(_) => {
            StoreError::Unavailable(error.into())
        }
        E::Database(db) => {
            // SQLite reports extended result codes; the low byte is the primary code.
            let primary = db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|code| code & 0xff);
            match primary {
                Some(SQLITE_BUSY | SQLITE_LOCKED | SQLITE_IOERR | SQLITE_CANTOPEN) => {
                    StoreError::Unavailable(error.into())
                }
                _ => StoreError::Backend(error.into()),
            }
        }
        E::Decode(_)
        | E::ColumnDecode { .. }
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::TypeNotFound { .. } => StoreError::Decode(error.into()),
        _ => StoreError::Backend(error.into()),
    }
}
