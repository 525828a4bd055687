//! [`RedisStore`]: the [`SessionStore`] on Redis or Redis Cluster.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use redis::ProtocolVersion;
use sessio::store::{Changes, CreateOutcome, Meta, Record, SessionStore, StoreError, WriteOutcome};
use sessio::SessionId;

use crate::cache::{Cache, ClientCache, ClientCacheStats};
use crate::conn::{connect_error, Conn, CONNECT_LIMIT};
use crate::context::Redis;
use crate::error::{ConnectError, InvalidKeyPrefix, MigrateError};
#[cfg(feature = "express")]
use crate::layout::connect_redis::ConnectRedis;
use crate::layout::native::Native;
use crate::layout::{validate_prefix, Backend, Layout};

/// Runs backend operation `op` of `store`'s layout, in its context.
// The connect-redis layout's calls are boxed: its compare-and-set retries make its futures
// about three times the native layout's, and every call's future, whichever layout it
// runs, is as large as the larger of the two and is copied whole into its box.
macro_rules! on_layout {
    ($store:expr, $op:ident($($arg:expr),*)) => {
        match $store.layout {
            Layout::Native => Native.$op($store.redis(), $($arg),*).await,
            #[cfg(feature = "express")]
            Layout::ConnectRedis => Box::pin(ConnectRedis.$op($store.redis(), $($arg),*)).await,
        }
    };
}

/// Sessions in Redis, on one server or in a Redis Cluster.
///
/// In the default [`Layout::Native`], each session is one Redis hash, under the key prefix
/// followed by the base64url of the first 16 bytes of the SHA-256 of its id (never the id
/// itself), expiring by
/// itself at the session's `expires_at` (`PEXPIREAT`). Every write is one `MULTI`
/// transaction on that one key (one Lua script for an update that clears every key), so
/// it is atomic on a single server and in a cluster alike: concurrent
/// requests writing different keys of a session all keep their writes, and a destroyed
/// session is never written back.
///
/// [`with_layout`](Self::with_layout)`(``Layout::ConnectRedis``)` lays sessions out as
/// Node's connect-redis does instead, to share them with an express-session application,
/// with the same guarantees (see [`Layout`]); its keys hold the raw session ids.
///
/// The store is a cheap handle: clone it freely; clones share the connection, which
/// reconnects by itself after Redis restarts or the network drops. Every operation is
/// bounded by [`with_timeout`](Self::with_timeout) (2 s by default): while Redis is down,
/// requests get `503 Service Unavailable` promptly instead of hanging.
///
/// ```no_run
/// use std::time::Duration;
/// use sessio_redis::RedisStore;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = RedisStore::connect("redis://127.0.0.1:6379")
///     .await?
///     .with_key_prefix("myapp:session:")?
///     .with_timeout(Duration::from_millis(500));
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: Arc<str>,
    timeout: Duration,
    layout: Layout,
    /// The client of a single server (none for a cluster), for the cache's connection.
    client: Option<redis::Client>,
    cache: Option<Arc<Cache>>,
}

impl RedisStore {
    /// The key prefix of the default layout ([`Layout::Native`]) unless
    /// [`with_key_prefix`](Self::with_key_prefix) says otherwise.
    pub const DEFAULT_KEY_PREFIX: &'static str = Layout::Native.default_key_prefix();
    /// The limit on each operation unless [`with_timeout`](Self::with_timeout) says otherwise.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Connects to one Redis server: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://...` (when the `redis` crate is built with a TLS feature), or
    /// `redis+unix:///path/to/socket`.
    ///
    /// The connection is multiplexed (one TCP connection carries every concurrent request)
    /// and reconnects by itself when it drops.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessio_redis::ConnectError> {
    /// let store = sessio_redis::RedisStore::connect("redis://127.0.0.1:6379").await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        let (conn, client) = Conn::single(url).await?;
        let mut store = Self::new(conn);
        store.client = Some(client);
        Ok(store)
    }

    /// Connects to a Redis Cluster, given the URLs of one or more of its nodes (the others
    /// are discovered). Commands go straight to the node serving each session's hash slot,
    /// following the cluster as slots move and nodes fail over.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessio_redis::ConnectError> {
    /// let store = sessio_redis::RedisStore::connect_cluster([
    ///     "redis://10.0.0.1:6379",
    ///     "redis://10.0.0.2:6379",
    ///     "redis://10.0.0.3:6379",
    /// ])
    /// .await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_cluster(
        urls: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, ConnectError> {
        let urls = urls
            .into_iter()
            .map(|url| url.as_ref().to_owned())
            .collect();
        Ok(Self::new(Conn::cluster(urls).await?))
    }

    /// Connects to whatever one URL names: a single server (`redis://`, `rediss://`,
    /// `redis+unix://`, `unix://`, as for [`connect`](Self::connect)) or a cluster, as
    /// `redis+cluster://[user:password@]host1:port1,host2:port2[/...]` (or
    /// `rediss+cluster://` for TLS) — handy when the URL comes from configuration.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessio_redis::ConnectError> {
    /// let url = std::env::var("REDIS_URL")
    ///     .unwrap_or_else(|_| "redis+cluster://127.0.0.1:7001,127.0.0.1:7002".into());
    /// let store = sessio_redis::RedisStore::connect_url(&url).await?;
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_url(url: &str) -> Result<Self, ConnectError> {
        match parse_url(url)? {
            Target::Single => Self::connect(url).await,
            Target::Cluster(nodes) => Self::connect_cluster(nodes).await,
        }
    }

    fn new(conn: Conn) -> Self {
        Self {
            conn,
            prefix: Arc::from(Self::DEFAULT_KEY_PREFIX),
            timeout: Self::DEFAULT_TIMEOUT,
            layout: Layout::Native,
            client: None,
            cache: None,
        }
    }

    /// Files sessions under keys starting with `prefix` (default `sessio:`; `sess:` in the
    /// `ConnectRedis` layout), so that
    /// several applications can share one Redis. 1 to 64 characters of
    /// `A-Z a-z 0-9 : _ . -`.
    ///
    /// [`with_layout`](Self::with_layout) resets the prefix to its layout's default: call
    /// this after it.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = sessio_redis::RedisStore::connect("redis://127.0.0.1")
    ///     .await?
    ///     .with_key_prefix("shop:sessions:")?;
    /// assert_eq!(store.key_prefix(), "shop:sessions:");
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_key_prefix(mut self, prefix: impl AsRef<str>) -> Result<Self, InvalidKeyPrefix> {
        let prefix = prefix.as_ref();
        validate_prefix(prefix)?;
        self.prefix = Arc::from(prefix);
        Ok(self)
    }

    /// Bounds each operation (each round trip, for the scans of
    /// [`delete_expired`](SessionStore::delete_expired) and [`count`](SessionStore::count))
    /// to `limit`; past it the operation fails with [`StoreError::Timeout`]. Default 2 s.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), sessio_redis::ConnectError> {
    /// use std::time::Duration;
    /// let store = sessio_redis::RedisStore::connect("redis://127.0.0.1")
    ///     .await?
    ///     .with_timeout(Duration::from_millis(300));
    /// # let _ = store;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_timeout(mut self, limit: Duration) -> Self {
        self.timeout = limit;
        self
    }

    /// The prefix of this store's keys.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The limit on each operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Lays sessions out as `layout` says (default [`Layout::Native`]), and switches the
    /// key prefix to that layout's default ([`Layout::default_key_prefix`]): `sess:` for
    /// `Layout::ConnectRedis`, as connect-redis uses. Call
    /// [`with_key_prefix`](Self::with_key_prefix) afterwards for another prefix (the one
    /// your connect-redis is configured with, say).
    ///
    /// In the `ConnectRedis` layout **keys hold the raw session
    /// ids**, as Node expects: a dump of this Redis holds usable session ids.
    ///
    /// ```no_run
    /// use sessio_redis::{Layout, RedisStore};
    ///
    /// # #[cfg(feature = "express")]
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379")
    ///     .await?
    ///     .with_layout(Layout::ConnectRedis);
    /// assert_eq!(store.key_prefix(), "sess:");
    /// // Node's `new RedisStore({ client, prefix: "myapp:" })`:
    /// let store = store.with_key_prefix("myapp:")?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self.prefix = Arc::from(layout.default_key_prefix());
        self
    }

    /// Keeps the sessions this store reads and writes in this process as well, so that a
    /// returning visitor's session is read without a round trip to Redis. Redis keeps the
    /// cache fresh: it tells this store's own connection (RESP3, `CLIENT TRACKING`)
    /// whenever another client changes or removes a session the cache holds. Opens that
    /// connection; on a single server (Redis 6.0 or later). Read [`ClientCache`] for what
    /// it trades: another instance's writes reach this one's cache when Redis's
    /// invalidation does, not at once.
    ///
    /// In the [`Native`](Layout::Native) layout a changed
    /// session is then written with one round trip and stays cached. In the
    /// `ConnectRedis` layout reads are cached, and a write (a
    /// compare-and-set that reads the stored value first) drops the session from the cache
    /// until it is read again.
    ///
    /// # Errors
    /// [`ConnectError::CacheUnsupported`] on a Redis Cluster; the errors of
    /// [`connect`](Self::connect) when the connection cannot be opened (or Redis does not
    /// speak RESP3).
    ///
    /// ```no_run
    /// use sessio_redis::{ClientCache, RedisStore};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = RedisStore::connect("redis://127.0.0.1:6379")
    ///     .await?
    ///     .with_key_prefix("myapp:session:")?
    ///     .with_client_cache(ClientCache::new().with_capacity(100_000))
    ///     .await?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn with_client_cache(mut self, cache: ClientCache) -> Result<Self, ConnectError> {
        let Some(client) = &self.client else {
            return Err(ConnectError::CacheUnsupported("a Redis Cluster"));
        };
        let info = client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(ConnectError::InvalidUrl)?;
        let opened = match tokio::time::timeout(CONNECT_LIMIT, Cache::open(cache, client)).await {
            Ok(opened) => opened.map_err(connect_error)?,
            Err(_) => return Err(ConnectError::Timeout(CONNECT_LIMIT)),
        };
        self.cache = Some(opened);
        Ok(self)
    }

    /// The client-side cache's settings, if the store has one.
    pub fn client_cache(&self) -> Option<&ClientCache> {
        self.cache.as_deref().map(Cache::config)
    }

    /// What the client-side cache has done (hits, misses, invalidations...), if the store
    /// has one: for metrics.
    ///
    /// ```no_run
    /// # async fn run(store: sessio_redis::RedisStore) {
    /// if let Some(stats) = store.client_cache_stats() {
    ///     println!("{} sessions cached, hit ratio {:?}", stats.entries, stats.hit_ratio());
    /// }
    /// # }
    /// ```
    pub fn client_cache_stats(&self) -> Option<ClientCacheStats> {
        self.cache.as_deref().map(Cache::stats)
    }

    /// The layout of this store's sessions.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Prepares the key prefix for this store, once at startup.
    ///
    /// - [`Layout::Native`]: records the layout of the sessions under this key prefix
    ///   (`{prefix}layout` = `2`), or checks the one recorded: it refuses to go on, changing
    ///   nothing, when the prefix holds sessions in a layout this version does not know.
    /// - `Layout::ConnectRedis`: writes nothing (connect-redis records no layout, and
    ///   Node would take any extra key under the prefix for a session); it checks that Redis
    ///   answers and that the prefix is not marked as holding one of sessio's layouts.
    ///
    /// Redis needs no schema, so this is cheap: one round trip or two.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = sessio_redis::RedisStore::connect("redis://127.0.0.1").await?;
    /// store.migrate().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn migrate(&self) -> Result<(), MigrateError> {
        on_layout!(self, migrate())
    }

    /// The context this store's layout runs its operations in.
    fn redis(&self) -> Redis<'_> {
        Redis {
            conn: &self.conn,
            prefix: &self.prefix,
            timeout: self.timeout,
            cache: self.cache.as_ref(),
        }
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("layout", &self.layout)
            .field("mode", &self.conn.mode())
            .field("client_cache", &self.client_cache())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn create(&self, id: &SessionId, record: &Record) -> Result<CreateOutcome, StoreError> {
        on_layout!(self, create(id, record))
    }

    async fn load(&self, id: &SessionId, now: SystemTime) -> Result<Option<Record>, StoreError> {
        on_layout!(self, load(id, now))
    }

    async fn update(
        &self,
        id: &SessionId,
        changes: &Changes,
        meta: &Meta,
    ) -> Result<WriteOutcome, StoreError> {
        on_layout!(self, write(id, Some(changes), meta))
    }

    async fn touch(&self, id: &SessionId, meta: &Meta) -> Result<WriteOutcome, StoreError> {
        on_layout!(self, write(id, None, meta))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), StoreError> {
        on_layout!(self, delete(id))
    }

    /// Redis removes expired sessions by itself (each key expires with its session); this
    /// sweeps, by `now`'s clock, whatever it has not removed yet. It scans the prefix on
    /// every primary, 1000 keys per round trip, and removes each expired session only if
    /// it was not written meanwhile, so that a session touched since stays.
    async fn delete_expired(&self, now: SystemTime) -> Result<u64, StoreError> {
        on_layout!(self, delete_expired(now))
    }

    /// Counts this prefix's session keys on every primary with SCAN, 1000 per round trip
    /// (in the connect-redis layout, every key under the prefix, as connect-redis's
    /// `length` does).
    /// Redis drops expired sessions by itself, so this rarely includes any. While Redis
    /// resizes its key table, SCAN may report a key twice and the count may be high by a
    /// little.
    async fn count(&self) -> Result<u64, StoreError> {
        on_layout!(self, count())
    }
}

/// What a URL given to [`RedisStore::connect_url`] names.
#[derive(Debug, PartialEq)]
enum Target {
    Single,
    Cluster(Vec<String>),
}

fn parse_url(url: &str) -> Result<Target, ConnectError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ConnectError::UnsupportedScheme {
            scheme: String::new(),
        });
    };
    let node_scheme = match scheme.to_ascii_lowercase().as_str() {
        "redis" | "rediss" | "redis+unix" | "unix" => return Ok(Target::Single),
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => {
            return Err(ConnectError::UnsupportedScheme {
                scheme: scheme.to_owned(),
            })
        }
    };
    // `[userinfo@]host:port,host:port[/db][?query]`
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| match userinfo {
            Some(userinfo) => format!("{node_scheme}://{userinfo}@{host}{tail}"),
            None => format!("{node_scheme}://{host}{tail}"),
        })
        .collect();
    if nodes.is_empty() {
        return Err(ConnectError::NoNodes);
    }
    Ok(Target::Cluster(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "express")]
    #[tokio::test]
    async fn native_writes_do_not_carry_the_connect_redis_layouts_state() {
        fn size_of_future<F: std::future::Future>(_: &F) -> usize {
            std::mem::size_of::<F>()
        }
        let Some(url) = sessio::testing::service_url("SESSIO_TEST_REDIS_URL") else {
            return;
        };
        let store = RedisStore::connect(&url).await.expect("connect to Redis");
        let id = SessionId::from("never-stored");
        let now = SystemTime::now();
        let meta = Meta {
            created_at: now,
            last_active: now,
            expires_at: now,
            expiry: None,
        };
        let changes = Changes::default();
        // Neither future is polled: nothing reaches Redis.
        let connect_redis = ConnectRedis.write(store.redis(), &id, Some(&changes), &meta);
        let largest = size_of_future(&connect_redis);
        let update = std::mem::size_of_val(&*store.update(&id, &changes, &meta));
        let touch = std::mem::size_of_val(&*store.touch(&id, &meta));
        assert!(
            update < largest,
            "update: {update} bytes, connect-redis write {largest}"
        );
        assert!(
            touch < largest,
            "touch: {touch} bytes, connect-redis write {largest}"
        );
    }

    #[test]
    fn single_server_urls_are_left_to_the_client() {
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://host",
            "REDIS://host/2",
            "redis+unix:///tmp/redis.sock",
            "unix:///tmp/redis.sock",
        ] {
            assert_eq!(parse_url(url).unwrap(), Target::Single, "{url}");
        }
    }

    #[test]
    fn cluster_urls_become_node_urls() {
        assert_eq!(
            parse_url("redis+cluster://127.0.0.1:7001,127.0.0.1:7002").unwrap(),
            Target::Cluster(vec![
                "redis://127.0.0.1:7001".into(),
                "redis://127.0.0.1:7002".into()
            ])
        );
        assert_eq!(
            parse_url("rediss+cluster://user:p%40ss@a:1, b:2/?protocol=resp3").unwrap(),
            Target::Cluster(vec![
                "rediss://user:p%40ss@a:1/?protocol=resp3".into(),
                "rediss://user:p%40ss@b:2/?protocol=resp3".into()
            ])
        );
        assert!(matches!(
            parse_url("redis+cluster://,"),
            Err(ConnectError::NoNodes)
        ));
    }

    #[test]
    fn unknown_schemes_are_refused_without_echoing_the_url() {
        match parse_url("http://user:secret@host") {
            Err(e @ ConnectError::UnsupportedScheme { .. }) => {
                assert!(!e.to_string().contains("secret"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_url("127.0.0.1:6379"),
            Err(ConnectError::UnsupportedScheme { .. })
        ));
    }
}
