//! Errors of connecting, and how driver errors become [`StoreError`]s.

use std::fmt;

use sessio::store::StoreError;

/// Why [`PostgresStore::connect`](crate::PostgresStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a valid PostgreSQL connection URL.
    #[error("invalid PostgreSQL connection URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The server could not be reached, or refused the connection or the credentials.
    #[error("could not connect to PostgreSQL")]
    Connect(#[source] sqlx::Error),
    /// The server did not complete the connection in time.
    #[error("PostgreSQL did not accept a connection within {0:?}")]
    Timeout(std::time::Duration),
}

/// SQLSTATEs that mean the server cannot serve right now, rather than that the statement
/// is wrong: connection exceptions (class 08), shutdown and startup (57P01-57P03), and
/// too many connections (53300).
fn is_unavailable_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

/// Sorts a driver error into the store error the session layer understands.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.into()),
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. } => StoreError::Decode(error.into()),
        sqlx::Error::Database(db) if db.code().is_some_and(|code| is_unavailable_code(&code)) => {
            StoreError::Unavailable(error.into())
        }
        _ => StoreError::Backend(error.into()),
    }
}

/// A stored row that the driver could read but that is not a valid session.
#[derive(Debug)]
pub(crate) struct CorruptRow(pub(crate) &'static str);

impl fmt::Display for CorruptRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid stored session: {}", self.0)
    }
}

impl std::error::Error for CorruptRow {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(matches!(
            store_error(sqlx::Error::Io(refused)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(sqlx::Error::PoolTimedOut),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            store_error(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
        assert!(is_unavailable_code("08006"));
        assert!(is_unavailable_code("57P01"));
        assert!(!is_unavailable_code("42P01"));
    }

    #[test]
    fn decode_failures_are_decode() {
        assert!(matches!(
            store_error(sqlx::Error::ColumnNotFound("data".into())),
            StoreError::Decode(_)
        ));
        assert!(matches!(
            store_error(sqlx::Error::Decode("bad".into())),
            StoreError::Decode(_)
        ));
    }

    #[test]
    fn anything_else_is_backend() {
        assert!(matches!(
            store_error(sqlx::Error::RowNotFound),
            StoreError::Backend(_)
        ));
        assert!(matches!(
            store_error(sqlx::Error::Protocol("unexpected message".into())),
            StoreError::Backend(_)
        ));
    }
}
