//! sessio's own layout ([`Layout::Native`](crate::Layout::Native)): its keys, the fields of
//! its hashes, and the store operations on them.
//!
//! One HASH per session, under `{prefix}{base64url(sha256(id)[..16])}` (22 characters after
//! the prefix; see [`KEY_BYTES`]):
//!
//! | field      | value                                             |
//! |------------|---------------------------------------------------|
//! | `c`        | created_at, milliseconds since the Unix epoch     |
//! | `l`        | last_active, milliseconds                         |
//! | `e`        | expires_at, milliseconds (also the key's PEXPIREAT); for a session with an expiry of its own, followed by `/{idle}/{absolute}` in milliseconds |
//! | `d:{key}`  | the JSON text of data key `key`                   |
//!
//! The own expiry shares `e` so that every write sets all the meta in one `HSET`: a field
//! of its own would need an `HDEL` on every write of a session that has none.
//!
//! [`migrate`] records the layout version, `2`, under `{prefix}layout`.

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use redis::{Cmd, Pipeline, RedisWrite, Script, ToRedisArgs, Value};
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, Changes, CreateOutcome, Data, Meta, Record,
    StoreError, WriteOutcome,
};
use sessio::{Expiry, SessionId};

use crate::conn::Via;
use crate::context::Redis;
use crate::error::MigrateError;
use crate::layout::{layout_key, Backend};
use crate::scripts::{self, Caller};

/// The layout version this crate writes, recorded under `{prefix}layout`.
pub(crate) const LAYOUT_VERSION: &str = "2";
/// The key prefix used unless configured otherwise.
pub(crate) const DEFAULT_PREFIX: &str = "sessio:";

/// Bytes of the SHA-256 storage key ([`storage_key`]) kept in a session's Redis key: the
/// first 16 (128 bits).
///
/// Truncating is safe. Ids reach the store only once their cookie's HMAC checked out, so
/// clients cannot choose them, let alone search for one whose hash shares 128 bits with
/// another session's; among random ids, even a billion live sessions collide with a
/// probability below 10^-20. And a collision would do no harm: `create` never overwrites a
/// live session (it answers [`CreateOutcome::IdTaken`] and the core draws another id).
///
/// Fewer bytes would save nothing: with the default prefix the key is 29 characters, and
/// Redis 7.0 (jemalloc) allocates any key of 23 to 30 characters in the same 32 bytes (the
/// whole SHA-256's 50 characters would take 64), so 12 bytes (16 characters) would cost as
/// much.
pub(crate) const KEY_BYTES: usize = 16;
/// Characters of the base64url (unpadded) encoding of the [`KEY_BYTES`] kept.
pub(crate) const ENCODED_KEY_LEN: usize = 22;

pub(crate) const CREATED: &str = "c";
pub(crate) const LAST_ACTIVE: &str = "l";
pub(crate) const EXPIRES: &str = "e";
pub(crate) const DATA_PREFIX: &str = "d:";

/// The Redis key of a session: the prefix, then the base64url of the first [`KEY_BYTES`]
/// of the hashed id.
pub(crate) fn session_key(prefix: &str, id: &SessionId) -> String {
    key_of_hash(prefix, &storage_key(id))
}

/// The Redis key of the session whose storage key (the id's SHA-256) starts with `hash`.
fn key_of_hash(prefix: &str, hash: &[u8]) -> String {
    hashed_key(prefix, &hash[..KEY_BYTES])
}

/// A `SCAN MATCH` pattern matching exactly this prefix's session keys: the prefix and 22
/// more characters. Neither the layout key nor keys under a longer prefix match it.
pub(crate) fn scan_pattern(prefix: &str) -> String {
    pattern_of_len(prefix, ENCODED_KEY_LEN)
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// `EVALSHA` of a write `script` on `key`, with the arguments every write script starts
/// with: `last_active` (the write's present, which the script judges the stored `e` by),
/// the value of `e` ([`ExpiresField`]) and `created_at`, in milliseconds. The scripts write
/// them to `l`, `e` and `c` themselves: field names passed as arguments would cost Redis a
/// Lua string each per call.
///
/// Built as one command, not through `redis::ScriptInvocation`, which copies every argument
/// once more into a command of its own (3,500 instructions per write, in `bench/run
/// instructions`); [`Redis::eval`] loads the script when Redis lost it.
///
/// `fields` names the data keys to follow (the command's buffers are sized for them once,
/// where a command grown argument by argument reallocates them several times).
fn write_script<'a>(
    script: &Script,
    key: &str,
    meta: &Meta,
    fields: impl Iterator<Item = &'a str>,
) -> Cmd {
    // Timestamps and the own expiry's durations take at most 13 digits in milliseconds;
    // a value is guessed at 16 bytes of JSON (longer ones grow the buffer).
    const NUMBER: usize = 13;
    const VALUE: usize = 16;
    // EVALSHA, the script's hash, the key count, the key and three timestamps (`e` with
    // room for an own expiry).
    let mut args = 7;
    let mut bytes = "EVALSHA".len() + 40 + 1 + key.len() + 5 * NUMBER + 2;
    // A field and a value per data key.
    for field in fields {
        args += 2;
        bytes += DATA_PREFIX.len() + field.len() + VALUE;
    }
    let mut cmd = Cmd::with_capacity(args, bytes);
    cmd.arg("EVALSHA")
        .arg(script.get_hash())
        .arg(1)
        .arg(key)
        .arg(unix_millis(meta.last_active))
        .arg(ExpiresField(meta))
        .arg(unix_millis(meta.created_at));
    cmd
}

/// The hash field of data key `key`, written straight into a command's arguments.
struct DataField<'a>(&'a str);

impl ToRedisArgs for DataField<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        out.write_arg_fmt(format_args!("{DATA_PREFIX}{}", self.0));
    }
}

/// The value of `e`: `expires_at` in milliseconds, then `/{idle}/{absolute}` (milliseconds)
/// when the session has an expiry of its own. Scripts read the leading number.
struct ExpiresField<'a>(&'a Meta);

impl ToRedisArgs for ExpiresField<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let expires = unix_millis(self.0.expires_at);
        match self.0.expiry {
            None => out.write_arg_fmt(expires),
            Some(expiry) => out.write_arg_fmt(format_args!(
                "{expires}/{}/{}",
                duration_millis(expiry.idle_timeout()),
                duration_millis(expiry.absolute_lifetime())
            )),
        }
    }
}

/// Why a stored session could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("the reply to HGETALL is not a list of field/value pairs")]
    NotAHash,
    #[error("the stored session has no field {0:?}")]
    MissingField(&'static str),
    #[error("field {0:?} of the stored session is not a whole number of milliseconds")]
    BadNumber(&'static str),
    #[error("field \"e\" of the stored session is neither a time nor a time and an expiry")]
    BadExpiry,
    #[error("a data field name of the stored session is not UTF-8")]
    FieldNotUtf8,
    #[error("the value of data key {key:?} is not JSON")]
    BadJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

fn bytes(value: Value) -> Result<Vec<u8>, DecodeError> {
    match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        Value::Int(n) => Ok(n.to_string().into_bytes()),
        _ => Err(DecodeError::NotAHash),
    }
}

/// A hash field and its value, as Redis sent them.
type FieldValue = (Vec<u8>, Vec<u8>);

/// The field/value pairs of an HGETALL reply, RESP2 (flat array) or RESP3 (map).
fn pairs(reply: Value) -> Result<Vec<FieldValue>, DecodeError> {
    match reply {
        Value::Nil => Ok(Vec::new()),
        Value::Map(entries) => entries
            .into_iter()
            .map(|(field, value)| Ok((bytes(field)?, bytes(value)?)))
            .collect(),
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(DecodeError::NotAHash);
            }
            let mut items = items.into_iter();
            let mut pairs = Vec::with_capacity(items.len() / 2);
            while let (Some(field), Some(value)) = (items.next(), items.next()) {
                pairs.push((bytes(field)?, bytes(value)?));
            }
            Ok(pairs)
        }
        _ => Err(DecodeError::NotAHash),
    }
}

fn millis(name: &'static str, value: &[u8]) -> Result<i64, DecodeError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(DecodeError::BadNumber(name))
}

/// The value of `e` ([`ExpiresField`]): `expires_at` and the session's own expiry.
fn expires(value: &[u8]) -> Result<(SystemTime, Option<Expiry>), DecodeError> {
    let duration = |part: &[u8]| {
        millis(EXPIRES, part)
            .ok()
            .and_then(|ms| u64::try_from(ms).ok())
            .map(Duration::from_millis)
            .ok_or(DecodeError::BadExpiry)
    };
    let mut parts = value.split(|&byte| byte == b'/');
    let at = parts.next().ok_or(DecodeError::BadExpiry)?;
    let at = from_unix_millis(millis(EXPIRES, at)?);
    match (parts.next(), parts.next(), parts.next()) {
        (None, _, _) => Ok((at, None)),
        (Some(idle), Some(absolute), None) => {
            Ok((at, Some(Expiry::new(duration(idle)?, duration(absolute)?))))
        }
        _ => Err(DecodeError::BadExpiry),
    }
}

/// Decodes an HGETALL reply; `None` when the key does not exist or expired at `now`.
pub(crate) fn decode(reply: Value, now: SystemTime) -> Result<Option<Record>, DecodeError> {
    let pairs = pairs(reply)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let (mut created, mut last_active, mut expires_field) = (None, None, None);
    let mut data = Data::new();
    for (field, value) in pairs {
        match field.as_slice() {
            b"c" => created = Some(millis(CREATED, &value)?),
            b"l" => last_active = Some(millis(LAST_ACTIVE, &value)?),
            b"e" => expires_field = Some(expires(&value)?),
            name if name.starts_with(DATA_PREFIX.as_bytes()) => {
                let key = String::from_utf8(name[DATA_PREFIX.len()..].to_vec())
                    .map_err(|_| DecodeError::FieldNotUtf8)?;
                let value =
                    serde_json::from_slice(&value).map_err(|source| DecodeError::BadJson {
                        key: key.clone(),
                        source,
                    })?;
                data.insert(key, value);
            }
            // Fields of a later layout revision that left this one readable.
            _ => {}
        }
    }
    // What a write that found no session left behind, until the writer removes it.
    let Some(created) = created else {
        return Ok(None);
    };
    let (expires_at, expiry) = expires_field.ok_or(DecodeError::MissingField(EXPIRES))?;
    if expires_at <= now {
        return Ok(None);
    }
    let meta = Meta {
        created_at: from_unix_millis(created),
        last_active: from_unix_millis(last_active.ok_or(DecodeError::MissingField(LAST_ACTIVE))?),
        expires_at,
        expiry,
    };
    Ok(Some(Record { data, meta }))
}

/// Records the layout version under `{prefix}layout`, or checks the one recorded.
async fn migrate(redis: Redis<'_>) -> Result<(), MigrateError> {
    let found = record_layout(redis, LAYOUT_VERSION).await?;
    expect_layout(found, LAYOUT_VERSION)
}

/// `meta` as Redis keeps it, and so as [`decode`] gives it back: to the millisecond.
fn as_stored(meta: &Meta) -> Meta {
    let round = |time| from_unix_millis(unix_millis(time));
    let millis = |duration| {
        Duration::from_millis(u64::try_from(duration_millis(duration)).unwrap_or(u64::MAX))
    };
    Meta {
        created_at: round(meta.created_at),
        last_active: round(meta.last_active),
        expires_at: round(meta.expires_at),
        expiry: meta.expiry.map(|expiry| {
            Expiry::new(
                millis(expiry.idle_timeout()),
                millis(expiry.absolute_lifetime()),
            )
        }),
    }
}

/// Stores a new session with the create script, unless a live one holds the key.
///
/// Not through the cache: most new sessions never come back (a first visit, a crawler),
/// and tracking each would cost Redis for nothing. A session is cached from its first
/// read.
async fn create(
    redis: Redis<'_>,
    id: &SessionId,
    record: &Record,
) -> Result<CreateOutcome, StoreError> {
    let key = session_key(redis.prefix(), id);
    let meta = &record.meta;
    let script = scripts::create();
    // A session whose expiry is at or before the new one's start is gone.
    let names = record.data.keys().map(String::as_str);
    let mut eval = write_script(script, &key, meta, names);
    for (name, value) in &record.data {
        eval.arg(DataField(name)).arg(JsonText(value));
    }
    redis.create_key(&key, script, &eval).await
}

/// `update` with `changes`, `touch` without. One `MULTI` transaction on the session's
/// hash (see [`transaction`]); an update that clears every key runs the update script,
/// which can list the fields to remove (`HKEYS`) in the same atomic step.
async fn write(
    redis: Redis<'_>,
    id: &SessionId,
    changes: Option<&Changes>,
    meta: &Meta,
) -> Result<WriteOutcome, StoreError> {
    let key = session_key(redis.prefix(), id);
    let clears = changes.is_some_and(Changes::clears_all);
    let write = |conn: Via| {
        let key = &key;
        async move {
            let caller = match conn {
                Via::Tracking(_) => Caller::Tracking,
                Via::Store(_) => Caller::Plain,
            };
            if clears {
                let script = scripts::update(caller);
                let eval = update_script(script, key, changes, meta);
                return write_outcome(redis.eval(&conn, script, &eval).await);
            }
            let mut conn = conn;
            let (pipe, fields) = transaction(key, changes, meta, caller);
            let (new_fields,): (i64,) = redis.bounded(pipe.query_async(&mut conn)).await?;
            if new_fields < fields {
                return Ok(WriteOutcome::Applied);
            }
            // No session was there: take back what the transaction wrote. Until then
            // `load` sees a hash without `c`, which is no session either.
            let _: i64 = redis
                .bounded(redis::cmd("UNLINK").arg(key).query_async(&mut conn))
                .await?;
            Ok(WriteOutcome::NotFound)
        }
    };
    redis
        .write_through_cache(&key, write, changes, meta, || as_stored(meta))
        .await
}

/// A write script's answer: 1 when it wrote, 0 when the session was not there to write.
fn write_outcome(reply: Result<i64, StoreError>) -> Result<WriteOutcome, StoreError> {
    Ok(if reply? == 1 {
        WriteOutcome::Applied
    } else {
        WriteOutcome::NotFound
    })
}

/// The write of a live session as one `MULTI` transaction: no script, so none of a
/// script's cost to Redis. Returns the transaction and how many fields its `HSET` sets.
///
/// Its first command, `HSET key l <last_active> e <expires> [d:… …]`, answers how many of
/// those fields the hash lacked: all of them exactly when the session was not there
/// (destroyed, or expired, which Redis's own expiry at `e` ensures), since every stored
/// session has `l` and `e`. The rest then wrote a hash without `c`, which [`decode`] reads
/// as no session and the caller removes: a write never brings a session back. `c` is never
/// written here: a session's creation time never changes. For a caller that tracks keys
/// for a client-side cache it ends by reading the key, as a write ends the key's tracking.
fn transaction(
    key: &str,
    changes: Option<&Changes>,
    meta: &Meta,
    caller: Caller,
) -> (Pipeline, i64) {
    let entries = || changes.into_iter().flat_map(Changes::iter);
    let mut pipe = redis::pipe();
    pipe.atomic();
    let set = pipe
        .cmd("HSET")
        .arg(key)
        .arg(LAST_ACTIVE)
        .arg(unix_millis(meta.last_active))
        .arg(EXPIRES)
        .arg(ExpiresField(meta));
    let mut fields = 2;
    for (name, value) in entries() {
        if let Some(value) = value {
            set.arg(DataField(name)).arg(JsonText(value));
            fields += 1;
        }
    }
    let mut doomed = entries().filter(|(_, value)| value.is_none()).peekable();
    if doomed.peek().is_some() {
        let delete = pipe.cmd("HDEL").arg(key);
        for (name, _) in doomed {
            delete.arg(DataField(name));
        }
        delete.ignore();
    }
    pipe.cmd("PEXPIREAT")
        .arg(key)
        .arg(unix_millis(meta.expires_at))
        .ignore();
    if caller == Caller::Tracking {
        pipe.cmd("EXISTS").arg(key).ignore();
    }
    (pipe, fields)
}

/// The `EVALSHA` of the update `script`, which clears every data key, with what `changes`
/// set and `meta`.
fn update_script(script: &Script, key: &str, changes: Option<&Changes>, meta: &Meta) -> Cmd {
    let set = || {
        changes
            .into_iter()
            .flat_map(Changes::iter)
            .filter_map(|(name, value)| Some((name, value?)))
    };
    let mut eval = write_script(script, key, meta, set().map(|(name, _)| name));
    for (name, value) in set() {
        eval.arg(DataField(name)).arg(JsonText(value));
    }
    eval
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

/// The native layout's [`Backend`].
pub(crate) struct Native;

impl Backend for Native {
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
        let key = session_key(redis.prefix(), id);
        redis.read_key(&key, now, "HGETALL", decode).await
    }

    async fn write(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
        changes: Option<&Changes>,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        write(redis, id, changes, meta).await
    }

    async fn delete(&self, redis: Redis<'_>, id: &SessionId) -> Result<(), StoreError> {
        redis.delete_key(&session_key(redis.prefix(), id)).await
    }

    async fn delete_expired(&self, redis: Redis<'_>, now: SystemTime) -> Result<u64, StoreError> {
        let pattern = scan_pattern(redis.prefix());
        redis
            .sweep(&pattern, scripts::delete_if_expired(), now)
            .await
    }

    async fn count(&self, redis: Redis<'_>) -> Result<u64, StoreError> {
        redis.count_keys(&scan_pattern(redis.prefix())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn reply(fields: &[(&str, &str)]) -> Value {
        Value::Array(
            fields
                .iter()
                .flat_map(|(f, v)| [bulk(f), bulk(v)])
                .collect(),
        )
    }

    const NOW: i64 = 1_700_000_000_000;

    fn now() -> SystemTime {
        from_unix_millis(NOW)
    }

    #[test]
    fn keys_hash_the_id_and_match_the_scan_pattern() {
        let id = SessionId::from("the raw session id");
        let key = session_key("p:", &id);
        assert!(key.starts_with("p:"));
        assert_eq!(key.len(), 2 + 22);
        assert_eq!(ENCODED_KEY_LEN, 22);
        assert!(!key.contains("raw"));
        assert_eq!(scan_pattern("p:").len(), key.len());
        assert_ne!(crate::layout::layout_key("p:").len(), key.len());
        // The first 16 bytes of the id's SHA-256, and nothing else.
        let hash = storage_key(&id);
        assert_eq!(key["p:".len()..], URL_SAFE_NO_PAD.encode(&hash[..16]));
        // With the default prefix, 29 characters: Redis keeps it in a 32-byte allocation.
        assert_eq!(session_key(DEFAULT_PREFIX, &id).len(), 29);
    }

    #[test]
    fn decodes_a_full_record() {
        let record = decode(
            reply(&[
                ("c", "1699999999000"),
                ("l", "1700000000000"),
                ("e", "1700000001000/1000/5000"),
                ("d:n", "1"),
                ("d:", "\"empty key\""),
                ("d:d:x", "[true]"),
                ("future", "ignored"),
            ]),
            now(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(record.meta.created_at, from_unix_millis(NOW - 1000));
        assert_eq!(record.meta.expires_at, from_unix_millis(NOW + 1000));
        assert_eq!(
            record.meta.expiry,
            Some(Expiry::new(Duration::from_secs(1), Duration::from_secs(5)))
        );
        assert_eq!(
            serde_json::Value::Object(record.data),
            serde_json::json!({"n": 1, "": "empty key", "d:x": [true]})
        );
    }

    #[test]
    fn expired_and_missing_records_are_none() {
        assert!(decode(Value::Array(vec![]), now()).unwrap().is_none());
        assert!(decode(Value::Nil, now()).unwrap().is_none());
        let at_expiry = reply(&[("c", "0"), ("l", "0"), ("e", &NOW.to_string())]);
        assert!(decode(at_expiry, now()).unwrap().is_none());
    }

    #[test]
    fn bad_content_is_a_decode_error_not_a_panic() {
        let cases: &[&[(&str, &str)]] = &[
            &[("c", "0"), ("l", "0")],
            &[("c", "0"), ("l", "0"), ("e", "soon")],
            &[("c", "0"), ("l", "0"), ("e", "9999999999999/5")],
            &[("c", "0"), ("l", "0"), ("e", "9999999999999/-5/1")],
            &[("c", "0"), ("l", "0"), ("e", "9999999999999/5/1/2")],
            &[("c", "0"), ("l", "0"), ("e", "9999999999999//")],
            &[("c", "0"), ("l", "0"), ("e", "")],
            &[
                ("c", "0"),
                ("l", "0"),
                ("e", "9999999999999"),
                ("d:k", "{not json"),
            ],
        ];
        for case in cases {
            assert!(decode(reply(case), now()).is_err(), "{case:?} decoded");
        }
        // What a write that found no session leaves for a moment: no session at all.
        let remains = reply(&[("l", "0"), ("e", "9999999999999"), ("d:k", "1")]);
        assert!(decode(remains, now()).unwrap().is_none());
        assert!(decode(Value::Int(3), now()).is_err());
        assert!(decode(Value::Array(vec![bulk("c")]), now()).is_err());
        let not_utf8 = Value::Array(vec![
            Value::BulkString(b"d:\xff".to_vec()),
            bulk("1"),
            bulk("e"),
            bulk("9999999999999"),
        ]);
        assert!(decode(not_utf8, now()).is_err());
    }

    /// The value a write gives `e`, as Redis would store it.
    fn written_e(meta: &Meta) -> Vec<u8> {
        ExpiresField(meta).to_redis_args().remove(0)
    }

    #[test]
    fn e_holds_the_own_expiry_only_when_the_session_has_one() {
        let meta = Meta {
            created_at: now(),
            last_active: now(),
            expires_at: from_unix_millis(NOW + 1),
            expiry: None,
        };
        assert_eq!(written_e(&meta), (NOW + 1).to_string().into_bytes());
        assert_eq!(expires(&written_e(&meta)).unwrap(), (meta.expires_at, None));
        let own = Meta {
            expiry: Some(Expiry::new(Duration::from_secs(1), Duration::from_secs(2))),
            ..meta
        };
        assert_eq!(
            written_e(&own),
            format!("{}/1000/2000", NOW + 1).into_bytes()
        );
        assert_eq!(
            expires(&written_e(&own)).unwrap(),
            (own.expires_at, own.expiry)
        );
    }
}
