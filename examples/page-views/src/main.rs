//! Serves the page-views demo.
//!
//! ```text
//! cargo run --release -p page-views -- --addr 127.0.0.1:8080 --store sqlite://page-views.db
//! ```
//!
//! `--store` takes `memory`, `sqlite://PATH` (the default: `sqlite://page-views.db`, so the
//! count survives a restart), `postgres://...`, `redis://...` or
//! `redis+cluster://HOST:PORT,HOST:PORT,...`. With one Redis server, `--client-cache` keeps the
//! sessions read in the process too (`RedisStore::with_client_cache`).
//!
//! The secret comes from `SESSIO_SECRET` (a comma-separated list rotates: the first signs,
//! all verify); without it a fixed development secret is used, with a warning.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use sessio::{
    Compatibility, ExpiredCleanup, KeyRing, MemoryStore, SessionLayer, SessionStore, SystemClock,
};
use sessio_postgres::{Layout as PostgresLayout, PostgresStore};
use sessio_redis::{ClientCache, Layout as RedisLayout, RedisStore};
use sessio_sqlite::SqliteStore;

/// Development only: anyone who reads this can forge sessions.
const DEV_SECRET: &str = "page-views development secret -- do not use in production";

/// How often expired sessions are swept from stores that do not expire them themselves.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(about = "Counts your visits to a page, in a session.")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where sessions are kept: memory, sqlite://PATH, postgres://..., redis://...,
    /// redis+cluster://HOST:PORT,HOST:PORT,...
    #[arg(long, default_value = "sqlite://page-views.db")]
    store: String,
    /// Share sessions with another implementation: `express` reads and writes what Node's
    /// express-session does (cookie `connect.sid`; with redis://, connect-redis's layout;
    /// with postgres://, connect-pg-simple's `session` table).
    #[arg(long, value_enum)]
    compat: Option<Compat>,
    /// With redis://: keep the sessions read in this process too, kept fresh by Redis
    /// (client-side caching); returning visitors are then served without a round trip.
    #[arg(long)]
    client_cache: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Compat {
    /// Node's express-session 1.19 with connect-redis or connect-pg-simple.
    Express,
}

fn key_ring() -> Result<KeyRing, sessio::SecretError> {
    match std::env::var("SESSIO_SECRET") {
        Ok(secrets) => KeyRing::new(secrets.split(',').map(str::trim)),
        Err(_) => {
            tracing::warn!(
                "SESSIO_SECRET is not set: using a development secret that anyone can read. \
                 Set SESSIO_SECRET to a random string of at least 32 bytes in production."
            );
            KeyRing::new([DEV_SECRET])
        }
    }
}

/// The session layer over `store`, with a sweeper for expired sessions.
fn swept<S: SessionStore + Clone>(
    store: S,
    keys: KeyRing,
) -> (SessionLayer, Option<ExpiredCleanup>) {
    let cleanup = ExpiredCleanup::spawn(store.clone(), CLEANUP_EVERY, SystemClock);
    (SessionLayer::new(store, keys), Some(cleanup))
}

type Error = Box<dyn std::error::Error>;

/// `store` with a client-side cache if `wanted`.
async fn cached(store: RedisStore, wanted: bool) -> Result<RedisStore, Error> {
    Ok(if wanted {
        store.with_client_cache(ClientCache::new()).await?
    } else {
        store
    })
}

async fn sessions(
    url: &str,
    keys: KeyRing,
    compat: Option<Compat>,
    client_cache: bool,
) -> Result<(SessionLayer, Option<ExpiredCleanup>), Error> {
    let scheme = url.split_once("://").map_or(url, |(scheme, _)| scheme);
    if client_cache && !matches!(scheme, "redis" | "rediss") {
        return Err("--client-cache needs one Redis server: redis://... or rediss://...".into());
    }
    let (layer, cleanup) = match (scheme, compat) {
        ("postgres" | "postgresql", Some(Compat::Express)) => {
            let store = PostgresStore::connect(url)
                .await?
                .with_layout(PostgresLayout::ConnectPgSimple);
            store.migrate().await?;
            swept(store, keys)
        }
        ("redis" | "rediss" | "redis+cluster", Some(Compat::Express)) => {
            let store = RedisStore::connect_url(url)
                .await?
                .with_layout(RedisLayout::ConnectRedis);
            let store = cached(store, client_cache).await?;
            store.migrate().await?;
            (SessionLayer::new(store, keys), None)
        }
        (_, Some(Compat::Express)) => {
            return Err("--compat express needs a store Node can share: redis://... or postgres://...".into())
        }
        ("memory", None) => swept(MemoryStore::new(), keys),
        ("sqlite", None) => {
            let store = SqliteStore::connect(url).await?;
            store.migrate().await?;
            swept(store, keys)
        }
        ("postgres" | "postgresql", None) => {
            let store = PostgresStore::connect(url).await?;
            store.migrate().await?;
            swept(store, keys)
        }
        ("redis" | "rediss" | "redis+cluster", None) => {
            let store = cached(RedisStore::connect_url(url).await?, client_cache).await?;
            store.migrate().await?;
            // Redis expires sessions by itself.
            (SessionLayer::new(store, keys), None)
        }
        // Only the scheme: a URL may carry a password.
        _ => return Err(format!("unsupported store scheme {scheme:?}: use memory, sqlite://PATH, postgres://..., redis://... or redis+cluster://...").into()),
    };
    let layer = match compat {
        Some(Compat::Express) => layer.with_compatibility(Compatibility::ExpressSession),
        None => layer,
    };
    Ok((layer, cleanup))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("page-views: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Error> {
    let keys = key_ring().map_err(|e| format!("SESSIO_SECRET: {e}"))?;
    let (layer, _cleanup) = sessions(&args.store, keys, args.compat, args.client_cache)
        .await
        // Not the URL itself: it may carry a password.
        .map_err(|e| format!("session store: {e}"))?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, page_views::app(layer))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
