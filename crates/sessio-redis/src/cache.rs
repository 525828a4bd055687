//! [`ClientCache`]: sessions kept in this process between requests, and kept fresh by Redis
//! itself (server-assisted client-side caching: `CLIENT TRACKING`, RESP3).
//!
//! How it stays right:
//! - Reads that miss, and updates in the native layout, go over one connection of their own
//!   on which tracking is on (`NOLOOP`: Redis does not tell it about its own writes). Redis
//!   then sends that connection an invalidation for any key it read once another client
//!   writes the key, expires it or evicts it; the connection hands it over in the order of
//!   its replies, and the entry goes. The store's other writes (new sessions, removals, the
//!   connect-redis layout's compare-and-set) go over its own connection and drop the entry
//!   before and after.
//! - Each update script ends by reading its key again, so the key stays tracked after this
//!   process wrote it, and the entry is brought up to date with what the script wrote:
//!   the stored record with the request's changes applied (the same step Redis took), but
//!   only when nothing else wrote the key meanwhile (no invalidation, no other write of
//!   this process in flight); otherwise it goes.
//! - A read or write that began before an invalidation, or before another write of this
//!   process ended, never caches what it saw: each key has a counter ([`Shard::stripes`])
//!   that moves whenever the key may have changed, checked under the same lock as the
//!   entries.
//! - When the connection drops, every entry goes; reads go to Redis uncached until it is
//!   back (Redis forgets what a dropped connection tracked).
//! - No entry is used longer than [`ClientCache::with_max_age`] after Redis last vouched
//!   for it, whatever happens to the connection.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, RedisError};
use serde_json::Value;
use sessio::store::{Changes, Data, Meta, Record};

use crate::conn::{CONNECTION_TIMEOUT, RESPONSE_TIMEOUT};

/// Shards of the cache, each behind its own lock.
const SHARDS: usize = 64;
/// Change counters per shard. Keys sharing one only cost each other a cache fill.
const STRIPES: usize = 64;
/// Least time between two attempts to bring the tracking connection back.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

/// Keeps the sessions this process reads from Redis in memory, so that a request whose
/// session is cached makes no round trip at all to read it, and a write makes one; Redis
/// tells the cache when another client changes a session it holds (RESP3 key tracking).
///
/// Enable it with [`RedisStore::with_client_cache`](crate::RedisStore::with_client_cache),
/// on a single Redis server (6.0 or later). In the
/// `ConnectRedis` layout it caches reads only: a write drops
/// the session until it is read again.
///
/// **What it trades.** Within this process the cache is exact: what a request reads
/// includes every write this process made before. What *another* instance writes (or
/// destroys) reaches this one when Redis's invalidation does, usually well under a
/// millisecond after the write; until then a request here may still read the old session.
/// A user logging out through one instance may so be served as logged in by another for
/// that long (never longer than the [max age](ClientCache::with_max_age)). When the
/// connection to Redis drops, the cache empties itself, and reads go to Redis until a new
/// connection tracks them again.
///
/// Each cached session costs this process its data's JSON text and about 450 bytes more
/// (its key, timestamps and place in the cache), up to
/// [`with_capacity`](Self::with_capacity) sessions.
///
/// ```
/// use std::time::Duration;
/// use sessio_redis::ClientCache;
///
/// let cache = ClientCache::new()
///     .with_capacity(50_000)
///     .with_max_age(Duration::from_secs(30));
/// assert_eq!(cache.capacity(), 50_000);
/// assert_eq!(ClientCache::default().max_age(), ClientCache::DEFAULT_MAX_AGE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCache {
    capacity: usize,
    max_age: Duration,
}

impl ClientCache {
    /// Sessions kept unless [`with_capacity`](Self::with_capacity) says otherwise.
    pub const DEFAULT_CAPACITY: usize = 10_000;
    /// How long an entry may be used unless [`with_max_age`](Self::with_max_age) says
    /// otherwise.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);

    /// A cache of [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) sessions, each used for at
    /// most [`DEFAULT_MAX_AGE`](Self::DEFAULT_MAX_AGE).
    pub fn new() -> Self {
        Self {
            capacity: Self::DEFAULT_CAPACITY,
            max_age: Self::DEFAULT_MAX_AGE,
        }
    }

    /// Keeps at most about `sessions` sessions (the cache is split into 64 parts, each
    /// holding its share, at least one); when full, a new one takes an older one's place.
    ///
    /// ```
    /// let cache = sessio_redis::ClientCache::new().with_capacity(1_000);
    /// assert_eq!(cache.capacity(), 1_000);
    /// ```
    pub fn with_capacity(mut self, sessions: usize) -> Self {
        self.capacity = sessions;
        self
    }

    /// Uses an entry for at most `max_age` after Redis last gave or took it (by the
    /// session layer's clock), even if no invalidation came: a bound on staleness should
    /// Redis's invalidations ever not arrive. Invalidations normally remove entries long
    /// before.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = sessio_redis::ClientCache::new().with_max_age(Duration::from_secs(2));
    /// assert_eq!(cache.max_age(), Duration::from_secs(2));
    /// ```
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How many sessions the cache keeps at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How long an entry may be used at most.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    fn per_shard(&self) -> usize {
        self.capacity.div_ceil(SHARDS).max(1)
    }
}

impl Default for ClientCache {
    fn default() -> Self {
        Self::new()
    }
}

/// What a store's client-side cache has done since it was opened, from
/// [`RedisStore::client_cache_stats`](crate::RedisStore::client_cache_stats).
///
/// ```
/// let stats = sessio_redis::ClientCacheStats::default();
/// assert_eq!(stats.hit_ratio(), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCacheStats {
    /// Loads served from the cache.
    pub hits: u64,
    /// Loads that went to Redis (not cached, too old, or while the cache had no connection).
    pub misses: u64,
    /// Sessions Redis said changed elsewhere while cached or being read (one per key
    /// invalidated; a flush counts once).
    pub invalidations: u64,
    /// Times the cache's connection to Redis dropped (each emptied the cache).
    pub disconnections: u64,
    /// Sessions cached now.
    pub entries: usize,
}

impl ClientCacheStats {
    /// Hits among all loads; `None` before the first.
    pub fn hit_ratio(&self) -> Option<f64> {
        let loads = self.hits + self.misses;
        (loads > 0).then(|| self.hits as f64 / loads as f64)
    }
}

/// The running cache of one store (shared by its clones).
pub(crate) struct Cache {
    config: ClientCache,
    /// Opens tracking connections: the store's client, speaking RESP3.
    client: Client,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    link: Mutex<Link>,
    counts: Counts,
}

/// [`ClientCacheStats`]' counters.
#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    disconnections: AtomicU64,
}

/// The tracking connection, when there is one.
struct Link {
    conn: Option<MultiplexedConnection>,
    /// Which connection `conn` is: a drop reported by an older one is ignored.
    serial: u64,
    reconnecting: bool,
    last_attempt: Option<Instant>,
}

struct Shard {
    entries: IndexMap<String, Entry>,
    /// Moves for every key hashing here whenever that key may have changed.
    stripes: [u64; STRIPES],
    /// Tells entries apart: an entry replaced meanwhile is not the one a write started on.
    next_serial: u64,
    /// Where the next eviction looks.
    hand: usize,
}

struct Entry {
    session: Cached,
    /// When Redis last vouched for `session`, by the caller's clock.
    vouched_at: SystemTime,
    serial: u64,
    /// Writes of this process on this entry still in flight.
    writes: u32,
}

/// A key's change counter as it was before a read (or a create) went to Redis.
pub(crate) struct ReadTicket {
    hash: u64,
    stripe: u64,
}

/// Which entry a write started on, if the key was cached.
pub(crate) struct WriteTicket {
    hash: u64,
    serial: Option<u64>,
}

/// A session as the cache keeps it: each data key with its value's JSON text, in key order.
/// A fraction of the size of a [`Record`], whose map allocates a B-tree node of eleven
/// slots even for one key; turned back into one on every hit, as a store reading Redis
/// would.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Cached {
    data: Vec<(Box<str>, Box<str>)>,
    meta: Meta,
}

impl Cached {
    fn of(record: &Record) -> Self {
        Self::of_entries(record.data.iter(), record.meta)
    }

    fn of_entries<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, meta: Meta) -> Self {
        let mut data: Vec<(Box<str>, Box<str>)> = entries
            .map(|(key, value)| (key.as_str().into(), value.to_string().into()))
            .collect();
        // Key order, which a map gives unless serde_json's `preserve_order` feature is on
        // anywhere in the build (then it is insertion order).
        data.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
        Self { data, meta }
    }

    /// The record again; `None` if a value no longer parses (never, for text this cache
    /// wrote itself).
    fn record(&self) -> Option<Record> {
        let mut data = Data::new();
        for (key, value) in &self.data {
            data.insert(key.as_ref().to_owned(), serde_json::from_str(value).ok()?);
        }
        Some(Record {
            data,
            meta: self.meta,
        })
    }

    /// Does to the data what [`Changes::apply`] does to a record's.
    pub(crate) fn apply(&mut self, changes: &Changes) {
        if changes.clears_all() {
            self.data.clear();
        }
        for (key, value) in changes.iter() {
            let found = self.data.binary_search_by(|(k, _)| k.as_ref().cmp(key));
            match (found, value) {
                (Ok(at), Some(value)) => self.data[at].1 = value.to_string().into(),
                (Err(at), Some(value)) => {
                    self.data.insert(at, (key.into(), value.to_string().into()))
                }
                (Ok(at), None) => {
                    self.data.remove(at);
                }
                (Err(_), None) => {}
            }
        }
    }

    pub(crate) fn set_meta(&mut self, meta: Meta) {
        self.meta = meta;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here leaves a shard half-changed across a panic point.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    /// A cache over `client` (a RESP3 client), with its tracking connection open.
    pub(crate) async fn open(config: ClientCache, client: Client) -> Result<Arc<Self>, RedisError> {
        let cache = Arc::new(Self::new(config, client));
        {
            let mut link = lock(&cache.link);
            link.reconnecting = true;
            link.last_attempt = Some(Instant::now());
        }
        let opened = Arc::clone(&cache).connect().await;
        lock(&cache.link).reconnecting = false;
        opened?;
        Ok(cache)
    }

    /// An empty cache without a connection.
    fn new(config: ClientCache, client: Client) -> Self {
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    entries: IndexMap::new(),
                    stripes: [0; STRIPES],
                    next_serial: 0,
                    hand: 0,
                })
            })
            .collect();
        Self {
            config,
            client,
            hasher: RandomState::new(),
            shards,
            link: Mutex::new(Link {
                conn: None,
                serial: 0,
                reconnecting: false,
                last_attempt: None,
            }),
            counts: Counts::default(),
        }
    }

    pub(crate) fn stats(&self) -> ClientCacheStats {
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientCacheStats {
            hits: count(&self.counts.hits),
            misses: count(&self.counts.misses),
            invalidations: count(&self.counts.invalidations),
            disconnections: count(&self.counts.disconnections),
            entries: self.len(),
        }
    }

    /// Counts a load the cache could not serve.
    pub(crate) fn missed(&self) {
        self.counts.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn config(&self) -> &ClientCache {
        &self.config
    }

    /// Opens a tracking connection and makes it the current one.
    async fn connect(self: Arc<Self>) -> Result<(), RedisError> {
        let serial = lock(&self.link).serial + 1;
        let cache = Arc::downgrade(&self);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_push_sender(move |push: PushInfo| {
                on_push(&cache, serial, push);
                Ok::<(), std::convert::Infallible>(())
            });
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("NOLOOP")
            .exec_async(&mut conn)
            .await?;
        let mut link = lock(&self.link);
        link.serial = serial;
        link.conn = Some(conn);
        Ok(())
    }

    /// The tracking connection; `None` while there is none (then one is being opened, at
    /// most every [`RECONNECT_PAUSE`]).
    pub(crate) fn connection(self: &Arc<Self>) -> Option<MultiplexedConnection> {
        let mut link = lock(&self.link);
        if let Some(conn) = &link.conn {
            return Some(conn.clone());
        }
        let due = link
            .last_attempt
            .is_none_or(|last| last.elapsed() >= RECONNECT_PAUSE);
        // The connection's own driver needs a Tokio runtime too; without one, no attempt.
        let runtime = tokio::runtime::Handle::try_current();
        if let (false, true, Ok(runtime)) = (link.reconnecting, due, runtime) {
            link.reconnecting = true;
            link.last_attempt = Some(Instant::now());
            let cache = Arc::clone(self);
            runtime.spawn(async move {
                // A failure leaves reads uncached; the next one after the pause tries again.
                match Arc::clone(&cache).connect().await {
                    Ok(()) => tracing::info!("the session cache is connected to Redis again"),
                    Err(error) => tracing::debug!(
                        kind = ?error.kind(),
                        "the session cache could not reconnect to Redis yet"
                    ),
                }
                lock(&cache.link).reconnecting = false;
            });
        }
        None
    }

    /// Where `key` lives: its shard and its change counter.
    fn place(&self, hash: u64) -> (&Mutex<Shard>, usize) {
        let shard = &self.shards[(hash as usize) % SHARDS];
        (shard, ((hash >> 32) as usize) % STRIPES)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The cached session under `key`, if Redis vouched for it less than the max age
    /// before `now` and it has not expired at `now`; otherwise the ticket that a read of it
    /// from Redis hands to [`after_read`](Self::after_read), taken under the same lock.
    pub(crate) fn look(&self, key: &str, now: SystemTime) -> Result<Record, ReadTicket> {
        let hash = self.hash(key.as_bytes());
        let (shard, stripe) = self.place(hash);
        let mut shard = lock(shard);
        let record = shard.entries.get(key).and_then(|entry| {
            let age = now.duration_since(entry.vouched_at).unwrap_or_default();
            let fresh = age < self.config.max_age && entry.session.meta.expires_at > now;
            fresh.then(|| entry.session.record()).flatten()
        });
        if let Some(record) = record {
            self.counts.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(record);
        }
        self.missed();
        // Writes in flight on it find it gone, and cache nothing.
        shard.entries.swap_remove(key);
        Err(ReadTicket {
            hash,
            stripe: shard.stripes[stripe],
        })
    }

    /// [`look`](Self::look), for the session alone.
    #[cfg(test)]
    fn get(&self, key: &str, now: SystemTime) -> Option<Record> {
        self.look(key, now).ok()
    }

    /// The ticket alone, as [`look`](Self::look) takes it: a read in flight, in tests.
    #[cfg(test)]
    fn before_read(&self, key: &str) -> ReadTicket {
        let hash = self.hash(key.as_bytes());
        let (shard, stripe) = self.place(hash);
        ReadTicket {
            hash,
            stripe: lock(shard).stripes[stripe],
        }
    }

    /// Caches `record`, what Redis held under `key` when the read (or create) of `ticket`
    /// ran, unless the key may have changed since.
    pub(crate) fn after_read(
        &self,
        key: &str,
        ticket: ReadTicket,
        record: &Record,
        now: SystemTime,
    ) {
        let (shard, stripe) = self.place(ticket.hash);
        let mut shard = lock(shard);
        if shard.stripes[stripe] != ticket.stripe {
            return;
        }
        let serial = shard.next_serial;
        shard.next_serial += 1;
        let entry = Entry {
            session: Cached::of(record),
            vouched_at: now,
            serial,
            writes: 0,
        };
        if !shard.entries.contains_key(key) && shard.entries.len() >= self.config.per_shard() {
            let at = shard.hand % shard.entries.len();
            shard.entries.swap_remove_index(at);
            shard.hand = at + 1;
        }
        shard.entries.insert(key.to_owned(), entry);
    }

    /// Taken before a write of `key` goes over the tracking connection.
    pub(crate) fn before_write(&self, key: &str) -> WriteTicket {
        let hash = self.hash(key.as_bytes());
        let (shard, _) = self.place(hash);
        let mut shard = lock(shard);
        let serial = shard.entries.get_mut(key).map(|entry| {
            entry.writes += 1;
            entry.serial
        });
        WriteTicket { hash, serial }
    }

    /// After the write of `ticket`: when `applied` is given (the write went through) and
    /// the entry is the one the write started on, with no other change meanwhile, brings
    /// it up to date with `applied`; otherwise the entry goes. Either way, reads that began
    /// before cache nothing.
    pub(crate) fn after_write(
        &self,
        key: &str,
        ticket: WriteTicket,
        applied: Option<impl FnOnce(&mut Cached)>,
        now: SystemTime,
    ) {
        let (shard, stripe) = self.place(ticket.hash);
        let mut shard = lock(shard);
        shard.stripes[stripe] += 1;
        let kept = match (ticket.serial, shard.entries.get_mut(key)) {
            (Some(serial), Some(entry)) if entry.serial == serial => {
                entry.writes -= 1;
                match applied {
                    Some(apply) if entry.writes == 0 => {
                        apply(&mut entry.session);
                        entry.vouched_at = now;
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !kept {
            shard.entries.swap_remove(key);
        }
    }

    /// Drops `key` (it was written or removed another way): reads that began before cache
    /// nothing.
    pub(crate) fn forget(&self, key: &[u8]) {
        let (shard, stripe) = self.place(self.hash(key));
        let mut shard = lock(shard);
        shard.stripes[stripe] += 1;
        if let Ok(key) = std::str::from_utf8(key) {
            shard.entries.swap_remove(key);
        }
    }

    /// Drops everything: Redis flushed, or the tracking connection is gone.
    fn forget_all(&self) {
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.entries.clear();
            for stripe in &mut shard.stripes {
                *stripe += 1;
            }
        }
    }

    fn disconnected(&self, serial: u64) {
        {
            let mut link = lock(&self.link);
            if link.serial == serial {
                link.conn = None;
            }
        }
        self.counts.disconnections.fetch_add(1, Ordering::Relaxed);
        self.forget_all();
        tracing::warn!(
            "the session cache lost its connection to Redis: emptied; sessions are read from \
             Redis until it reconnects"
        );
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| lock(shard).entries.len())
            .sum()
    }
}

/// Handles what the tracking connection numbered `serial` pushes, in order with its
/// replies (so before the reply of any command that ran after the change).
fn on_push(cache: &Weak<Cache>, serial: u64, push: PushInfo) {
    let Some(cache) = cache.upgrade() else {
        return;
    };
    match push.kind {
        PushKind::Invalidate => match push.data.first() {
            Some(redis::Value::Array(keys)) => {
                for key in keys {
                    if let redis::Value::BulkString(key) = key {
                        cache.counts.invalidations.fetch_add(1, Ordering::Relaxed);
                        cache.forget(key);
                    }
                }
            }
            // A flush: every key changed.
            _ => {
                cache.counts.invalidations.fetch_add(1, Ordering::Relaxed);
                cache.forget_all();
            }
        },
        PushKind::Disconnection => cache.disconnected(serial),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW + Duration::from_secs(secs)
    }

    fn record(views: u64) -> Record {
        let mut data = Data::new();
        data.insert("views".into(), views.into());
        Record {
            data,
            meta: Meta {
                created_at: at(0),
                last_active: at(0),
                expires_at: at(3600),
                expiry: None,
            },
        }
    }

    fn views(record: &Record) -> u64 {
        record.data["views"].as_u64().unwrap()
    }

    /// A cache with no connection: these tests drive its bookkeeping directly.
    fn cache(config: ClientCache) -> Cache {
        Cache::new(config, Client::open("redis://127.0.0.1:1").unwrap())
    }

    fn filled(cache: &Cache, key: &str, views: u64) {
        let ticket = cache.before_read(key);
        cache.after_read(key, ticket, &record(views), at(0));
    }

    fn set_views(views: u64) -> Option<impl FnOnce(&mut Cached)> {
        Some(move |session: &mut Cached| {
            let mut changes = Changes::default();
            changes.set("views", views.into());
            session.apply(&changes);
        })
    }

    #[test]
    fn entries_last_until_their_max_age_or_their_session_ends() {
        let cache = cache(ClientCache::new().with_max_age(Duration::from_secs(10)));
        filled(&cache, "k", 1);
        assert_eq!(cache.get("k", at(9)).as_ref().map(views), Some(1));
        assert!(cache.get("k", at(10)).is_none());
        assert_eq!(cache.len(), 0, "an entry past its age goes");

        let cache = self::cache(ClientCache::new().with_max_age(Duration::from_secs(7200)));
        filled(&cache, "k", 1);
        assert!(cache.get("k", at(3599)).is_some());
        assert!(cache.get("k", at(3600)).is_none(), "the session expired");
    }

    #[test]
    fn a_read_that_began_before_a_change_caches_nothing() {
        let cache = cache(ClientCache::new());
        let ticket = cache.before_read("k");
        cache.forget(b"k");
        cache.after_read("k", ticket, &record(1), at(0));
        assert!(cache.get("k", at(0)).is_none());

        // Another key's change does not get in the way (unless it shares the counter).
        let ticket = cache.before_read("k");
        let other = (0..)
            .map(|i| format!("other{i}"))
            .find(|other| {
                let (a, b) = (cache.hash(b"k"), cache.hash(other.as_bytes()));
                a % SHARDS as u64 != b % SHARDS as u64
            })
            .unwrap();
        cache.forget(other.as_bytes());
        cache.after_read("k", ticket, &record(1), at(0));
        assert!(cache.get("k", at(0)).is_some());
    }

    #[test]
    fn a_lone_write_updates_the_entry() {
        let cache = cache(ClientCache::new());
        filled(&cache, "k", 1);
        let ticket = cache.before_write("k");
        assert_eq!(cache.get("k", at(1)).as_ref().map(views), Some(1));
        cache.after_write("k", ticket, set_views(2), at(1));
        assert_eq!(cache.get("k", at(1)).as_ref().map(views), Some(2));
    }

    #[test]
    fn overlapping_writes_leave_no_entry() {
        let cache = cache(ClientCache::new());
        filled(&cache, "k", 1);
        let first = cache.before_write("k");
        let second = cache.before_write("k");
        // Replies are handled in either order; neither knows what the other wrote.
        cache.after_write("k", second, set_views(3), at(1));
        assert!(cache.get("k", at(1)).is_none());
        cache.after_write("k", first, set_views(2), at(1));
        assert!(cache.get("k", at(1)).is_none());
    }

    #[test]
    fn a_write_on_an_entry_replaced_meanwhile_drops_it() {
        let cache = cache(ClientCache::new());
        filled(&cache, "k", 1);
        let ticket = cache.before_write("k");
        cache.forget(b"k");
        filled(&cache, "k", 5);
        cache.after_write("k", ticket, set_views(2), at(1));
        assert!(cache.get("k", at(1)).is_none());
    }

    #[test]
    fn a_failed_write_drops_the_entry_and_stops_reads_in_flight() {
        let cache = cache(ClientCache::new());
        filled(&cache, "k", 1);
        let read = cache.before_read("k");
        let ticket = cache.before_write("k");
        cache.after_write("k", ticket, None::<fn(&mut Cached)>, at(1));
        assert!(cache.get("k", at(1)).is_none());
        cache.after_read("k", read, &record(1), at(1));
        assert!(cache.get("k", at(1)).is_none());
    }

    #[test]
    fn invalidations_and_drops_empty_the_cache() {
        let cache = Arc::new(cache(ClientCache::new()));
        let weak = Arc::downgrade(&cache);
        filled(&cache, "a", 1);
        filled(&cache, "b", 1);
        let invalidate = |data| PushInfo {
            kind: PushKind::Invalidate,
            data,
        };
        on_push(
            &weak,
            0,
            invalidate(vec![redis::Value::Array(vec![redis::Value::BulkString(
                b"a".to_vec(),
            )])]),
        );
        assert!(cache.get("a", at(0)).is_none());
        assert!(cache.get("b", at(0)).is_some());
        on_push(&weak, 0, invalidate(vec![redis::Value::Nil]));
        assert_eq!(cache.len(), 0);

        filled(&cache, "a", 1);
        let read = cache.before_read("b");
        on_push(
            &weak,
            0,
            PushInfo {
                kind: PushKind::Disconnection,
                data: vec![],
            },
        );
        assert_eq!(cache.len(), 0);
        cache.after_read("b", read, &record(1), at(0));
        assert_eq!(
            cache.len(),
            0,
            "a read over the dropped connection caches nothing"
        );
    }

    #[test]
    fn a_full_shard_makes_room() {
        let cache = cache(ClientCache::new().with_capacity(SHARDS));
        for i in 0..(SHARDS * 8) {
            filled(&cache, &format!("k{i}"), 1);
        }
        assert!(cache.len() <= SHARDS);
        assert!(cache.len() > 0);
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            ".{0,8}".prop_map(|s| json!(s)),
            Just(json!([1, {"a": null}])),
        ]
    }

    proptest! {
        /// What a map in insertion order (serde_json's `preserve_order`) would hand over.
        #[test]
        fn a_cached_session_does_not_depend_on_the_maps_order(
            start in proptest::collection::btree_map("[a-d]{1,2}", value(), 0..6),
            changed in proptest::collection::vec(("[a-d]{1,2}", proptest::option::of(value())), 0..6),
        ) {
            let mut record = record(0);
            record.data = start.into_iter().collect();
            let mut reversed = Cached::of_entries(record.data.iter().rev(), record.meta);
            prop_assert_eq!(&reversed, &Cached::of(&record));
            let mut changes = Changes::default();
            for (key, value) in changed {
                match value {
                    Some(value) => changes.set(key, value),
                    None => changes.remove(key),
                }
            }
            changes.apply(&mut record.data);
            reversed.apply(&changes);
            prop_assert_eq!(reversed.record(), Some(record));
        }

        /// A cached session changed in place reads back as the record changed the store
        /// API's way.
        #[test]
        fn cached_changes_match_records(
            start in proptest::collection::btree_map("[a-d]{1,2}", value(), 0..6),
            steps in proptest::collection::vec(
                (any::<bool>(), proptest::collection::vec(("[a-d]{1,2}", proptest::option::of(value())), 0..6)),
                0..5,
            ),
        ) {
            let mut record = record(0);
            record.data = start.into_iter().collect();
            let mut cached = Cached::of(&record);
            prop_assert_eq!(cached.record(), Some(record.clone()));
            for (clear, changed) in steps {
                let mut changes = Changes::default();
                if clear {
                    changes.clear();
                }
                for (key, value) in changed {
                    match value {
                        Some(value) => changes.set(key, value),
                        None => changes.remove(key),
                    }
                }
                changes.apply(&mut record.data);
                cached.apply(&changes);
                prop_assert_eq!(cached.record(), Some(record.clone()));
            }
        }
    }
}
