//! The Lua scripts behind every write: each touches one key, so each is atomic on a single
//! server and in a cluster alike (a session lives in one hash slot).
//!
//! The native layout's scripts do the whole write in Redis. The connect-redis layout's
//! only compare and set: its value is JSON, and Redis's cjson would not write it back as
//! it found it (empty arrays become `{}`, numbers are rounded to 14 digits), so the client
//! computes the new value and the script stores it only if nobody wrote since.
//!
//! `redis::Script` sends them with EVALSHA and falls back to loading them on NOSCRIPT.

use std::sync::OnceLock;

use redis::Script;

/// HSET/HDEL with many arguments, 1000 at a time: Lua's `unpack` has a stack limit. Pairs
/// stay whole because 1000 is even. Also the meta write every write script ends with.
const CHUNKED: &str = r"
local function chunked(command, key, list, first, last)
  local i = first
  while i <= last do
    local j = math.min(i + 999, last)
    redis.call(command, key, unpack(list, i, j))
    i = j + 1
  end
end
-- ARGV[1] last_active, ARGV[2] expires_at, ARGV[3] created_at (every write script starts so):
-- writes them to l, e and c with the field/value pairs ARGV[first..], in one HSET when the
-- pairs fit Lua's stack.
local function set_meta_and(key, first)
  if #ARGV - first < 998 then
    redis.call('HSET', key, 'c', ARGV[3], 'l', ARGV[1], 'e', ARGV[2], unpack(ARGV, first, #ARGV))
  else
    redis.call('HSET', key, 'c', ARGV[3], 'l', ARGV[1], 'e', ARGV[2])
    chunked('HSET', key, ARGV, first, #ARGV)
  end
end
";

/// KEYS[1] the session; ARGV[1] now (the new record's last_active, ms); ARGV[2] expires_at
/// (ms); ARGV[3] created_at (ms); ARGV[4..] field/value pairs (`i`/`a` and the data).
///
/// Returns 0 when a live session holds the key (one whose `e` is after now, or which has no
/// readable `e`); otherwise replaces whatever was there and returns 1.
const CREATE: &str = r"
local key = KEYS[1]
if redis.call('EXISTS', key) == 1 then
  local e = tonumber(redis.call('HGET', key, 'e'))
  if not e or e > tonumber(ARGV[1]) then
    return 0
  end
  redis.call('DEL', key)
end
set_meta_and(key, 4)
redis.call('PEXPIREAT', key, ARGV[2])
";

/// KEYS[1] the session; ARGV[1] now (the new meta's last_active, ms); ARGV[2] expires_at
/// (ms); ARGV[3] created_at (ms); ARGV[4] flags: 1 removes every data field first, 2 says
/// the session has an expiry of its own (its `i`/`a` pairs follow); ARGV[5] how many fields
/// to remove (n); ARGV[6..5+n] those fields; ARGV[6+n..] field/value pairs to set.
///
/// Returns 0, writing nothing, unless the session exists and has not expired at now.
/// Used for `update` and (with no data fields) `touch`. `i`/`a` are removed only when
/// the session has no expiry of its own and the hash still holds one of them.
const UPDATE: &str = r"
local key = KEYS[1]
local stored = redis.call('HMGET', key, 'e', 'i', 'a')
local e = tonumber(stored[1])
if not e or e <= tonumber(ARGV[1]) then
  return 0
end
local flags = tonumber(ARGV[4])
if flags % 2 == 1 then
  local doomed = {}
  for _, field in ipairs(redis.call('HKEYS', key)) do
    if string.sub(field, 1, 2) == 'd:' then
      doomed[#doomed + 1] = field
    end
  end
  chunked('HDEL', key, doomed, 1, #doomed)
end
if flags < 2 and (stored[2] or stored[3]) then
  redis.call('HDEL', key, 'i', 'a')
end
local removed = tonumber(ARGV[5])
chunked('HDEL', key, ARGV, 6, 5 + removed)
set_meta_and(key, 6 + removed)
redis.call('PEXPIREAT', key, ARGV[2])
";

/// How the write scripts end once they wrote: returning 1.
const WROTE: &str = "return 1\n";

/// How [`UPDATE`] ends for a caller whose connection tracks the keys it reads (a
/// client-side cache): reading the key once more keeps it tracked, as a write ends the
/// tracking of its key.
const WROTE_TRACKED: &str = "return redis.call('EXISTS', key)\n";

/// KEYS[1] a key found by SCAN; ARGV[1] now (ms). Removes it if it is a session hash whose
/// `e` is at or before now; returns how many keys went (0 or 1).
const DELETE_IF_EXPIRED: &str = r"
local key = KEYS[1]
if redis.call('TYPE', key).ok ~= 'hash' then
  return 0
end
local e = tonumber(redis.call('HGET', key, 'e'))
if e and e <= tonumber(ARGV[1]) then
  redis.call('UNLINK', key)
  return 1
end
return 0
";

/// KEYS[1] a session (connect-redis layout); ARGV[1] the SHA-1 (hex) of the value the
/// caller computed from; then either ARGV[2] the new value and ARGV[3] its TTL in seconds,
/// or nothing more to delete the session.
///
/// Returns 1 when done; 0, doing nothing, when the key does not exist; and when its value
/// changed since, does nothing and returns `{current value, its PTTL}`, so that the caller
/// can compute again from it without another read.
#[cfg(feature = "express")]
const REPLACE_IF_UNCHANGED: &str = r"
local key = KEYS[1]
local current = redis.call('GET', key)
if not current then
  return 0
end
if redis.sha1hex(current) ~= ARGV[1] then
  return {current, redis.call('PTTL', key)}
end
if #ARGV >= 3 then
  redis.call('SET', key, ARGV[2], 'EX', ARGV[3])
else
  redis.call('DEL', key)
end
return 1
";

/// KEYS[1] a key found by SCAN. Returns its value if it is a string, nil otherwise (so
/// that keys of other types under the prefix are skipped, not errors).
#[cfg(feature = "express")]
const GET_IF_STRING: &str = r"
local key = KEYS[1]
if redis.call('TYPE', key).ok ~= 'string' then
  return false
end
return redis.call('GET', key)
";

/// A write script: `helpers` (the functions of its layout), `body`, and how it ends once
/// it wrote.
fn writing(helpers: &str, body: &str, end: &str) -> Script {
    Script::new(&format!("{helpers}{body}{end}"))
}

/// Who runs a write script: whether its connection tracks keys for a client-side cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Plain,
    Tracking,
}

pub(crate) fn create() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| writing(CHUNKED, CREATE, WROTE))
}

pub(crate) fn update(caller: Caller) -> &'static Script {
    static PLAIN: OnceLock<Script> = OnceLock::new();
    static TRACKING: OnceLock<Script> = OnceLock::new();
    match caller {
        Caller::Plain => PLAIN.get_or_init(|| writing(CHUNKED, UPDATE, WROTE)),
        Caller::Tracking => TRACKING.get_or_init(|| writing(CHUNKED, UPDATE, WROTE_TRACKED)),
    }
}

pub(crate) fn delete_if_expired() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(DELETE_IF_EXPIRED))
}

#[cfg(feature = "express")]
pub(crate) fn replace_if_unchanged() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(REPLACE_IF_UNCHANGED))
}

#[cfg(feature = "express")]
pub(crate) fn get_if_string() -> &'static Script {
    static SCRIPT: OnceLock<Script> = OnceLock::new();
    SCRIPT.get_or_init(|| Script::new(GET_IF_STRING))
}
