//! The session layer driven through a real axum router, request by request.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use common::*;
use sessio::{
    Clock, CookieConfig, CookieLifetime, CookieRefresh, KeyRing, NewSessions, OnServerError,
    Priority, SameSite, SecurePolicy, SessionStore as _, TrustProxy, UnchangedSessions,
};

#[tokio::test]
async fn first_visit_welcomes_and_later_visits_count() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    let first = browser.get(&app, "/").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, WELCOME);
    assert!(
        first.session_cookie().is_some(),
        "a new session with data gets a cookie"
    );
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 2 veces"
    );
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 3 veces"
    );
    // Another browser has its own session.
    assert_eq!(Browser::default().get(&app, "/").await.body, WELCOME);
}

#[tokio::test]
async fn cookie_has_secure_defaults_and_express_format() {
    let app = app(|l| l);
    let reply = Browser::default().get(&app, "/").await;
    let set = reply.session_cookie().unwrap();
    assert!(set.starts_with("id=s%3A"), "{set}");
    assert!(reply.attribute("HttpOnly").is_some());
    assert_eq!(reply.attribute("SameSite").as_deref(), Some("Lax"));
    assert_eq!(reply.attribute("Path").as_deref(), Some("/"));
    assert!(reply.attribute("Domain").is_none());
    assert!(
        reply.attribute("Secure").is_some(),
        "Secure always: the layer cannot tell HTTPS from an HTTP/1.1 request"
    );
    // Until the absolute deadline: a week by default.
    assert_eq!(reply.attribute("Max-Age").as_deref(), Some("604800"));
}

#[tokio::test]
async fn unchanged_returning_visit_sends_no_cookie() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let reply = browser.get(&app, "/get/page_views").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.session_cookie().is_none());
}

#[tokio::test]
async fn tampered_cookie_gives_a_fresh_session_and_never_reaches_the_store() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    browser.get(&app, "/").await;
    let loads = app.store.counts.load.load(Ordering::SeqCst);

    let value = browser.value().unwrap().to_owned();
    let mut tampered = value.clone().into_bytes();
    let i = tampered.len() - 1;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let mut forger = Browser {
        cookie: Some(format!("{COOKIE}={}", String::from_utf8(tampered).unwrap())),
    };
    assert_eq!(forger.get(&app, "/").await.body, WELCOME);
    assert_eq!(
        app.store.counts.load.load(Ordering::SeqCst),
        loads,
        "forged id was looked up"
    );
    assert_ne!(forger.value(), Some(value.as_str()));
}

#[tokio::test]
async fn unsigned_id_is_ignored() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let id = send(&app.router, browser.request("GET", "/id")).await.body;
    assert!(!id.is_empty());
    let mut unsigned = Browser {
        cookie: Some(format!("{COOKIE}={id}")),
    };
    assert_eq!(unsigned.get(&app, "/").await.body, WELCOME);
    assert_eq!(
        app.store.counts.load.load(Ordering::SeqCst),
        1,
        "only the signed request loaded"
    );
}

#[tokio::test]
async fn validly_signed_unknown_id_gives_a_fresh_session_with_a_new_id() {
    let app = app(|l| l);
    let mut victim = Browser::default();
    victim.get(&app, "/").await;
    // A correctly signed cookie for an id that no longer exists (e.g. destroyed).
    let stale = victim.clone();
    victim.post(&app, "/destroy").await;
    let mut browser = stale;
    let reply = browser.get(&app, "/").await;
    assert_eq!(reply.body, WELCOME);
    let new_value = browser.value().unwrap();
    assert_ne!(Some(new_value), None);
    assert_ne!(reply.session_cookie(), None);
}

#[tokio::test]
async fn handler_that_never_touches_the_session_costs_no_store_call() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let before = app.store.counts.total();
    let reply = browser.get(&app, "/noop").await;
    assert_eq!(reply.body, "no session here");
    assert!(reply.set_cookies.is_empty());
    assert_eq!(app.store.counts.total(), before);
    // Nor for a visitor without a cookie.
    let reply = Browser::default().get(&app, "/noop").await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(app.store.counts.total(), before);
}

#[tokio::test]
async fn empty_new_session_is_neither_stored_nor_sent_by_default() {
    let app = app(|l| l);
    let reply = Browser::default().get(&app, "/get/anything").await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(app.store.inner_count().await, 0);
    assert_eq!(app.store.counts.total(), 0);
}

#[tokio::test]
async fn save_uninitialized_stores_empty_sessions() {
    let app = app(|l| l.with_new_sessions(NewSessions::SaveAlways));
    let reply = Browser::default().get(&app, "/get/anything").await;
    assert!(reply.session_cookie().is_some());
    assert_eq!(app.store.inner_count().await, 1);
    // Still lazy: an untouched session is not created.
    let reply = Browser::default().get(&app, "/noop").await;
    assert!(reply.set_cookies.is_empty());
    assert_eq!(app.store.inner_count().await, 1);
}

#[tokio::test]
async fn rolling_resends_the_cookie_on_every_response() {
    let app = app(|l| l.with_cookie_refresh(CookieRefresh::EveryResponse));
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let first = browser.value().unwrap().to_owned();
    let reply = browser.get(&app, "/get/page_views").await;
    assert_eq!(reply.body, "1");
    assert!(reply.session_cookie().is_some());
    assert_eq!(
        browser.value(),
        Some(first.as_str()),
        "same session, same cookie"
    );
}

#[tokio::test]
async fn regenerate_moves_data_to_a_new_id_and_kills_the_old_one() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    browser.get(&app, "/").await;
    let old = browser.clone();
    let reply = browser.post(&app, "/regenerate").await;
    assert!(reply.session_cookie().is_some());
    assert_ne!(browser.value(), old.value());
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 3 veces"
    );
    // The old cookie no longer works. Moments after the move it gets a conflict and no
    // cookie (it may be the browser's own request, sent before the new cookie arrived);
    // it is never handed the new session.
    let mut attacker = old;
    let conflict = attacker.get(&app, "/").await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert!(conflict.set_cookies.is_empty());
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(attacker.get(&app, "/").await.body, WELCOME);
    app.store
        .inner
        .delete_expired(app.clock.now())
        .await
        .unwrap();
    assert_eq!(
        app.store.inner_count().await,
        2,
        "regenerated session + attacker's fresh one"
    );
}

#[tokio::test]
async fn login_pattern_clears_then_regenerates() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    browser.post(&app, "/login").await;
    assert_eq!(browser.get(&app, "/get/user").await.body, "alice");
    assert_eq!(
        browser.get(&app, "/").await.body,
        WELCOME,
        "pre-login data dropped"
    );
}

#[tokio::test]
async fn regenerate_failure_keeps_the_user_logged_in() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let before = browser.clone();
    app.store.fail(true);
    let reply = browser.post(&app, "/regenerate").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.set_cookies.is_empty());
    app.store.fail(false);
    assert_eq!(browser.value(), before.value());
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 2 veces"
    );
}

#[tokio::test]
async fn destroy_removes_the_session_and_clears_the_cookie_with_matching_attributes() {
    let app = app(|l| {
        l.with_cookie(
            CookieConfig::default()
                .with_path("/")
                .unwrap()
                .with_domain("example.com")
                .unwrap(),
        )
        .unwrap()
    });
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let old = browser.clone();
    let reply = browser.post(&app, "/destroy").await;
    let set = reply.session_cookie().expect("destroy clears the cookie");
    assert!(set.starts_with("id=;"), "{set}");
    assert_eq!(reply.attribute("Max-Age").as_deref(), Some("0"));
    assert_eq!(reply.attribute("Path").as_deref(), Some("/"));
    assert_eq!(reply.attribute("Domain").as_deref(), Some("example.com"));
    assert!(browser.cookie.is_none());
    assert_eq!(app.store.inner_count().await, 0);
    // A copy of the old cookie is dead too.
    let mut replay = old;
    assert_eq!(replay.get(&app, "/").await.body, WELCOME);
}

#[tokio::test]
async fn reload_drops_unsaved_changes() {
    use axum::routing::post;
    use sessio::{Session, SessionError};
    let extra = axum::Router::new().route(
        "/reload",
        post(|session: Session| async move {
            session.insert("page_views", 100u64).await?;
            session.reload().await?;
            Ok::<_, SessionError>(session.get::<u64>("page_views").await?.unwrap().to_string())
        }),
    );
    let app = app_with_routes(extra, |l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    assert_eq!(browser.post(&app, "/reload").await.body, "1");
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 2 veces"
    );
}

#[tokio::test]
async fn save_writes_once_and_nothing_more_when_unchanged_after() {
    use axum::routing::post;
    use sessio::{Session, SessionError};
    let extra = axum::Router::new().route(
        "/save",
        post(|session: Session| async move {
            session.insert("k", "v").await?;
            session.save().await?;
            Ok::<_, SessionError>("ok")
        }),
    );
    let app = app_with_routes(extra, |l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let writes = |app: &common::App| {
        app.store.counts.update.load(Ordering::SeqCst)
            + app.store.counts.touch.load(Ordering::SeqCst)
    };
    let before = writes(&app);
    browser.post(&app, "/save").await;
    assert_eq!(
        writes(&app),
        before + 1,
        "save() wrote, the end of the request did not"
    );
}

#[tokio::test]
async fn secure_cookie_is_never_sent_over_known_plain_http_and_nothing_is_stored() {
    let app = app(|l| {
        l.with_cookie(CookieConfig::default().with_trust_proxy(TrustProxy::XForwardedProto))
            .unwrap()
    });
    let behind_proxy = |proto: &str| {
        Request::get("/")
            .header("x-forwarded-proto", proto)
            .body(Body::empty())
            .unwrap()
    };
    let reply = send(&app.router, behind_proxy("http")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.set_cookies.is_empty());
    assert_eq!(app.store.inner_count().await, 0, "no orphan session");

    let reply = send(&app.router, behind_proxy("https")).await;
    assert!(reply.attribute("Secure").is_some());
    assert_eq!(app.store.inner_count().await, 1);
}

#[tokio::test]
async fn auto_secure_follows_a_trusted_proxy_only() {
    let forwarded = |trust, proto: &'static str| {
        let app = app(|l| {
            l.with_cookie(
                CookieConfig::default()
                    .with_secure(SecurePolicy::Auto)
                    .with_same_site(SameSite::Auto)
                    .with_trust_proxy(trust),
            )
            .unwrap()
        });
        async move {
            let request = Request::get("/")
                .header("x-forwarded-proto", proto)
                .body(Body::empty())
                .unwrap();
            send(&app.router, request).await
        }
    };
    // The client's value first, the proxy's appended: the proxy's counts.
    let trusted = forwarded(TrustProxy::XForwardedProto, "http, https").await;
    assert!(trusted.attribute("Secure").is_some());
    assert_eq!(trusted.attribute("SameSite").as_deref(), Some("None"));
    let claimed = forwarded(TrustProxy::XForwardedProto, "https, http").await;
    assert!(claimed.attribute("Secure").is_none(), "{claimed:?}");
    assert_eq!(claimed.attribute("SameSite").as_deref(), Some("Lax"));
    let untrusted = forwarded(TrustProxy::Never, "https").await;
    assert!(untrusted.attribute("Secure").is_none());
    assert_eq!(untrusted.attribute("SameSite").as_deref(), Some("Lax"));
}

#[tokio::test]
async fn every_cookie_attribute_can_be_set() {
    let app = app(|l| {
        l.with_cookie(
            CookieConfig::default()
                .with_name("app.sid")
                .unwrap()
                .with_domain("example.com")
                .unwrap()
                .with_http_only(false)
                .with_same_site(SameSite::Strict)
                .with_partitioned(true)
                .with_priority(Priority::High)
                .with_lifetime(CookieLifetime::BrowserSession),
        )
        .unwrap()
    });
    let reply = Browser::default().get(&app, "/").await;
    let set = &reply.set_cookies[0];
    assert!(set.starts_with("app.sid=s%3A"), "{set}");
    for attribute in [
        "Domain=example.com",
        "SameSite=Strict",
        "Partitioned",
        "Secure",
        "Priority=High",
    ] {
        assert!(set.contains(attribute), "{attribute} missing in {set}");
    }
    assert!(
        !set.contains("HttpOnly") && !set.contains("Max-Age") && !set.contains("Expires"),
        "{set}"
    );
}

#[tokio::test]
async fn sessions_exist_only_under_the_cookie_path() {
    use axum::routing::get;
    let extra = axum::Router::new()
        .route("/admin", get(page_views))
        .route("/admin/x", get(page_views))
        .route(
            "/administrator",
            get(|session: Option<sessio::Session>| async move {
                if session.is_some() {
                    "session"
                } else {
                    "no session"
                }
            }),
        )
        .route("/strict", get(page_views));
    let app = app_with_routes(extra, |l| {
        l.with_cookie(CookieConfig::default().with_path("/admin").unwrap())
            .unwrap()
    });
    let mut browser = Browser::default();
    assert_eq!(browser.get(&app, "/admin").await.body, WELCOME);
    assert_eq!(
        browser.get(&app, "/admin/x").await.body,
        "Has visitado esta página 2 veces"
    );
    let outside = browser.get(&app, "/administrator").await;
    assert_eq!(outside.body, "no session");
    assert!(outside.set_cookies.is_empty());
    // A handler that requires a session outside the path gets a clear 500, not a panic.
    assert_eq!(
        browser.get(&app, "/strict").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn rotated_secret_still_verifies_and_the_cookie_is_reissued() {
    let old_app = app_with_keys(KeyRing::new([OLD_SECRET]).unwrap(), |l| l);
    let mut browser = Browser::default();
    browser.get(&old_app, "/").await;
    let old_cookie = browser.value().unwrap().to_owned();

    // Same store, new key ring: the new secret signs, the old one still verifies.
    let router = routes().layer(
        sessio::SessionLayer::new(
            old_app.store.clone(),
            KeyRing::new([SECRET, OLD_SECRET]).unwrap(),
        )
        .with_clock(old_app.clock.clone()),
    );
    let app = common::App {
        router,
        clock: old_app.clock.clone(),
        store: old_app.store.clone(),
    };
    let reply = browser.get(&app, "/get/page_views").await;
    assert_eq!(reply.body, "1");
    assert!(
        reply.session_cookie().is_some(),
        "re-issued with the current secret"
    );
    assert_ne!(browser.value(), Some(old_cookie.as_str()));
    // The re-issued cookie verifies with the new secret alone.
    let router = routes().layer(
        sessio::SessionLayer::new(old_app.store.clone(), KeyRing::new([SECRET]).unwrap())
            .with_clock(old_app.clock.clone()),
    );
    let app = common::App {
        router,
        clock: old_app.clock.clone(),
        store: old_app.store.clone(),
    };
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 2 veces"
    );
}

#[tokio::test]
async fn store_failure_on_save_answers_503_without_set_cookie() {
    let app = app(|l| l);
    app.store.fail(true);
    let reply = Browser::default().get(&app, "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.set_cookies.is_empty());
    assert!(
        !reply.body.contains("switched off"),
        "the cause is not shown to the client"
    );
    app.store.fail(false);
    assert_eq!(
        Browser::default().get(&app, "/").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn store_failure_on_load_answers_503_and_the_session_survives() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    app.store.fail(true);
    let reply = browser.get(&app, "/").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.set_cookies.is_empty());
    app.store.fail(false);
    assert_eq!(
        browser.get(&app, "/").await.body,
        "Has visitado esta página 2 veces"
    );
}

#[tokio::test]
async fn handler_5xx_discards_unsaved_changes_but_keeps_explicit_saves() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    assert_eq!(
        browser.post(&app, "/fail").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(browser.get(&app, "/get/unsaved").await.body, "");
    browser.post(&app, "/save-then-fail").await;
    assert_eq!(browser.get(&app, "/get/saved").await.body, "yes");
    assert_eq!(browser.get(&app, "/get/unsaved").await.body, "");
    // A new visitor whose first request fails gets no session.
    let reply = Browser::default().post(&app, "/fail").await;
    assert!(reply.set_cookies.is_empty());
}

#[tokio::test]
async fn handler_5xx_can_be_configured_to_persist() {
    let app = app(|l| l.with_on_server_error(OnServerError::SaveChanges));
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    browser.post(&app, "/fail").await;
    assert_eq!(browser.get(&app, "/get/unsaved").await.body, "yes");
}

#[tokio::test]
async fn the_store_write_finishes_before_the_response_leaves() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    // Each request's write is complete when its response arrives: no race with the next.
    for expected in 2..=20u64 {
        browser.post(&app, &format!("/set/step/{expected}")).await;
        let stored = app.store.inner_snapshot(browser.clone()).await;
        assert_eq!(
            stored.get("step").and_then(|v| v.as_str()),
            Some(expected.to_string().as_str())
        );
    }
}

#[tokio::test]
async fn remove_and_clear_are_persisted() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.post(&app, "/set/a/1").await;
    browser.post(&app, "/set/b/2").await;
    browser.post(&app, "/remove/a").await;
    assert_eq!(browser.get(&app, "/get/a").await.body, "");
    assert_eq!(browser.get(&app, "/get/b").await.body, "2");
    browser.post(&app, "/clear").await;
    assert_eq!(browser.get(&app, "/get/b").await.body, "");
}

#[tokio::test]
async fn resave_rewrites_unchanged_sessions() {
    let app = app(|l| l.with_unchanged_sessions(UnchangedSessions::Resave));
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let updates = app.store.counts.update.load(Ordering::SeqCst);
    browser.get(&app, "/get/page_views").await;
    assert_eq!(app.store.counts.update.load(Ordering::SeqCst), updates + 1);
}

#[tokio::test]
async fn hostile_cookie_headers_get_a_fresh_session_never_an_error() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let good = browser.cookie.clone().unwrap();
    let huge = format!("{COOKIE}={}", "A".repeat(64 * 1024));
    let headers: Vec<Vec<u8>> = vec![
        huge.into_bytes(),
        format!("{COOKIE}=s%3Aabc.def").into_bytes(),
        b"id=\xff\xfe\xfd; other=\x80".to_vec(),
        b"id=%E0%A4%A; id=%".to_vec(),
        b"id=s%3A%00.%00".to_vec(),
        b";;;;===;=;id".to_vec(),
        b"id=\"s:unterminated".to_vec(),
        b"id=s:.".to_vec(),
    ];
    for raw in headers {
        let request = Request::get("/")
            .header(
                header::COOKIE,
                axum::http::HeaderValue::from_bytes(&raw).unwrap(),
            )
            .body(Body::empty())
            .unwrap();
        let reply = send(&app.router, request).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{:?}",
            String::from_utf8_lossy(&raw)
        );
        assert_eq!(reply.body, WELCOME);
    }
    // A garbage value before the real one hides nothing.
    let request = Request::get("/")
        .header(header::COOKIE, format!("{COOKIE}=s%3Aforged.xxx; {good}"))
        .body(Body::empty())
        .unwrap();
    let reply = send(&app.router, request).await;
    assert_eq!(reply.body, "Has visitado esta página 2 veces");
    assert!(reply.set_cookies.is_empty());
}

#[tokio::test]
async fn raw_ids_do_not_appear_in_debug_output() {
    let app = app(|l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;
    let id = send(&app.router, browser.request("GET", "/id")).await.body;
    let debug = format!("{:?}", app.store.inner.clone());
    assert!(!debug.contains(&id));
    let session_id = sessio::SessionId::from(id.clone());
    assert!(!format!("{session_id:?}").contains(&id));
    assert!(!Duration::from_secs(1).is_zero());
}

mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
        // Anything a header value may carry: tab, visible ASCII and obs-text.
        let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
        let cookieish = prop::collection::vec(byte, 0..300);
        let around_name = ("[ ;=\"%A-Za-z0-9.:+/]{0,40}", "[ ;=\"%A-Za-z0-9.:+/]{0,60}")
            .prop_map(|(a, b)| format!("{a}id={b}").into_bytes());
        prop_oneof![cookieish, around_name]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
        #[test]
        fn any_cookie_header_gets_a_fresh_session(headers in prop::collection::vec(header_bytes(), 1..4)) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let app = app(|l| l);
                let mut request = Request::get("/");
                for raw in &headers {
                    request = request.header(header::COOKIE, axum::http::HeaderValue::from_bytes(raw).unwrap());
                }
                let reply = send(&app.router, request.body(Body::empty()).unwrap()).await;
                prop_assert_eq!(reply.status, StatusCode::OK);
                prop_assert_eq!(reply.body, WELCOME);
                prop_assert_eq!(app.store.counts.load.load(Ordering::SeqCst), 0, "an unsigned id reached the store");
                Ok(())
            })?;
        }
    }
}

#[tokio::test]
async fn express_compatibility_names_and_writes_the_cookie_as_express_does() {
    use axum::routing::post;
    use sessio::{Compatibility, Session, SessionError};
    let reserved = axum::Router::new().route(
        "/reserved",
        post(|session: Session| async move {
            match session.insert("cookie", 1).await {
                Err(SessionError::ReservedKey { key }) => key,
                other => format!("{other:?}"),
            }
        }),
    );
    let app = app_with_routes(reserved, |l| {
        l.with_compatibility(Compatibility::ExpressSession)
    });
    let reply = send(&app.router, Request::get("/").body(Body::empty()).unwrap()).await;
    let set = reply.set_cookies.first().expect("a cookie");
    assert!(set.starts_with("connect.sid=s%3A"), "{set}");
    let attributes: Vec<&str> = set
        .split("; ")
        .skip(1)
        .map(|a| a.split('=').next().unwrap())
        .collect();
    assert_eq!(
        attributes,
        ["Path", "Expires", "HttpOnly", "Secure", "SameSite"],
        "{set}"
    );
    // The cookie round-trips under its express name.
    let cookie = set.split(';').next().unwrap();
    let request = Request::get("/")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        send(&app.router, request).await.body,
        "Has visitado esta página 2 veces"
    );
    let reply = send(
        &app.router,
        Request::post("/reserved").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(reply.body, "cookie");
}
