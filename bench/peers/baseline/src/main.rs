//! The upper bound: the same routes as the session servers, answering fixed texts of about
//! the same length, with no sessions at all.
//!
//! ```text
//! baseline --addr 127.0.0.1:3000
//! ```

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;

/// As long as a returning visitor's answer from the session servers.
const TEXT: &str = "Has visitado esta página 123 veces";

fn addr() -> SocketAddr {
    let mut args = std::env::args().skip(1);
    let mut addr = "127.0.0.1:3000".to_owned();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value"),
            other => panic!("unknown argument {other:?}; usage: baseline [--addr HOST:PORT]"),
        }
    }
    addr.parse().expect("--addr must be HOST:PORT")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let app = Router::new()
        .route("/", get(|| async { TEXT }))
        .route("/peek", get(|| async { "Visitas: 123" }));
    if let Some(spec) = bench_drive::from_env() {
        return bench_drive::drive(app, spec)
            .await
            .expect("in-process requests");
    }
    let listener = tokio::net::TcpListener::bind(addr()).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
