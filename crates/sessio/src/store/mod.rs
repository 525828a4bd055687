//! Where session data lives: the [`SessionStore`] contract and the in-memory store.

mod cleanup;
mod memory;

use std::error::Error as StdError;
use std::future::Future;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Expiry, SessionId};

pub use cleanup::ExpiredCleanup;
pub use memory::{MemoryStore, MemoryStoreBuilder};

/// A session's data: string keys to JSON values.
pub type Data = serde_json::Map<String, Value>;

/// The data key under which a session bound to a user keeps whom it belongs to (see
/// [`Session::set_user`](crate::Session::set_user)): an object
/// `{"user": "...", "labels": {...}}`. Stores with a per-user index read it with
/// [`user_of`]; handlers cannot write it directly.
pub const OWNER_KEY: &str = "sessio.owner";

/// The user a session's data says it belongs to, if any.
///
/// ```
/// use serde_json::json;
/// use sessio::store::{user_of, Data, OWNER_KEY};
///
/// let mut data = Data::new();
/// assert_eq!(user_of(&data), None);
/// data.insert(OWNER_KEY.into(), json!({"user": "alice", "labels": {}}));
/// assert_eq!(user_of(&data), Some("alice"));
/// ```
pub fn user_of(data: &Data) -> Option<&str> {
    data.get(OWNER_KEY)?.get("user")?.as_str()
}

/// A boxed error from a store's backend.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// The key a store files a session under: the SHA-256 of its id, so that a dump of the
/// store holds no usable cookie.
///
/// ```
/// use sessio::{store::storage_key, SessionId};
///
/// let key = storage_key(&SessionId::from("abc"));
/// assert_eq!(key.len(), 32);
/// assert_eq!(key, storage_key(&SessionId::from("abc")));
/// ```
pub fn storage_key(id: &SessionId) -> [u8; 32] {
    id.storage_key()
}

/// Milliseconds since the Unix epoch (negative before it), as stores keep timestamps.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sessio::store::{from_unix_millis, unix_millis};
///
/// let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
/// assert_eq!(unix_millis(t), 1_700_000_000_123);
/// assert_eq!(from_unix_millis(unix_millis(t)), t);
/// ```
pub fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The inverse of [`unix_millis`].
pub fn from_unix_millis(millis: i64) -> SystemTime {
    let magnitude = Duration::from_millis(millis.unsigned_abs());
    if millis >= 0 {
        SystemTime::UNIX_EPOCH + magnitude
    } else {
        SystemTime::UNIX_EPOCH - magnitude
    }
}

/// Runs a store operation with a time limit; past it, [`StoreError::Timeout`].
///
/// Every store in this workspace wraps each operation in it, so that a store that hangs
/// gives the client a 503 instead of a hung request.
///
/// ```
/// use std::time::Duration;
/// use sessio::store::{with_timeout, StoreError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slow = async {
///     tokio::time::sleep(Duration::from_secs(60)).await;
///     Ok::<_, StoreError>(())
/// };
/// let result = with_timeout(Duration::from_millis(10), slow).await;
/// assert!(matches!(result, Err(StoreError::Timeout(_))));
/// # }
/// ```
pub async fn with_timeout<T>(
    limit: Duration,
    operation: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(limit, operation)
        .await
        .unwrap_or(Err(StoreError::Timeout(limit)))
}

/// A stored session: its data and the timestamps that decide its expiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The session's key/value data.
    pub data: Data,
    /// Timestamps and expiry.
    pub meta: Meta,
}

/// When a session was created and last used, and when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// When the session was created. Never changes.
    pub created_at: SystemTime,
    /// When the session was last written or touched.
    pub last_active: SystemTime,
    /// When the session ends unless used again: a store may drop it from then on.
    pub expires_at: SystemTime,
    /// This session's own expiry, if it differs from the layer's default.
    pub expiry: Option<Expiry>,
}

/// The keys one request set or removed, to be applied to the stored record as one
/// atomic step, so that concurrent requests writing different keys all keep their writes.
///
/// ```
/// use serde_json::json;
/// use sessio::store::{Changes, Data};
///
/// let mut changes = Changes::default();
/// changes.set("cart", json!([1, 2]));
/// changes.remove("flash");
///
/// let mut stored = Data::new();
/// stored.insert("flash".into(), json!("saved!"));
/// stored.insert("user".into(), json!(7));
/// changes.apply(&mut stored);
/// assert_eq!(serde_json::Value::Object(stored), json!({"cart": [1, 2], "user": 7}));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    cleared: bool,
    /// In key order, each key once. A request changes few keys: a sorted vector beats a
    /// map's allocations.
    entries: Vec<(String, Option<Value>)>,
}

impl Changes {
    /// Records that `key` is now `value`.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        self.record(key.into(), Some(value));
    }

    /// Records that `key` was removed.
    pub fn remove(&mut self, key: impl Into<String>) {
        self.record(key.into(), None);
    }

    fn record(&mut self, key: String, value: Option<Value>) {
        match self.entries.binary_search_by(|(k, _)| k.as_str().cmp(&key)) {
            Ok(at) => self.entries[at].1 = value,
            Err(at) => self.entries.insert(at, (key, value)),
        }
    }

    /// Records that every key was removed; later `set`s still apply.
    pub fn clear(&mut self) {
        self.cleared = true;
        self.entries.clear();
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.cleared && self.entries.is_empty()
    }

    /// Whether every stored key not set here must go.
    pub fn clears_all(&self) -> bool {
        self.cleared
    }

    /// Each changed key with its new value, or `None` where it was removed, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&Value>)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_ref()))
    }

    /// Applies these changes to stored data.
    pub fn apply(&self, data: &mut Data) {
        if self.cleared {
            data.clear();
        }
        for (key, value) in &self.entries {
            match (value, data.get_mut(key)) {
                (Some(value), Some(slot)) => *slot = value.clone(),
                (Some(value), None) => {
                    data.insert(key.clone(), value.clone());
                }
                (None, _) => {
                    data.remove(key);
                }
            }
        }
    }
}

/// A session bound to a user, as [`SessionStore::sessions_of`] finds it.
#[derive(Clone, PartialEq)]
pub struct UserSession {
    /// Its [`storage_key`].
    pub key: [u8; 32],
    /// The stored session.
    pub record: Record,
}

impl std::fmt::Debug for UserSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the key nor the data.
        f.debug_struct("UserSession")
            .field("meta", &self.record.meta)
            .finish_non_exhaustive()
    }
}

/// What [`SessionStore::create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CreateOutcome {
    /// The record was stored.
    Created,
    /// A session with this id exists already; nothing was written.
    IdTaken,
}

/// What [`SessionStore::update`] or [`SessionStore::touch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteOutcome {
    /// The session was found and written.
    Applied,
    /// No such session (destroyed, regenerated or expired); nothing was written.
    NotFound,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be reached.
    #[error("session store unavailable")]
    Unavailable(#[source] BoxError),
    /// The store did not answer in time.
    #[error("session store did not answer within {0:?}")]
    Timeout(Duration),
    /// A stored record could not be decoded. The session layer treats the session as
    /// absent (and logs the reason at `warn`), so the source must not quote the record.
    #[error("stored session could not be decoded")]
    Decode(#[source] BoxError),
    /// The store failed in another way.
    #[error("session store failed")]
    Backend(#[source] BoxError),
    /// The store cannot do this (a store without a per-user index, say); the message says
    /// what.
    #[error("this session store does not support {0}")]
    Unsupported(&'static str),
}

/// Storage for sessions.
///
/// The contract every store keeps (and the conformance tests check):
/// - `create` never overwrites: an existing id gives [`CreateOutcome::IdTaken`].
/// - `load` returns `None` for a record whose `expires_at` is at or before `now`.
/// - `update` applies [`Changes`] to the stored data and replaces the [`Meta`] in one
///   atomic step, and only if the record exists: a destroyed session is never recreated.
/// - `touch` replaces only the [`Meta`], also only if the record exists.
/// - `delete_expired` removes records whose `expires_at` is at or before `now`.
///
/// Time comes from the caller, whose clock decides expiry: `load` and `delete_expired` take
/// `now`, and for `create`, `update` and `touch` the record's `meta.last_active` is the
/// current time. A store needs no clock of its own (its server's clock may still drop
/// records through a TTL set from `expires_at`).
///
/// Ids reach a store only after their cookie signature was checked.
///
/// A store with a per-user index (the accounts of [`Accounts`](crate::Accounts)) also
/// implements [`sessions_of`](Self::sessions_of) and [`delete_key`](Self::delete_key);
/// without them, everything else still works.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session unless the id is taken.
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError>;

    /// Loads a session that has not expired at `now`.
    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError>;

    /// Applies `changes` and sets `meta`, atomically, if the session exists.
    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError>;

    /// Sets `meta` (a new expiry) without rewriting the data, if the session exists.
    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError>;

    /// Removes a session; removing a missing one is not an error.
    async fn delete(&self, id: &SessionId) -> Result<(), StoreError>;

    /// Removes every session expired at `now` and returns how many went.
    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError>;

    /// How many sessions the store holds, expired ones not yet removed included.
    async fn count(&self) -> Result<u64, StoreError>;

    /// The sessions live at `now` whose data binds them to `user` (see [`user_of`]), found
    /// through a per-user index: the cost grows with that user's sessions, never with the
    /// store's. A store keeps the index as it writes (in the same atomic step where it
    /// can) or repairs it as it reads it; either way, a session listed is live and bound
    /// to `user` at the time it was read.
    ///
    /// The default, for stores without an index, is [`StoreError::Unsupported`].
    async fn sessions_of(
        &self,
        user: &str,
        now: SystemTime,
    ) -> Result<Vec<UserSession>, StoreError> {
        let _ = (user, now);
        Err(StoreError::Unsupported("listing a user's sessions"))
    }

    /// Removes the session whose [`storage_key`] is `key`; removing a missing one is not an
    /// error. Revoking a listed session comes down to this.
    ///
    /// The default is [`StoreError::Unsupported`].
    async fn delete_key(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let _ = key;
        Err(StoreError::Unsupported(
            "removing a session by its storage key",
        ))
    }

    /// The store's name in log events: its type's, unless it says otherwise.
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}
