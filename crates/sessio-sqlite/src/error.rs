//! Errors of connecting, and how SQLite errors map to [`StoreError`].

use rusqlite::ErrorCode;
use sessio::store::StoreError;

/// Why [`SqliteStore::connect`](crate::SqliteStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL does not start with `sqlite:`.
    #[error("not a SQLite URL: expected sqlite://PATH or sqlite::memory:")]
    NotSqlite,
    /// The URL starts with `sqlite:` but the rest is not understood.
    #[error("invalid SQLite URL: {0}")]
    InvalidUrl(&'static str),
    /// The database could not be opened (or created).
    #[error("could not open the SQLite database")]
    Open(#[source] rusqlite::Error),
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

/// Whether SQLite said "cannot get at the database right now", rather than "this failed".
pub(crate) fn is_unavailable(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
        )
    )
}

/// Whether SQLite refused because another connection holds a lock: worth trying again.
pub(crate) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(
        error.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Sorts a SQLite error into the store error kinds the session layer acts on.
pub(crate) fn store_error(error: rusqlite::Error) -> StoreError {
    use rusqlite::Error as E;
    match error {
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::InvalidColumnType(..)
        | E::Utf8Error(_) => StoreError::Decode(error.into()),
        error if is_unavailable(&error) => StoreError::Unavailable(error.into()),
        error => StoreError::Backend(error.into()),
    }
}
