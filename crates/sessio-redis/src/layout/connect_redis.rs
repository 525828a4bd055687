//! connect-redis's layout ([`Layout::ConnectRedis`](crate::Layout::ConnectRedis)), as
//! connect-redis v9 and v10 write it, to share sessions with Node's express-session:
//!
//! | | |
//! |---|---|
//! | key | `{prefix}{id}`: the **raw** session id (default prefix `sess:`) |
//! | value | express-session's JSON as a string: `{"cookie":{"originalMaxAge":…,"expires":"…","httpOnly":true,"path":"/"},"views":2}` |
//! | expiry | `EX ttl`, `ttl = ceil((expires - now) / 1 s)`; a `ttl <= 0` deletes instead |
//!
//! `now` is the caller's time: `meta.last_active` of the record or meta being written.
//!
//! Writes to existing sessions are optimistic compare-and-sets on the one key: read the
//! value, merge the changes into it here ([`sessio::express::merge`]), and store the result
//! with a script that checks, on the server, that the value is still the one read (by its
//! SHA-1); when another writer got in first, start again from its value, up to
//! [`MAX_ATTEMPTS`] times. So concurrent requests writing different keys of a session all
//! keep their writes, no write brings back a deleted session, and Redis's own JSON codec
//! (which would turn `[]` into `{}` and round numbers to 14 digits) never touches the value.

use std::time::{Duration, SystemTime};

use redis::aio::ConnectionLike;
use redis::Value;
use sessio::express;
use sessio::store::{
    from_unix_millis, unix_millis, with_timeout, Changes, CreateOutcome, Meta, Record, StoreError,
    WriteOutcome,
};
use sessio::SessionId;

use crate::conn::wrong_type_is_decode;
use crate::context::Redis;
use crate::error::{MigrateError, WriteContention};
use crate::layout::layout_key;
use crate::layout::Backend;
use crate::scripts;

/// connect-redis's default key prefix.
pub(crate) const DEFAULT_PREFIX: &str = "sess:";
/// How many times an update or touch is tried while other writers keep changing the
/// session, before it fails with [`WriteContention`].
pub(crate) const MAX_ATTEMPTS: usize = 32;
/// The longest TTL written: a century. Redis refuses expiries past its clock's range, and
/// no session lives this long.
const MAX_TTL_SECS: i64 = 100 * 366 * 86_400;
/// The most of an unexpected layout marker quoted in an error.
const MAX_QUOTED: usize = 32;

/// The key of a session: the prefix, then the raw id, as connect-redis has it.
pub(crate) fn session_key(prefix: &str, id: &SessionId) -> String {
    let id = id.as_str();
    let mut key = String::with_capacity(prefix.len() + id.len());
    key.push_str(prefix);
    key.push_str(id);
    key
}

/// connect-redis's `SCAN MATCH` pattern: every key under the prefix.
pub(crate) fn scan_pattern(prefix: &str) -> String {
    // The prefix holds no glob characters (see `validate_prefix`).
    format!("{prefix}*")
}

/// connect-redis's TTL for a session ending at `expires_at`, written at `now`:
/// `ceil((expires - now) / 1 s)` seconds (both to the millisecond, as JavaScript's
/// `Date`s are), or `None` when that is not positive: the session is over, and is deleted
/// rather than written.
pub(crate) fn ttl_secs(expires_at: SystemTime, now: SystemTime) -> Option<i64> {
    let remaining = unix_millis(expires_at).saturating_sub(unix_millis(now));
    if remaining <= 0 {
        return None;
    }
    Some((remaining.saturating_add(999) / 1000).min(MAX_TTL_SECS))
}

/// Why a stored value could not be read.
#[derive(Debug, thiserror::Error)]
enum ValueError {
    #[error("the stored session is not UTF-8 text")]
    NotUtf8(#[source] std::str::Utf8Error),
    #[error("the stored session is not express-session's JSON")]
    Express(#[source] express::DecodeError),
}

impl From<ValueError> for StoreError {
    fn from(error: ValueError) -> Self {
        StoreError::Decode(Box::new(error))
    }
}

/// Redis answered the compare-and-set script with something it never returns.
#[derive(Debug, thiserror::Error)]
#[error("unexpected reply from the session compare-and-set script")]
struct UnexpectedReply;

/// How far a key's expiry may pass its `cookie.expires` before it counts as a touch by
/// Node: more than the second-rounding of `EX` and some clock skew.
const KEY_TOUCH_TOLERANCE: Duration = Duration::from_secs(5);

/// A session's value as read, with the key's remaining time to live.
struct Stored {
    value: Vec<u8>,
    /// `PTTL`: milliseconds left, `-1` for a key without expiry, `-2` for a missing key.
    pttl: i64,
    /// `PEXPIRETIME`: when the key expires, in Unix milliseconds of the server's clock;
    /// negative when unknown or without expiry.
    expire_time: i64,
}

impl Stored {
    fn text(&self) -> Result<&str, ValueError> {
        std::str::from_utf8(&self.value).map_err(ValueError::NotUtf8)
    }

    /// The record in it. A cookie without `expires` (a browser-session cookie) ends when
    /// the key does: `now` plus its TTL. A session whose key outlives its `cookie.expires`
    /// ends with the key: connect-redis's `touch` moves only the key's expiry, and Node
    /// keeps such a session alive, so sessio does too.
    fn record(&self, now: SystemTime) -> Result<Record, ValueError> {
        let mut record = express::decode(self.text()?, fallback_expires(now, self.pttl))
            .map_err(ValueError::Express)?;
        let meta = &mut record.meta;
        let key_expires = from_unix_millis(self.expire_time);
        // A key's TTL is whole seconds (`EX`): only a move past that rounding is a touch.
        if self.expire_time > 0 && key_expires > meta.expires_at + KEY_TOUCH_TOLERANCE {
            let idle = meta
                .expires_at
                .duration_since(meta.last_active)
                .unwrap_or_default();
            meta.expires_at = key_expires;
            meta.last_active = key_expires.checked_sub(idle).unwrap_or(meta.last_active);
            meta.created_at = meta.last_active;
        }
        Ok(record)
    }

    /// The SHA-1 of the value, as the script's `redis.sha1hex` writes it.
    fn sha1(&self) -> String {
        sha1_smol::Sha1::from(&self.value).digest().to_string()
    }

    /// The `{value, PTTL}` the script returns when the value changed under a write.
    fn from_conflict(reply: Vec<Value>) -> Result<Self, StoreError> {
        let mut items = reply.into_iter();
        match (items.next(), items.next(), items.next()) {
            (Some(Value::BulkString(value)), Some(Value::Int(pttl)), None) => Ok(Self {
                value,
                pttl,
                expire_time: -1,
            }),
            _ => Err(StoreError::Backend(Box::new(UnexpectedReply))),
        }
    }
}

/// When a session whose cookie has no `expires` ends: when its key does. A key without
/// expiry (connect-redis's `disableTTL`) is given connect-redis's default TTL, a day; a key
/// gone meanwhile has ended.
fn fallback_expires(now: SystemTime, pttl: i64) -> SystemTime {
    let left = match pttl {
        -1 => express::DEFAULT_MAX_AGE,
        ms => Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
    };
    // Only past SystemTime's range would this fail; then the session is over.
    now.checked_add(left).unwrap_or(now)
}

/// `cookie.expires` of a stored value, if it is express-session's JSON and has one.
fn cookie_expires(value: &[u8]) -> Option<SystemTime> {
    let json: serde_json::Value = serde_json::from_slice(value).ok()?;
    express::parse_date(json.get(express::COOKIE_KEY)?.get("expires")?.as_str()?)
}

/// GET and PTTL of `key` in one round trip; `None` when it does not exist.
async fn read(redis: Redis<'_>, key: &str) -> Result<Option<Stored>, StoreError> {
    read_on(redis, &mut redis.conn(), key).await
}

/// [`read`] over `conn`.
async fn read_on(
    redis: Redis<'_>,
    conn: &mut (impl ConnectionLike + Send),
    key: &str,
) -> Result<Option<Stored>, StoreError> {
    let mut pipe = redis::pipe();
    pipe.cmd("GET")
        .arg(key)
        .cmd("PTTL")
        .arg(key)
        .cmd("PEXPIRETIME")
        .arg(key);
    let (value, pttl, expire_time): (Option<Vec<u8>>, i64, i64) = redis
        .bounded(pipe.query_async(conn))
        .await
        .map_err(wrong_type_is_decode)?;
    Ok(value.map(|value| Stored {
        value,
        pttl,
        expire_time,
    }))
}

/// Writes nothing: connect-redis records no layout, and Node would count any other key
/// under the prefix as a session. Checks that Redis answers, and refuses a prefix marked as
/// holding sessio's native layout.
async fn migrate(redis: Redis<'_>) -> Result<(), MigrateError> {
    let key = layout_key(redis.prefix());
    let mut conn = redis.conn();
    let found: Option<Vec<u8>> = redis
        .bounded(scripts::get_if_string().key(&key).invoke_async(&mut conn))
        .await
        .map_err(MigrateError::Store)?;
    match found {
        // A Node session whose id happens to be "layout" is a JSON object; the native
        // layout's marker is a version number.
        Some(value) if value.trim_ascii_start().first() != Some(&b'{') => {
            let mut found = String::from_utf8_lossy(&value).into_owned();
            if let Some((cut, _)) = found.char_indices().nth(MAX_QUOTED) {
                found.truncate(cut);
            }
            Err(MigrateError::NativeLayoutFound { found })
        }
        _ => Ok(()),
    }
}

/// `SET key value NX EX ttl`.
async fn create(
    redis: Redis<'_>,
    id: &SessionId,
    record: &Record,
) -> Result<CreateOutcome, StoreError> {
    let key = session_key(redis.prefix(), id);
    let mut conn = redis.conn();
    let Some(ttl) = ttl_secs(record.meta.expires_at, record.meta.last_active) else {
        // Over before it began: connect-redis stores nothing. The id is still not free if
        // another session holds it.
        let exists: bool = redis
            .bounded(redis::cmd("EXISTS").arg(&key).query_async(&mut conn))
            .await?;
        return Ok(if exists {
            CreateOutcome::IdTaken
        } else {
            CreateOutcome::Created
        });
    };
    let value = express::encode(record, &express::default_cookie_attributes());
    let reply: Value = redis
        .bounded(
            redis::cmd("SET")
                .arg(&key)
                .arg(value)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .query_async(&mut conn),
        )
        .await?;
    Ok(match reply {
        Value::Nil => CreateOutcome::IdTaken,
        _ => {
            redis.forget_cached(&key);
            CreateOutcome::Created
        }
    })
}

/// GET; a session whose `cookie.expires` is at or before `now` is ignored.
async fn load(
    redis: Redis<'_>,
    id: &SessionId,
    now: SystemTime,
) -> Result<Option<Record>, StoreError> {
    let key = &session_key(redis.prefix(), id);
    redis
        .load_through_cache(key, now, |mut conn| async move {
            let Some(stored) = read_on(redis, &mut conn, key).await? else {
                return Ok(None);
            };
            let record = stored.record(now)?;
            Ok((record.meta.expires_at > now).then_some(record))
        })
        .await
}

/// `update` (with its changes) and `touch` (with none): merges the changes and the new
/// cookie times into the stored JSON and stores it with its new TTL, by compare-and-set.
/// Only an existing session that has not expired at `meta.last_active` is written; a TTL
/// that is not positive deletes it.
async fn write(
    redis: Redis<'_>,
    id: &SessionId,
    changes: &Changes,
    meta: &Meta,
) -> Result<WriteOutcome, StoreError> {
    let key = session_key(redis.prefix(), id);
    let now = meta.last_active;
    let ttl = ttl_secs(meta.expires_at, now);
    let script = scripts::replace_if_unchanged();
    // The cache (if any) learns the new value from its next read: the write reads the
    // stored value itself, and Redis tells the cache about it too.
    redis.forget_cached(&key);
    let outcome = with_timeout(redis.timeout, async {
        let Some(mut stored) = read(redis, &key).await? else {
            return Ok(WriteOutcome::NotFound);
        };
        for _ in 0..MAX_ATTEMPTS {
            // As gone as a missing one, by the caller's clock.
            if stored.record(now)?.meta.expires_at <= now {
                return Ok(WriteOutcome::NotFound);
            }
            let mut invocation = script.key(&key);
            invocation.arg(stored.sha1());
            if let Some(ttl) = ttl {
                let merged =
                    express::merge(stored.text()?, changes, meta).map_err(ValueError::Express)?;
                invocation.arg(merged).arg(ttl);
            }
            let mut conn = redis.conn();
            let reply: Value = redis.bounded(invocation.invoke_async(&mut conn)).await?;
            match reply {
                Value::Int(1) => return Ok(WriteOutcome::Applied),
                Value::Int(0) => return Ok(WriteOutcome::NotFound),
                // Another writer got in first: start again from what it wrote.
                Value::Array(current) => stored = Stored::from_conflict(current)?,
                _ => return Err(StoreError::Backend(Box::new(UnexpectedReply))),
            }
        }
        Err(StoreError::Backend(Box::new(WriteContention {
            attempts: MAX_ATTEMPTS,
        })))
    })
    .await;
    // Also after: a read that began before the write caches nothing.
    redis.forget_cached(&key);
    outcome
}

/// `DEL`.
async fn delete(redis: Redis<'_>, id: &SessionId) -> Result<(), StoreError> {
    let key = session_key(redis.prefix(), id);
    redis.forget_cached(&key);
    let mut conn = redis.conn();
    let removed: Result<i64, _> = redis
        .bounded(redis::cmd("DEL").arg(&key).query_async(&mut conn))
        .await;
    redis.forget_cached(&key);
    removed.map(drop)
}

/// Scans the prefix on every primary, reads each batch's values in one round trip, and
/// removes those whose `cookie.expires` is at or before `now` in another, each only if its
/// value is still the one read (so a session written meanwhile stays). Keys that are not
/// strings, values that are not express-session's JSON and cookies without `expires` are
/// left to Redis's TTL.
async fn delete_expired(redis: Redis<'_>, now: SystemTime) -> Result<u64, StoreError> {
    let read = scripts::get_if_string();
    let replace = scripts::replace_if_unchanged();
    // Loaded on every node (in a cluster), so that batches can go as pipelines.
    redis.load_script(read).await?;
    redis.load_script(replace).await?;
    let pattern = scan_pattern(redis.prefix());
    redis
        .scan_keys(&pattern, |conn, node, keys| async move {
            let mut reads = redis::pipe();
            for key in &keys {
                reads.cmd("EVALSHA").arg(read.get_hash()).arg(1).arg(key);
            }
            let values = redis.eval_pipeline_on(&conn, node, read, &reads).await?;
            let mut deletes = redis::pipe();
            for (key, value) in keys.iter().zip(values) {
                let Value::BulkString(value) = value else {
                    continue;
                };
                if cookie_expires(&value).is_some_and(|expires| expires <= now) {
                    let stored = Stored {
                        value,
                        pttl: -2,
                        expire_time: -1,
                    };
                    deletes
                        .cmd("EVALSHA")
                        .arg(replace.get_hash())
                        .arg(1)
                        .arg(key)
                        .arg(stored.sha1());
                }
            }
            if deletes.is_empty() {
                return Ok(0);
            }
            let replies = redis
                .eval_pipeline_on(&conn, node, replace, &deletes)
                .await?;
            Ok(replies
                .iter()
                .filter(|reply| matches!(reply, Value::Int(1)))
                .count() as u64)
        })
        .await
}

/// The connect-redis layout's [`Backend`].
pub(crate) struct ConnectRedis;

impl Backend for ConnectRedis {
    async fn migrate(&self, redis: Redis<'_>) -> Result<(), MigrateError> {
        migrate(redis).await
    }

    async fn create(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
        record: &Record,
    ) -> Result<CreateOutcome, StoreError> {
        create(redis, id, record).await
    }

    async fn load(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
        now: SystemTime,
    ) -> Result<Option<Record>, StoreError> {
        load(redis, id, now).await
    }

    async fn write(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
        changes: Option<&Changes>,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let unchanged = Changes::default();
        write(redis, id, changes.unwrap_or(&unchanged), meta).await
    }

    async fn delete(&self, redis: Redis<'_>, id: &SessionId) -> Result<(), StoreError> {
        delete(redis, id).await
    }

    async fn delete_expired(&self, redis: Redis<'_>, now: SystemTime) -> Result<u64, StoreError> {
        delete_expired(redis, now).await
    }

    async fn count(&self, redis: Redis<'_>) -> Result<u64, StoreError> {
        redis.count_keys(&scan_pattern(redis.prefix())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessio::store::from_unix_millis;

    const NOW: i64 = 1_700_000_000_000;

    fn at(ms: i64) -> SystemTime {
        from_unix_millis(ms)
    }

    #[test]
    fn ttl_is_connect_redis_ceiling_in_seconds() {
        assert_eq!(ttl_secs(at(NOW + 86_400_000), at(NOW)), Some(86_400));
        assert_eq!(ttl_secs(at(NOW + 1), at(NOW)), Some(1));
        assert_eq!(ttl_secs(at(NOW + 999), at(NOW)), Some(1));
        assert_eq!(ttl_secs(at(NOW + 1000), at(NOW)), Some(1));
        assert_eq!(ttl_secs(at(NOW + 1001), at(NOW)), Some(2));
        assert_eq!(ttl_secs(at(NOW), at(NOW)), None);
        assert_eq!(ttl_secs(at(NOW - 1), at(NOW)), None);
        assert_eq!(ttl_secs(at(i64::MAX), at(i64::MIN)), Some(MAX_TTL_SECS));
    }

    #[test]
    fn keys_hold_the_raw_id() {
        let id = SessionId::from("abc-DEF_123");
        assert_eq!(session_key("sess:", &id), "sess:abc-DEF_123");
        assert_eq!(scan_pattern("sess:"), "sess:*");
    }

    #[test]
    fn a_missing_expires_falls_back_to_the_key_ttl() {
        assert_eq!(fallback_expires(at(NOW), 1500), at(NOW + 1500));
        assert_eq!(
            fallback_expires(at(NOW), -1),
            at(NOW) + express::DEFAULT_MAX_AGE
        );
        assert_eq!(fallback_expires(at(NOW), -2), at(NOW));
    }

    #[test]
    fn the_digest_is_redis_sha1hex() {
        // `redis-cli EVAL "return redis.sha1hex(ARGV[1])" 0 abc`
        let stored = Stored {
            value: b"abc".to_vec(),
            pttl: 0,
            expire_time: -1,
        };
        assert_eq!(stored.sha1(), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn conflict_replies_are_checked() {
        let ok =
            Stored::from_conflict(vec![Value::BulkString(b"{}".to_vec()), Value::Int(5)]).unwrap();
        assert_eq!((ok.value.as_slice(), ok.pttl), (&b"{}"[..], 5));
        assert!(Stored::from_conflict(vec![Value::Int(5)]).is_err());
        assert!(Stored::from_conflict(vec![Value::Nil, Value::Int(5)]).is_err());
    }

    #[test]
    fn cookie_expires_is_read_without_panicking() {
        let value = br#"{"cookie":{"expires":"2023-11-14T22:13:20.000Z"},"a":1}"#;
        assert_eq!(cookie_expires(value), Some(at(NOW)));
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"cookie":{"expires":null}}"#,
            br#"{"cookie":1}"#,
            br#"{"a":1}"#,
            b"\xff",
        ] {
            assert_eq!(cookie_expires(bad), None);
        }
    }

    #[test]
    fn bad_values_are_decode_errors() {
        let stored = |value: &[u8]| Stored {
            value: value.to_vec(),
            pttl: 1000,
            expire_time: -1,
        };
        assert!(matches!(
            stored(b"\xff").record(at(NOW)),
            Err(ValueError::NotUtf8(_))
        ));
        assert!(matches!(
            stored(b"{").record(at(NOW)),
            Err(ValueError::Express(_))
        ));
        let record = stored(br#"{"cookie":{"originalMaxAge":null,"expires":null},"n":1}"#)
            .record(at(NOW))
            .unwrap();
        assert_eq!(record.meta.expires_at, at(NOW + 1000));
    }
}
