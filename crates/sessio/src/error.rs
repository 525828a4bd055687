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
    /// The session is not bound to a user (see
    /// [`Session::set_user`](crate::Session::set_user)), and the operation needs one.
    #[error("the session is not bound to a user")]
    NotBound,
    /// A value could not be turned into JSON.
    #[error("session value {key:?} could not be serialized")]
    Serialize {
        /// The key being written.
        key: String,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// A stored value does not have the requested type. (What serde said is left out: it
    /// quotes the value, and errors end up in logs.)
    #[error("session value {key:?} is not a {expected}")]
    Deserialize {
        /// The key being read.
        key: String,
        /// The type asked for.
        expected: &'static str,
    },
    /// Another request moved this session to a new id (a login) or ended it while this
    /// one was using it, or this request arrived with an id moved moments ago; nothing
    /// this request changed was kept. Answers `409 Conflict`: a retry carries the
    /// browser's new cookie.
    #[error("the session was moved or ended by another request")]
    Superseded,
    /// The session was changed after the layer had written it and the response had left
    /// (from a streaming body or a spawned task, say). Change it before the handler
    /// returns, calling [`Session::save`](crate::Session::save) if the change must be
    /// stored before a long response.
    #[error("the session cannot change after the response has left")]
    ResponseSent,
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

    /// The status it answers with as a response: `503` for a store failure, `409` when
    /// another request [superseded](Self::Superseded) the session, `500` otherwise.
    #[cfg(feature = "tower")]
    pub(crate) fn status(&self) -> http::StatusCode {
        if self.is_store_failure() {
            http::StatusCode::SERVICE_UNAVAILABLE
        } else if matches!(self, Self::Superseded) {
            http::StatusCode::CONFLICT
        } else {
            http::StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

/// Displays an error followed by its sources, `a: b: c`, for logs: a JSON error only by its
/// kind and position, since serde's messages quote the data, which may be a session's.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut next = Some(self.0);
        let mut separator = "";
        while let Some(error) = next {
            f.write_str(separator)?;
            match error.downcast_ref::<serde_json::Error>() {
                Some(json) => write!(
                    f,
                    "JSON {:?} error at line {} column {}",
                    json.classify(),
                    json.line(),
                    json.column()
                )?,
                None => write!(f, "{error}")?,
            }
            separator = ": ";
            next = error.source();
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

    #[test]
    fn chain_never_quotes_json_data() {
        let json = serde_json::from_str::<u64>("\"the user's secret\"").unwrap_err();
        assert!(
            json.to_string().contains("secret"),
            "serde quotes it: {json}"
        );
        let error = SessionError::Load(StoreError::Decode(Box::new(json)));
        let shown = Chain(&error).to_string();
        assert_eq!(
            shown,
            "loading the session failed: stored session could not be decoded: JSON Data error at line 1 column 19"
        );
    }
}
