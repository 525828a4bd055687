//! The classic session demo: a page that counts your visits.
//!
//! ```text
//! cargo run --release -p page-views -- --addr 127.0.0.1:8080 --store memory
//! ```
//!
//! The secret comes from `SESSIO_SECRET` (a comma-separated list rotates: the first signs,
//! all verify); without it a fixed development secret is used, with a warning.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use clap::{Parser, ValueEnum};
use sessio::{
    ExpiredCleanup, KeyRing, MemoryStore, Session, SessionError, SessionLayer, SystemClock,
};

/// Development only: anyone who reads this can forge sessions.
const DEV_SECRET: &str = "page-views development secret -- do not use in production";

#[derive(Debug, Parser)]
#[command(about = "Counts your visits to a page, in a session.")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where sessions are kept.
    #[arg(long, value_enum, default_value_t = StoreKind::Memory)]
    store: StoreKind,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum StoreKind {
    /// In this process's memory: lost on restart.
    Memory,
}

async fn page_views(session: Session) -> Result<String, SessionError> {
    let views: u64 = session.get("page_views").await?.unwrap_or(0) + 1;
    session.insert("page_views", views).await?;
    Ok(if views == 1 {
        "¡Bienvenido a esta página por primera vez!".to_owned()
    } else {
        format!("Has visitado esta página {views} veces")
    })
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

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let keys = key_ring()?;

    let (layer, _cleanup) = match args.store {
        StoreKind::Memory => {
            let store = MemoryStore::new();
            let cleanup =
                ExpiredCleanup::spawn(store.clone(), Duration::from_secs(60), SystemClock);
            (SessionLayer::new(store, keys), cleanup)
        }
    };
    let app = Router::new().route("/", get(page_views)).layer(layer);

    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
