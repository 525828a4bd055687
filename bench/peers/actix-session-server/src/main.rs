//! The page-views workload on actix-web + actix-session.
//!
//! ```text
//! actix-session-server --addr 127.0.0.1:3000 --store cookie|redis://HOST:PORT/DB
//! ```
//!
//! One worker on a single-threaded actix `System`; `SessionMiddleware` defaults, except
//! `cookie_secure(false)` (plain HTTP on loopback).

use actix_session::storage::{CookieSessionStore, RedisSessionStore, SessionStore};
use actix_session::{Session, SessionMiddleware};
use actix_web::cookie::Key;
use actix_web::{web, App, HttpResponse, HttpServer};

const WELCOME: &str = "¡Bienvenido a esta página por primera vez!";
/// 64 bytes, fixed so runs are comparable.
const SECRET: &[u8; 64] = b"benchmark secret, fixed so runs are comparable -- never use it!!";

fn text(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(body)
}

async fn page_views(session: Session) -> actix_web::Result<HttpResponse> {
    let views: u64 = session.get("page_views")?.unwrap_or(0) + 1;
    session.insert("page_views", views)?;
    Ok(text(if views == 1 {
        WELCOME.to_owned()
    } else {
        format!("Has visitado esta página {views} veces")
    }))
}

async fn peek(session: Session) -> actix_web::Result<HttpResponse> {
    Ok(text(match session.get::<u64>("page_views")? {
        Some(views) => format!("Visitas: {views}"),
        None => WELCOME.to_owned(),
    }))
}

/// Serves the routes, with a store from `store` for the (one) worker.
async fn serve<S, F>(addr: &str, store: F) -> std::io::Result<()>
where
    S: SessionStore + 'static,
    F: Fn() -> S + Send + Clone + 'static,
{
    HttpServer::new(move || {
        App::new()
            .wrap(
                SessionMiddleware::builder(store(), Key::from(SECRET))
                    .cookie_secure(false)
                    .build(),
            )
            .route("/", web::get().to(page_views))
            .route("/peek", web::get().to(peek))
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut store) = ("127.0.0.1:3000".to_owned(), "cookie".to_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value"),
            "--store" => store = args.next().expect("--store needs a value"),
            other => panic!("unknown argument {other:?}"),
        }
    }
    actix_web::rt::System::new().block_on(async move {
        if store == "cookie" {
            serve(&addr, CookieSessionStore::default).await
        } else if store.starts_with("redis://") {
            let redis = RedisSessionStore::new(store.clone())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            serve(&addr, move || redis.clone()).await
        } else {
            Err(std::io::Error::other(format!("unknown store {store:?}")))
        }
    })
}
