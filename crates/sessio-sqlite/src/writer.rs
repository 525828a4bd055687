//! The store's writes: queued, and run in batches, each batch one transaction.
//!
//! SQLite runs one write transaction at a time per database, and committing costs much
//! more than a statement. So the writer, a task of its own, takes every write queued when
//! it gets its turn, runs them one after another in one `BEGIN IMMEDIATE` transaction and
//! commits once; a write's caller hears back only after that commit. The busier the store,
//! the more writes share a commit.
//!
//! The batch runs on the runtime's thread, like any other task's work: its statements
//! touch pages in memory (WAL with `synchronous = NORMAL` writes to the OS, and syncs
//! only at checkpoints), and a hop to a thread of its own and back costs more than the
//! writes. What could take long, waiting for another process's lock, is done
//! asynchronously: SQLite's own wait is off, and the writer sleeps and tries again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;
use sessio::store::StoreError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::checkpoint::Checkpoints;
use crate::connection::{lock, Target, BUSY_TIMEOUT};
use crate::error::{is_busy, is_unavailable};

/// Writes in one transaction at most, so that a long queue still commits regularly.
const MAX_BATCH: usize = 512;

/// How long the writer sleeps when another process holds the write lock.
const LOCK_RETRY: Duration = Duration::from_millis(1);

/// A queued write and the caller waiting for it.
trait Job: Send {
    /// Runs the write's statements; returns what to tell the caller once the
    /// transaction's fate is known.
    fn run(self: Box<Self>, connection: &Connection) -> Reply;
    /// Tells the caller the write could not be run.
    fn fail(self: Box<Self>, error: &Arc<rusqlite::Error>);
}

/// Called with `Ok` when the write's transaction committed, with the error if it did not.
type Reply = Box<dyn FnOnce(Result<(), &Arc<rusqlite::Error>>) + Send>;

struct Write<F, T> {
    write: F,
    answer: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> Job for Write<F, T>
where
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, connection: &Connection) -> Reply {
        let result = (self.write)(connection);
        let answer = self.answer;
        Box::new(move |committed| {
            let result = match committed {
                Ok(()) => result,
                Err(error) => result.and(Err(shared_error(error))),
            };
            let _ = answer.send(result);
        })
    }

    fn fail(self: Box<Self>, error: &Arc<rusqlite::Error>) {
        let _ = self.answer.send(Err(shared_error(error)));
    }
}

/// The queue of writes; the writer task ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer task, on the current runtime, writing through `connection` to
    /// the database `target` names.
    pub(crate) fn spawn(connection: Arc<Mutex<Connection>>, target: Arc<Target>) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(connection, queue, Checkpoints::new(target)));
        Self { jobs }
    }

    /// Runs `write` in the writer's next transaction and answers with its result once the
    /// transaction committed. The write happens even if the caller stops waiting.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .send(Box::new(Write { write, answer }))
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer stopped: its runtime has shut down".into())
}

fn shared_error(error: &Arc<rusqlite::Error>) -> StoreError {
    let error = Arc::clone(error);
    if is_unavailable(&error) {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Backend(Box::new(error))
    }
}

async fn run(
    connection: Arc<Mutex<Connection>>,
    mut queue: mpsc::UnboundedReceiver<Box<dyn Job>>,
    mut checkpoints: Checkpoints,
) {
    while let Some(first) = queue.recv().await {
        // Tasks that are ready to run may have writes for this batch: let them queue.
        tokio::task::yield_now().await;
        let mut batch = vec![first];
        let since = Instant::now();
        loop {
            while batch.len() < MAX_BATCH {
                let Ok(job) = queue.try_recv() else { break };
                batch.push(job);
            }
            let (unrun, error) = match run_batch(&lock(&connection), batch) {
                Ok(written) => {
                    checkpoints.wrote(written);
                    break;
                }
                Err(failed) => failed,
            };
            if !is_busy(&error) || since.elapsed() >= BUSY_TIMEOUT {
                let error = Arc::new(error);
                for job in unrun {
                    job.fail(&error);
                }
                break;
            }
            // Another process holds the write lock.
            batch = unrun;
            tokio::time::sleep(LOCK_RETRY).await;
        }
    }
}

/// Runs `batch` in one transaction and answers every write in it, saying how many were
/// written; gives the batch back, unrun, if the transaction could not begin.
fn run_batch(
    connection: &Connection,
    batch: Vec<Box<dyn Job>>,
) -> Result<usize, (Vec<Box<dyn Job>>, rusqlite::Error)> {
    if !connection.is_autocommit() {
        // A batch was cut short (by a panic) with its transaction open: nothing of it was
        // answered as written.
        let _ = connection.execute_batch("ROLLBACK");
    }
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        return Err((batch, error));
    }
    let mut ran = Vec::with_capacity(batch.len());
    for job in batch {
        if connection.is_autocommit() {
            // An earlier write's error made SQLite roll the transaction back.
            if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
                job.fail(&Arc::new(error));
                continue;
            }
        }
        ran.push(job.run(connection));
        if connection.is_autocommit() {
            let lost = Arc::new(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the write transaction was rolled back".into()),
            ));
            for reply in ran.drain(..) {
                reply(Err(&lost));
            }
        }
    }
    let committed = connection.execute_batch("COMMIT").map_err(|error| {
        let _ = connection.execute_batch("ROLLBACK");
        Arc::new(error)
    });
    let written = if committed.is_ok() { ran.len() } else { 0 };
    for reply in ran {
        reply(committed.as_ref().copied());
    }
    Ok(written)
}
