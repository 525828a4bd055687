//! In-process requests for `bench/run instructions`.
//!
//! With `BENCH_IN_PROCESS="MODE N"` set, a server does not listen: it sends its own router
//! N requests of the load mode MODE (`changed`, `unchanged` or `new`), as wrk would but
//! without sockets, one at a time, and exits. Run under `valgrind --tool=callgrind`, the
//! difference between two values of N gives the instructions one request costs, a figure
//! that other work on the machine cannot move.

use axum::body::Body;
use axum::http::{header, Request};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Sessions the returning modes cycle through, as wrk's connections do.
const SESSIONS: usize = 32;

/// What `BENCH_IN_PROCESS` asks for.
pub struct Spec {
    mode: String,
    requests: usize,
}

/// The request from the environment, if there is one.
pub fn from_env() -> Option<Spec> {
    let value = std::env::var("BENCH_IN_PROCESS").ok()?;
    let (mode, requests) = value.split_once(' ')?;
    Some(Spec {
        mode: mode.to_owned(),
        requests: requests.parse().ok()?,
    })
}

/// Sends `app` the requests `spec` asks for.
pub async fn drive(app: Router, spec: Spec) -> Result<(), String> {
    // As `axum::serve` does once per connection: handlers become routes (with their
    // layers) here, not again on every request.
    let app = app.with_state(());
    let path = match spec.mode.as_str() {
        "changed" | "new" => "/",
        "unchanged" => "/peek",
        other => return Err(format!("unknown mode {other:?}")),
    };
    let mut cookies = Vec::new();
    if spec.mode != "new" {
        for _ in 0..SESSIONS {
            // The baseline sets no cookie: its requests then carry none, as under wrk.
            if let Some(cookie) = call(&app, None, "/").await? {
                cookies.push(cookie);
            }
        }
    }
    for i in 0..spec.requests {
        let cookie = cookies.get(i % SESSIONS).map(String::as_str);
        call(&app, cookie, path).await?;
    }
    Ok(())
}

/// One request; the `name=value` of the cookie the response sets, if any.
async fn call(app: &Router, cookie: Option<&str>, path: &str) -> Result<Option<String>, String> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let request = request.body(Body::empty()).map_err(|e| e.to_string())?;
    let response = app
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{path} answered {}", response.status()));
    }
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(cookie)
}
