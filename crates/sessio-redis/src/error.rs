//! The errors of connecting, configuring and migrating a [`RedisStore`](crate::RedisStore).

use std::time::Duration;

use sessio::store::StoreError;

/// Why [`RedisStore::connect`](crate::RedisStore::connect) (or one of its siblings) failed.
///
/// No variant's message contains a URL, so logging it never leaks a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// A URL is not one the Redis client understands (or names a feature it was built
    /// without, such as TLS for `rediss://`).
    #[error("invalid Redis URL")]
    InvalidUrl(#[source] redis::RedisError),
    /// A `redis+cluster://` (or `rediss+cluster://`) URL, or the list handed to
    /// [`RedisStore::connect_cluster`](crate::RedisStore::connect_cluster), names no node.
    #[error("no Redis Cluster node given")]
    NoNodes,
    /// The URL's scheme is none of `redis://`, `rediss://`, `redis+unix://`, `unix://`,
    /// `redis+cluster://` or `rediss+cluster://`.
    #[error("unsupported Redis URL scheme {scheme:?}")]
    UnsupportedScheme {
        /// The scheme found (the part before `://`).
        scheme: String,
    },
    /// The server (or every cluster node) refused or dropped the connection.
    #[error("could not connect to Redis")]
    Unavailable(#[source] redis::RedisError),
    /// Connecting took longer than allowed.
    #[error("Redis did not answer within {0:?} while connecting")]
    Timeout(Duration),
    /// [`RedisStore::with_client_cache`](crate::RedisStore::with_client_cache) was asked of
    /// a store it does not serve: one on a Redis Cluster.
    #[error("a client-side cache is not available for {0}")]
    CacheUnsupported(&'static str),
}

/// Why a key prefix was refused by
/// [`RedisStore::with_key_prefix`](crate::RedisStore::with_key_prefix).
///
/// A prefix is 1 to 64 characters of `A-Z a-z 0-9 : _ . -`: no braces (they would make
/// Redis Cluster put every session in one hash slot) and no glob characters (the store
/// scans for its keys with `SCAN MATCH`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidKeyPrefix {
    /// The prefix is empty.
    #[error("the Redis key prefix is empty")]
    Empty,
    /// The prefix is longer than 64 characters.
    #[error("the Redis key prefix is {len} characters long; at most 64 are allowed")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// The prefix holds a character outside `A-Z a-z 0-9 : _ . -`.
    #[error("the Redis key prefix holds {found:?}; only A-Z a-z 0-9 : _ . - are allowed")]
    InvalidChar {
        /// The first character not allowed.
        found: char,
    },
}

/// Why [`RedisStore::migrate`](crate::RedisStore::migrate) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// Redis could not be asked (unreachable, timed out, or it failed).
    #[error("recording the session layout in Redis failed")]
    Store(#[source] StoreError),
    /// The key prefix holds sessions in another layout than the store's: another
    /// [`Layout`](crate::Layout), or one written by a newer version of this crate. Nothing
    /// was changed.
    #[error(
        "the sessions under this key prefix use layout {found:?}; this store writes layout {expected:?}"
    )]
    UnknownLayout {
        /// The layout recorded in Redis.
        found: String,
        /// The layout this version writes.
        expected: &'static str,
    },
    /// The store uses the `ConnectRedis` layout (feature `express`), but
    /// `{prefix}layout` marks the key prefix as holding sessio's own layout
    /// ([`Native`](crate::Layout::Native)): the two cannot share a prefix. Nothing was
    /// changed.
    #[error(
        "the key prefix holds sessio's own session layout ({found:?}); \
         the connect-redis layout needs a prefix of its own"
    )]
    #[cfg(feature = "express")]
    NativeLayoutFound {
        /// The layout recorded in Redis.
        found: String,
    },
}

/// Why a `ConnectRedis` layout (feature `express`) update or touch gave up:
/// other writers changed the session every time it was about to be written, for as many
/// attempts as allowed. It reaches the caller inside [`StoreError::Backend`], from which
/// it can be downcast.
///
/// ```
/// use sessio::store::StoreError;
/// use sessio_redis::WriteContention;
///
/// fn is_contention(error: &StoreError) -> bool {
///     match error {
///         StoreError::Backend(source) => source.downcast_ref::<WriteContention>().is_some(),
///         _ => false,
///     }
/// }
/// # let _ = is_contention;
/// ```
#[cfg(feature = "express")]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gave up writing a session after {attempts} attempts: other writers changed it every time")]
pub struct WriteContention {
    pub(crate) attempts: usize,
}

#[cfg(feature = "express")]
impl WriteContention {
    /// How many times the write was tried.
    pub fn attempts(&self) -> usize {
        self.attempts
    }
}
