//! Sessions that belong to users, through a real router: several browsers per user, listing,
//! revoking one, the others, or all, and what a revoked browser sees next.

mod common;

use std::sync::{Arc, OnceLock};

use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use common::{app_with_routes, App, Browser};
use serde_json::{json, Value};
use sessio::{Accounts, Handle, Session, SessionError};

/// The app's routes over `accounts`, which the layer fills in once it is built.
fn routes(accounts: Arc<OnceLock<Accounts>>) -> Router {
    let (a, b, c, d) = (
        accounts.clone(),
        accounts.clone(),
        accounts.clone(),
        accounts,
    );
    Router::new()
        .route(
            "/login-as/{user}",
            post(|session: Session, Path(user): Path<String>| async move {
                session.regenerate().await?;
                session.set_user(user).await?;
                session.set_label("user_agent", "test browser").await?;
                Ok::<_, SessionError>("logged in")
            }),
        )
        .route(
            "/me",
            get(|session: Session| async move {
                Ok::<_, SessionError>(match session.user().await? {
                    Some(user) => (StatusCode::OK, user),
                    None => (StatusCode::UNAUTHORIZED, String::new()),
                })
            }),
        )
        .route(
            "/my-sessions",
            get(move |session: Session| async move {
                let user = session.user().await?.unwrap_or_default();
                let current = session.handle().await?;
                let listed = a.get().unwrap().sessions(&user).await.unwrap();
                let listed: Vec<Value> = listed
                    .iter()
                    .map(|s| {
                        json!({
                            "handle": s.handle,
                            "current": Some(&s.handle) == current.as_ref(),
                            "user_agent": s.labels.get("user_agent"),
                        })
                    })
                    .collect();
                Ok::<_, SessionError>(Value::Array(listed).to_string())
            }),
        )
        .route(
            "/revoke/{handle}",
            post(
                move |session: Session, Path(handle): Path<String>| async move {
                    let user = session.user().await?.unwrap_or_default();
                    let Ok(handle) = handle.parse::<Handle>() else {
                        return Ok::<_, SessionError>(StatusCode::NOT_FOUND);
                    };
                    let found = b.get().unwrap().revoke(&user, &handle).await.unwrap();
                    Ok(if found {
                        StatusCode::NO_CONTENT
                    } else {
                        StatusCode::NOT_FOUND
                    })
                },
            ),
        )
        .route(
            "/revoke-others",
            post(move |session: Session| async move {
                c.get().unwrap().revoke_others(&session).await.unwrap();
                StatusCode::NO_CONTENT
            }),
        )
        .route(
            "/admin/revoke-all/{user}",
            post(move |Path(user): Path<String>| async move {
                d.get().unwrap().revoke_all(&user).await.unwrap();
                StatusCode::NO_CONTENT
            }),
        )
}

fn app() -> App {
    let accounts = Arc::new(OnceLock::new());
    let slot = accounts.clone();
    app_with_routes(routes(accounts), move |layer| {
        let _ = slot.set(layer.accounts());
        layer
    })
}

async fn logged_in(app: &App, user: &str) -> Browser {
    let mut browser = Browser::default();
    let reply = browser.post(app, &format!("/login-as/{user}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(browser.get(app, "/me").await.body, user);
    browser
}

async fn listed(app: &App, browser: &mut Browser) -> Vec<Value> {
    let reply = browser.get(app, "/my-sessions").await;
    assert_eq!(reply.status, StatusCode::OK);
    serde_json::from_str(&reply.body).unwrap()
}

/// The browser's next request has no session, and its cookie is cleared.
async fn is_logged_out(app: &App, browser: &mut Browser) {
    let reply = browser.get(app, "/me").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{reply:?}");
    assert_eq!(
        reply.attribute("Max-Age").as_deref(),
        Some("0"),
        "the stale cookie is not cleared: {reply:?}"
    );
    assert!(browser.cookie.is_none());
}

#[tokio::test]
async fn a_user_lists_their_sessions_and_only_theirs() {
    let app = app();
    // Others' sessions in the same store.
    for n in 0..2000 {
        logged_in(&app, &format!("user{n}")).await;
    }
    let mut laptop = logged_in(&app, "alice").await;
    let _phone = logged_in(&app, "alice").await;
    let _bob = logged_in(&app, "bob").await;

    let sessions = listed(&app, &mut laptop).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == true).count(),
        1,
        "{sessions:?}"
    );
    for session in &sessions {
        assert_eq!(session["user_agent"], "test browser");
        let handle = session["handle"].as_str().unwrap();
        assert!(handle.parse::<Handle>().is_ok());
        // Neither the cookie's id nor anything in it.
        assert!(!laptop.value().unwrap().contains(handle));
    }
}

#[tokio::test]
async fn revoking_one_session_by_handle_ends_only_that_one() {
    let app = app();
    let mut laptop = logged_in(&app, "alice").await;
    let mut phone = logged_in(&app, "alice").await;
    let mut bob = logged_in(&app, "bob").await;
    let sessions = listed(&app, &mut laptop).await;
    let phone_handle = sessions.iter().find(|s| s["current"] == false).unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();

    // Not bob's to revoke, nor a handle at all.
    let path = format!("/revoke/{phone_handle}");
    assert_eq!(bob.post(&app, &path).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        bob.post(&app, "/revoke/nonsense").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(phone.get(&app, "/me").await.body, "alice");

    assert_eq!(
        laptop.post(&app, &path).await.status,
        StatusCode::NO_CONTENT
    );
    is_logged_out(&app, &mut phone).await;
    assert_eq!(laptop.get(&app, "/me").await.body, "alice");
    assert_eq!(listed(&app, &mut laptop).await.len(), 1);
    // Revoked already.
    assert_eq!(laptop.post(&app, &path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoke_others_keeps_the_current_session() {
    let app = app();
    let mut laptop = logged_in(&app, "alice").await;
    let mut phone = logged_in(&app, "alice").await;
    let mut tablet = logged_in(&app, "alice").await;
    let mut bob = logged_in(&app, "bob").await;

    let reply = laptop.post(&app, "/revoke-others").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    is_logged_out(&app, &mut phone).await;
    is_logged_out(&app, &mut tablet).await;
    assert_eq!(laptop.get(&app, "/me").await.body, "alice");
    assert_eq!(bob.get(&app, "/me").await.body, "bob");
}

#[tokio::test]
async fn revoke_all_ends_every_session_of_the_user() {
    let app = app();
    let mut laptop = logged_in(&app, "alice").await;
    let mut phone = logged_in(&app, "alice").await;
    let mut bob = logged_in(&app, "bob").await;

    let reply = bob.post(&app, "/admin/revoke-all/alice").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    is_logged_out(&app, &mut laptop).await;
    is_logged_out(&app, &mut phone).await;
    assert_eq!(bob.get(&app, "/me").await.body, "bob");
}

#[tokio::test]
async fn a_session_rebound_or_cleared_leaves_its_former_user() {
    let app = app();
    let mut browser = logged_in(&app, "alice").await;
    browser.post(&app, "/login-as/bob").await;
    let mut alice = logged_in(&app, "alice").await;
    assert_eq!(listed(&app, &mut alice).await.len(), 1);

    // Clearing the data unbinds the session: it is no one's.
    alice.post(&app, "/clear").await;
    assert_eq!(
        alice.get(&app, "/me").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut carol = logged_in(&app, "carol").await;
    carol.post(&app, "/revoke-others").await;
    let accounts_of_alice = listed(&app, &mut logged_in(&app, "alice").await).await;
    assert_eq!(
        accounts_of_alice.len(),
        1,
        "the cleared session is still alice's"
    );
}

#[tokio::test]
async fn the_owner_key_is_the_librarys() {
    let app = app();
    let mut browser = Browser::default();
    let reply = browser.post(&app, "/set/sessio.owner/mallory").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        browser.get(&app, "/me").await.status,
        StatusCode::UNAUTHORIZED
    );
}
