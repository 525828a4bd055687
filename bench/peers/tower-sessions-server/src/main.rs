//! The page-views workload on tower-sessions.
//!
//! ```text
//! tower-sessions-server --addr 127.0.0.1:3000 --store memory|redis://HOST:PORT/DB|postgres://..|sqlite://PATH
//! ```
//!
//! `SessionManagerLayer` defaults, except `with_secure(false)` (plain HTTP on loopback). The
//! SQL stores keep sessions in the table `bench_sessions` (in the schema `public`), as
//! sessio-server does, so the harness counts and drops both the same way; sqlx pools with
//! their defaults, the SQLite file in WAL mode as tower-sessions' examples open it.

use std::net::SocketAddr;
use std::str::FromStr;

use axum::routing::get;
use axum::Router;
use tower_sessions::{MemoryStore, Session, SessionManagerLayer, SessionStore};
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

/// The sessions table, the one sessio-server uses.
const TABLE: &str = "bench_sessions";

const WELCOME: &str = "¡Bienvenido a esta página por primera vez!";

type Error = Box<dyn std::error::Error>;

async fn page_views(session: Session) -> Result<String, String> {
    let views: u64 = session
        .get("page_views")
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or(0)
        + 1;
    session
        .insert("page_views", views)
        .await
        .map_err(|e| e.to_string())?;
    Ok(if views == 1 {
        WELCOME.to_owned()
    } else {
        format!("Has visitado esta página {views} veces")
    })
}

async fn peek(session: Session) -> Result<String, String> {
    Ok(
        match session
            .get::<u64>("page_views")
            .await
            .map_err(|e| e.to_string())?
        {
            Some(views) => format!("Visitas: {views}"),
            None => WELCOME.to_owned(),
        },
    )
}

fn app<S: SessionStore + Clone>(store: S) -> Router {
    Router::new()
        .route("/", get(page_views))
        .route("/peek", get(peek))
        .layer(SessionManagerLayer::new(store).with_secure(false))
}

fn args() -> (SocketAddr, String) {
    let mut args = std::env::args().skip(1);
    let (mut addr, mut store) = ("127.0.0.1:3000".to_owned(), "memory".to_owned());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => addr = args.next().expect("--addr needs a value"),
            "--store" => store = args.next().expect("--store needs a value"),
            other => panic!("unknown argument {other:?}"),
        }
    }
    (addr.parse().expect("--addr must be HOST:PORT"), store)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Warnings and errors (a failing store, say) to stderr; RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let (addr, store) = args();
    let app = if store == "memory" {
        app(MemoryStore::default())
    } else if store.starts_with("redis://") {
        // One connection, like sessio's multiplexed one.
        let pool = Pool::new(Config::from_url(&store)?, None, None, None, 1)?;
        let _connection = pool.connect();
        pool.wait_for_connect().await?;
        app(RedisStore::new(pool))
    } else if store.starts_with("postgres://") {
        let pool = sqlx::PgPool::connect(&store).await?;
        let store = PostgresStore::new(pool)
            .with_schema_name("public")?
            .with_table_name(TABLE)?;
        store.migrate().await?;
        app(store)
    } else if store.starts_with("sqlite:") {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&store)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::SqlitePool::connect_with(options).await?;
        let store = SqliteStore::new(pool).with_table_name(TABLE)?;
        store.migrate().await?;
        app(store)
    } else {
        return Err(format!("unknown store {store:?}").into());
    };
    if let Some(spec) = bench_drive::from_env() {
        return Ok(bench_drive::drive(app, spec).await?);
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
