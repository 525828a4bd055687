//! Concurrent requests on one session: nothing lost, nothing resurrected.

mod common;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use common::*;
use sessio::{Session, SessionError};
use tokio::sync::{Barrier, Notify};
use tower::ServiceExt;

const WRITERS: usize = 32;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_writing_distinct_keys_all_survive() {
    // Every handler loads the session, then waits until all have loaded, then writes:
    // a store that wrote whole records would keep only the last writer's key.
    let barrier = Arc::new(Barrier::new(WRITERS));
    let writer =
        Router::new()
            .route(
                "/write/{key}",
                post(
                    |State(barrier): State<Arc<Barrier>>,
                     session: Session,
                     Path(key): Path<String>| async move {
                        let _: Option<u64> = session.get("page_views").await?;
                        barrier.wait().await;
                        session.insert(&key, true).await?;
                        Ok::<_, SessionError>("ok")
                    },
                ),
            )
            .with_state(barrier);
    let app = app_with_routes(writer, |l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;

    let app = Arc::new(app);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|i| {
            let (app, browser) = (app.clone(), browser.clone());
            tokio::spawn(async move {
                send(
                    &app.router,
                    browser.request("POST", &format!("/write/key{i}")),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().status, axum::http::StatusCode::OK);
    }

    let data = app.store.inner_snapshot(browser.clone()).await;
    for i in 0..WRITERS {
        assert_eq!(
            data.get(&format!("key{i}")),
            Some(&serde_json::Value::Bool(true)),
            "key{i} was lost"
        );
    }
    assert_eq!(data.get("page_views"), Some(&serde_json::json!(1)));
    assert_eq!(app.store.inner_count().await, 1);
}

/// Runs a handler that loads the session, lets `interfere` run, then writes.
async fn write_after(interfere: &str) -> (Reply, App, Browser) {
    let loaded = Arc::new(Notify::new());
    let go = Arc::new(Notify::new());
    let slow_writer = Router::new()
        .route(
            "/slow-write",
            post(|State((loaded, go)): State<(Arc<Notify>, Arc<Notify>)>, session: Session| async move {
                let _: Option<u64> = session.get("page_views").await?;
                loaded.notify_one();
                go.notified().await;
                session.insert("late", "write").await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .with_state((loaded.clone(), go.clone()));
    let app = Arc::new(app_with_routes(slow_writer, |l| l));
    let mut browser = Browser::default();
    browser.get(&app, "/").await;

    let slow = {
        let (app, browser) = (app.clone(), browser.clone());
        tokio::spawn(async move { send(&app.router, browser.request("POST", "/slow-write")).await })
    };
    loaded.notified().await;
    let mut other_tab = browser.clone();
    other_tab.post(&app, interfere).await;
    go.notify_one();
    let reply = slow.await.unwrap();
    (reply, Arc::into_inner(app).unwrap(), other_tab)
}

#[tokio::test]
async fn a_write_never_resurrects_a_destroyed_session() {
    let (reply, app, _) = write_after("/destroy").await;
    assert_eq!(
        app.store.inner_count().await,
        0,
        "the destroyed session came back"
    );
    // The handler's answer stands, and no cookie is sent: by the time it arrives, the
    // browser may hold a newer one (from a login right after the logout, say).
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.set_cookies, Vec::<String>::new());
}

#[tokio::test]
async fn a_write_in_flight_during_a_regenerate_reaches_the_new_id() {
    let (reply, app, regenerated) = write_after("/regenerate").await;
    assert_eq!(reply.status, StatusCode::OK);
    // Neither the old id nor a clearing cookie: the browser keeps the regenerated one.
    assert_eq!(reply.set_cookies, Vec::<String>::new());
    let data = app.store.inner_snapshot(regenerated.clone()).await;
    assert_eq!(data.get("late"), Some(&serde_json::json!("write")));
    assert_eq!(data.get("page_views"), Some(&serde_json::json!(1)));
    // The regenerated session and the old id's short-lived marker; never the old session.
    assert_eq!(app.store.inner_count().await, 2);
}

/// A task the handler started still holds the session (in the middle of loading it) when
/// the response is ready: the layer must wait for it and write what it changed, not finish
/// without it.
#[tokio::test]
async fn the_response_waits_for_a_session_call_still_running_in_another_task() {
    let answer = Arc::new(Notify::new());
    let late = Router::new()
        .route(
            "/late",
            get(
                |State(answer): State<Arc<Notify>>, session: Session| async move {
                    let task_session = session.clone();
                    tokio::spawn(async move { task_session.insert("late", true).await });
                    answer.notified().await;
                    "ok"
                },
            ),
        )
        .with_state(answer.clone());
    let app = app_with_routes(late, |l| l);
    let mut browser = Browser::default();
    browser.get(&app, "/").await;

    app.store.load_gate.arm();
    let mut response = std::pin::pin!(app.router.clone().oneshot(browser.request("GET", "/late")));
    let mut still_running = || {
        assert!(
            futures_util::FutureExt::now_or_never(&mut response).is_none(),
            "the response left while a task still held the session"
        );
    };
    // The task only runs while this test yields: wait until it holds the session, loading.
    for _ in 0..1000 {
        still_running();
        if app.store.load_gate.is_holding() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(
        app.store.load_gate.is_holding(),
        "the task never reached the store"
    );
    // The handler answers; the layer must now wait for the task.
    answer.notify_one();
    still_running();
    still_running();
    app.store.load_gate.release();
    assert_eq!(response.await.unwrap().status(), StatusCode::OK);

    assert_eq!(
        browser.get(&app, "/get/late").await.body,
        "true",
        "the task's change was not written"
    );
}
