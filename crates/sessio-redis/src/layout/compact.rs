//! The compact layout ([`Layout::Compact`](crate::Layout::Compact)): one Redis string per
//! session under a short key, for the least Redis memory per session.
//!
//! Key: `{prefix}{base64url(sha256(id)[..9])}` (12 characters after the prefix; see
//! [`KEY_BYTES`]). With the default prefix `s:` the key is 14 characters, which Redis keeps
//! in its smallest key allocation.
//!
//! Value: six bytes, then unsigned LEB128 varints and bytes, in this order:
//!
//! | part | what |
//! |---|---|
//! | `expires + own * 2^47`, 6 bytes big-endian | expires_at in milliseconds since the Unix epoch (also the key's `PXAT`); `own` is 1 when the session has an expiry of its own |
//! | `zigzag(expires - last_active)` | milliseconds |
//! | `zigzag(last_active - created)` | milliseconds |
//! | `idle`, `absolute` | only when `own` is 1: the session's idle timeout and absolute lifetime, milliseconds |
//! | for each data key: `len(key)`, key, `len(json)`, json | the key's UTF-8 and its value's JSON text |
//!
//! The scripts need only `expires` (is the session live?) and where the data starts: the
//! first takes them one `struct.unpack`, the second one `string.find`, where decoding
//! varints byte by byte in Lua cost Redis more than the rest of the write. Timestamps and
//! durations are kept within `0..2^47` milliseconds (year 6429).
//!
//! The layout is recorded as [`LAYOUT_VERSION`] under `{prefix}layout`.

use std::time::{Duration, SystemTime};

use redis::{Cmd, Value};
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, Changes, CreateOutcome, Data, Meta, Record,
    StoreError, WriteOutcome,
};
use sessio::{Expiry, SessionId};

use crate::error::MigrateError;
use crate::layout::hashed::{expect_layout, hashed_key, pattern_of_len, record_layout, JsonText};
use crate::scripts;
use crate::store::RedisStore;

/// The layout version recorded under `{prefix}layout`.
pub(crate) const LAYOUT_VERSION: &str = "compact-1";
/// The key prefix used unless configured otherwise: two characters, so that the whole key
/// takes 14.
pub(crate) const DEFAULT_PREFIX: &str = "s:";

/// Bytes of the id's SHA-256 kept in its key: 9 (72 bits, 12 characters of base64url).
///
/// As in the native layout (see its `KEY_BYTES`), a collision can do no harm: ids reach the
/// store only once their cookie's signature checked out, so clients cannot choose them, and
/// `create` never overwrites a live session (it answers [`CreateOutcome::IdTaken`] and the
/// core draws another id). Among a hundred million live sessions a new id meets a taken key
/// with a probability of about 2 in 10^14.
pub(crate) const KEY_BYTES: usize = 9;
/// Characters of the base64url encoding of the [`KEY_BYTES`] kept.
pub(crate) const ENCODED_KEY_LEN: usize = 12;

/// The largest timestamp or duration kept, in milliseconds: `2^47 - 1`, so that bit 47 of
/// the six bytes of `expires` can say whether the session has its own expiry.
const MAX_MILLIS: u64 = (1 << 47) - 1;
/// Bit 47 of the first six bytes: the session has an expiry of its own.
const OWN_EXPIRY: u64 = 1 << 47;
/// Bytes of `expires` (with the [`OWN_EXPIRY`] bit) at the start of a value.
const EXPIRES_LEN: usize = 6;

/// The Redis key of a session.
pub(crate) fn session_key(prefix: &str, id: &SessionId) -> String {
    hashed_key(prefix, &storage_key(id)[..KEY_BYTES])
}

/// A `SCAN MATCH` pattern matching exactly this prefix's session keys.
pub(crate) fn scan_pattern(prefix: &str) -> String {
    pattern_of_len(prefix, ENCODED_KEY_LEN)
}

fn clamped_millis(time: SystemTime) -> u64 {
    u64::try_from(unix_millis(time)).map_or(0, |ms| ms.min(MAX_MILLIS))
}

fn clamped_duration(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).map_or(MAX_MILLIS, |ms| ms.min(MAX_MILLIS))
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        // Seven bits at a time, low first; the high bit says more follow.
        out.push((n & 0x7f) as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(n: u64) -> i64 {
    (n >> 1) as i64 ^ -((n & 1) as i64)
}

/// Appends the value's head: the timestamps and the session's own expiry.
fn push_head(out: &mut Vec<u8>, meta: &Meta) {
    let created = clamped_millis(meta.created_at);
    let last_active = clamped_millis(meta.last_active);
    let expires = clamped_millis(meta.expires_at);
    let own = if meta.expiry.is_some() { OWN_EXPIRY } else { 0 };
    out.extend_from_slice(&(expires | own).to_be_bytes()[8 - EXPIRES_LEN..]);
    // Within 0..2^47, the differences fit an i64 and their zigzag 2^48.
    push_varint(out, zigzag(expires as i64 - last_active as i64));
    push_varint(out, zigzag(last_active as i64 - created as i64));
    if let Some(expiry) = meta.expiry {
        push_varint(out, clamped_duration(expiry.idle_timeout()));
        push_varint(out, clamped_duration(expiry.absolute_lifetime()));
    }
}

/// Appends a data entry: its key and its value's JSON text, each after its length.
fn push_entry(out: &mut Vec<u8>, key: &str, json: &[u8]) {
    push_varint(out, key.len() as u64);
    out.extend_from_slice(key.as_bytes());
    push_varint(out, json.len() as u64);
    out.extend_from_slice(json);
}

/// The whole value of a session.
fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    push_head(&mut out, &record.meta);
    let mut json = Vec::new();
    for (key, value) in &record.data {
        json.clear();
        // Cannot fail: a JSON value written to memory.
        let _ = serde_json::to_writer(&mut json, value);
        push_entry(&mut out, key, &json);
    }
    out
}

fn head_of(meta: &Meta) -> Vec<u8> {
    let mut head = Vec::with_capacity(24);
    push_head(&mut head, meta);
    head
}

/// Why a stored session could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("the stored session is not a Redis string")]
    NotAString,
    #[error("the stored session ends in the middle of its {0}")]
    Truncated(&'static str),
    #[error("a number in the stored session is out of range")]
    OutOfRange,
    #[error("a data key of the stored session is not UTF-8")]
    KeyNotUtf8,
    #[error("data key {0:?} is twice in the stored session")]
    DuplicateKey(String),
    #[error("the value of data key {key:?} is not JSON")]
    BadJson {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A reader over a stored value.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut n: u64 = 0;
        for (i, &byte) in self.bytes.iter().enumerate() {
            let bits = u64::from(byte & 0x7f);
            let shift = 7 * i as u32;
            // Ten bytes hold 64 bits; anything longer, or bits past the 64th, is damage.
            if shift >= 64 || (shift > 0 && bits >> (64 - shift) != 0) {
                return Err(DecodeError::OutOfRange);
            }
            n |= bits << shift;
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(n);
            }
        }
        Err(DecodeError::Truncated(what))
    }

    /// A varint of at most 2^48 (a timestamp's zigzag difference, a duration).
    fn millis(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let n = self.varint(what)?;
        if n > MAX_MILLIS * 2 + 1 {
            return Err(DecodeError::OutOfRange);
        }
        Ok(n)
    }

    fn expires(&mut self) -> Result<u64, DecodeError> {
        let Some((six, rest)) = self.bytes.split_first_chunk::<EXPIRES_LEN>() else {
            return Err(DecodeError::Truncated("timestamps"));
        };
        self.bytes = rest;
        let mut eight = [0; 8];
        eight[8 - EXPIRES_LEN..].copy_from_slice(six);
        Ok(u64::from_be_bytes(eight))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let len = self.varint(what)?;
        let len = usize::try_from(len).map_err(|_| DecodeError::OutOfRange)?;
        if len > self.bytes.len() {
            return Err(DecodeError::Truncated(what));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }
}

/// Decodes a value's head, leaving the reader at the data.
fn decode_head(reader: &mut Reader<'_>) -> Result<Meta, DecodeError> {
    let first = reader.expires()?;
    let expires = (first & MAX_MILLIS) as i64;
    // Differences below 2^48 in size (checked by `Reader::millis`): no overflow.
    let last_active = expires - unzigzag(reader.millis("timestamps")?);
    let created = last_active - unzigzag(reader.millis("timestamps")?);
    let expiry = if first & OWN_EXPIRY != 0 {
        let idle = reader.millis("expiry")?;
        let absolute = reader.millis("expiry")?;
        Some(Expiry::new(
            Duration::from_millis(idle),
            Duration::from_millis(absolute),
        ))
    } else {
        None
    };
    Ok(Meta {
        created_at: from_unix_millis(created),
        last_active: from_unix_millis(last_active),
        expires_at: from_unix_millis(expires),
        expiry,
    })
}

/// Decodes a stored value; `None` when the session expired at `now`.
fn decode_value(bytes: &[u8], now: SystemTime) -> Result<Option<Record>, DecodeError> {
    let mut reader = Reader { bytes };
    let meta = decode_head(&mut reader)?;
    if meta.expires_at <= now {
        return Ok(None);
    }
    let mut data = Data::new();
    while !reader.bytes.is_empty() {
        let key = reader.bytes("data key")?;
        let key = std::str::from_utf8(key).map_err(|_| DecodeError::KeyNotUtf8)?;
        let json = reader.bytes("data value")?;
        let value = serde_json::from_slice(json).map_err(|source| DecodeError::BadJson {
            key: key.to_owned(),
            source,
        })?;
        // The scripts write each key once: a second one is damage, not a newer value.
        if data.insert(key.to_owned(), value).is_some() {
            return Err(DecodeError::DuplicateKey(key.to_owned()));
        }
    }
    Ok(Some(Record { data, meta }))
}

/// Decodes a GET reply; `None` when the key does not exist or the session expired at `now`.
pub(crate) fn decode(reply: Value, now: SystemTime) -> Result<Option<Record>, DecodeError> {
    match reply {
        Value::Nil => Ok(None),
        Value::BulkString(bytes) => decode_value(&bytes, now),
        _ => Err(DecodeError::NotAString),
    }
}

/// `meta` as a value whose head is `head` (its [`head_of`]) keeps it, and so as [`decode`]
/// gives it back.
fn as_stored(head: &[u8], meta: &Meta) -> Meta {
    // What `push_head` wrote, `decode_head` reads.
    decode_head(&mut Reader { bytes: head }).unwrap_or(*meta)
}

/// Checks that Redis can run this layout's scripts (see [`probe`]), then records the
/// layout under `{prefix}layout`, or checks the one recorded.
pub(crate) async fn migrate(store: &RedisStore) -> Result<(), MigrateError> {
    probe(store).await?;
    expect_layout(record_layout(store, LAYOUT_VERSION).await?, LAYOUT_VERSION)
}

/// Runs what this layout asks of Redis beyond the native layout, `SET ... PXAT` (Redis 6.2)
/// and Lua's `struct.unpack`, on `{prefix}probe` (never a session key: not 12 characters
/// after the prefix), which the past `PXAT` removes at once. Without it a Redis too old
/// would fail every write; with it, `migrate` says why at startup.
async fn probe(store: &RedisStore) -> Result<(), MigrateError> {
    let script = scripts::compact_probe();
    let key = format!("{}probe", store.key_prefix());
    let answer: Result<i64, StoreError> = store
        .bounded(script.key(key).invoke_async(&mut store.conn()))
        .await;
    match answer {
        Ok(1) => Ok(()),
        Ok(other) => Err(MigrateError::UnsupportedServer(redis::RedisError::from((
            redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError),
            "struct.unpack answered wrongly",
            other.to_string(),
        )))),
        Err(error) => Err(unsupported_or_store(error)),
    }
}

/// A refused probe: Redis answering `ERR` (an unknown option, a missing Lua library) means
/// it cannot serve the layout; anything else (unreachable, timed out, no permission) is a
/// store error as in every other operation.
fn unsupported_or_store(error: StoreError) -> MigrateError {
    match error {
        StoreError::Backend(source) => match source.downcast::<redis::RedisError>() {
            Ok(redis)
                if redis.kind()
                    == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) =>
            {
                MigrateError::UnsupportedServer(*redis)
            }
            Ok(redis) => MigrateError::Store(StoreError::Backend(redis)),
            Err(other) => MigrateError::Store(StoreError::Backend(other)),
        },
        other => MigrateError::Store(other),
    }
}

/// An `EVALSHA` of `script` on `key` with the arguments every compact write script starts
/// with: now (the write's `last_active`), `expires_at` (the key's `PXAT`), in milliseconds.
fn write_command(script: &redis::Script, key: &str, meta: &Meta, args: usize, bytes: usize) -> Cmd {
    let mut cmd = Cmd::with_capacity(6 + args, "EVALSHA".len() + 40 + 1 + key.len() + 26 + bytes);
    cmd.arg("EVALSHA")
        .arg(script.get_hash())
        .arg(1)
        .arg(key)
        .arg(clamped_millis(meta.last_active))
        .arg(clamped_millis(meta.expires_at));
    cmd
}

/// Stores a new session, unless a live one holds the key. Not through the cache, as in
/// the native layout: a session is cached from its first read.
pub(crate) async fn create(
    store: &RedisStore,
    id: &SessionId,
    record: &Record,
) -> Result<CreateOutcome, StoreError> {
    let key = session_key(store.key_prefix(), id);
    let script = scripts::compact_create();
    let value = encode(record);
    let mut cmd = write_command(script, &key, &record.meta, 1, value.len());
    cmd.arg(value);
    store.create_key(&key, script, &cmd).await
}

/// Runs the update script: with `changes` for an update, without for a touch.
pub(crate) async fn write(
    store: &RedisStore,
    id: &SessionId,
    changes: Option<&Changes>,
    meta: &Meta,
) -> Result<WriteOutcome, StoreError> {
    let key = session_key(store.key_prefix(), id);
    // Encoded once: sent, and read back for the cache.
    let head = head_of(meta);
    let command = |script: &redis::Script| {
        let entries = || changes.into_iter().flat_map(Changes::iter);
        let clears = changes.is_some_and(Changes::clears_all);
        let removed = entries().filter(|(_, value)| value.is_none()).count();
        // The head, the flag and count, and a name (and a value guessed at 16 bytes) each.
        let (args, bytes) = entries().fold((3, head.len() + 2 + 8), |(args, bytes), (name, _)| {
            (args + 2, bytes + name.len() + 16)
        });
        let mut cmd = write_command(script, &key, meta, args, bytes);
        cmd.arg(&head[..]).arg(u8::from(clears)).arg(removed);
        for (name, _) in entries().filter(|(_, value)| value.is_none()) {
            cmd.arg(name);
        }
        for (name, value) in entries() {
            if let Some(value) = value {
                cmd.arg(name).arg(JsonText(value));
            }
        }
        cmd
    };
    store
        .write_through_cache(
            &key,
            scripts::compact_update,
            command,
            changes,
            meta,
            || as_stored(&head, meta),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_700_000_000_000;

    fn at(ms: i64) -> SystemTime {
        from_unix_millis(ms)
    }

    fn meta(expiry: Option<Expiry>) -> Meta {
        Meta {
            created_at: at(NOW - 5_000),
            last_active: at(NOW),
            expires_at: at(NOW + 86_400_000),
            expiry,
        }
    }

    fn record(meta: Meta, data: serde_json::Value) -> Record {
        let serde_json::Value::Object(data) = data else {
            panic!("not an object");
        };
        Record { data, meta }
    }

    fn round_trip(record: &Record) -> Record {
        decode(Value::BulkString(encode(record)), at(NOW))
            .expect("decodes")
            .expect("live")
    }

    #[test]
    fn keys_are_fourteen_characters_under_the_default_prefix() {
        let id = SessionId::from("the raw session id");
        let key = session_key(DEFAULT_PREFIX, &id);
        assert_eq!(key.len(), 14);
        assert!(!key.contains("raw"));
        assert_eq!(scan_pattern(DEFAULT_PREFIX).len(), key.len());
        assert_ne!(crate::layout::layout_key(DEFAULT_PREFIX).len(), key.len());
        let native = crate::layout::native::session_key(DEFAULT_PREFIX, &id);
        assert!(native.starts_with(&key), "the same hash, shorter");
    }

    #[test]
    fn a_small_session_fits_in_28_bytes() {
        // Redis keeps a string of at most 28 bytes under a 14-character key in 149 bytes
        // (`bench/run redis-memory`): a day's idle timeout and a counter fit.
        let record = record(meta(None), json!({"page_views": 1}));
        let value = encode(&record);
        assert!(value.len() <= 28, "{} bytes", value.len());
    }

    #[test]
    fn decodes_what_it_encodes() {
        let own = Some(Expiry::new(
            Duration::from_secs(60),
            Duration::from_secs(3600),
        ));
        for meta in [meta(None), meta(own)] {
            let record = record(
                meta,
                json!({"n": 1, "": "empty key", "nested": {"a": [true, null]}, "ü": 1.5}),
            );
            assert_eq!(round_trip(&record), record);
        }
    }

    #[test]
    fn expired_and_missing_values_are_none() {
        assert!(decode(Value::Nil, at(NOW)).unwrap().is_none());
        let mut expired = meta(None);
        expired.expires_at = at(NOW);
        let value = encode(&record(expired, json!({})));
        assert!(decode(Value::BulkString(value), at(NOW)).unwrap().is_none());
    }

    #[test]
    fn damaged_values_are_decode_errors_not_panics() {
        let whole = encode(&record(meta(None), json!({"key": "value"})));
        // Every cut but the head alone (a session without data) and the whole ends in the
        // middle of something.
        let head = head_of(&meta(None)).len();
        for cut in (0..whole.len()).filter(|&cut| cut != head) {
            let damaged = Value::BulkString(whole[..cut].to_vec());
            assert!(decode(damaged, at(NOW)).is_err(), "cut at {cut}");
        }
        assert!(decode(Value::Int(3), at(NOW)).is_err());
        assert!(decode(Value::BulkString(vec![0xff; 11]), at(NOW)).is_err());
        let mut bad_json = Vec::new();
        push_head(&mut bad_json, &meta(None));
        push_entry(&mut bad_json, "k", b"{not json");
        assert!(matches!(
            decode(Value::BulkString(bad_json), at(NOW)),
            Err(DecodeError::BadJson { .. })
        ));
        let mut twice = Vec::new();
        push_head(&mut twice, &meta(None));
        push_entry(&mut twice, "k", b"1");
        push_entry(&mut twice, "k", b"2");
        assert!(matches!(
            decode(Value::BulkString(twice), at(NOW)),
            Err(DecodeError::DuplicateKey(key)) if key == "k"
        ));
        let mut bad_key = Vec::new();
        push_head(&mut bad_key, &meta(None));
        push_varint(&mut bad_key, 1);
        bad_key.extend_from_slice(&[0xff, 1, b'1']);
        assert!(matches!(
            decode(Value::BulkString(bad_key), at(NOW)),
            Err(DecodeError::KeyNotUtf8)
        ));
    }

    #[test]
    fn out_of_range_times_are_clamped_on_the_way_in() {
        let wild = Meta {
            created_at: at(-5),
            last_active: SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(u32::MAX)),
            expires_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 60),
            expiry: Some(Expiry::new(Duration::MAX, Duration::MAX)),
        };
        let stored = as_stored(&head_of(&wild), &wild);
        assert_eq!(stored.created_at, SystemTime::UNIX_EPOCH);
        assert_eq!(stored.last_active, wild.last_active);
        assert_eq!(unix_millis(stored.expires_at), MAX_MILLIS as i64);
        let expiry = stored.expiry.unwrap();
        assert_eq!(expiry.idle_timeout(), Duration::from_millis(MAX_MILLIS));
        assert_eq!(
            expiry.absolute_lifetime(),
            Duration::from_millis(MAX_MILLIS)
        );
    }

    #[test]
    fn a_probe_refused_by_redis_says_redis_cannot_serve_the_layout() {
        use redis::{ErrorKind, RedisError, ServerErrorKind};
        let refused = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "syntax error",
        ));
        let error = unsupported_or_store(StoreError::Backend(Box::new(refused)));
        assert!(
            matches!(error, MigrateError::UnsupportedServer(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains("6.2"), "{error}");

        let forbidden = RedisError::from((ErrorKind::Server(ServerErrorKind::NoPerm), "no"));
        let error = unsupported_or_store(StoreError::Backend(Box::new(forbidden)));
        assert!(matches!(error, MigrateError::Store(_)), "{error:?}");
        let dropped = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let error = unsupported_or_store(StoreError::Backend(Box::new(dropped)));
        assert!(matches!(error, MigrateError::Store(_)), "{error:?}");
        let error = unsupported_or_store(StoreError::Timeout(Duration::from_secs(2)));
        assert!(matches!(error, MigrateError::Store(StoreError::Timeout(_))));
    }

    proptest! {
        #[test]
        fn varints_round_trip(n: u64) {
            let mut out = Vec::new();
            push_varint(&mut out, n);
            prop_assert!(out.len() <= 10);
            let mut reader = Reader { bytes: &out };
            prop_assert_eq!(reader.varint("n").unwrap(), n);
            prop_assert!(reader.bytes.is_empty());
        }

        #[test]
        fn zigzag_round_trips(n in -(1i64 << 47)..(1i64 << 47)) {
            prop_assert_eq!(unzigzag(zigzag(n)), n);
            prop_assert!(zigzag(n) <= MAX_MILLIS * 2 + 1);
        }

        #[test]
        fn meta_within_range_round_trips(
            created in 0..MAX_MILLIS,
            last_active in 0..MAX_MILLIS,
            expires in 0..MAX_MILLIS,
            expiry in proptest::option::of((0..MAX_MILLIS, 0..MAX_MILLIS)),
        ) {
            let meta = Meta {
                created_at: at(created as i64),
                last_active: at(last_active as i64),
                expires_at: at(expires as i64),
                expiry: expiry.map(|(idle, absolute)| {
                    Expiry::new(Duration::from_millis(idle), Duration::from_millis(absolute))
                }),
            };
            prop_assert_eq!(as_stored(&head_of(&meta), &meta), meta);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(Value::BulkString(bytes), at(NOW));
        }
    }
}
