//! Where the database is, and how the store opens connections onto it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::ConnectError;

/// How long the store waits for another process's lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database a URL names, and how to open it.
#[derive(Debug)]
pub(crate) struct Target {
    /// A file path, or a `file:` URI for an in-memory database.
    path: String,
    flags: OpenFlags,
    pub(crate) in_memory: bool,
}

impl Target {
    /// Parses `sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`, each with an optional
    /// `?mode=ro|rw|rwc|memory`.
    pub(crate) fn parse(url: &str) -> Result<Self, ConnectError> {
        let rest = url.strip_prefix("sqlite:").ok_or(ConnectError::NotSqlite)?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut mode = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            match pair.split_once('=') {
                Some(("mode", value @ ("ro" | "rw" | "rwc" | "memory"))) => mode = Some(value),
                Some(("mode", _)) => {
                    return Err(ConnectError::InvalidUrl(
                        "mode must be one of ro, rw, rwc and memory",
                    ))
                }
                _ => return Err(ConnectError::InvalidUrl("the only parameter known is mode")),
            }
        }
        if path.is_empty() {
            return Err(ConnectError::InvalidUrl("no file path"));
        }
        let base = OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        if path == ":memory:" || mode == Some("memory") {
            // Private to this store, shared by its connections: a URI with a name of its own.
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let pid = std::process::id();
            return Ok(Self {
                path: format!("file:sessio-{pid}-{n}?mode=memory&cache=shared"),
                flags: base | OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
                in_memory: true,
            });
        }
        let flags = match mode {
            Some("ro") => OpenFlags::SQLITE_OPEN_READ_ONLY,
            Some("rw") => OpenFlags::SQLITE_OPEN_READ_WRITE,
            _ => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        };
        // A plain path, not a URI: `?` and `#` in file names mean nothing.
        let base = base - OpenFlags::SQLITE_OPEN_URI;
        Ok(Self {
            path: path.to_owned(),
            flags: base | flags,
            in_memory: false,
        })
    }

    /// The store's connection. It never waits inside SQLite, since it is used on the
    /// async runtime's threads, where a wait would stall every task of the thread: a busy
    /// database is reported at once, and the store waits and tries again asynchronously.
    ///
    /// WAL journaling lets other processes read while this one writes; `synchronous =
    /// NORMAL` is durable across application crashes (not power loss), the usual setting
    /// with WAL.
    pub(crate) fn open(&self) -> rusqlite::Result<Connection> {
        let connection = self.open_waiting()?;
        connection.busy_timeout(Duration::ZERO)?;
        // Checkpoints sync the disk: they run on a thread of their own (see `checkpoint`).
        connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(connection)
    }

    /// A connection that waits up to [`BUSY_TIMEOUT`] for another's lock: for work on a
    /// thread of its own (opening, migrations).
    pub(crate) fn open_waiting(&self) -> rusqlite::Result<Connection> {
        let connection = Connection::open_with_flags(&self.path, self.flags)?;
        connection.busy_timeout(BUSY_TIMEOUT)?;
        if !self.in_memory && !self.flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            let mode: String =
                connection
                    .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(journal_mode = %mode, "SQLite refused WAL journaling");
            }
        }
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(connection)
    }
}

/// The store's connection, for the statements of one read or one batch of writes.
///
/// Poisoning is ignored: a batch cut short by a panic is rolled back by the next one.
pub(crate) fn lock(connection: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    connection
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_file_or_a_private_memory_database() {
        let file = Target::parse("sqlite://data/s.db").unwrap();
        assert_eq!((file.path.as_str(), file.in_memory), ("data/s.db", false));
        assert!(file.flags.contains(OpenFlags::SQLITE_OPEN_CREATE));
        let absolute = Target::parse("sqlite:///var/s.db?mode=rw").unwrap();
        assert_eq!(absolute.path, "/var/s.db");
        assert!(!absolute.flags.contains(OpenFlags::SQLITE_OPEN_CREATE));
        assert_eq!(Target::parse("sqlite:s.db").unwrap().path, "s.db");

        let one = Target::parse("sqlite::memory:").unwrap();
        let two = Target::parse("sqlite::memory:").unwrap();
        assert!(one.in_memory && two.in_memory);
        assert_ne!(one.path, two.path, "two stores shared one memory database");

        for bad in [
            "sqlite://",
            "sqlite://x.db?mode=bogus",
            "sqlite://x.db?cache=shared",
        ] {
            assert!(
                matches!(Target::parse(bad), Err(ConnectError::InvalidUrl(_))),
                "{bad} accepted"
            );
        }
        assert!(matches!(
            Target::parse("postgres://x"),
            Err(ConnectError::NotSqlite)
        ));
    }
}
