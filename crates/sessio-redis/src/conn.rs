//! The two kinds of connection (one server, or a cluster), behind one type.

use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::io::tcp::TcpSettings;
use redis::{
    Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value,
};
use sessio::store::StoreError;

use crate::error::ConnectError;

/// Reconnection attempts per burst; after a failed burst the next command starts another.
const RECONNECT_RETRIES: usize = 2;
/// First delay between reconnection attempts; it doubles, up to [`MAX_RECONNECT_DELAY`].
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(20);
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);
/// Retries of a cluster request (redirects, a node reconnecting, TRYAGAIN...).
const CLUSTER_RETRIES: u32 = 3;
/// How long one connection attempt may take.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the connection waits for one reply: a backstop behind the store's own
/// per-operation limit, which is usually shorter.
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// A connection to one server or to a cluster; cheap to clone (both are handles onto
/// shared, multiplexed connections).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// What a session read goes over: the store's connection, or its client cache's tracking
/// connection (so that Redis tracks what it reads for the cache).
#[derive(Clone)]
pub(crate) enum Via {
    Store(Conn),
    Tracking(MultiplexedConnection),
}

/// Where a per-node command (SCAN) goes: the one server, or the cluster primary serving a
/// slot.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node {
    Single,
    Primary(u16),
}

impl Conn {
    pub(crate) fn mode(&self) -> &'static str {
        match self {
            Conn::Single(_) => "standalone",
            Conn::Cluster(_) => "cluster",
        }
    }

    /// Connects to one server; also returns the client, which can open more connections.
    pub(crate) async fn single(url: &str) -> Result<(Self, redis::Client), ConnectError> {
        let info = url
            .into_connection_info()
            .map_err(ConnectError::InvalidUrl)?
            .set_tcp_settings(tcp_settings());
        let client = redis::Client::open(info).map_err(ConnectError::InvalidUrl)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(MIN_RECONNECT_DELAY)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let connect = ConnectionManager::new_with_config(client.clone(), config);
        match tokio::time::timeout(CONNECT_LIMIT, connect).await {
            Ok(Ok(manager)) => Ok((Conn::Single(manager), client)),
            Ok(Err(error)) => Err(connect_error(error)),
            Err(_) => Err(ConnectError::Timeout(CONNECT_LIMIT)),
        }
    }

    pub(crate) async fn cluster(urls: Vec<String>) -> Result<Self, ConnectError> {
        if urls.is_empty() {
            return Err(ConnectError::NoNodes);
        }
        let client = ClusterClientBuilder::new(urls)
            .connection_timeout(CONNECTION_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .tcp_settings(tcp_settings())
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(MIN_RECONNECT_DELAY.as_millis() as u64)
            .max_retry_wait(MAX_RECONNECT_DELAY.as_millis() as u64)
            .build()
            .map_err(ConnectError::InvalidUrl)?;
        let connect = client.get_async_connection();
        match tokio::time::timeout(CONNECT_LIMIT, connect).await {
            Ok(Ok(connection)) => Ok(Conn::Cluster(connection)),
            Ok(Err(error)) => Err(connect_error(error)),
            Err(_) => Err(ConnectError::Timeout(CONNECT_LIMIT)),
        }
    }

    /// The nodes holding keys: the server, or one slot of each cluster primary.
    pub(crate) async fn nodes(&mut self) -> Result<Vec<Node>, RedisError> {
        let Conn::Cluster(cluster) = self else {
            return Ok(vec![Node::Single]);
        };
        let reply = cluster
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        primaries(reply)
    }

    /// One SCAN step on `node`: the next cursor and the keys found.
    pub(crate) async fn scan(
        &mut self,
        node: Node,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> Result<(u64, Vec<Vec<u8>>), RedisError> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match (self, node) {
            (Conn::Cluster(cluster), Node::Primary(slot)) => {
                let reply = cluster.route_command(cmd, route(slot)).await?;
                Ok(redis::from_redis_value(reply)?)
            }
            (conn, _) => cmd.query_async(conn).await,
        }
    }

    /// Runs `pipeline` on `node` (every command in it concerns keys held there).
    pub(crate) async fn pipeline_on(
        &mut self,
        node: Node,
        pipeline: &Pipeline,
    ) -> Result<Vec<Value>, RedisError> {
        match (self, node) {
            (Conn::Cluster(cluster), Node::Primary(slot)) => {
                let count = pipeline.len();
                let route = SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master));
                let replies = cluster
                    .route_pipeline(pipeline.clone(), 0, count, route)
                    .await?;
                // As for a single server: a command's error fails the pipeline.
                replies.into_iter().map(Value::extract_error).collect()
            }
            (conn, _) => pipeline.query_async(conn).await,
        }
    }
}

/// No Nagle delay for small requests; and, where the OS supports it, a connection whose
/// sent data stays unacknowledged for [`RESPONSE_TIMEOUT`] (a server that vanished without
/// closing it) counts as dropped, so it is replaced.
fn tcp_settings() -> TcpSettings {
    let settings = TcpSettings::default().set_nodelay(true);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let settings = settings.set_user_timeout(RESPONSE_TIMEOUT);
    settings
}

fn route(slot: u16) -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
        slot,
        SlotAddr::Master,
    )))
}

/// The overall limit on connecting (a few attempts).
pub(crate) const CONNECT_LIMIT: Duration = Duration::from_secs(10);

pub(crate) fn connect_error(error: RedisError) -> ConnectError {
    match error.kind() {
        ErrorKind::InvalidClientConfig => ConnectError::InvalidUrl(error),
        _ => ConnectError::Unavailable(error),
    }
}

/// One slot of each primary, from a CLUSTER SLOTS reply: `[[start, end, [host, port, id,
/// ...], replicas...], ...]`.
fn primaries(reply: Value) -> Result<Vec<Node>, RedisError> {
    let malformed = || RedisError::from((ErrorKind::Parse, "malformed CLUSTER SLOTS reply"));
    let Value::Array(ranges) = reply else {
        return Err(malformed());
    };
    // Primary (host, port) to the lowest slot seen for it.
    let mut found: Vec<(Value, Value, i64)> = Vec::new();
    for range in ranges {
        let Value::Array(range) = range else {
            return Err(malformed());
        };
        let (Some(Value::Int(start)), Some(Value::Array(primary))) = (range.first(), range.get(2))
        else {
            return Err(malformed());
        };
        let (Some(host), Some(port)) = (primary.first(), primary.get(1)) else {
            return Err(malformed());
        };
        match found.iter_mut().find(|(h, p, _)| h == host && p == port) {
            Some(entry) => entry.2 = entry.2.min(*start),
            None => found.push((host.clone(), port.clone(), *start)),
        }
    }
    found
        .into_iter()
        .map(|(_, _, slot)| {
            u16::try_from(slot)
                .map(Node::Primary)
                .map_err(|_| malformed())
        })
        .collect()
}

/// `ConnectionLike` for an enum whose every variant holds a connection: each call goes to
/// the variant's (redis has no impl for `dyn ConnectionLike` to delegate to instead).
macro_rules! connection_like_by_variant {
    ($enum:ident: $($variant:ident),+) => {
        impl ConnectionLike for $enum {
            fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
                match self {
                    $($enum::$variant(conn) => conn.req_packed_command(cmd),)+
                }
            }

            fn req_packed_commands<'a>(
                &'a mut self,
                pipeline: &'a Pipeline,
                offset: usize,
                count: usize,
            ) -> RedisFuture<'a, Vec<Value>> {
                match self {
                    $($enum::$variant(conn) => conn.req_packed_commands(pipeline, offset, count),)+
                }
            }

            fn get_db(&self) -> i64 {
                match self {
                    $($enum::$variant(conn) => conn.get_db(),)+
                }
            }
        }
    };
}

connection_like_by_variant!(Conn: Single, Cluster);
connection_like_by_variant!(Via: Store, Tracking);

/// Maps a Redis error onto the store contract's kinds; `limit` is the store's own limit.
pub(crate) fn store_error(error: RedisError, limit: Duration) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout(limit.min(RESPONSE_TIMEOUT));
    }
    let unavailable = error.is_io_error()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::ReadOnly
                )
        );
    if unavailable {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Backend(Box::new(error))
    }
}

/// For a read of a session's key: `WRONGTYPE` (the key holds another Redis type than the
/// layout's: a string where a hash is expected, say) is a stored session that does not
/// decode, [`StoreError::Decode`], so the session layer treats it as absent; as the
/// [`StoreError::Backend`] of [`store_error`], it would answer 503 for as long as the key
/// lives. Other errors are left as they are.
pub(crate) fn wrong_type_is_decode(error: StoreError) -> StoreError {
    match error {
        StoreError::Backend(source) => match source.downcast::<RedisError>() {
            Ok(redis) if is_wrong_type(&redis) => StoreError::Decode(redis),
            Ok(redis) => StoreError::Backend(redis),
            Err(other) => StoreError::Backend(other),
        },
        other => other,
    }
}

/// Whether Redis answered `WRONGTYPE`, to a command or to one of a pipeline's.
fn is_wrong_type(error: &RedisError) -> bool {
    const WRONG_TYPE: &str = "WRONGTYPE";
    error.code() == Some(WRONG_TYPE)
        || error
            .clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == WRONG_TYPE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(n: i64) -> Value {
        Value::Int(n)
    }

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    #[test]
    fn one_slot_per_primary() {
        let reply = Value::Array(vec![
            Value::Array(vec![int(100), int(200), node("a", 1), node("r", 9)]),
            Value::Array(vec![int(0), int(99), node("b", 2)]),
            Value::Array(vec![int(50), int(60), node("a", 1)]),
        ]);
        let slots: Vec<u16> = primaries(reply)
            .unwrap()
            .into_iter()
            .map(|node| match node {
                Node::Primary(slot) => slot,
                Node::Single => unreachable!(),
            })
            .collect();
        assert_eq!(slots, vec![50, 0]);
        assert!(primaries(Value::Int(1)).is_err());
        assert!(primaries(Value::Array(vec![Value::Array(vec![int(1)])])).is_err());
    }

    #[test]
    fn errors_map_onto_store_error_kinds() {
        let limit = Duration::from_secs(1);
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            store_error(refused, limit),
            StoreError::Unavailable(_)
        ));
        let timed_out = RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(store_error(timed_out, limit), StoreError::Timeout(d) if d == limit));
        let other = RedisError::from((ErrorKind::Client, "nope"));
        assert!(matches!(store_error(other, limit), StoreError::Backend(_)));
    }

    #[test]
    fn only_wrongtype_becomes_a_decode_error() {
        let limit = Duration::from_secs(1);
        let wrong = redis::make_extension_error(
            "WRONGTYPE".into(),
            Some("Operation against a key holding the wrong kind of value".into()),
        );
        assert!(matches!(
            wrong_type_is_decode(store_error(wrong, limit)),
            StoreError::Decode(_)
        ));
        let other = redis::make_extension_error("NOTWRONG".into(), None);
        assert!(matches!(
            wrong_type_is_decode(store_error(other, limit)),
            StoreError::Backend(_)
        ));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(
            wrong_type_is_decode(store_error(refused, limit)),
            StoreError::Unavailable(_)
        ));
    }
}
