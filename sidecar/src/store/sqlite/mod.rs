//! The ledger in an embedded SQLite database (WAL, synchronous=FULL by default). All writes go through one
//! connection, each decision run whole before the next begins, so a check and the write it allows can never
//! interleave with another decision; decisions that queue up meanwhile share one durable commit (group commit,
//! see [`group_commit`]). Reads use a few read-only connections, each read run whole on a blocking thread.
//!
//! One driver, rusqlite, for all of it: a statement on the connection's own thread costs 2.9 us where a round trip
//! to sqlx's SQLite thread cost 17.5 us (`bench/ledger` `store-limit`, docs/BENCHMARKS.md), a decision runs ten or
//! so, and a read or a whole batch of decisions is then one hand-off between tokio and a thread of SQLite's.
//! The schema is brought up to date by [`migrate`], which records migrations as sqlx's migrator did.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, params_from_iter};
use stock_core::Timestamp;
use tokio::sync::Semaphore;

use super::plan::{self, Outcome, Request};
use super::sql::{Columns, Param, reserved_units, sqlite_text};
use super::{ProjectionSettings, StoreError};

/// SQLite's `synchronous` setting for the ledger (WAL mode either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteDurability {
    /// Every commit is on disk before it is answered (fsync of the WAL per commit).
    Full,
    /// Commits survive the process crashing, not the machine losing power (fsync only at checkpoints).
    Normal,
}

/// How long a statement waits for another process's write lock (the `cleanup` command, say) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-only connections for GET requests and the workers' reads.
const READERS: usize = 4;
/// How long a read waits for a free reader connection before it fails as busy (503, retried by the caller).
const READ_WAIT: Duration = Duration::from_secs(10);

/// The embedded SQLite ledger.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write goes through here: one connection on a thread of its own, writes serialized in arrival order
    /// and group-committed (see [`group_commit`]) instead of failing on SQLite's single write lock.
    writer: Writer,
    readers: Readers,
    /// Whether ledger changes are queued for Payload, and how.
    projection: Option<Projection>,
}

#[derive(Debug, Clone)]
struct Projection {
    grace_millis: i64,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) with durable commits and runs the
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        SqliteStore::open(url, SqliteDurability::Full).await
    }

    /// Opens (creating if needed) the database at `url` with the given durability and runs the migrations.
    pub async fn open(url: &str, durability: SqliteDurability) -> Result<Self, StoreError> {
        let path = database_path(url)?;
        let synchronous = match durability {
            SqliteDurability::Full => "FULL",
            SqliteDurability::Normal => "NORMAL",
        };
        let opened = path.clone();
        let connection = tokio::task::spawn_blocking(move || {
            let mut connection = open_writer(&opened, synchronous)?;
            migrate::run(&mut connection)?;
            Ok::<_, StoreError>(connection)
        })
        .await
        .map_err(|error| StoreError::Database(Arc::new(error)))??;
        let writer = Writer::start(connection)?;
        Ok(SqliteStore { writer, readers: Readers::new(path, READERS), projection: None })
    }

    /// With settings, every ledger change from now on also queues, in its own transaction, what Payload must show
    /// (the outbox); without (no PAYLOAD_URL) nothing is queued.
    pub fn with_projection(mut self, settings: Option<ProjectionSettings>) -> Self {
        self.projection = settings.map(|settings| Projection {
            grace_millis: i64::try_from(settings.payload_save_grace.as_millis()).unwrap_or(i64::MAX),
        });
        self
    }

    fn outbox(&self) -> writes::Outbox {
        match &self.projection {
            Some(projection) => writes::Outbox { enabled: true, payload_save_grace_millis: projection.grace_millis },
            None => writes::Outbox { enabled: false, payload_save_grace_millis: 0 },
        }
    }
}

/// The path of the database file a `sqlite://path` (or `sqlite:path`) URL names, percent-decoded as sqlx decoded
/// it. `mode=rw`, `mode=rwc` and `cache=...` are accepted and change nothing (the file is created if missing, each
/// connection has its own cache); any other parameter is refused rather than silently ignored.
fn database_path(url: &str) -> Result<PathBuf, StoreError> {
    let refused = |message: String| StoreError::Database(Arc::new(std::io::Error::other(message)));
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let harmless = |parameter: &&str| {
        parameter.is_empty() || *parameter == "mode=rw" || *parameter == "mode=rwc" || parameter.starts_with("cache=")
    };
    if let Some(parameter) = query.split('&').find(|parameter| !harmless(parameter)) {
        return Err(refused(format!(
            "DATABASE_URL: the SQLite parameter {parameter:?} is not supported (the ledger is a file the sidecar \
             writes: sqlite://path/to/file.db)"
        )));
    }
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| refused("DATABASE_URL: the SQLite path is not valid UTF-8 once decoded".to_owned()))?;
    if path.is_empty() || path == ":memory:" {
        return Err(refused("DATABASE_URL: the SQLite ledger needs a file (sqlite://path/to/file.db)".to_owned()));
    }
    Ok(PathBuf::from(path.as_ref()))
}

/// The writer connection: creates the file if missing, WAL, and the durability asked for.
fn open_writer(path: &Path, synchronous: &str) -> Result<Connection, StoreError> {
    // A path, never a `file:` URI: the readers open the very same file.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    // Statement journals (SQLite keeps one for a statement that may have to be undone alone, such as an UPDATE
    // firing a trigger) in memory, not in a temporary file: with a file, measured, the writer spent a third of its
    // time in their pwrite calls.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    // Every statement of every decision stays prepared.
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

/// A few read-only connections, opened as reads need them; each read runs whole on a blocking thread, with no
/// await inside it.
#[derive(Debug, Clone)]
struct Readers(Arc<ReaderPool>);

#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit a connection; closed when the store closes.
    permits: Arc<Semaphore>,
}

impl Readers {
    fn new(path: PathBuf, connections: usize) -> Self {
        Readers(Arc::new(ReaderPool {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(connections)),
        }))
    }

    /// Runs `read` on a free reader connection; waits for one at most [`READ_WAIT`].
    async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let pool = Arc::clone(&self.0);
        let permit = match tokio::time::timeout(READ_WAIT, Arc::clone(&pool.permits).acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => {
                return Err(StoreError::Database(Arc::new(std::io::Error::other(
                    "the ledger is closed: no more reads",
                ))));
            }
            Err(_) => {
                return Err(StoreError::Busy(Arc::new(std::io::Error::other(format!(
                    "no reader connection of the ledger was free within {} s",
                    READ_WAIT.as_secs()
                )))));
            }
        };
        // The permit goes with the connection: a read whose caller gave up still holds both until it ends, so the
        // pool never opens more than its connections.
        tokio::task::spawn_blocking(move || {
            let idle = pool.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let connection = match idle {
                Some(connection) => connection,
                None => open_reader(&pool.path)?,
            };
            let result = read(&connection);
            if !pool.permits.is_closed() {
                pool.idle.lock().unwrap_or_else(PoisonError::into_inner).push(connection);
            }
            drop(permit);
            result
        })
        .await
        .map_err(|error| StoreError::Database(Arc::new(error)))?
    }

    /// Refuses reads from now on and closes the idle connections (one in use closes when its read ends).
    fn close(&self) {
        self.0.permits.close();
        self.0.idle.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let connection =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    connection.busy_timeout(BUSY_TIMEOUT)?;
    connection.set_prepared_statement_cache_capacity(32);
    Ok(connection)
}

/// Every row `sql` gives for `parameters`, each read as the tuple `Row`.
fn rows<Row>(connection: &Connection, sql: &str, parameters: impl rusqlite::Params) -> Result<Vec<Row>, StoreError>
where
    Row: for<'a> TryFrom<&'a rusqlite::Row<'a>, Error = rusqlite::Error>,
{
    let mut statement = connection.prepare_cached(sql)?;
    let rows = statement.query_map(parameters, |row| Row::try_from(row))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// `SELECT` of a product's sizes (`?1`) with their reserved units at `?2`, in one statement (one snapshot).
const SIZES_QUERY: &str = concat!(
    "SELECT s.size, s.stock, s.low_stock_threshold, ",
    reserved_units!("?2"),
    " FROM sizes s WHERE s.product = ?1 ORDER BY s.rowid"
);

/// `SELECT` of one size (`?1` product, `?3` size) with its reserved units at `?2`.
const SIZE_QUERY: &str = concat!(
    "SELECT s.size, s.stock, s.low_stock_threshold, ",
    reserved_units!("?2"),
    " FROM sizes s WHERE s.product = ?1 AND s.size = ?3"
);

mod group_commit;
mod migrate;
mod writes;

use group_commit::Writer;
pub use group_commit::WriterCounts;

/// The ledger's decisions on this store, as [`crate::ledger::Ledger`] documents them, and the primitives the
/// ledger's other operations are written on (`store/sql.rs`).
impl SqliteStore {
    /// Takes one decision in the next commit (see [`super::plan::Decision`]).
    pub(crate) async fn decide(&self, request: Request) -> Result<Outcome, StoreError> {
        let (outbox, reads) = (self.outbox(), plan::reads(std::slice::from_ref(&request)));
        self.writer.write(move |connection| writes::decide(connection, outbox, (&request, &reads))).await
    }

    pub async fn release_expired(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let queue_for_payload = self.projection.is_some();
        self.writer.write(move |connection| writes::release_expired(connection, queue_for_payload, now)).await
    }

    /// Every row a read gives, on a reader connection.
    pub(crate) async fn rows<Row: Columns>(
        &self,
        sql: &'static str,
        params: Vec<Param>,
    ) -> Result<Vec<Row>, StoreError> {
        self.readers.read(move |connection| rows(connection, &sqlite_text(sql), params_from_iter(&params))).await
    }

    /// Runs one statement in the next commit; how many rows it changed.
    pub(crate) async fn execute(&self, sql: &'static str, params: Vec<Param>) -> Result<u64, StoreError> {
        self.writer
            .write(move |connection| {
                let changed = connection.prepare_cached(&sqlite_text(sql))?.execute(params_from_iter(&params))?;
                Ok(changed as u64)
            })
            .await
    }

    /// Runs statements in order in the next commit, all or none; the rows they returned.
    pub(crate) async fn write<Row: Columns>(
        &self,
        steps: Vec<(&'static str, Vec<Param>)>,
    ) -> Result<Vec<Row>, StoreError> {
        self.writer
            .write(move |connection| {
                let mut returned = Vec::new();
                for (sql, params) in &steps {
                    returned.extend(rows(connection, &sqlite_text(sql), params_from_iter(params))?);
                }
                Ok(returned)
            })
            .await
    }

    /// Writes and commits since the store opened.
    pub fn writer_counts(&self) -> WriterCounts {
        self.writer.counts()
    }

    /// Closes every connection (the WAL is checkpointed when the last one closes).
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_the_file_as_sqlx_read_them_and_refuse_what_would_change_its_meaning() {
        let path =
            |url: &str| database_path(url).map(|path| path.display().to_string()).map_err(|error| error.to_string());
        assert_eq!(path("sqlite://payload-stock.db"), Ok("payload-stock.db".to_owned()));
        assert_eq!(path("sqlite:relative.db"), Ok("relative.db".to_owned()));
        assert_eq!(path("sqlite://./x.db"), Ok("./x.db".to_owned()));
        assert_eq!(path("sqlite:///srv/my%20shop/ledger%231.db"), Ok("/srv/my shop/ledger#1.db".to_owned()));
        assert_eq!(path("sqlite:///srv/ledger.db?mode=rwc&cache=shared"), Ok("/srv/ledger.db".to_owned()));
        for refused in ["sqlite::memory:", "sqlite://", "sqlite:///srv/ledger.db?mode=ro", "sqlite:x.db?immutable=1"] {
            assert!(path(refused).is_err(), "{refused} must be refused");
        }
    }
}
