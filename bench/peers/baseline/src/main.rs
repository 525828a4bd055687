//! The upper bound: the same routes as the session servers, answering fixed texts of about
//! the same length, with no sessions at all.
//!
//! ```text
//! baseline --addr 127.0.0.1:3000 [--floor]
//! ```
//!
//! With `--floor`, what any session layer costs an axum app before it does any session
//! work: a layer on the router (`axum::Extension`, which adds a shared value to every
//! request), an extractor taking that value back in the handler, and an answer formatted
//! with a number, as the page-views handler does. No cookie is read, nothing is stored.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::{Extension, Router};

/// As long as a returning visitor's answer from the session servers.
const TEXT: &str = "Has visitado esta página 123 veces";

/// What the `--floor` layer hands every request.
struct Shared {
    views: u64,
}

fn args() -> (SocketAddr, bool) {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut floor) = ("127.0.0.1:3000".to_owned(), false);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value"),
            "--floor" => floor = true,
            other => {
                panic!("unknown argument {other:?}; usage: baseline [--addr HOST:PORT] [--floor]")
            }
        }
    }
    (addr.parse().expect("--addr must be HOST:PORT"), floor)
}

async fn page_views(Extension(shared): Extension<Arc<Shared>>) -> String {
    format!("Has visitado esta página {} veces", shared.views)
}

async fn peek(Extension(shared): Extension<Arc<Shared>>) -> String {
    format!("Visitas: {}", shared.views)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (addr, floor) = args();
    let app = if floor {
        Router::new()
            .route("/", get(page_views))
            .route("/peek", get(peek))
            .layer(Extension(Arc::new(Shared { views: 123 })))
    } else {
        Router::new()
            .route("/", get(|| async { TEXT }))
            .route("/peek", get(|| async { "Visitas: 123" }))
    };
    if let Some(spec) = bench_drive::from_env() {
        return bench_drive::drive(app, spec)
            .await
            .expect("in-process requests");
    }
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
