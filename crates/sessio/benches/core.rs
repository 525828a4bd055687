//! Ids, signing, and whole requests through the session layer with the memory store.

use axum::body::Body;
use axum::http::{header, Request};
use axum::routing::get;
use axum::Router;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::BodyExt;
use sessio::{IdGenerator, KeyRing, MemoryStore, RandomIdGenerator, SessionLayer};
use sessio::{Session, SessionError};
use tower::ServiceExt;

const SECRET: &str = "benchmark secret, not for production use";

/// The page-views handler: reads and increments `page_views`.
async fn count(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("page_views").await?.unwrap_or(0) + 1;
    session.insert("page_views", views).await?;
    Ok(format!("Has visitado esta página {views} veces"))
}

/// Reads `page_views` without changing the session.
async fn peek(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("page_views").await?.unwrap_or(0);
    Ok(format!("Visitas: {views}"))
}

fn routes() -> Router {
    Router::new()
        .route("/", get(count))
        .route("/peek", get(peek))
}

fn ids_and_signing(c: &mut Criterion) {
    let ids = RandomIdGenerator::default();
    c.bench_function("id/generate", |b| b.iter(|| ids.generate()));

    let keys = KeyRing::new([SECRET]).unwrap();
    let id = ids.generate();
    c.bench_function("cookie/sign", |b| b.iter(|| keys.sign(&id)));
    let signed = keys.sign(&id);
    c.bench_function("cookie/verify", |b| b.iter(|| keys.verify(&signed)));
    let rotated = KeyRing::new(["a newer benchmark secret, 32+ bytes", SECRET]).unwrap();
    c.bench_function("cookie/verify-with-2-secrets", |b| {
        b.iter(|| rotated.verify(&signed))
    });
    let forged = format!("{}x", &signed[..signed.len() - 1]);
    c.bench_function("cookie/reject-forged", |b| b.iter(|| keys.verify(&forged)));
}

async fn call(router: &Router, cookie: Option<&str>, path: &str) -> Option<String> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert!(response.status().is_success());
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    response.into_body().collect().await.unwrap();
    set_cookie
}

fn requests(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let baseline = Router::new()
        .route("/", get(|| async { "Has visitado esta página 1 veces" }))
        .route("/peek", get(|| async { "Visitas: 1" }));
    let layer = SessionLayer::new(MemoryStore::new(), KeyRing::new([SECRET]).unwrap());
    let sessions = routes().layer(layer);
    let cookie = runtime
        .block_on(call(&sessions, None, "/"))
        .expect("a new session gets a cookie");

    let mut group = c.benchmark_group("request");
    group.bench_function("no-session-baseline", |b| {
        b.to_async(&runtime).iter(|| call(&baseline, None, "/"))
    });
    group.bench_function("memory/returning-changed", |b| {
        b.to_async(&runtime)
            .iter(|| call(&sessions, Some(&cookie), "/"))
    });
    group.bench_function("memory/returning-unchanged", |b| {
        b.to_async(&runtime)
            .iter(|| call(&sessions, Some(&cookie), "/peek"))
    });
    group.bench_function("memory/new-visitor", |b| {
        b.to_async(&runtime).iter(|| call(&sessions, None, "/"))
    });
    group.finish();
}

criterion_group!(benches, ids_and_signing, requests);
criterion_main!(benches);
