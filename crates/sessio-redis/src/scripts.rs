//! The Lua scripts behind every write: each touches one key, so each is atomic on a single
//! server and in a cluster alike (a session lives in one hash slot).
//!
//! The native layout's scripts do the whole write in Redis. The connect-redis layout's
//! only compare and set: its value is JSON, and Redis's cjson would not write it back as
//! it found it (empty arrays become `{}`, numbers are rounded to 14 digits), so the client
//! computes the new value and the script stores it only if nobody wrote since.
//!
//! The scripts are the `.lua` files beside this module; `redis::Script` sends them with
//! EVALSHA, and the store loads them again on NOSCRIPT.

use std::sync::OnceLock;

use redis::Script;

/// The functions every write script starts with.
const WRITE_HELPERS: &str = include_str!("scripts/write_helpers.lua");

const CREATE: &str = include_str!("scripts/create.lua");

const UPDATE: &str = include_str!("scripts/update.lua");

/// How the write scripts end once they wrote: returning 1.
const WROTE: &str = "return 1\n";

/// How [`UPDATE`] ends for a caller whose connection tracks the keys it reads (a
/// client-side cache): reading the key once more keeps it tracked, as a write ends the
/// tracking of its key.
const WROTE_TRACKED: &str = "return redis.call('EXISTS', key)\n";

const DELETE_IF_EXPIRED: &str = include_str!("scripts/delete_if_expired.lua");

#[cfg(feature = "express")]
const REPLACE_IF_UNCHANGED: &str = include_str!("scripts/replace_if_unchanged.lua");

#[cfg(feature = "express")]
const GET_IF_STRING: &str = include_str!("scripts/get_if_string.lua");

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
    SCRIPT.get_or_init(|| writing(WRITE_HELPERS, CREATE, WROTE))
}

pub(crate) fn update(caller: Caller) -> &'static Script {
    static PLAIN: OnceLock<Script> = OnceLock::new();
    static TRACKING: OnceLock<Script> = OnceLock::new();
    match caller {
        Caller::Plain => PLAIN.get_or_init(|| writing(WRITE_HELPERS, UPDATE, WROTE)),
        Caller::Tracking => TRACKING.get_or_init(|| writing(WRITE_HELPERS, UPDATE, WROTE_TRACKED)),
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
