//! Group commit for the SQLite ledger, on a thread of its own. Every write runs there, on the one writer
//! connection, in the order it arrived, whole (no hand-off between its statements); the writes that queued while
//! the previous commit was on its way to disk share the next transaction and its one fsync, and none is answered
//! before that commit is durable.
//!
//! Why it keeps every guarantee of one transaction per write: the writes of a batch run one after the other on
//! one connection, each seeing the ones before it, exactly as they would have in separate transactions in the
//! same order; an answer (success or refusal) is only sent once the `COMMIT` holding it has returned, so nothing
//! is acknowledged that a crash could take back. If a write of the batch fails (an error, not a refusal, which is
//! an answer like any other), the whole batch is rolled back and its writes run again one transaction each, in the
//! same order, from the same state: the failing write fails alone and the others are applied exactly as they would
//! have been. (Savepoints would isolate a failure without the second run, but SQLite copies every page a
//! savepoint changes into a statement journal: measured, that cost more than the failures it would save, which
//! do not happen in normal operation.) If a commit fails, its writes are answered with that error and none of
//! them happened.
//!
//! Why a thread and a synchronous binding: sqlx's SQLite driver sends every statement to its own worker thread and
//! back (measured 17-22 us a statement here, most of a decision's cost); here a whole batch of decisions costs one
//! hand-off each way.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::store::StoreError;

/// At most this many writes share one commit: bounds how long the first of them waits for the last.
const MAX_BATCH: usize = 128;
/// Writes waiting for the writer; the HTTP layer's concurrency limit keeps the queue well below this.
const QUEUE: usize = 4096;

/// The sending side of the writer thread: cheap to clone, one per store handle.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    queue: mpsc::Sender<Command>,
    counters: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

/// Writes run and transactions committed since the store opened: their ratio is the group commit's batch size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterCounts {
    pub writes: u64,
    pub commits: u64,
}

enum Command {
    Write(Box<dyn QueuedWrite>),
    /// Stop once the writes queued before this one are committed, closing the connection.
    Close(oneshot::Sender<()>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Command::Write(_) => "Write",
            Command::Close(_) => "Close",
        })
    }
}

fn writer_stopped() -> StoreError {
    StoreError::Inconsistent("the ledger's writer has stopped (the store was closed)".to_owned())
}

impl Writer {
    /// Moves `connection` to a new thread that commits the writes sent to it.
    pub(crate) fn start(connection: Connection) -> Result<Writer, StoreError> {
        let (queue, commands) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("ledger-writer".to_owned())
            .spawn(move || commit_batches(connection, commands, &thread_counters))
            .map_err(|error| StoreError::Inconsistent(format!("cannot start the ledger's writer thread: {error}")))?;
        Ok(Writer { queue, counters })
    }

    /// Runs `write` in the next commit and answers once that commit is durable (or failed).
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queued = Queued { write, result: None, reply };
        self.queue.send(Command::Write(Box::new(queued))).await.map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) fn counts(&self) -> WriterCounts {
        WriterCounts {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    /// Commits what is queued, then stops the writer thread and closes its connection.
    pub(crate) async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Command::Close(done)).await.is_ok() {
            // An error only means the thread had already stopped.
            let _ = stopped.await;
        }
    }
}

/// A write waiting for its turn, then for its commit.
trait QueuedWrite: Send {
    /// Runs the write (again, if its batch was rolled back); true if it succeeded (its changes are to be kept).
    fn run(&mut self, connection: &Connection) -> bool;
    /// Answers the caller, once the commit's fate is known (`Err` if it failed or never started).
    fn answer(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Queued<F, T> {
    write: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> QueuedWrite for Queued<F, T>
where
    T: Send + 'static,
    F: Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let result = (self.write)(connection);
        let succeeded = result.is_ok();
        self.result = Some(result);
        succeeded
    }

    fn answer(self: Box<Self>, commit: Result<(), &StoreError>) {
        let answer = match (self.result, commit) {
            // The write failed on its own: its error, whatever became of the others.
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)) | None, Err(error)) => Err(error.shared()),
            (None, Ok(())) => Err(StoreError::Inconsistent("a write was answered without having run".to_owned())),
        };
        // The caller may have gone (its request timed out); what was committed stays committed.
        let _ = self.reply.send(answer);
    }
}

fn execute(connection: &Connection, statement: &'static str) -> Result<(), StoreError> {
    connection.prepare_cached(statement)?.execute([])?;
    Ok(())
}

/// The writer thread: takes what has queued (at least one write), commits it as one batch, answers, repeats.
fn commit_batches(connection: Connection, mut commands: mpsc::Receiver<Command>, counters: &Counters) {
    let mut batch: Vec<Box<dyn QueuedWrite>> = Vec::with_capacity(MAX_BATCH);
    while let Some(command) = commands.blocking_recv() {
        let mut close = None;
        match command {
            Command::Write(write) => batch.push(write),
            Command::Close(done) => close = Some(done),
        }
        while close.is_none() && batch.len() < MAX_BATCH {
            match commands.try_recv() {
                Ok(Command::Write(write)) => batch.push(write),
                Ok(Command::Close(done)) => close = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            counters.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            counters.commits.fetch_add(1, Ordering::Relaxed);
            commit_batch(&connection, &mut batch);
        }
        if let Some(done) = close {
            if let Err((_, error)) = connection.close() {
                tracing::warn!(%error, "closing the ledger's writer connection failed");
            }
            let _ = done.send(());
            return;
        }
    }
}

/// One transaction for `batch`; if a write fails, the batch again one transaction per write. Answers them all.
fn commit_batch(connection: &Connection, batch: &mut Vec<Box<dyn QueuedWrite>>) {
    match run_together(connection, batch) {
        Ok(true) => {
            for write in batch.drain(..) {
                write.answer(Ok(()));
            }
        }
        Ok(false) => {
            // A write failed: nothing of the batch was kept; each write runs again in its own transaction.
            for mut write in batch.drain(..) {
                let outcome = run_alone(connection, write.as_mut());
                write.answer(outcome.as_ref().map(|_| ()));
            }
        }
        Err(error) => {
            tracing::error!(%error, writes = batch.len(), "a ledger commit failed; none of its writes was applied");
            for write in batch.drain(..) {
                write.answer(Err(&error));
            }
        }
    }
}

/// Runs every write of `batch` in one transaction and commits it if all succeeded (`Ok(true)`); rolls it back
/// if one failed (`Ok(false)`, the others not run).
fn run_together(connection: &Connection, batch: &mut [Box<dyn QueuedWrite>]) -> Result<bool, StoreError> {
    execute(connection, "BEGIN IMMEDIATE")?;
    for write in batch.iter_mut() {
        if !write.run(connection) {
            rollback(connection);
            return Ok(false);
        }
    }
    if let Err(error) = execute(connection, "COMMIT") {
        rollback(connection);
        return Err(error);
    }
    Ok(true)
}

/// Runs one write in a transaction of its own; its own error, if it fails, is kept in it for its answer.
fn run_alone(connection: &Connection, write: &mut dyn QueuedWrite) -> Result<(), StoreError> {
    execute(connection, "BEGIN IMMEDIATE")?;
    if !write.run(connection) {
        rollback(connection);
        return Ok(());
    }
    execute(connection, "COMMIT").inspect_err(|_| rollback(connection))
}

/// Ends whatever is left of the transaction (a failed statement or COMMIT can leave it open; an error here means
/// SQLite had already rolled it back).
fn rollback(connection: &Connection) {
    let _ = execute(connection, "ROLLBACK");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer_on_a_fresh_database() -> (Writer, Connection, tempfile::TempDir) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let path = directory.path().join("group.db");
        let connection = Connection::open(&path).expect("writer connection");
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL; \
                 CREATE TABLE rows (id INTEGER PRIMARY KEY, value INTEGER NOT NULL UNIQUE);",
            )
            .expect("table");
        let reader = Connection::open(&path).expect("reader connection");
        (Writer::start(connection).expect("writer"), reader, directory)
    }

    /// Inserts `value`; a multiple of 7 is refused after its insert, so a failed write has changed the database
    /// before failing.
    async fn insert(writer: &Writer, value: i64) -> Result<i64, StoreError> {
        writer
            .write(move |connection| {
                connection.execute("INSERT INTO rows (value) VALUES (?1)", [value])?;
                if value % 7 == 0 {
                    return Err(StoreError::Inconsistent(format!("{value} is refused after its insert")));
                }
                Ok(value)
            })
            .await
    }

    fn stored(reader: &Connection) -> Vec<i64> {
        let mut statement = reader.prepare("SELECT value FROM rows ORDER BY value").expect("select");
        let rows = statement.query_map([], |row| row.get(0)).expect("rows");
        rows.collect::<Result<Vec<i64>, _>>().expect("values")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_a_failing_one_leaves_no_trace_and_takes_no_other_with_it() {
        let (writer, reader, _directory) = writer_on_a_fresh_database();
        let writes = (1..=400).map(|value| {
            let writer = writer.clone();
            tokio::spawn(async move { (value, insert(&writer, value).await) })
        });
        for answer in futures_util::future::join_all(writes).await {
            let (value, result) = answer.expect("task");
            match result {
                Ok(answered) => assert!(value % 7 != 0 && answered == value),
                Err(error) => assert!(value % 7 == 0, "{value} failed: {error}"),
            }
        }
        let expected: Vec<i64> = (1..=400).filter(|value| value % 7 != 0).collect();
        assert_eq!(stored(&reader), expected, "every successful write committed, no failed one");
        let counts = writer.counts();
        assert_eq!(counts.writes, 400);
        assert!(counts.commits < 400, "concurrent writes shared commits: {counts:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_a_batch_is_replayed_after_a_failure_each_write_still_sees_the_writes_before_it() {
        let (writer, reader, _directory) = writer_on_a_fresh_database();
        // A write that holds the writer thread until released, so that the four writes below queue up behind it,
        // in order, and make one batch with a failure in it.
        let (started, running) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holding = writer.clone();
        let hold = tokio::spawn(async move {
            holding
                .write(move |_| {
                    let _ = started.send(());
                    let _ = released.recv();
                    Ok(())
                })
                .await
        });
        tokio::task::spawn_blocking(move || running.recv()).await.expect("task").expect("the holding write runs");

        let queued = |writer: &Writer| QUEUE - writer.queue.capacity();
        let mut answers = Vec::new();
        for value in [1, 0, 7, -1] {
            let writer_for_task = writer.clone();
            answers.push(tokio::spawn(async move {
                match value {
                    // Inserts one more than the highest value so far: it must see the writes before it.
                    0 => {
                        writer_for_task
                            .write(|connection| {
                                let highest: i64 =
                                    connection.query_row("SELECT MAX(value) FROM rows", [], |row| row.get(0))?;
                                connection.execute("INSERT INTO rows (value) VALUES (?1)", [highest + 100])?;
                                Ok(highest + 100)
                            })
                            .await
                    }
                    -1 => {
                        writer_for_task
                            .write(|connection| {
                                Ok(connection.query_row("SELECT COUNT(*) FROM rows", [], |row| row.get(0))?)
                            })
                            .await
                    }
                    value => insert(&writer_for_task, value).await,
                }
            }));
            let before = answers.len();
            while queued(&writer) < before {
                tokio::task::yield_now().await;
            }
        }
        release.send(()).expect("release the writer");
        assert!(hold.await.expect("task").is_ok());
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.expect("task"));
        }
        assert_eq!(results[0].as_ref().expect("first"), &1);
        assert_eq!(results[1].as_ref().expect("second saw the first"), &101);
        assert!(results[2].is_err(), "the third fails");
        assert_eq!(results[3].as_ref().expect("count"), &2, "the failed write left nothing behind");
        assert_eq!(stored(&reader), vec![1, 101]);
        assert_eq!(writer.counts(), WriterCounts { writes: 5, commits: 2 }, "the four writes made one batch");
    }

    #[tokio::test]
    async fn a_lone_failing_write_is_rolled_back_and_the_writer_carries_on() {
        let (writer, reader, _directory) = writer_on_a_fresh_database();
        assert!(insert(&writer, 14).await.is_err());
        assert_eq!(insert(&writer, 15).await.expect("next write"), 15);
        assert_eq!(stored(&reader), vec![15]);
    }

    #[tokio::test]
    async fn writes_after_close_are_refused_with_an_error() {
        let (writer, _reader, _directory) = writer_on_a_fresh_database();
        assert_eq!(insert(&writer, 1).await.expect("write"), 1);
        writer.close().await;
        assert!(matches!(insert(&writer, 2).await, Err(StoreError::Inconsistent(_))));
    }
}
