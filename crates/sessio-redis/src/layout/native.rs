//! sessio's own layout ([`Layout::Native`](crate::Layout::Native)): its keys, the fields of
//! its hashes, and the store operations on them.
//!
//! One HASH per session, under `{prefix}{base64url(sha256(id))}`:
//!
//! | field      | value                                             |
//! |------------|---------------------------------------------------|
//! | `c`        | created_at, milliseconds since the Unix epoch     |
//! | `l`        | last_active, milliseconds                         |
//! | `e`        | expires_at, milliseconds (also the key's PEXPIREAT) |
//! | `i`, `a`   | the session's own idle timeout and absolute lifetime, milliseconds; absent when it has none |
//! | `d:{key}`  | the JSON text of data key `key`                   |

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use redis::Value;
use sessio::store::{
    from_unix_millis, storage_key, unix_millis, Changes, CreateOutcome, Data, Meta, Record,
    StoreError, WriteOutcome,
};
use sessio::{Expiry, SessionId};

use crate::error::MigrateError;
use crate::layout::layout_key;
use crate::scripts;
use crate::store::RedisStore;

/// The layout version this crate writes, recorded under `{prefix}layout`.
pub(crate) const LAYOUT_VERSION: &str = "1";
/// The key prefix used unless configured otherwise.
pub(crate) const DEFAULT_PREFIX: &str = "sessio:";
/// Characters of the base64url (unpadded) encoding of a 32-byte storage key.
pub(crate) const ENCODED_KEY_LEN: usize = 43;

pub(crate) const CREATED: &str = "c";
pub(crate) const LAST_ACTIVE: &str = "l";
pub(crate) const EXPIRES: &str = "e";
pub(crate) const IDLE: &str = "i";
pub(crate) const ABSOLUTE: &str = "a";
pub(crate) const DATA_PREFIX: &str = "d:";

/// The Redis key of a session: the prefix, then the base64url of the hashed id.
pub(crate) fn session_key(prefix: &str, id: &SessionId) -> String {
    let mut key = String::with_capacity(prefix.len() + ENCODED_KEY_LEN);
    key.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(storage_key(id), &mut key);
    key
}

/// A `SCAN MATCH` pattern matching exactly this prefix's session keys: the prefix and 43
/// more characters. Neither the layout key nor keys under a longer prefix match it.
pub(crate) fn scan_pattern(prefix: &str) -> String {
    // The prefix holds no glob characters (see `validate_prefix`).
    let mut pattern = String::with_capacity(prefix.len() + ENCODED_KEY_LEN);
    pattern.push_str(prefix);
    pattern.push_str(&"?".repeat(ENCODED_KEY_LEN));
    pattern
}

/// The hash field holding data key `key`.
pub(crate) fn data_field(key: &str) -> String {
    let mut field = String::with_capacity(DATA_PREFIX.len() + key.len());
    field.push_str(DATA_PREFIX);
    field.push_str(key);
    field
}

fn duration_millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The meta fields to set, and whether the session has an expiry of its own (when it has
/// none, a write removes `i` and `a` if the hash has them).
pub(crate) struct MetaFields {
    pub(crate) set: Vec<(&'static str, i64)>,
    pub(crate) own_expiry: bool,
}

impl MetaFields {
    pub(crate) fn new(meta: &Meta) -> Self {
        let mut set = Vec::with_capacity(5);
        set.extend([
            (CREATED, unix_millis(meta.created_at)),
            (LAST_ACTIVE, unix_millis(meta.last_active)),
            (EXPIRES, unix_millis(meta.expires_at)),
        ]);
        if let Some(expiry) = meta.expiry {
            set.push((IDLE, duration_millis(expiry.idle_timeout())));
            set.push((ABSOLUTE, duration_millis(expiry.absolute_lifetime())));
        }
        Self {
            set,
            own_expiry: meta.expiry.is_some(),
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
    #[error("the stored session has only one of the fields \"i\" and \"a\"")]
    HalfExpiry,
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

fn duration(name: &'static str, value: &[u8]) -> Result<Duration, DecodeError> {
    let ms = millis(name, value)?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| DecodeError::BadNumber(name))
}

/// Decodes an HGETALL reply; `None` when the key does not exist or expired at `now`.
pub(crate) fn decode(reply: Value, now: SystemTime) -> Result<Option<Record>, DecodeError> {
    let pairs = pairs(reply)?;
    if pairs.is_empty() {
        return Ok(None);
    }
    let (mut created, mut last_active, mut expires, mut idle, mut absolute) =
        (None, None, None, None, None);
    let mut data = Data::new();
    for (field, value) in pairs {
        match field.as_slice() {
            b"c" => created = Some(millis(CREATED, &value)?),
            b"l" => last_active = Some(millis(LAST_ACTIVE, &value)?),
            b"e" => expires = Some(millis(EXPIRES, &value)?),
            b"i" => idle = Some(duration(IDLE, &value)?),
            b"a" => absolute = Some(duration(ABSOLUTE, &value)?),
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
    let expires_at = from_unix_millis(expires.ok_or(DecodeError::MissingField(EXPIRES))?);
    if expires_at <= now {
        return Ok(None);
    }
    let expiry = match (idle, absolute) {
        (Some(idle), Some(absolute)) => Some(Expiry::new(idle, absolute)),
        (None, None) => None,
        _ => return Err(DecodeError::HalfExpiry),
    };
    let meta = Meta {
        created_at: from_unix_millis(created.ok_or(DecodeError::MissingField(CREATED))?),
        last_active: from_unix_millis(last_active.ok_or(DecodeError::MissingField(LAST_ACTIVE))?),
        expires_at,
        expiry,
    };
    Ok(Some(Record { data, meta }))
}

/// Records the layout version under `{prefix}layout`, or checks the one recorded.
pub(crate) async fn migrate(store: &RedisStore) -> Result<(), MigrateError> {
    let key = layout_key(store.key_prefix());
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(&key)
        .arg(LAYOUT_VERSION)
        .arg("NX")
        .ignore()
        .cmd("GET")
        .arg(&key);
    let mut conn = store.conn();
    let (found,): (Option<String>,) = store
        .bounded(pipe.query_async(&mut conn))
        .await
        .map_err(MigrateError::Store)?;
    match found {
        Some(found) if found != LAYOUT_VERSION => Err(MigrateError::UnknownLayout {
            found,
            expected: LAYOUT_VERSION,
        }),
        // Recorded now, found as expected, or removed meanwhile (nothing to refuse).
        _ => Ok(()),
    }
}

/// Stores a new session with the create script, unless a live one holds the key.
pub(crate) async fn create(
    store: &RedisStore,
    id: &SessionId,
    record: &Record,
) -> Result<CreateOutcome, StoreError> {
    let key = session_key(store.key_prefix(), id);
    let meta = &record.meta;
    let mut invocation = scripts::create().key(&key);
    // A session whose expiry is at or before the new one's start is gone.
    invocation
        .arg(unix_millis(meta.last_active))
        .arg(unix_millis(meta.expires_at));
    for (field, value) in MetaFields::new(meta).set {
        invocation.arg(field).arg(value);
    }
    for (name, value) in &record.data {
        invocation.arg(data_field(name)).arg(value.to_string());
    }
    let mut conn = store.conn();
    let created: i64 = store.bounded(invocation.invoke_async(&mut conn)).await?;
    Ok(if created == 1 {
        CreateOutcome::Created
    } else {
        CreateOutcome::IdTaken
    })
}

/// Reads a session's hash.
pub(crate) async fn load(
    store: &RedisStore,
    id: &SessionId,
    now: SystemTime,
) -> Result<Option<Record>, StoreError> {
    let key = session_key(store.key_prefix(), id);
    let mut conn = store.conn();
    let reply: Value = store
        .bounded(redis::cmd("HGETALL").arg(&key).query_async(&mut conn))
        .await?;
    decode(reply, now).map_err(|e| StoreError::Decode(Box::new(e)))
}

/// Runs the update script: `update` with `changes`, `touch` without.
pub(crate) async fn write(
    store: &RedisStore,
    id: &SessionId,
    changes: Option<&Changes>,
    meta: &Meta,
) -> Result<WriteOutcome, StoreError> {
    let key = session_key(store.key_prefix(), id);
    let fields = MetaFields::new(meta);
    let (mut removed, mut set) = (Vec::new(), Vec::new());
    if let Some(changes) = changes {
        for (name, value) in changes.iter() {
            match value {
                Some(value) => set.push((data_field(name), value.to_string())),
                None => removed.push(data_field(name)),
            }
        }
    }
    let clears = changes.is_some_and(Changes::clears_all);

    let mut invocation = scripts::update().key(&key);
    invocation
        .arg(unix_millis(meta.last_active))
        .arg(unix_millis(meta.expires_at))
        .arg(if clears { "1" } else { "0" })
        .arg(if fields.own_expiry { "1" } else { "0" })
        .arg(removed.len())
        .arg(&removed);
    for (field, value) in &fields.set {
        invocation.arg(*field).arg(*value);
    }
    for (field, value) in &set {
        invocation.arg(field).arg(value);
    }
    let mut conn = store.conn();
    let applied: i64 = store.bounded(invocation.invoke_async(&mut conn)).await?;
    Ok(if applied == 1 {
        WriteOutcome::Applied
    } else {
        WriteOutcome::NotFound
    })
}

/// Removes a session's hash.
pub(crate) async fn delete(store: &RedisStore, id: &SessionId) -> Result<(), StoreError> {
    let key = session_key(store.key_prefix(), id);
    let mut conn = store.conn();
    let _removed: i64 = store
        .bounded(redis::cmd("UNLINK").arg(&key).query_async(&mut conn))
        .await?;
    Ok(())
}

/// Scans the prefix on every primary and removes each expired session with a script that
/// checks its expiry again, so that a session touched meanwhile stays.
pub(crate) async fn delete_expired(store: &RedisStore, now: SystemTime) -> Result<u64, StoreError> {
    let now = unix_millis(now);
    let script = scripts::delete_if_expired();
    // Loaded on every node (in a cluster), so a whole batch can go as one pipeline.
    store.load_script(script).await?;
    let pattern = scan_pattern(store.key_prefix());
    store
        .scan_keys(&pattern, |mut conn, node, keys| async move {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("EVALSHA")
                    .arg(script.get_hash())
                    .arg(1)
                    .arg(key)
                    .arg(now);
            }
            let replies = store
                .eval_pipeline_on(&mut conn, node, script, &pipe)
                .await?;
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

/// Counts this prefix's session keys on every primary.
pub(crate) async fn count(store: &RedisStore) -> Result<u64, StoreError> {
    let pattern = scan_pattern(store.key_prefix());
    store
        .scan_keys(&pattern, |_, _, keys| {
            let found = keys.len() as u64;
            async move { Ok(found) }
        })
        .await
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
        assert_eq!(key.len(), 2 + ENCODED_KEY_LEN);
        assert!(!key.contains("raw"));
        assert_eq!(scan_pattern("p:").len(), key.len());
        assert_ne!(crate::layout::layout_key("p:").len(), key.len());
    }

    #[test]
    fn decodes_a_full_record() {
        let record = decode(
            reply(&[
                ("c", "1699999999000"),
                ("l", "1700000000000"),
                ("e", "1700000001000"),
                ("i", "1000"),
                ("a", "5000"),
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
            &[("l", "0"), ("e", "9999999999999")],
            &[("c", "0"), ("l", "0"), ("e", "9999999999999"), ("i", "5")],
            &[
                ("c", "0"),
                ("l", "0"),
                ("e", "9999999999999"),
                ("i", "-5"),
                ("a", "1"),
            ],
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

    #[test]
    fn meta_fields_drop_the_expiry_when_there_is_none() {
        let meta = Meta {
            created_at: now(),
            last_active: now(),
            expires_at: now(),
            expiry: None,
        };
        let fields = MetaFields::new(&meta);
        assert_eq!(fields.set.len(), 3);
        assert!(!fields.own_expiry);
        let fields = MetaFields::new(&Meta {
            expiry: Some(Expiry::new(Duration::from_secs(1), Duration::from_secs(2))),
            ..meta
        });
        assert_eq!(fields.set.len(), 5);
        assert!(fields.own_expiry);
    }
}
