//! A database that refuses connections or never answers makes operations fail within
//! the time limit, as `Unavailable` or `Timeout`, instead of hanging. No server needed.

use std::time::{Duration, Instant};

use sessio::store::StoreError;
use sessio::{SessionId, SessionStore};
use sessio_postgres::{ConnectError, PostgresStore};
use sqlx::postgres::PgPoolOptions;

/// A local port nothing listens on: bound, then released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

/// A server that accepts TCP connections (the kernel completes the handshake) but never
/// replies, for as long as the listener is kept, and its URL.
async fn silent_server() -> (tokio::net::TcpListener, String) {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/test",
        silent.local_addr().unwrap().port()
    );
    (silent, url)
}

/// Fails the test if `operation` takes longer than `limit` (so a hang fails, not blocks).
async fn within<T>(limit: Duration, operation: impl std::future::Future<Output = T>) -> T {
    let started = Instant::now();
    let result = tokio::time::timeout(limit, operation)
        .await
        .unwrap_or_else(|_| panic!("still running after {limit:?}: it hangs"));
    assert!(started.elapsed() <= limit);
    result
}

#[tokio::test]
async fn connect_to_a_closed_port_fails_with_the_reason() {
    let url = format!("postgres://postgres@127.0.0.1:{}/test", closed_port());
    let result = within(Duration::from_secs(10), PostgresStore::connect(&url)).await;
    match result {
        Err(ConnectError::Connect(sqlx::Error::Io(error))) => {
            assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused)
        }
        other => panic!("expected a refused connection, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_to_a_server_that_never_answers_times_out() {
    let (_silent, url) = silent_server().await;
    let result = within(
        PostgresStore::CONNECT_TIMEOUT + Duration::from_secs(5),
        PostgresStore::connect(&url),
    )
    .await;
    assert!(
        matches!(result, Err(ConnectError::Timeout(limit)) if limit == PostgresStore::CONNECT_TIMEOUT),
        "{result:?}"
    );
}

#[tokio::test]
async fn connect_refuses_a_malformed_url() {
    let result = PostgresStore::connect("postgres://[not a host/db").await;
    assert!(
        matches!(result, Err(ConnectError::InvalidUrl(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn operations_against_a_closed_port_are_unavailable() {
    let url = format!("postgres://postgres@127.0.0.1:{}/test", closed_port());
    // The pool gives up waiting for a connection before the store's own limit.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy(&url)
        .unwrap();
    let store = PostgresStore::from_pool(pool).with_timeout(Duration::from_secs(5));
    let id = SessionId::from("nobody home");
    let result = within(
        Duration::from_secs(5),
        store.load(&id, std::time::SystemTime::now()),
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    let result = within(Duration::from_secs(5), store.count()).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn operations_against_a_silent_server_time_out() {
    let (_silent, url) = silent_server().await;
    // The pool would wait 30 s; the store's limit cuts it short.
    let pool = PgPoolOptions::new().connect_lazy(&url).unwrap();
    let limit = Duration::from_millis(300);
    let store = PostgresStore::from_pool(pool).with_timeout(limit);
    let id = SessionId::from("nobody answers");
    let result = within(Duration::from_secs(5), store.delete(&id)).await;
    assert!(
        matches!(result, Err(StoreError::Timeout(l)) if l == limit),
        "{result:?}"
    );
    let result = within(
        Duration::from_secs(5),
        store.delete_expired(std::time::SystemTime::now()),
    )
    .await;
    assert!(
        matches!(result, Err(StoreError::Timeout(l)) if l == limit),
        "{result:?}"
    );
}
