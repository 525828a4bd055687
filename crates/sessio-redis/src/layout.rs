//! How a session is laid out in Redis: its key, and the fields of its hash.
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
use sessio::store::{from_unix_millis, storage_key, unix_millis, Data, Meta, Record};
use sessio::{Expiry, SessionId};

use crate::error::InvalidKeyPrefix;

/// The layout version this crate writes, recorded under `{prefix}layout`.
pub(crate) const LAYOUT_VERSION: &str = "1";
/// The key prefix used unless configured otherwise.
pub(crate) const DEFAULT_PREFIX: &str = "sessio:";
/// The longest allowed key prefix, in characters.
pub(crate) const MAX_PREFIX_LEN: usize = 64;
/// Characters of the base64url (unpadded) encoding of a 32-byte storage key.
pub(crate) const ENCODED_KEY_LEN: usize = 43;

pub(crate) const CREATED: &str = "c";
pub(crate) const LAST_ACTIVE: &str = "l";
pub(crate) const EXPIRES: &str = "e";
pub(crate) const IDLE: &str = "i";
pub(crate) const ABSOLUTE: &str = "a";
pub(crate) const DATA_PREFIX: &str = "d:";

/// Checks a key prefix: 1..=64 characters of `[A-Za-z0-9:_.-]`.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), InvalidKeyPrefix> {
    if prefix.is_empty() {
        return Err(InvalidKeyPrefix::Empty);
    }
    if let Some(found) = prefix
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-')))
    {
        return Err(InvalidKeyPrefix::InvalidChar { found });
    }
    // Only ASCII is left, so bytes are characters.
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(InvalidKeyPrefix::TooLong { len: prefix.len() });
    }
    Ok(())
}

/// The Redis key of a session: the prefix, then the base64url of the hashed id.
pub(crate) fn session_key(prefix: &str, id: &SessionId) -> String {
    let mut key = String::with_capacity(prefix.len() + ENCODED_KEY_LEN);
    key.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(storage_key(id), &mut key);
    key
}

/// The key recording the layout version.
pub(crate) fn layout_key(prefix: &str) -> String {
    format!("{prefix}layout")
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

/// The meta fields to set, and (when the session has no expiry of its own) the ones to
/// remove.
pub(crate) struct MetaFields {
    pub(crate) set: Vec<(&'static str, i64)>,
    pub(crate) remove: &'static [&'static str],
}

impl MetaFields {
    pub(crate) fn new(meta: &Meta) -> Self {
        let mut set = vec![
            (CREATED, unix_millis(meta.created_at)),
            (LAST_ACTIVE, unix_millis(meta.last_active)),
            (EXPIRES, unix_millis(meta.expires_at)),
        ];
        let remove: &[&str] = match meta.expiry {
            Some(expiry) => {
                set.push((IDLE, duration_millis(expiry.idle_timeout())));
                set.push((ABSOLUTE, duration_millis(expiry.absolute_lifetime())));
                &[]
            }
            None => &[IDLE, ABSOLUTE],
        };
        Self { set, remove }
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
    fn prefixes_are_validated() {
        assert!(validate_prefix("sessio:").is_ok());
        assert!(validate_prefix("a.B-9_:").is_ok());
        assert!(validate_prefix(&"x".repeat(64)).is_ok());
        assert_eq!(validate_prefix(""), Err(InvalidKeyPrefix::Empty));
        assert_eq!(
            validate_prefix(&"x".repeat(65)),
            Err(InvalidKeyPrefix::TooLong { len: 65 })
        );
        for bad in ["{tag}", "a*", "a?", "a[b]", "a b", "ü", "a\\", "a\n"] {
            assert!(
                matches!(
                    validate_prefix(bad),
                    Err(InvalidKeyPrefix::InvalidChar { .. })
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn keys_hash_the_id_and_match_the_scan_pattern() {
        let id = SessionId::from("the raw session id");
        let key = session_key("p:", &id);
        assert!(key.starts_with("p:"));
        assert_eq!(key.len(), 2 + ENCODED_KEY_LEN);
        assert!(!key.contains("raw"));
        assert_eq!(scan_pattern("p:").len(), key.len());
        assert_ne!(layout_key("p:").len(), key.len());
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
        assert_eq!(fields.remove, &[IDLE, ABSOLUTE]);
        let fields = MetaFields::new(&Meta {
            expiry: Some(Expiry::new(Duration::from_secs(1), Duration::from_secs(2))),
            ..meta
        });
        assert_eq!(fields.set.len(), 5);
        assert!(fields.remove.is_empty());
    }
}
