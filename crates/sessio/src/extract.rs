//! Using sessions from axum handlers.

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::error::Chain;
use crate::{Session, SessionError};

/// Why the [`Session`] extractor failed: no [`SessionLayer`](crate::SessionLayer) ran for
/// this request, or the request path is outside the cookie path. Answers
/// `500 Internal Server Error`; extract `Option<Session>` where a session is optional.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no session for this request: is SessionLayer installed, and is the path under the cookie path?")]
pub struct MissingSession;

impl IntoResponse for MissingSession {
    fn into_response(self) -> Response {
        tracing::error!("{self}");
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSession;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingSession)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Session>().cloned())
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::CONFLICT {
            tracing::warn!(error = %Chain(&self), "session operation lost a race");
        } else {
            tracing::error!(error = %Chain(&self), "session operation failed");
        }
        status.into_response()
    }
}
