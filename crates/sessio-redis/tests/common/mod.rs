//! Shared by the integration tests: the servers they run against, unique key prefixes, a
//! guard that removes a test's keys from every node however the test ends, and a store
//! set up with both.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

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

    /// A plain (blocking) connection to the first node: the one server's.
    pub fn raw(&self) -> redis::Connection {
        connection(&self.urls()[0]).expect("connect to Redis")
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

/// A `redis-server` child of the test's own on a free loopback port, persisting every
/// write to its own directory (append-only file, fsync on every write), so that what it
/// counts is the test's alone and it can be killed and restarted with its data; killed,
/// and its directory removed, on drop.
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// A running server; `None` (the test skips) when `redis-server` is not installed,
    /// unless `CI=true`, where that fails the test.
    pub fn start_or_skip() -> Option<Self> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("redis-server is not on PATH, and CI=true: this test needs it");
            }
            eprintln!("SKIPPED: redis-server is not on PATH");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("sessio-redis-private-{}", random_hex()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            dir,
            child: None,
        };
        server.spawn();
        Some(server)
    }

    /// Starts the server (again, after [`kill`](Self::kill)) and waits until it answers.
    pub fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        self.wait_until_up();
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn wait_until_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pong = connection(&self.url())
                .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
            if pong.is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not come up: {pong:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown, no final save.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// How many times the server ran `command` (lower case) without an error (such as
    /// `NOSCRIPT` before a script is loaded), from `INFO commandstats`.
    pub fn calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut connection(&self.url()).unwrap())
            .unwrap();
        let prefix = format!("cmdstat_{command}:");
        let Some(stats) = info.lines().find_map(|line| line.strip_prefix(&prefix)) else {
            return 0;
        };
        let stat = |name: &str| -> u64 {
            stats
                .split(',')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map_or(0, |n| n.parse().unwrap())
        };
        stat("calls") - stat("failed_calls")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
