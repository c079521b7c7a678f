//! Group commit for the SQLite ledger. Every write runs on the one writer connection, in the order it arrived; the
//! writes that queued while the previous commit was on its way to disk share the next transaction and its one
//! fsync, each inside its own savepoint, and none is answered before that commit is durable.
//!
//! Why it keeps every guarantee of one transaction per write: the writes of a batch run one after the other on
//! one connection, each seeing the ones before it, exactly as they would have in separate transactions in the
//! same order; a write that fails is rolled back to its savepoint and answered with its error, leaving the others
//! alone; and an answer (success or refusal) is only sent once the `COMMIT` holding it has returned, so nothing is
//! acknowledged that a crash could take back. If the commit itself fails, every write of the batch is answered
//! with that error and none of them happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// At most this many writes share one commit: bounds how long the first of them waits for the last.
const MAX_BATCH: usize = 128;
/// Writes waiting for the writer; the HTTP layer's concurrency limit keeps the queue well below this.
const QUEUE: usize = 4096;

/// What a write does on the writer connection, inside the transaction it shares (see the module's doc).
pub(crate) type WriteFuture<'c, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'c>>;

/// The sending side of the writer: cheap to clone, one per store handle.
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
    /// Stop once the writes queued before this one are committed, handing the connection back to its pool.
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
    /// Takes the pool's one connection for good and starts the task that commits on it.
    pub(crate) async fn start(pool: &SqlitePool) -> Result<Writer, StoreError> {
        let connection = pool.acquire().await?;
        let (queue, commands) = mpsc::channel(QUEUE);
        let counters = Arc::new(Counters::default());
        tokio::spawn(commit_batches(connection, commands, Arc::clone(&counters)));
        Ok(Writer { queue, counters })
    }

    /// Runs `write` in the next commit and answers once that commit is durable (or failed).
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let queued = Queued { write: Some(write), result: None, reply };
        self.queue.send(Command::Write(Box::new(queued))).await.map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }

    pub(crate) fn counts(&self) -> WriterCounts {
        WriterCounts {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    /// Commits what is queued, then stops the writer task and hands its connection back.
    pub(crate) async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Command::Close(done)).await.is_ok() {
            // An error only means the task had already stopped.
            let _ = stopped.await;
        }
    }
}

/// A write waiting for its turn, then for its commit.
trait QueuedWrite: Send {
    /// Runs the write; true if it succeeded (its changes are to be kept).
    fn run<'a>(&'a mut self, connection: &'a mut SqliteConnection) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
    /// Answers the caller, once the commit's fate is known (`Err` if it failed or never started).
    fn answer(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Queued<F, T> {
    write: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> QueuedWrite for Queued<F, T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut SqliteConnection) -> WriteFuture<'c, T> + Send + 'static,
{
    fn run<'a>(&'a mut self, connection: &'a mut SqliteConnection) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let result = match self.write.take() {
                Some(write) => write(connection).await,
                None => Err(StoreError::Inconsistent("a queued write ran twice".to_owned())),
            };
            let succeeded = result.is_ok();
            self.result = Some(result);
            succeeded
        })
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

async fn execute(connection: &mut SqliteConnection, statement: &'static str) -> Result<(), StoreError> {
    sqlx::query(statement).execute(connection).await?;
    Ok(())
}

/// The writer task: takes what has queued (at least one write), commits it as one batch, answers, repeats.
async fn commit_batches(
    mut connection: PoolConnection<Sqlite>,
    mut commands: mpsc::Receiver<Command>,
    counters: Arc<Counters>,
) {
    let mut batch: Vec<Box<dyn QueuedWrite>> = Vec::with_capacity(MAX_BATCH);
    while let Some(command) = commands.recv().await {
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
            commit_batch(&mut connection, &mut batch).await;
        }
        if let Some(done) = close {
            drop(connection);
            let _ = done.send(());
            return;
        }
    }
}

/// One transaction for `batch`, each write in a savepoint of its own when there are several; answers them all.
async fn commit_batch(connection: &mut SqliteConnection, batch: &mut Vec<Box<dyn QueuedWrite>>) {
    let outcome = run_batch(connection, batch).await;
    if outcome.is_err() {
        // Whatever is left of the transaction (a failed COMMIT can leave it open); an error here means none is.
        let _ = execute(connection, "ROLLBACK").await;
    }
    if let Err(error) = &outcome {
        tracing::error!(%error, writes = batch.len(), "a ledger commit failed; none of its writes was applied");
    }
    for write in batch.drain(..) {
        write.answer(outcome.as_ref().map(|_| ()));
    }
}

async fn run_batch(connection: &mut SqliteConnection, batch: &mut [Box<dyn QueuedWrite>]) -> Result<(), StoreError> {
    execute(connection, "BEGIN IMMEDIATE").await?;
    if let [only] = batch {
        return if only.run(connection).await {
            execute(connection, "COMMIT").await
        } else {
            // Its error is its answer; nothing else was in the transaction. (An error here means SQLite had
            // already rolled it back.)
            let _ = execute(connection, "ROLLBACK").await;
            Ok(())
        };
    }
    // Each boundary between two writes is one round trip to SQLite's thread (release the last savepoint, open
    // the next), which is what a decision costs most of here.
    execute(connection, "SAVEPOINT queued_write").await?;
    let last = batch.len() - 1;
    for (index, write) in batch.iter_mut().enumerate() {
        if !write.run(connection).await {
            execute(connection, "ROLLBACK TO queued_write").await?;
        }
        if index == last {
            execute(connection, "RELEASE queued_write; COMMIT").await?;
        } else {
            execute(connection, "RELEASE queued_write; SAVEPOINT queued_write").await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    use super::*;

    async fn writer_on_a_fresh_database() -> (Writer, SqlitePool, tempfile::TempDir) {
        let directory = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", directory.path().join("group.db").display());
        let options = SqliteConnectOptions::from_str(&url)
            .expect("url")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await.expect("pool");
        sqlx::query("CREATE TABLE rows (id INTEGER PRIMARY KEY, value INTEGER NOT NULL UNIQUE)")
            .execute(&pool)
            .await
            .expect("table");
        let reader = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("reader");
        (Writer::start(&pool).await.expect("writer"), reader, directory)
    }

    /// Inserts `value` twice over (the second insert of a multiple of 7 goes through, then the write fails), so
    /// a failed write has changed the database before failing.
    async fn insert(writer: &Writer, value: i64) -> Result<i64, StoreError> {
        writer
            .write(move |connection| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO rows (value) VALUES (?1)").bind(value).execute(&mut *connection).await?;
                    if value % 7 == 0 {
                        return Err(StoreError::Inconsistent(format!("{value} is refused after its insert")));
                    }
                    Ok(value)
                })
            })
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_commits_and_a_failing_one_leaves_no_trace_and_takes_no_other_with_it() {
        let (writer, reader, _directory) = writer_on_a_fresh_database().await;
        let writes = (1..=400).map(|value| {
            let writer = writer.clone();
            tokio::spawn(async move { (value, insert(&writer, value).await) })
        });
        let answers = futures_util::future::join_all(writes).await;
        for answer in answers {
            let (value, result) = answer.expect("task");
            match result {
                Ok(answered) => assert!(value % 7 != 0 && answered == value),
                Err(error) => assert!(value % 7 == 0, "{value} failed: {error}"),
            }
        }
        let stored: Vec<i64> =
            sqlx::query_scalar("SELECT value FROM rows ORDER BY value").fetch_all(&reader).await.expect("rows");
        let expected: Vec<i64> = (1..=400).filter(|value| value % 7 != 0).collect();
        assert_eq!(stored, expected, "every successful write committed, no failed one");
        let counts = writer.counts();
        assert_eq!(counts.writes, 400);
        assert!(counts.commits < 400, "concurrent writes shared commits: {counts:?}");
    }

    #[tokio::test]
    async fn a_lone_failing_write_is_rolled_back_and_the_writer_carries_on() {
        let (writer, reader, _directory) = writer_on_a_fresh_database().await;
        assert!(insert(&writer, 14).await.is_err());
        assert_eq!(insert(&writer, 15).await.expect("next write"), 15);
        let stored: Vec<i64> = sqlx::query_scalar("SELECT value FROM rows").fetch_all(&reader).await.expect("rows");
        assert_eq!(stored, vec![15]);
    }

    #[tokio::test]
    async fn writes_after_close_are_refused_with_an_error() {
        let (writer, _reader, _directory) = writer_on_a_fresh_database().await;
        assert_eq!(insert(&writer, 1).await.expect("write"), 1);
        writer.close().await;
        assert!(matches!(insert(&writer, 2).await, Err(StoreError::Inconsistent(_))));
    }
}
