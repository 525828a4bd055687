//! A bounded, expiring in-memory store for single-process deployments.

use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use lru::LruCache;

use serde_json::Value;

use super::{
    from_unix_millis, storage_key, unix_millis, Changes, CreateOutcome, Meta, Record, SessionStore,
    StoreError, WriteOutcome,
};
use crate::{Expiry, SessionId};

/// Entries are filed under the hash of the id, never the id itself.
type Key = [u8; 32];

/// One lock's worth of sessions, least recently used first out.
type Shard = LruCache<Key, Entry, BuildHasherDefault<KeyHasher>>;

/// A stored session, kept small: most of a session's memory should be its data.
struct Entry {
    /// Unix milliseconds, as every store keeps them.
    created_at: i64,
    last_active: i64,
    expires_at: i64,
    expiry: Option<Expiry>,
    /// The data, sorted by key (the order of [`Data`](super::Data)); a map would cost hundreds of bytes
    /// even for one key.
    data: Box<[(Box<str>, Value)]>,
}

impl Entry {
    fn new(record: &Record) -> Self {
        Self {
            created_at: unix_millis(record.meta.created_at),
            last_active: unix_millis(record.meta.last_active),
            expires_at: unix_millis(record.meta.expires_at),
            expiry: record.meta.expiry,
            data: record
                .data
                .iter()
                .map(|(key, value)| (key.as_str().into(), value.clone()))
                .collect(),
        }
    }

    fn record(&self) -> Record {
        Record {
            data: self
                .data
                .iter()
                .map(|(key, value)| (key.to_string(), value.clone()))
                .collect(),
            meta: Meta {
                created_at: from_unix_millis(self.created_at),
                last_active: from_unix_millis(self.last_active),
                expires_at: from_unix_millis(self.expires_at),
                expiry: self.expiry,
            },
        }
    }

    fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at <= unix_millis(now)
    }

    fn set_meta(&mut self, meta: &Meta) {
        self.created_at = unix_millis(meta.created_at);
        self.last_active = unix_millis(meta.last_active);
        self.expires_at = unix_millis(meta.expires_at);
        self.expiry = meta.expiry;
    }

    fn apply(&mut self, changes: &Changes) {
        let mut data = std::mem::take(&mut self.data).into_vec();
        if changes.clears_all() {
            data.clear();
        }
        for (key, value) in changes.iter() {
            let found = data.binary_search_by(|(stored, _)| stored.as_ref().cmp(key));
            match (found, value) {
                (Ok(at), Some(value)) => data[at].1 = value.clone(),
                (Ok(at), None) => {
                    data.remove(at);
                }
                (Err(at), Some(value)) => data.insert(at, (key.into(), value.clone())),
                (Err(_), None) => {}
            }
        }
        self.data = data.into_boxed_slice();
    }
}

/// Keys are SHA-256 digests already: uniformly spread, and not chosen by clients (only
/// ids whose signature checked out reach a store). Hashing them again would only cost time,
/// so their first eight bytes are the hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for (i, byte) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*byte) << (8 * i);
        }
    }

    // The length prefix of the key array carries nothing.
    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Expired entries a write clears from the cold end of its shard before storing.
const SWEEP_PER_WRITE: usize = 8;
/// Entries per shard before the store splits into more shards (up to [`MAX_SHARDS`]).
const ENTRIES_PER_SHARD: usize = 4096;
const MAX_SHARDS: usize = 16;

/// Sessions in this process's memory.
///
/// - **Bounded**: holds at most `max_sessions`; when full, the least recently used session
///   goes (recency is tracked per shard: the store splits into up to 16 shards).
/// - **Expiring**: expired sessions are never returned, each write clears expired entries
///   from the cold end of its shard, and [`ExpiredCleanup`](super::ExpiredCleanup) or
///   [`SessionStore::delete_expired`] sweeps the rest without any request reading them.
/// - **Concurrent**: every operation on a session is atomic.
///
/// Sessions live only as long as the process and are not shared between processes: use
/// it for a single instance, for development and for tests.
///
/// ```
/// use sessio::MemoryStore;
///
/// let store = MemoryStore::builder().max_sessions(10_000).build();
/// # let _ = store;
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
}

/// Configures a [`MemoryStore`].
pub struct MemoryStoreBuilder {
    max_sessions: NonZeroUsize,
}

impl MemoryStore {
    /// The number of sessions kept unless told otherwise.
    pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

    /// A store with default settings.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Starts configuring a store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder {
            max_sessions: NonZeroUsize::new(Self::DEFAULT_MAX_SESSIONS).expect("non-zero"),
        }
    }

    fn shard(&self, key: &Key) -> MutexGuard<'_, Shard> {
        let shards = &self.inner.shards;
        // The last byte: independent of the first eight, which place it within the shard.
        let index = usize::from(key[31]) % shards.len();
        // A panic while holding the lock cannot leave a shard half-written: each
        // operation replaces whole entries.
        shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStoreBuilder {
    /// The most sessions held at once (at least 1).
    pub fn max_sessions(mut self, max_sessions: usize) -> Self {
        self.max_sessions = NonZeroUsize::new(max_sessions).unwrap_or(NonZeroUsize::MIN);
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let total = self.max_sessions.get();
        let shards = (total / ENTRIES_PER_SHARD).clamp(1, MAX_SHARDS);
        let per_shard = NonZeroUsize::new(total.div_ceil(shards)).unwrap_or(NonZeroUsize::MIN);
        MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..shards)
                    .map(|_| Mutex::new(LruCache::with_hasher(per_shard, Default::default())))
                    .collect(),
            }),
        }
    }
}

impl fmt::Debug for MemoryStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreBuilder")
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

/// Drops expired entries from the least recently used end, a few at a time.
fn sweep_cold_end(shard: &mut Shard, now: SystemTime) {
    for _ in 0..SWEEP_PER_WRITE {
        match shard.peek_lru() {
            Some((_, entry)) if entry.is_expired(now) => {
                shard.pop_lru();
            }
            _ => break,
        }
    }
}

/// The live record for `id`, marking it recently used; an expired one is dropped.
fn live<'a>(shard: &'a mut Shard, key: &Key, now: SystemTime) -> Option<&'a mut Entry> {
    if shard.peek(key).is_some_and(|entry| entry.is_expired(now)) {
        shard.pop(key);
        return None;
    }
    shard.get_mut(key)
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        let now = record.meta.last_active;
        let key = storage_key(id);
        let mut shard = self.shard(&key);
        sweep_cold_end(&mut shard, now);
        if live(&mut shard, &key, now).is_some() {
            return Ok(CreateOutcome::IdTaken);
        }
        shard.push(key, Entry::new(record));
        Ok(CreateOutcome::Created)
    }

    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let key = storage_key(id);
        let mut shard = self.shard(&key);
        Ok(live(&mut shard, &key, now).map(|entry| entry.record()))
    }

    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let now = meta.last_active;
        let key = storage_key(id);
        let mut shard = self.shard(&key);
        sweep_cold_end(&mut shard, now);
        Ok(match live(&mut shard, &key, now) {
            Some(entry) => {
                entry.apply(changes);
                entry.set_meta(meta);
                WriteOutcome::Applied
            }
            None => WriteOutcome::NotFound,
        })
    }

    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        let now = meta.last_active;
        let key = storage_key(id);
        let mut shard = self.shard(&key);
        Ok(match live(&mut shard, &key, now) {
            Some(entry) => {
                entry.set_meta(meta);
                WriteOutcome::Applied
            }
            None => WriteOutcome::NotFound,
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = storage_key(id);
        self.shard(&key).pop(&key);
        Ok(())
    }

    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let mut removed = 0;
        for shard in self.inner.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let expired: Vec<Key> = shard
                .iter()
                .filter(|(_, entry)| entry.is_expired(now))
                .map(|(key, _)| *key)
                .collect();
            for key in &expired {
                shard.pop(key);
            }
            removed += expired.len() as u64;
        }
        Ok(removed)
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(|e| e.into_inner()).len() as u64)
            .sum())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{Clock, ManualClock};
    use serde_json::json;
    use std::time::Duration;

    /// An empty record created at `now` that expires `ttl` seconds later.
    pub(crate) fn record(now: SystemTime, ttl: u64) -> Record {
        Record {
            data: Default::default(),
            meta: Meta {
                created_at: now,
                last_active: now,
                expires_at: now + Duration::from_secs(ttl),
                expiry: None,
            },
        }
    }

    #[tokio::test]
    async fn least_recently_used_session_is_evicted_when_full() {
        let clock = ManualClock::default();
        let store = MemoryStore::builder().max_sessions(2).build();
        let (a, b, c) = (
            SessionId::from("a"),
            SessionId::from("b"),
            SessionId::from("c"),
        );
        let now = clock.now();
        store.create(&a, &record(now, 60)).await.unwrap();
        store.create(&b, &record(now, 60)).await.unwrap();
        // Reading `a` makes `b` the least recently used.
        assert!(store.load(&a, now).await.unwrap().is_some());
        store.create(&c, &record(now, 60)).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 2);
        assert!(store.load(&a, now).await.unwrap().is_some());
        assert!(store.load(&b, now).await.unwrap().is_none());
        assert!(store.load(&c, now).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn writes_sweep_expired_entries_nobody_reads() {
        let clock = ManualClock::default();
        let store = MemoryStore::builder().max_sessions(100).build();
        for i in 0..5 {
            store
                .create(
                    &SessionId::from(format!("old{i}")),
                    &record(clock.now(), 10),
                )
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(11));
        store
            .create(&SessionId::from("new"), &record(clock.now(), 10))
            .await
            .unwrap();
        assert_eq!(store.count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn delete_expired_removes_only_expired() {
        let clock = ManualClock::default();
        let store = MemoryStore::new();
        let now = clock.now();
        store
            .create(&SessionId::from("short"), &record(now, 10))
            .await
            .unwrap();
        store
            .create(&SessionId::from("long"), &record(now, 100))
            .await
            .unwrap();
        assert_eq!(
            store
                .delete_expired(now + Duration::from_secs(10))
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.count().await.unwrap(), 1);
        assert!(store
            .load(&SessionId::from("long"), now)
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn update_never_recreates_and_create_never_overwrites() {
        let clock = ManualClock::default();
        let store = MemoryStore::new();
        let id = SessionId::from("x");
        let rec = record(clock.now(), 60);
        let mut changes = Changes::default();
        changes.set("k", json!(1));
        assert_eq!(
            store.update(&id, &changes, &rec.meta).await.unwrap(),
            WriteOutcome::NotFound
        );
        assert_eq!(
            store.touch(&id, &rec.meta).await.unwrap(),
            WriteOutcome::NotFound
        );
        assert_eq!(store.count().await.unwrap(), 0);
        assert_eq!(
            store.create(&id, &rec).await.unwrap(),
            CreateOutcome::Created
        );
        assert_eq!(
            store.create(&id, &rec).await.unwrap(),
            CreateOutcome::IdTaken
        );
    }

    #[tokio::test]
    async fn expired_records_are_neither_loaded_nor_updated() {
        let clock = ManualClock::default();
        let store = MemoryStore::new();
        let id = SessionId::from("x");
        let rec = record(clock.now(), 10);
        store.create(&id, &rec).await.unwrap();
        clock.advance(Duration::from_secs(10));
        assert!(store.load(&id, clock.now()).await.unwrap().is_none());
        // Writes judge expiry by the time they carry.
        let late = record(clock.now(), 60).meta;
        assert_eq!(
            store.touch(&id, &late).await.unwrap(),
            WriteOutcome::NotFound
        );
    }

    #[test]
    fn large_stores_are_sharded_within_bounds() {
        let store = MemoryStore::builder().max_sessions(1_000_000).build();
        assert_eq!(store.inner.shards.len(), MAX_SHARDS);
        let small = MemoryStore::builder().max_sessions(3).build();
        assert_eq!(small.inner.shards.len(), 1);
    }
}
