//! The classic session demo: a page that counts your visits, kept under the session key
//! `page_views` as in express-session's tutorial.

use axum::routing::{get, post};
use axum::Router;
use sessio::{Session, SessionError, SessionLayer};

/// What a first visit sees.
pub const WELCOME: &str = "¡Bienvenido a esta página por primera vez!";

/// `GET /`: counts the visit and says how many there were.
pub async fn page_views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("page_views").await?.unwrap_or(0) + 1;
    session.insert("page_views", views).await?;
    Ok(if views == 1 {
        WELCOME.to_owned()
    } else {
        format!("Has visitado esta página {views} veces")
    })
}

/// What `POST /logout` answers.
pub const LOGGED_OUT: &str = "Sesión cerrada";

/// `POST /logout`: ends the session, in the store and in the browser. Not `GET`: a link
/// prefetched, an image tag on another site or a crawler must not log anyone out.
pub async fn logout(session: Session) -> Result<&'static str, SessionError> {
    session.destroy().await?;
    Ok(LOGGED_OUT)
}

/// The demo's routes behind `sessions`.
pub fn app(sessions: SessionLayer) -> Router {
    Router::new()
        .route("/", get(page_views))
        .route("/logout", post(logout))
        .layer(sessions)
}
