//! How sessions are laid out in Redis: [`Layout`] names the choice, and each layout is a
//! module of its own implementing [`Backend`], the store's operations, in the [`Redis`]
//! context it is handed.

#[cfg(feature = "express")]
pub(crate) mod connect_redis;
pub(crate) mod native;

use std::future::Future;
use std::time::SystemTime;

use sessio::store::{Changes, CreateOutcome, Meta, Record, StoreError, WriteOutcome};
use sessio::SessionId;

use crate::context::Redis;
use crate::error::{InvalidKeyPrefix, MigrateError};

/// The longest allowed key prefix, in characters.
pub(crate) const MAX_PREFIX_LEN: usize = 64;

/// How a [`RedisStore`](crate::RedisStore) lays sessions out in Redis; chosen with
/// [`RedisStore::with_layout`](crate::RedisStore::with_layout).
///
/// | | [`Native`](Layout::Native) (default) | `ConnectRedis` |
/// |---|---|---|
/// | key | `{prefix}{base64url(sha256(id)[..16])}` | `{prefix}{id}`: the **raw** session id |
/// | value | a hash: timestamps and one field per data key | connect-redis's JSON string |
/// | default prefix | `sessio:` | `sess:` |
/// | expiry | `PEXPIREAT` at the session's end, to the millisecond | `EX`, in whole seconds, as connect-redis sets it |
/// | per-key writes | one `MULTI` transaction setting the changed fields | optimistic compare-and-set, retried |
/// | keeps | creation time, idle and absolute limits | what express keeps: `expires` and `originalMaxAge` |
/// | Redis memory, a small session | 197 bytes | more: the JSON and the raw id |
///
/// The connect-redis layout needs the crate's `express` feature.
///
/// ```
/// use sessio_redis::Layout;
///
/// assert_eq!(Layout::default(), Layout::Native);
/// # #[cfg(feature = "express")]
/// assert_eq!(Layout::ConnectRedis.default_key_prefix(), "sess:");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// sessio's own layout: one Redis hash per session, under the SHA-256 of its id, so a
    /// dump of Redis holds no usable session id; every timestamp of the session kept to
    /// the millisecond.
    #[default]
    Native,
    /// connect-redis's layout (v9 and v10; feature `express`), to share sessions with a
    /// Node application
    /// running express-session with connect-redis: `SET {prefix}{id}` to the session's
    /// JSON, expiring after `ceil((expires - now) / 1 s)` seconds.
    ///
    /// **The key holds the raw session id** (Node looks sessions up by it), so in this
    /// layout a dump of Redis (a backup, `MONITOR`, `KEYS`) holds usable session cookies'
    /// ids: protect it accordingly.
    ///
    /// The JSON keeps only what express keeps: a session read back has
    /// `created_at = last_active = expires - originalMaxAge` and an idle timeout of
    /// `originalMaxAge` with no absolute limit (see [`sessio::express`]).
    #[cfg(feature = "express")]
    ConnectRedis,
}

impl Layout {
    /// The key prefix this layout uses unless
    /// [`RedisStore::with_key_prefix`](crate::RedisStore::with_key_prefix) says otherwise:
    /// `sessio:` for [`Native`](Layout::Native), connect-redis's `sess:` for
    /// `ConnectRedis`.
    pub const fn default_key_prefix(self) -> &'static str {
        match self {
            Layout::Native => native::DEFAULT_PREFIX,
            #[cfg(feature = "express")]
            Layout::ConnectRedis => connect_redis::DEFAULT_PREFIX,
        }
    }
}

/// One layout's operations: `migrate` and the [`SessionStore`](sessio::SessionStore)
/// methods, run in the context the store hands them.
pub(crate) trait Backend: Sync {
    /// Prepares the key prefix (see [`RedisStore::migrate`](crate::RedisStore::migrate)).
    fn migrate(&self, redis: Redis<'_>) -> impl Future<Output = Result<(), MigrateError>> + Send;

    fn create(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
        record: &Record,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;

    fn load(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
        now: SystemTime,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// `update` with `Some(changes)`, `touch` with `None`.
    fn write(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
        changes: Option<&Changes>,
        meta: &Meta,
    ) -> impl Future<Output = Result<WriteOutcome, StoreError>> + Send;

    fn delete(
        &self,
        redis: Redis<'_>,
        id: &SessionId,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn delete_expired(
        &self,
        redis: Redis<'_>,
        now: SystemTime,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn count(&self, redis: Redis<'_>) -> impl Future<Output = Result<u64, StoreError>> + Send;
}

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

/// The key recording the layout version (sessio's own layouts only).
pub(crate) fn layout_key(prefix: &str) -> String {
    format!("{prefix}layout")
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn every_default_prefix_is_valid() {
        assert!(validate_prefix(Layout::Native.default_key_prefix()).is_ok());
        #[cfg(feature = "express")]
        assert!(validate_prefix(Layout::ConnectRedis.default_key_prefix()).is_ok());
        assert_eq!(Layout::Native.default_key_prefix(), "sessio:");
        #[cfg(feature = "express")]
        assert_eq!(Layout::ConnectRedis.default_key_prefix(), "sess:");
    }
}
