//! WAL checkpoints, off the runtime's threads.
//!
//! A checkpoint copies the write-ahead log into the database file and syncs the disk: the
//! one step of WAL mode that waits for the disk. SQLite runs one inside a commit, every
//! 1000 pages, on whichever thread commits, here a runtime thread. The store's connection
//! has that turned off; instead, every [`EVERY`] writes, a blocking thread checkpoints
//! through a connection of its own. The checkpoint is `PASSIVE`: it neither waits for nor
//! blocks the store's reads and writes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::connection::Target;

/// Writes between checkpoints: a few thousand pages of log, the order of SQLite's own.
const EVERY: usize = 1000;

#[derive(Debug)]
pub(crate) struct Checkpoints {
    target: Arc<Target>,
    running: Arc<AtomicBool>,
    writes: usize,
}

impl Checkpoints {
    pub(crate) fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            running: Arc::new(AtomicBool::new(false)),
            writes: 0,
        }
    }

    /// Counts `writes` committed ones, and starts a checkpoint once there are enough since
    /// the last (unless one is still running).
    pub(crate) fn wrote(&mut self, writes: usize) {
        self.writes += writes;
        if self.writes < EVERY || self.target.in_memory || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        self.writes = 0;
        let (target, running) = (Arc::clone(&self.target), Arc::clone(&self.running));
        tokio::task::spawn_blocking(move || {
            let checkpointed = target.open_waiting().and_then(|connection| {
                connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            });
            if let Err(error) = checkpointed {
                tracing::warn!(%error, "SQLite WAL checkpoint failed; the log grows until one succeeds");
            }
            running.store(false, Ordering::Release);
        });
    }
}
