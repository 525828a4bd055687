//! A bounded, expiring in-memory store for single-process deployments.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use indexmap::IndexMap;

mod packed;

use packed::Packed;

use super::{
    from_unix_millis, storage_key, unix_millis, user_of, Changes, CreateOutcome, Meta, Record,
    SessionStore, StoreError, UserSession, WriteOutcome, OWNER_KEY,
};
use crate::{Expiry, SessionId};

/// Entries are filed under (the first half of) the hash of the id, never the id itself.
///
/// 128 bits are plenty: ids reach the store only once their signature checked out, so no
/// client can aim at another's key, and `create` never overwrites, so even a collision
/// would only make the layer draw another id.
type Key = u128;

/// A shard's sessions. An `IndexMap` keeps entries in one vector, so that a new session can
/// look at them in turn, from where the previous one stopped.
type Entries = IndexMap<Key, Entry, BuildHasherDefault<KeyHasher>>;

/// One lock's worth of sessions.
#[derive(Default)]
struct Shard {
    entries: Entries,
    /// Where the next new session starts looking (see [`make_room`]).
    cursor: usize,
}

/// A stored session, kept small: most of a session's memory should be its data.
struct Entry {
    /// Unix milliseconds, as every store keeps them.
    created_at: i64,
    last_active: i64,
    expires_at: i64,
    /// Boxed: few sessions have their own, and `None` then costs one word.
    expiry: Option<Box<Expiry>>,
    /// The data, packed (see [`packed`]): inline when short, else in one allocation, where
    /// a map of values takes several.
    data: Packed,
}

impl Entry {
    fn new(data: Packed, meta: &Meta) -> Self {
        let mut entry = Self {
            created_at: 0,
            last_active: 0,
            expires_at: 0,
            expiry: None,
            data,
        };
        entry.set_meta(meta);
        entry
    }

    fn record(&self) -> Result<Record, StoreError> {
        Ok(Record {
            data: packed::unpack(self.data.as_bytes())?,
            meta: Meta {
                created_at: from_unix_millis(self.created_at),
                last_active: from_unix_millis(self.last_active),
                expires_at: from_unix_millis(self.expires_at),
                expiry: self.expiry.as_deref().copied(),
            },
        })
    }

    fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }

    fn set_meta(&mut self, meta: &Meta) {
        self.created_at = unix_millis(meta.created_at);
        self.last_active = unix_millis(meta.last_active);
        self.expires_at = unix_millis(meta.expires_at);
        self.expiry = meta.expiry.map(Box::new);
    }

    /// Becomes a new session with `data` (packed) and `meta`: an evicted session's slot
    /// taken over by a new one, its storage reused where it fits.
    fn take_over(&mut self, data: &[u8], meta: &Meta) {
        self.data.set(data);
        self.set_meta(meta);
    }

    fn apply(&mut self, changes: &Changes) -> Result<(), StoreError> {
        packed::merge(&mut self.data, changes)
    }
}

/// Keys are SHA-256 digests already: uniformly spread, and not chosen by clients (only
/// ids whose signature checked out reach a store). Hashing them again would only cost time,
/// so their low 64 bits are the hash.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for (i, byte) in bytes.iter().take(8).enumerate() {
            self.0 ^= u64::from(*byte) << (8 * i);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Entries a new session looks at, when its shard is full, to find expired ones to drop or
/// else the least recently active one to evict (an approximation of LRU, as Redis makes
/// by sampling).
const SAMPLES: usize = 5;
/// Entries a new session looks at otherwise, to drop them if expired: two neighbours (one
/// cache miss or so) keep the store clearing itself. Two, so that the hand goes round even
/// while the store grows by one entry per new session.
const SAMPLES_NOT_FULL: usize = 2;
/// Entries per shard before the store splits into more shards (up to [`MAX_SHARDS`]).
const ENTRIES_PER_SHARD: usize = 4096;
const MAX_SHARDS: usize = 16;

/// Sessions in this process's memory.
///
/// - **Bounded**: holds at most `max_sessions`. When full, a new session evicts the least
///   recently active (written or touched) of the next few sessions in turn (a clock hand
///   going round the store), an approximation of least-recently-used eviction.
/// - **Expiring**: expired sessions are never returned; each new session drops the expired
///   ones among those it looks at, and [`ExpiredCleanup`](super::ExpiredCleanup) or
///   [`SessionStore::delete_expired`] sweeps the rest without any request reading them.
/// - **Compact**: its data is kept packed, each value as JSON text, and within the
///   session's own slot when it packs into 22 bytes (a user id, a counter): such a session
///   takes about 100 bytes in all, one with a few small values about 150.
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
    per_shard: usize,
    /// Each user's sessions, by storage key: only sessions bound to a user pay for it.
    /// Entries of sessions since gone are dropped when the user's sessions are listed
    /// and by every sweep, which keeps it as bounded as the store.
    users: Mutex<HashMap<String, HashSet<[u8; 32]>>>,
}

/// Configures a [`MemoryStore`].
pub struct MemoryStoreBuilder {
    max_sessions: usize,
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
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
        }
    }

    fn users(&self) -> MutexGuard<'_, HashMap<String, HashSet<[u8; 32]>>> {
        self.inner.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Files the session under `user` in the index.
    fn index(&self, user: &str, id: &SessionId) {
        self.users()
            .entry(user.to_owned())
            .or_default()
            .insert(storage_key(id));
    }

    /// The user the live session under `key` belongs to, read from its data.
    fn owner(&self, key: &[u8; 32], now: i64) -> Result<Option<(String, Record)>, StoreError> {
        let key = key_of_storage_key(key);
        let mut shard = self.shard(key);
        let Some(entry) = live(&mut shard.entries, key, now) else {
            return Ok(None);
        };
        let record = entry.record()?;
        let user = user_of(&record.data).map(str::to_owned);
        Ok(user.map(|user| (user, record)))
    }

    fn shard(&self, key: Key) -> MutexGuard<'_, Shard> {
        let shards = &self.inner.shards;
        // The top byte: independent of the low 64 bits, which place it within the shard.
        let index = (key >> 120) as usize % shards.len();
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
            .field(
                "max_sessions",
                &(self.inner.per_shard * self.inner.shards.len()),
            )
            .finish_non_exhaustive()
    }
}

impl MemoryStoreBuilder {
    /// The most sessions held at once (at least 1).
    pub fn max_sessions(mut self, max_sessions: usize) -> Self {
        self.max_sessions = max_sessions.max(1);
        self
    }

    /// Builds the store.
    pub fn build(self) -> MemoryStore {
        let total = self.max_sessions;
        let shards = (total / ENTRIES_PER_SHARD).clamp(1, MAX_SHARDS);
        MemoryStore {
            inner: Arc::new(Inner {
                shards: (0..shards).map(|_| Mutex::default()).collect(),
                per_shard: total.div_ceil(shards),
                users: Mutex::default(),
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

fn key_of(id: &SessionId) -> Key {
    key_of_storage_key(&storage_key(id))
}

fn key_of_storage_key(hash: &[u8; 32]) -> Key {
    let mut half = [0; 16];
    half.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(half)
}

/// Before a new session goes in: drops the expired among a few entries or, if none is and
/// the shard is full, returns the index of the least recently active of them, for the new
/// session to take over (in place: cheaper than removing one entry and appending another).
///
/// The entries are the next ones in the shard's vector after those the previous new session
/// looked at, like a clock hand going round: read in order, they cost a cache miss or two,
/// where as many scattered reads cost one each, and every entry is looked at in each turn.
/// Positions in the vector say nothing about activity (new sessions take the slots of
/// evicted ones), so the coldest of a few neighbours is as good a victim as the coldest of
/// a few picked at random. A store that is not full looks at two entries, so expired
/// sessions that nobody reads still go within one turn;
/// [`ExpiredCleanup`](super::ExpiredCleanup) clears them all at once.
fn make_room(shard: &mut Shard, capacity: usize, now: i64) -> Option<usize> {
    let len = shard.entries.len();
    if len == 0 {
        return None;
    }
    let full = len >= capacity;
    let window = if full { SAMPLES } else { SAMPLES_NOT_FULL }.min(len);
    let start = shard.cursor % len;
    let mut doomed = [0; SAMPLES];
    let mut count = 0;
    let mut coldest: Option<(usize, i64)> = None;
    for offset in 0..window {
        let at = (start + offset) % len;
        let Some((_, entry)) = shard.entries.get_index(at) else {
            break;
        };
        if entry.is_expired(now) {
            doomed[count] = at;
            count += 1;
        } else if coldest.is_none_or(|(_, active)| entry.last_active < active) {
            coldest = Some((at, entry.last_active));
        }
    }
    if count == 0 {
        shard.cursor = start + window;
        // Nothing expired: a full shard gives up its coldest slot to the new session.
        return if full {
            coldest.map(|(at, _)| at)
        } else {
            None
        };
    }
    let doomed = &mut doomed[..count];
    // Highest first: a swap-remove moves the last entry, never one still to go.
    doomed.sort_unstable_by(|a, b| b.cmp(a));
    for &at in doomed.iter() {
        shard.entries.swap_remove_index(at);
    }
    // The hand stays: the entries just moved into these slots are looked at next.
    shard.cursor = start;
    None
}

/// The live entry for `key`; an expired one is dropped.
fn live(entries: &mut Entries, key: Key, now: i64) -> Option<&mut Entry> {
    let index = entries.get_index_of(&key)?;
    if entries[index].is_expired(now) {
        entries.swap_remove_index(index);
        return None;
    }
    Some(&mut entries[index])
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        let now = unix_millis(record.meta.last_active);
        let key = key_of(id);
        let meta = &record.meta;
        let outcome = packed::with_packed(&record.data, |data| {
            let mut shard = self.shard(key);
            if live(&mut shard.entries, key, now).is_some() {
                return CreateOutcome::IdTaken;
            }
            match make_room(&mut shard, self.inner.per_shard, now) {
                // The key is in no other slot: `live` found none.
                Some(at)
                    if at < shard.entries.len() && shard.entries.replace_index(at, key).is_ok() =>
                {
                    shard.entries[at].take_over(data, meta);
                }
                _ => {
                    shard
                        .entries
                        .insert(key, Entry::new(Packed::from(data), meta));
                }
            }
            CreateOutcome::Created
        })?;
        if let (CreateOutcome::Created, Some(user)) = (outcome, user_of(&record.data)) {
            self.index(user, id);
        }
        Ok(outcome)
    }

    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        let key = key_of(id);
        let mut shard = self.shard(key);
        live(&mut shard.entries, key, unix_millis(now))
            .map(|entry| entry.record())
            .transpose()
    }

    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        let key = key_of(id);
        let mut shard = self.shard(key);
        let Some(entry) = live(&mut shard.entries, key, unix_millis(meta.last_active)) else {
            return Ok(WriteOutcome::NotFound);
        };
        entry.apply(changes)?;
        entry.set_meta(meta);
        drop(shard);
        // A new owner is filed; the old one's entry goes when it is next read.
        let owner = changes.iter().find(|(key, _)| *key == OWNER_KEY);
        if let Some(user) = owner.and_then(|(_, value)| value?.get("user")?.as_str()) {
            self.index(user, id);
        }
        Ok(WriteOutcome::Applied)
    }

    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        let key = key_of(id);
        let mut shard = self.shard(key);
        let Some(entry) = live(&mut shard.entries, key, unix_millis(meta.last_active)) else {
            return Ok(WriteOutcome::NotFound);
        };
        entry.set_meta(meta);
        Ok(WriteOutcome::Applied)
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        let key = key_of(id);
        self.shard(key).entries.swap_remove(&key);
        Ok(())
    }

    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        let now = unix_millis(now);
        let mut removed = 0;
        for shard in self.inner.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            let before = shard.entries.len();
            shard.entries.retain(|_, entry| !entry.is_expired(now));
            removed += (before - shard.entries.len()) as u64;
        }
        // The index loses what the sweep and evictions removed.
        let users: Vec<String> = self.users().keys().cloned().collect();
        for user in users {
            self.sessions_of(&user, from_unix_millis(now)).await?;
        }
        Ok(removed)
    }

    async fn sessions_of(
        &self,
        user: &str,
        now: SystemTime,
    ) -> Result<Vec<UserSession>, StoreError> {
        let now = unix_millis(now);
        let keys: Vec<[u8; 32]> = match self.users().get(user) {
            Some(keys) => keys.iter().copied().collect(),
            None => return Ok(Vec::new()),
        };
        let mut sessions = Vec::new();
        let mut gone = Vec::new();
        for key in keys {
            match self.owner(&key, now) {
                Ok(Some((owner, record))) if owner == user => {
                    sessions.push(UserSession { key, record })
                }
                // Ended, or bound to someone else since; a record that does not decode
                // is a missing session.
                Ok(_) | Err(StoreError::Decode(_)) => gone.push(key),
                Err(error) => return Err(error),
            }
        }
        if !gone.is_empty() {
            let mut users = self.users();
            if let Some(keys) = users.get_mut(user) {
                for key in &gone {
                    // Looked at again under the index's lock: a write that bound it to
                    // this user meanwhile keeps its entry.
                    let bound =
                        matches!(self.owner(key, now), Ok(Some((owner, _))) if owner == user);
                    if !bound {
                        keys.remove(key);
                    }
                }
                if keys.is_empty() {
                    users.remove(user);
                }
            }
        }
        Ok(sessions)
    }

    async fn delete_key(&self, key: &[u8; 32]) -> Result<(), StoreError> {
        let key = key_of_storage_key(key);
        self.shard(key).entries.swap_remove(&key);
        Ok(())
    }

    async fn count(&self) -> Result<u64, StoreError> {
        Ok(self
            .inner
            .shards
            .iter()
            .map(|shard| {
                let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                shard.entries.len() as u64
            })
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

    /// Creates `count` sessions `{prefix}0`, `{prefix}1`, ... that expire `ttl` seconds after
    /// `now`.
    async fn create_many(
        store: &MemoryStore,
        prefix: &str,
        count: usize,
        now: SystemTime,
        ttl: u64,
    ) {
        for i in 0..count {
            let id = SessionId::from(format!("{prefix}{i}"));
            store.create(&id, &record(now, ttl)).await.unwrap();
        }
    }

    #[tokio::test]
    async fn least_recently_active_session_is_evicted_when_full() {
        let clock = ManualClock::default();
        let store = MemoryStore::builder().max_sessions(2).build();
        let (a, b, c) = (
            SessionId::from("a"),
            SessionId::from("b"),
            SessionId::from("c"),
        );
        store.create(&a, &record(clock.now(), 60)).await.unwrap();
        store.create(&b, &record(clock.now(), 60)).await.unwrap();
        // Touching `a` later makes `b` the least recently active.
        clock.advance(Duration::from_secs(1));
        let touched = record(clock.now(), 60).meta;
        assert_eq!(
            store.touch(&a, &touched).await.unwrap(),
            WriteOutcome::Applied
        );
        store.create(&c, &record(clock.now(), 60)).await.unwrap();
        assert_eq!(store.count().await.unwrap(), 2);
        let now = clock.now();
        assert!(store.load(&a, now).await.unwrap().is_some());
        assert!(store.load(&b, now).await.unwrap().is_none());
        assert!(store.load(&c, now).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn a_full_store_stays_bounded_and_evicts_cold_sessions_first() {
        let clock = ManualClock::default();
        let store = MemoryStore::builder().max_sessions(1_000).build();
        // 1,000 sessions, then 1,000 more created later: each new one evicts the least
        // recently active of the entries it looks at, so the old ones go first.
        create_many(&store, "old", 1_000, clock.now(), 600).await;
        clock.advance(Duration::from_secs(1));
        create_many(&store, "new", 1_000, clock.now(), 600).await;
        assert_eq!(store.count().await.unwrap(), 1_000);
        let mut new_kept = 0;
        for i in 0..1_000 {
            let id = SessionId::from(format!("new{i}"));
            if store.load(&id, clock.now()).await.unwrap().is_some() {
                new_kept += 1;
            }
        }
        // Random eviction would keep about half of the new ones.
        assert!(new_kept > 800, "kept {new_kept} of the 1000 newest");
    }

    #[test]
    fn an_entry_is_small() {
        // Hash, key and entry make up a slot of the shard's vector: keep it compact. The
        // key's alignment rounds a slot up to 80 bytes; the inline data fills that room.
        assert!(std::mem::size_of::<(Key, u64, Entry)>() <= 80);
    }

    #[tokio::test]
    async fn a_full_store_drops_expired_sessions_before_live_ones() {
        let clock = ManualClock::default();
        let store = MemoryStore::builder().max_sessions(5).build();
        create_many(&store, "old", 4, clock.now(), 10).await;
        let live = SessionId::from("live");
        store.create(&live, &record(clock.now(), 60)).await.unwrap();
        clock.advance(Duration::from_secs(11));
        store
            .create(&SessionId::from("new"), &record(clock.now(), 10))
            .await
            .unwrap();
        assert_eq!(store.count().await.unwrap(), 2);
        assert!(store.load(&live, clock.now()).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn new_sessions_clear_expired_ones_nobody_reads() {
        let clock = ManualClock::default();
        // One shard (see `ENTRIES_PER_SHARD`), so that one hand goes round all of them.
        let store = MemoryStore::builder().max_sessions(1_000).build();
        create_many(&store, "old", 100, clock.now(), 10).await;
        clock.advance(Duration::from_secs(11));
        create_many(&store, "new", 300, clock.now(), 600).await;
        // Each new session looks at the next entry in turn: within a turn of the store all
        // 100 old ones were looked at, and dropped without any read.
        assert_eq!(store.count().await.unwrap(), 300);
    }

    #[tokio::test]
    async fn a_new_session_in_an_evicted_slot_has_its_own_data() {
        let now = ManualClock::default().now();
        let store = MemoryStore::builder().max_sessions(1).build();
        let with = |value: serde_json::Value| {
            let mut record = record(now, 60);
            record.data.insert("k".into(), value);
            record
        };
        // Inline, then on the heap at the same length as the evicted session's data (its
        // allocation is reused), then longer, then inline again.
        for (name, value) in [
            ("a", json!(1)),
            ("b", json!("long")),
            ("c", json!("x".repeat(30))),
            ("d", json!("y".repeat(30))),
            ("e", json!("z".repeat(40))),
            ("f", json!(3)),
        ] {
            let id = SessionId::from(name);
            store.create(&id, &with(value.clone())).await.unwrap();
            assert_eq!(store.count().await.unwrap(), 1);
            let loaded = store.load(&id, now).await.unwrap().expect("just created");
            assert_eq!(loaded.data["k"], value, "session {name}");
        }
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
