//! Serves the page-views demo.
//!
//! ```text
//! cargo run --release -p page-views -- --addr 127.0.0.1:8080 --store memory
//! ```
//!
//! The secret comes from `SESSIO_SECRET` (a comma-separated list rotates: the first signs,
//! all verify); without it a fixed development secret is used, with a warning.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use sessio::{ExpiredCleanup, KeyRing, MemoryStore, SessionLayer, SystemClock};

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

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let keys = key_ring().map_err(|e| format!("SESSIO_SECRET: {e}"))?;
    let (sessions, _cleanup) = match args.store {
        StoreKind::Memory => {
            let store = MemoryStore::new();
            let cleanup =
                ExpiredCleanup::spawn(store.clone(), Duration::from_secs(60), SystemClock);
            (SessionLayer::new(store, keys), cleanup)
        }
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, page_views::app(sessions))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
