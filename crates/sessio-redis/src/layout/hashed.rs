//! The store operations of a layout that keeps a session under a hash of its id and writes
//! it with one Lua script, through the client cache when there is one
//! ([`Native`](crate::Layout::Native)); the layout's module says only how it encodes.

use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use redis::{Cmd, RedisWrite, Script, ToRedisArgs, Value};
use sessio::store::{unix_millis, Changes, CreateOutcome, Meta, Record, StoreError, WriteOutcome};

use crate::cache::Cached;
use crate::conn::wrong_type_is_decode;
use crate::context::Redis;
use crate::error::MigrateError;
use crate::layout::layout_key;
use crate::scripts::Caller;

impl Redis<'_> {
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

    /// Runs a write script on `key` (`command`, an `EVALSHA` of the script `script` picks
    /// for the caller), keeping the cache in step: with a connected cache the write goes
    /// over its tracking connection and, when it applied, the cached session takes
    /// `changes` and `stored()` (the write's `meta` as the layout keeps it); without one the
    /// session is dropped from the cache before and after.
    pub(crate) async fn write_through_cache(
        &self,
        key: &str,
        script: fn(Caller) -> &'static Script,
        command: impl FnOnce(&Script) -> Cmd,
        changes: Option<&Changes>,
        meta: &Meta,
        stored: impl FnOnce() -> Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let Some((cache, conn)) = self.tracking() else {
            let script = script(Caller::Plain);
            let eval = command(script);
            self.forget_cached(key);
            let outcome = write_outcome(self.eval(&self.conn(), script, &eval).await);
            self.forget_cached(key);
            return outcome;
        };
        let script = script(Caller::Tracking);
        let eval = command(script);
        let ticket = cache.before_write(key);
        let outcome = write_outcome(self.eval(&conn, script, &eval).await);
        // What the script did to the stored session, done to the cached one.
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

/// A write script's answer: 1 when it wrote, 0 when the session was not there to write.
fn write_outcome(reply: Result<i64, StoreError>) -> Result<WriteOutcome, StoreError> {
    Ok(if reply? == 1 {
        WriteOutcome::Applied
    } else {
        WriteOutcome::NotFound
    })
}

/// Records `version` under `{prefix}layout` unless a layout is recorded there already;
/// returns what is recorded then.
pub(crate) async fn record_layout(
    redis: Redis<'_>,
    version: &str,
) -> Result<Option<String>, MigrateError> {
    let key = layout_key(redis.prefix());
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(&key)
        .arg(version)
        .arg("NX")
        .ignore()
        .cmd("GET")
        .arg(&key);
    let (found,): (Option<String>,) = redis
        .bounded(pipe.query_async(&mut redis.conn()))
        .await
        .map_err(MigrateError::Store)?;
    Ok(found)
}

/// Refuses a prefix recorded as holding another layout than `expected`.
pub(crate) fn expect_layout(
    found: Option<String>,
    expected: &'static str,
) -> Result<(), MigrateError> {
    match found {
        Some(found) if found != expected => Err(MigrateError::UnknownLayout { found, expected }),
        // Recorded now, found as expected, or removed meanwhile (nothing to refuse).
        _ => Ok(()),
    }
}

/// `{prefix}{base64url(hash)}`: a session's key in the layouts that hash its id.
pub(crate) fn hashed_key(prefix: &str, hash: &[u8]) -> String {
    let mut key = String::with_capacity(prefix.len() + hash.len().div_ceil(3) * 4);
    key.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(hash, &mut key);
    key
}

/// A `SCAN MATCH` pattern of the prefix and `len` more characters.
pub(crate) fn pattern_of_len(prefix: &str, len: usize) -> String {
    // The prefix holds no glob characters (see `validate_prefix`).
    let mut pattern = String::with_capacity(prefix.len() + len);
    pattern.push_str(prefix);
    pattern.push_str(&"?".repeat(len));
    pattern
}

/// A value's JSON text (as `Value::to_string` writes it), written straight into a command's
/// arguments.
pub(crate) struct JsonText<'a>(pub(crate) &'a serde_json::Value);

impl ToRedisArgs for JsonText<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        // Cannot fail: a JSON value written to memory.
        let _ = serde_json::to_writer(out.writer_for_next_arg(), self.0);
    }
}
