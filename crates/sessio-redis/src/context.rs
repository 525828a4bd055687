//! [`Redis`]: what a layout's operations run with, and the helpers they share: the
//! connection, the key prefix, the time limit, the client cache, and the operations on a
//! session kept under one key (read through the cache, written by one script).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ServerErrorKind, Value};
use sessio::store::{
    unix_millis, with_timeout, Changes, CreateOutcome, Meta, Record, StoreError, WriteOutcome,
};

use crate::cache::{Cache, Cached};
use crate::conn::{store_error, wrong_type_is_decode, Conn, Node, Via};

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

    /// Runs `eval`, an `EVALSHA` of a create script on `key` that answers 1 when it stored
    /// the session and 0 when a live one holds the key.
    pub(crate) async fn create_key(
        &self,
        key: &str,
        script: &Script,
        eval: &Cmd,
    ) -> Result<CreateOutcome, StoreError> {
        let created: i64 = self.eval(&self.conn(), script, eval).await?;
        if created != 1 {
            return Ok(CreateOutcome::IdTaken);
        }
        // It may have replaced an expired session still cached.
        self.forget_cached(key);
        Ok(CreateOutcome::Created)
    }

    /// The session under `key`, read through the cache with `command` (`HGETALL`, `GET`:
    /// one key, no other argument) and `decode`d.
    pub(crate) async fn read_key<E>(
        &self,
        key: &str,
        now: SystemTime,
        command: &str,
        decode: fn(Value, SystemTime) -> Result<Option<Record>, E>,
    ) -> Result<Option<Record>, StoreError>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.load_through_cache(key, now, |mut conn| async move {
            // Sized once: `redis::cmd` would grow it as the key goes in.
            let mut read = Cmd::with_capacity(2, command.len() + key.len());
            read.arg(command).arg(key);
            let reply = self
                .bounded(read.query_async(&mut conn))
                .await
                .map_err(wrong_type_is_decode)?;
            decode(reply, now).map_err(|e| StoreError::Decode(Box::new(e)))
        })
        .await
    }

    /// Runs `write` (a write of the session under `key`, over the connection it is
    /// given), keeping the cache in step: with a connected cache the write goes over its
    /// tracking connection and, when it applied, the cached session takes `changes` and
    /// `stored()` (the write's `meta` as the layout keeps it); without one the session is
    /// dropped from the cache before and after.
    pub(crate) async fn write_through_cache<F, Fut>(
        &self,
        key: &str,
        write: F,
        changes: Option<&Changes>,
        meta: &Meta,
        stored: impl FnOnce() -> Meta,
    ) -> Result<WriteOutcome, StoreError>
    where
        F: FnOnce(Via) -> Fut,
        Fut: Future<Output = Result<WriteOutcome, StoreError>>,
    {
        let Some((cache, conn)) = self.tracking() else {
            self.forget_cached(key);
            let outcome = write(Via::Store(self.conn())).await;
            self.forget_cached(key);
            return outcome;
        };
        let ticket = cache.before_write(key);
        let outcome = write(Via::Tracking(conn)).await;
        // What the write did to the stored session, done to the cached one.
        let applied =
            matches!(outcome, Ok(WriteOutcome::Applied)).then_some(|session: &mut Cached| {
                if let Some(changes) = changes {
                    session.apply(changes);
                }
                session.set_meta(stored());
            });
        cache.after_write(key, ticket, applied, meta.last_active);
        outcome
    }

    /// Removes the session under `key` (in the layouts that hash its id).
    pub(crate) async fn delete_key(&self, key: &str) -> Result<(), StoreError> {
        self.forget_cached(key);
        let mut conn = self.conn();
        let removed: Result<i64, _> = self
            .bounded(redis::cmd("UNLINK").arg(key).query_async(&mut conn))
            .await;
        // Also after: a read that began before the removal caches nothing.
        self.forget_cached(key);
        removed.map(drop)
    }

    /// Runs `script` (`KEYS[1]` a key, `ARGV[1]` now in milliseconds; it answers how many
    /// keys it removed) on every key matching `pattern`, a batch per pipeline, and adds up
    /// the answers.
    pub(crate) async fn sweep(
        &self,
        pattern: &str,
        script: &Script,
        now: SystemTime,
    ) -> Result<u64, StoreError> {
        let now = unix_millis(now);
        // Loaded on every node (in a cluster), so a whole batch can go as one pipeline.
        self.load_script(script).await?;
        self.scan_keys(pattern, |conn, node, keys| async move {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("EVALSHA")
                    .arg(script.get_hash())
                    .arg(1)
                    .arg(key)
                    .arg(now);
            }
            let replies = self.eval_pipeline_on(&conn, node, script, &pipe).await?;
            Ok(replies
                .iter()
                .map(|reply| match reply {
                    Value::Int(n) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                })
                .sum())
        })
        .await
    }

    /// Counts the keys matching `pattern` on every primary.
    pub(crate) async fn count_keys(&self, pattern: &str) -> Result<u64, StoreError> {
        self.scan_keys(pattern, |_, _, keys| {
            let found = keys.len() as u64;
            async move { Ok(found) }
        })
        .await
    }
}

fn is_noscript(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error
        .downcast_ref::<RedisError>()
        .is_some_and(|e| e.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
}
