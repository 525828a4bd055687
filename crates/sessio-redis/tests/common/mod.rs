//! Shared by the integration tests: the servers they run against, unique key prefixes, a
//! guard that removes a test's keys from every node however the test ends, and a store
//! set up with both.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

use redis::Commands;
use sessio::testing::service_url;
use sessio_redis::{Layout, RedisStore};

/// Random hex, different on every call.
pub fn random_hex() -> String {
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:016x}{:08x}",
        RandomState::new().hash_one(seed),
        std::process::id()
    )
}

/// A key prefix no other test run uses.
pub fn unique_prefix() -> String {
    format!("sessio-test-{}:", random_hex())
}

/// The node URLs of a comma-separated list.
pub fn node_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One server or a cluster, as the tests reach it.
#[derive(Clone, Debug)]
pub enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Target {
    /// The server of `SESSIO_TEST_REDIS_URL`; `None` skips the test (see
    /// [`service_url`]).
    pub fn single() -> Option<Self> {
        service_url("SESSIO_TEST_REDIS_URL").map(Target::Single)
    }

    /// The cluster of `SESSIO_TEST_REDIS_CLUSTER_URLS`; `None` skips the test.
    pub fn cluster() -> Option<Self> {
        service_url("SESSIO_TEST_REDIS_CLUSTER_URLS").map(|urls| Target::Cluster(node_urls(&urls)))
    }

    /// Every node's URL (the one server's alone).
    pub fn urls(&self) -> Vec<String> {
        match self {
            Target::Single(url) => vec![url.clone()],
            Target::Cluster(urls) => urls.clone(),
        }
    }

    /// A store with the default layout and prefix, on its own connection.
    pub async fn connect(&self) -> RedisStore {
        match self {
            Target::Single(url) => RedisStore::connect(url).await.expect("connect to Redis"),
            Target::Cluster(urls) => RedisStore::connect_cluster(urls)
                .await
                .expect("connect to the Redis Cluster"),
        }
    }

    /// A store in `layout` under `prefix`, on its own connection.
    pub async fn store(&self, layout: Layout, prefix: &str) -> RedisStore {
        self.connect()
            .await
            .with_layout(layout)
            .with_key_prefix(prefix)
            .expect("valid prefix")
    }
}

/// A test's own key prefix on a target, a store in a layout under it, and the cleanup of
/// the prefix.
pub struct Fixture {
    pub target: Target,
    pub layout: Layout,
    pub prefix: String,
    pub store: RedisStore,
    pub cleanup: Cleanup,
}

impl Fixture {
    /// A store in `layout` under `prefix` on `target`, its keys removed afterwards.
    pub async fn new(target: Target, layout: Layout, prefix: String) -> Self {
        let cleanup = Cleanup::new(target.urls(), &prefix);
        let store = target.store(layout, &prefix).await;
        Self {
            target,
            layout,
            prefix,
            store,
            cleanup,
        }
    }

    /// Another store under the same prefix, on a connection of its own.
    pub async fn another_store(&self) -> RedisStore {
        self.target.store(self.layout, &self.prefix).await
    }

    /// Every key with the prefix, now.
    pub fn keys(&self) -> Vec<String> {
        self.cleanup.keys()
    }

    /// Removes the prefix's keys now and asserts none remain.
    pub fn finish(self) {
        self.cleanup.finish();
    }
}

fn connection(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))
}

/// Every key starting with `prefix` on the nodes at `urls` (each node's own keys: in a
/// cluster, pass every primary).
pub fn keys_with_prefix(urls: &[String], prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for url in urls {
        let mut conn = connection(url).expect("connect for cleanup");
        let keys: Vec<String> = conn
            .scan_match::<_, String>(format!("{prefix}*"))
            .expect("SCAN")
            .collect::<Result<_, _>>()
            .expect("SCAN reply");
        found.extend(keys);
    }
    found.sort();
    found.dedup();
    found
}

/// Removes every key with its prefix from its nodes when dropped, even when the test
/// panicked; [`Cleanup::finish`] also checks that nothing is left.
pub struct Cleanup {
    pub urls: Vec<String>,
    pub prefix: String,
}

impl Cleanup {
    pub fn new(urls: Vec<String>, prefix: &str) -> Self {
        Self {
            urls,
            prefix: prefix.to_owned(),
        }
    }

    fn remove_all(&self) -> Result<(), redis::RedisError> {
        for url in &self.urls {
            let mut conn = connection(url)?;
            let keys: Vec<String> = conn
                .scan_match::<_, String>(format!("{}*", self.prefix))?
                .collect::<Result<_, _>>()?;
            for key in keys {
                // One key per command: in a cluster each lives in its own slot.
                let _: i64 = conn.del(&key)?;
            }
        }
        Ok(())
    }

    /// Every key with the prefix, now.
    pub fn keys(&self) -> Vec<String> {
        keys_with_prefix(&self.urls, &self.prefix)
    }

    /// Removes the keys now and asserts none remain.
    pub fn finish(self) {
        self.remove_all().expect("cleanup");
        let left = keys_with_prefix(&self.urls, &self.prefix);
        assert!(left.is_empty(), "keys left behind: {left:?}");
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(e) = self.remove_all() {
            eprintln!("cleanup of {}* failed: {e}", self.prefix);
        }
    }
}
