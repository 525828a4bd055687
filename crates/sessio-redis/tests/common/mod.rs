//! Shared by the integration tests: unique key prefixes, and a guard that removes a test's
//! keys from every node however the test ends.
#![allow(dead_code)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, SystemTime};

use redis::Commands;

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
