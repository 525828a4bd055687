//! A fresh database file per test, removed with its directory when the test ends.
#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use serde_json::Value;
use sessio::store::{Meta, Record};
use sessio_sqlite::SqliteStore;
use tempfile::TempDir;

pub struct TempDb {
    pub dir: TempDir,
    pub url: String,
    pub path: std::path::PathBuf,
}

impl TempDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sessions.db");
        let url = format!("sqlite://{}", path.display());
        Self { dir, url, path }
    }

    /// A connection of its own onto the file, as another process or tool would open.
    pub fn raw(&self) -> rusqlite::Connection {
        let connection = rusqlite::Connection::open(&self.path).expect("open the file");
        connection
            .busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        connection
    }

    /// A new store on the file, not migrated.
    pub async fn connect(&self) -> SqliteStore {
        SqliteStore::connect(&self.url).await.expect("connect")
    }

    /// A new store on the file, migrated.
    pub async fn store(&self) -> SqliteStore {
        let store = self.connect().await;
        store.migrate().await.expect("migrate");
        store
    }
}

/// A whole-millisecond "now", as the session layer hands out.
pub fn now() -> SystemTime {
    let millis = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    SystemTime::UNIX_EPOCH + Duration::from_millis(millis as u64)
}

pub fn record(data: Value, created: SystemTime, ttl: Duration) -> Record {
    let Value::Object(data) = data else {
        panic!("test data must be an object")
    };
    Record {
        data,
        meta: Meta {
            created_at: created,
            last_active: created,
            expires_at: created + ttl,
            expiry: None,
        },
    }
}
