//! [`Redis`]: what a layout's operations run with, and the helpers they share: the
//! connection, the key prefix, the time limit, and the client cache.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ServerErrorKind, Value};
use sessio::store::{with_timeout, Record, StoreError};

use crate::cache::Cache;
use crate::conn::{store_error, Conn, Node, Via};

/// Keys asked for per SCAN step, and so the most sessions checked per round trip by
/// [`SessionStore::delete_expired`](sessio::SessionStore::delete_expired).
const SCAN_BATCH: usize = 1000;

/// Where a store's operations run: its connection, key prefix, time limit and cache.
#[derive(Clone, Copy)]
pub(crate) struct Redis<'a> {
    pub(crate) conn: &'a Conn,
    pub(crate) prefix: &'a str,
    pub(crate) timeout: Duration,
    pub(crate) cache: Option<&'a Arc<Cache>>,
}

impl Redis<'_> {
    /// The prefix of the store's keys.
    pub(crate) fn prefix(&self) -> &str {
        self.prefix
    }

    /// The cache and its tracking connection, if the store has a cache and it is connected.
    pub(crate) fn tracking(&self) -> Option<(&Arc<Cache>, MultiplexedConnection)> {
        let cache = self.cache?;
        Some((cache, cache.connection()?))
    }

    /// The session under `key`, from the cache when it holds it; otherwise `read` over the
    /// cache's tracking connection (so that Redis tracks the key for it) and cached, or,
    /// without a connected cache, `read` over the store's own connection. `read` gives
    /// `None` for a session that is missing or expired at `now`.
    pub(crate) async fn load_through_cache<F, Fut>(
        &self,
        key: &str,
        now: SystemTime,
        read: F,
    ) -> Result<Option<Record>, StoreError>
    where
        F: FnOnce(Via) -> Fut,
        Fut: Future<Output = Result<Option<Record>, StoreError>>,
    {
        // One lookup: a hit, or the ticket a read that misses needs.
        let ticket = match self.cache.map(|cache| cache.look(key, now)) {
            Some(Ok(record)) => return Ok(Some(record)),
            Some(Err(ticket)) => Some(ticket),
            None => None,
        };
        let (Some((cache, conn)), Some(ticket)) = (self.tracking(), ticket) else {
            return read(Via::Store(self.conn())).await;
        };
        let record = read(Via::Tracking(conn)).await?;
        if let Some(record) = &record {
            cache.after_read(key, ticket, record, now);
        }
        Ok(record)
    }

    /// Drops the session under `key` from the cache, if there is one (it was written or
    /// removed without the cache keeping up).
    pub(crate) fn forget_cached(&self, key: &str) {
        if let Some(cache) = self.cache {
            cache.forget(key.as_bytes());
        }
    }

    /// A handle onto the shared connection.
    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// Runs a Redis operation within the time limit, mapping its errors.
    pub(crate) async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        let limit = self.timeout;
        with_timeout(limit, async move {
            operation.await.map_err(|e| store_error(e, limit))
        })
        .await
    }

    /// Loads `script` (on every node, in a cluster), so that pipelines can call it by its
    /// hash.
    pub(crate) async fn load_script(&self, script: &Script) -> Result<(), StoreError> {
        let mut conn = self.conn();
        self.bounded(script.load_async(&mut conn)).await?;
        Ok(())
    }

    /// Runs `eval`, an `EVALSHA` of `script`, over `conn`, loading the script again if Redis
    /// lost it.
    pub(crate) async fn eval<T, C>(
        &self,
        conn: &C,
        script: &Script,
        eval: &Cmd,
    ) -> Result<T, StoreError>
    where
        T: FromRedisValue + Send,
        C: ConnectionLike + Clone + Send,
    {
        self.reloading(conn, script, |mut conn| async move {
            eval.query_async(&mut conn).await
        })
        .await
    }

    /// Runs `pipeline`, EVALSHAs of `script` on keys held by `node`, loading the script
    /// again if the node lost it.
    pub(crate) async fn eval_pipeline_on(
        &self,
        conn: &Conn,
        node: Node,
        script: &Script,
        pipeline: &Pipeline,
    ) -> Result<Vec<Value>, StoreError> {
        self.reloading(conn, script, |mut conn| async move {
            conn.pipeline_on(node, pipeline).await
        })
        .await
    }

    /// Runs `operation` over (a handle onto) `conn`; when Redis answers `NOSCRIPT` (it lost
    /// `script`: it restarted, or its scripts were flushed), loads `script` and runs
    /// `operation` again.
    async fn reloading<T, C, F, Fut>(
        &self,
        conn: &C,
        script: &Script,
        operation: F,
    ) -> Result<T, StoreError>
    where
        C: ConnectionLike + Clone + Send,
        F: Fn(C) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        match self.bounded(operation(conn.clone())).await {
            Err(StoreError::Backend(e)) if is_noscript(e.as_ref()) => {
                // Rare, and boxed so that every call's future does not make room for it.
                Box::pin(async {
                    self.bounded(script.load_async(&mut conn.clone())).await?;
                    self.bounded(operation(conn.clone())).await
                })
                .await
            }
            other => other,
        }
    }

    /// Calls `each` with every batch of the keys matching `pattern`, node by node, and
    /// adds up what it returns.
    pub(crate) async fn scan_keys<F, Fut>(
        &self,
        pattern: &str,
        mut each: F,
    ) -> Result<u64, StoreError>
    where
        F: FnMut(Conn, Node, Vec<Vec<u8>>) -> Fut,
        Fut: Future<Output = Result<u64, StoreError>>,
    {
        let mut conn = self.conn();
        let nodes = self.bounded(conn.nodes()).await?;
        let mut total = 0;
        for node in nodes {
            let mut cursor = 0;
            loop {
                let (next, keys) = self
                    .bounded(conn.scan(node, cursor, pattern, SCAN_BATCH))
                    .await?;
                if !keys.is_empty() {
                    total += each(conn.clone(), node, keys).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(total)
    }
}

fn is_noscript(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error
        .downcast_ref::<RedisError>()
        .is_some_and(|e| e.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
}
