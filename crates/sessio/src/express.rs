//! express-session's stored session shape, for stores that share sessions with Node.
//!
//! express-session keeps a session as one JSON object: its data keys beside a `cookie`
//! object holding `originalMaxAge` (ms) and `expires` (an ISO-8601 date), plus the
//! cookie's attributes:
//!
//! ```json
//! {"cookie":{"originalMaxAge":60000,"expires":"2026-11-26T03:27:50.000Z","httpOnly":true,"path":"/"},"views":2}
//! ```
//!
//! That shape has no creation time, so a session read from it gets `created_at =
//! last_active = expires - originalMaxAge` and an expiry of `originalMaxAge` idle with no
//! absolute limit: in this shape sessions slide like express's, and the absolute lifetime
//! is not enforced.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sessio::express;
//! use sessio::store::{Changes, Meta, Record};
//!
//! let stored = r#"{"cookie":{"originalMaxAge":60000,"expires":"2026-11-26T03:27:50.000Z","httpOnly":true,"path":"/"},"views":2}"#;
//! let record = express::decode(stored, SystemTime::UNIX_EPOCH)?;
//! assert_eq!(record.data["views"], 2);
//! assert_eq!(express::format_date(record.meta.expires_at), "2026-11-26T03:27:50.000Z");
//!
//! let mut changes = Changes::default();
//! changes.set("views", 3.into());
//! let meta = Meta { expires_at: record.meta.expires_at + Duration::from_secs(10), ..record.meta };
//! let merged = express::merge(stored, &changes, &meta)?;
//! assert_eq!(
//!     merged,
//!     r#"{"cookie":{"expires":"2026-11-26T03:28:00.000Z","httpOnly":true,"originalMaxAge":60000,"path":"/"},"views":3}"#
//! );
//! # Ok::<(), sessio::express::DecodeError>(())
//! ```

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::store::{Changes, Data, Meta, Record};
use crate::Expiry;

/// The key express-session reserves for its cookie object.
pub const COOKIE_KEY: &str = "cookie";

/// How long a session lives when its cookie has no `originalMaxAge`: a day, as
/// connect-redis and connect-pg-simple assume.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);

/// Why a stored express-session record could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The text is not JSON.
    #[error("stored session is not JSON")]
    Json(#[source] serde_json::Error),
    /// The JSON is not an object, or its `cookie` is not an object.
    #[error("stored session is not an express-session object")]
    Shape,
    /// `cookie.expires` is not an ISO-8601 date as JavaScript writes it.
    #[error("stored session has an unreadable cookie.expires")]
    Expires,
    /// `cookie.originalMaxAge` is not a number of milliseconds.
    #[error("stored session has an unreadable cookie.originalMaxAge")]
    MaxAge,
}

/// The cookie attributes express-session writes by default: `{"httpOnly":true,"path":"/"}`.
pub fn default_cookie_attributes() -> Map<String, Value> {
    let mut attributes = Map::new();
    attributes.insert("httpOnly".into(), Value::Bool(true));
    attributes.insert("path".into(), Value::String("/".into()));
    attributes
}

/// The idle time a meta stands for: its own expiry's, or the time from last use to expiry.
fn max_age(meta: &Meta) -> Duration {
    meta.expiry.map_or_else(
        || {
            meta.expires_at
                .duration_since(meta.last_active)
                .unwrap_or_default()
        },
        |expiry| expiry.idle_timeout(),
    )
}

fn set_cookie_times(cookie: &mut Map<String, Value>, meta: &Meta) {
    let max_age = u64::try_from(max_age(meta).as_millis()).unwrap_or(u64::MAX);
    cookie.insert("originalMaxAge".into(), Value::from(max_age));
    cookie.insert(
        "expires".into(),
        Value::String(format_date(meta.expires_at)),
    );
}

/// A new record in express-session's shape, with `attributes` (see
/// [`default_cookie_attributes`]) in its cookie object.
pub fn encode(record: &Record, attributes: &Map<String, Value>) -> String {
    let mut cookie = attributes.clone();
    set_cookie_times(&mut cookie, &record.meta);
    let mut object = record.data.clone();
    object.insert(COOKIE_KEY.into(), Value::Object(cookie));
    Value::Object(object).to_string()
}

/// Reads a record in express-session's shape. `fallback_expires` is used when the cookie
/// has no `expires` (a browser-session cookie): pass the store's own expiry for the entry.
pub fn decode(json: &str, fallback_expires: SystemTime) -> Result<Record, DecodeError> {
    let Value::Object(mut data) = serde_json::from_str(json).map_err(DecodeError::Json)? else {
        return Err(DecodeError::Shape);
    };
    let cookie = match data.remove(COOKIE_KEY) {
        Some(Value::Object(cookie)) => cookie,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err(DecodeError::Shape),
    };
    let expires_at = match cookie.get("expires") {
        Some(Value::String(date)) => parse_date(date).ok_or(DecodeError::Expires)?,
        None | Some(Value::Null) => fallback_expires,
        Some(_) => return Err(DecodeError::Expires),
    };
    let max_age = match cookie.get("originalMaxAge") {
        Some(Value::Number(ms)) => Duration::from_millis(
            ms.as_u64()
                .or_else(|| ms.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                .ok_or(DecodeError::MaxAge)?,
        ),
        None | Some(Value::Null) => DEFAULT_MAX_AGE,
        Some(_) => return Err(DecodeError::MaxAge),
    };
    let last_active = expires_at
        .checked_sub(max_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(Record {
        data,
        meta: Meta {
            created_at: last_active,
            last_active,
            expires_at,
            // Express has no absolute lifetime: an idle timeout only.
            expiry: Some(Expiry::new(max_age, Duration::MAX)),
        },
    })
}

/// Applies `changes` and `meta` to a stored express-session record, keeping the cookie's
/// other attributes. The `cookie` key itself is never changed as data.
pub fn merge(stored: &str, changes: &Changes, meta: &Meta) -> Result<String, DecodeError> {
    let Value::Object(mut object) = serde_json::from_str(stored).map_err(DecodeError::Json)? else {
        return Err(DecodeError::Shape);
    };
    let mut cookie = match object.remove(COOKIE_KEY) {
        Some(Value::Object(cookie)) => cookie,
        None | Some(Value::Null) => default_cookie_attributes(),
        Some(_) => return Err(DecodeError::Shape),
    };
    let mut data: Data = object;
    changes.apply(&mut data);
    set_cookie_times(&mut cookie, meta);
    data.insert(COOKIE_KEY.into(), Value::Object(cookie));
    Ok(Value::Object(data).to_string())
}

/// A time as JavaScript's `Date.prototype.toJSON` writes it: `2026-11-26T03:27:50.000Z`.
pub fn format_date(time: SystemTime) -> String {
    let millis = crate::store::unix_millis(time);
    let date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        date.hour(),
        date.minute(),
        date.second(),
        date.millisecond()
    )
}

/// Reads a date as [`format_date`] writes it (`Z` or a missing offset both mean UTC; the
/// fraction may have 0 to 9 digits).
pub fn parse_date(text: &str) -> Option<SystemTime> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.splitn(3, '-');
    let year: i32 = date_parts.next()?.parse().ok()?;
    let month: u8 = date_parts.next()?.parse().ok()?;
    let day: u8 = date_parts.next()?.parse().ok()?;
    let (hms, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut time_parts = hms.splitn(3, ':');
    let hour: u8 = time_parts.next()?.parse().ok()?;
    let minute: u8 = time_parts.next()?.parse().ok()?;
    let second: u8 = time_parts.next()?.parse().ok()?;
    if fraction.is_empty() || fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: u32 = format!("{fraction:0<9}").parse().ok()?;
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    let at = PrimitiveDateTime::new(date, time).assume_utc();
    let millis = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()?;
    Some(crate::store::from_unix_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const REFERENCE: &str = r#"{"cookie":{"originalMaxAge":60000,"expires":"2026-11-26T03:27:50.000Z","httpOnly":true,"path":"/"},"views":2}"#;

    #[test]
    fn reads_the_reference_record() {
        let record = decode(REFERENCE, SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(Value::Object(record.data.clone()), json!({"views": 2}));
        let expires = parse_date("2026-11-26T03:27:50.000Z").unwrap();
        assert_eq!(record.meta.expires_at, expires);
        assert_eq!(record.meta.last_active, expires - Duration::from_secs(60));
        let expiry = record.meta.expiry.unwrap();
        assert_eq!(expiry.idle_timeout(), Duration::from_secs(60));
        // Its deadline is the stored expiry, with no absolute limit.
        assert_eq!(
            expiry.deadline(record.meta.created_at, record.meta.last_active),
            expires
        );
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let record = decode(REFERENCE, SystemTime::UNIX_EPOCH).unwrap();
        let encoded = encode(&record, &default_cookie_attributes());
        let value: Value = serde_json::from_str(&encoded).unwrap();
        assert_eq!(value, serde_json::from_str::<Value>(REFERENCE).unwrap());
        assert_eq!(decode(&encoded, SystemTime::UNIX_EPOCH).unwrap(), record);
    }

    #[test]
    fn browser_session_cookies_use_the_store_expiry() {
        let stored =
            r#"{"cookie":{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/"},"n":1}"#;
        let fallback = parse_date("2030-01-01T00:00:00.000Z").unwrap();
        let record = decode(stored, fallback).unwrap();
        assert_eq!(record.meta.expires_at, fallback);
        assert_eq!(record.meta.expiry.unwrap().idle_timeout(), DEFAULT_MAX_AGE);
    }

    #[test]
    fn merge_keeps_attributes_and_other_keys() {
        let stored = r#"{"cookie":{"originalMaxAge":1000,"expires":"2026-01-01T00:00:00.000Z","httpOnly":true,"path":"/app","sameSite":"strict"},"a":1,"b":{"x":[1]}}"#;
        let mut changes = Changes::default();
        changes.set("c", json!([]));
        changes.remove("a");
        let meta = decode(stored, SystemTime::UNIX_EPOCH).unwrap().meta;
        let merged: Value = serde_json::from_str(&merge(stored, &changes, &meta).unwrap()).unwrap();
        assert_eq!(
            merged,
            json!({"cookie": {"originalMaxAge": 1000, "expires": "2026-01-01T00:00:00.000Z", "httpOnly": true, "path": "/app", "sameSite": "strict"}, "b": {"x": [1]}, "c": []})
        );
        let mut clear = Changes::default();
        clear.clear();
        let cleared: Value = serde_json::from_str(&merge(stored, &clear, &meta).unwrap()).unwrap();
        assert_eq!(
            cleared.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["cookie"]
        );
    }

    #[test]
    fn bad_records_are_errors_not_panics() {
        for bad in [
            "",
            "[]",
            "1",
            r#"{"cookie":1}"#,
            r#"{"cookie":{"expires":"yesterday"}}"#,
            r#"{"cookie":{"expires":5}}"#,
            r#"{"cookie":{"originalMaxAge":"x"}}"#,
        ] {
            assert!(decode(bad, SystemTime::UNIX_EPOCH).is_err(), "{bad}");
        }
        assert!(merge(
            "nope",
            &Changes::default(),
            &decode(REFERENCE, SystemTime::UNIX_EPOCH).unwrap().meta
        )
        .is_err());
    }

    #[test]
    fn dates_are_written_like_javascript() {
        assert_eq!(
            format_date(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_127_670_123);
        assert_eq!(format_date(t), "2025-11-26T03:27:50.123Z");
        assert_eq!(parse_date("2025-11-26T03:27:50.123Z"), Some(t));
        assert_eq!(
            parse_date("2025-11-26T03:27:50Z"),
            Some(t - Duration::from_millis(123))
        );
        assert_eq!(parse_date("2025-13-26T03:27:50.000Z"), None);
    }

    proptest! {
        #[test]
        fn dates_round_trip(millis in 0i64..253_402_300_799_999) {
            let t = crate::store::from_unix_millis(millis);
            prop_assert_eq!(parse_date(&format_date(t)), Some(t));
        }

        #[test]
        fn decode_never_panics(text in "\\PC{0,80}") {
            let _ = decode(&text, SystemTime::UNIX_EPOCH);
        }
    }
}
