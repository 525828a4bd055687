//! Errors of session operations.

use std::error::Error as StdError;
use std::fmt;

use crate::store::StoreError;

/// Why an operation on a [`Session`](crate::Session) failed.
///
/// With the `axum` feature it is also a response: `503 Service Unavailable` when the store
/// failed, `500 Internal Server Error` otherwise, with an opaque body; the cause goes to
/// `tracing`. So handlers can use `?`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Reading the session from the store failed.
    #[error("loading the session failed")]
    Load(#[source] StoreError),
    /// Writing the session to the store failed.
    #[error("saving the session failed")]
    Save(#[source] StoreError),
    /// Moving the session to a new id failed. The old id still works unless the failure
    /// was in deleting it.
    #[error("regenerating the session id failed")]
    Regenerate(#[source] StoreError),
    /// Removing the session from the store failed; it still exists.
    #[error("destroying the session failed")]
    Destroy(#[source] StoreError),
    /// Every generated id was taken already: the id generator is not random enough.
    #[error("no unused session id after {attempts} attempts; is the id generator random?")]
    IdExhausted {
        /// How many ids were tried.
        attempts: u32,
    },
    /// The key is reserved: in express-session compatibility, `cookie` holds express's
    /// cookie object.
    #[error("session key {key:?} is reserved in express-session compatibility")]
    ReservedKey {
        /// The key.
        key: String,
    },
    /// A value could not be turned into JSON.
    #[error("session value {key:?} could not be serialized")]
    Serialize {
        /// The key being written.
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not have the requested type.
    #[error("session value {key:?} does not have the requested type")]
    Deserialize {
        /// The key being read.
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

impl SessionError {
    /// Whether the store failed (as opposed to a programming error); such failures are
    /// answered with `503 Service Unavailable`.
    pub fn is_store_failure(&self) -> bool {
        matches!(
            self,
            Self::Load(_) | Self::Save(_) | Self::Regenerate(_) | Self::Destroy(_)
        )
    }
}

/// Displays an error followed by its sources: `a: b: c`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_shows_every_cause() {
        let error = SessionError::Save(StoreError::Unavailable("connection refused".into()));
        assert_eq!(
            Chain(&error).to_string(),
            "saving the session failed: session store unavailable: connection refused"
        );
        assert!(error.is_store_failure());
    }
}
