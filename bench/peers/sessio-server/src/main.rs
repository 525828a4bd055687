//! The page-views workload on sessio.
//!
//! ```text
//! sessio-server --addr 127.0.0.1:3000 --store memory|sqlite://PATH|postgres://...|redis://...
//!               [--max-sessions N]   (memory store only; default MemoryStore's own)
//!               [--client-cache]     (Redis only: RedisStore::with_client_cache, defaults)
//! ```
//!
//! `SessionLayer` defaults with a fixed secret. `GET /` counts the visit (the session changes
//! on every request); `GET /peek` reads the count without changing the session, and without
//! creating one for a new visitor.

use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use sessio::{KeyRing, MemoryStore, Session, SessionError, SessionLayer};

const WELCOME: &str = "¡Bienvenido a esta página por primera vez!";
const SECRET: &str = "benchmark secret, fixed so runs are comparable -- never use it elsewhere";
/// PostgreSQL and SQLite table: its own, so a bench never touches anyone else's sessions.
const TABLE: &str = "bench_sessions";

async fn page_views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("page_views").await?.unwrap_or(0) + 1;
    session.insert("page_views", views).await?;
    Ok(if views == 1 {
        WELCOME.to_owned()
    } else {
        format!("Has visitado esta página {views} veces")
    })
}

async fn peek(session: Session) -> Result<String, SessionError> {
    Ok(match session.get::<u64>("page_views").await? {
        Some(views) => format!("Visitas: {views}"),
        None => WELCOME.to_owned(),
    })
}

struct Args {
    addr: SocketAddr,
    store: String,
    max_sessions: Option<usize>,
    client_cache: bool,
}

fn args() -> Args {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut store) = ("127.0.0.1:3000".to_owned(), "memory".to_owned());
    let mut max_sessions = None;
    let mut client_cache = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value"),
            "--store" => store = args.next().expect("--store needs a value"),
            "--max-sessions" => {
                let n = args.next().expect("--max-sessions needs a value");
                max_sessions = Some(n.parse().expect("--max-sessions must be a whole number"));
            }
            "--client-cache" => client_cache = true,
            other => panic!(
                "unknown argument {other:?}; usage: sessio-server [--addr HOST:PORT] \
                 [--store memory|sqlite://..|postgres://..|redis://..] [--max-sessions N] \
                 [--client-cache]"
            ),
        }
    }
    Args {
        addr: addr.parse().expect("--addr must be HOST:PORT"),
        store,
        max_sessions,
        client_cache,
    }
}

type Error = Box<dyn std::error::Error>;

async fn layer(args: &Args) -> Result<SessionLayer, Error> {
    let (url, max_sessions) = (args.store.as_str(), args.max_sessions);
    let keys = KeyRing::new([SECRET])?;
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    Ok(match scheme {
        "memory" => {
            let mut store = MemoryStore::builder();
            if let Some(max) = max_sessions {
                store = store.max_sessions(max);
            }
            SessionLayer::new(store.build(), keys)
        }
        "sqlite" => {
            let store = sessio_sqlite::SqliteStore::connect(url)
                .await?
                .with_table_name(TABLE)?;
            store.migrate().await?;
            SessionLayer::new(store, keys)
        }
        "postgres" | "postgresql" => {
            let store = sessio_postgres::PostgresStore::connect(url)
                .await?
                .with_table_name(TABLE)?;
            store.migrate().await?;
            SessionLayer::new(store, keys)
        }
        "redis" => {
            let mut store = sessio_redis::RedisStore::connect_url(url).await?;
            if args.client_cache {
                store = store
                    .with_client_cache(sessio_redis::ClientCache::new())
                    .await?;
            }
            SessionLayer::new(store, keys)
        }
        other => return Err(format!("unknown store {other:?}").into()),
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Warnings and errors (a failing store, say) to stderr; RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = args();
    let app = Router::new()
        .route("/", get(page_views))
        .route("/peek", get(peek))
        .layer(layer(&args).await?);
    if let Some(spec) = bench_drive::from_env() {
        return Ok(bench_drive::drive(app, spec).await?);
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
