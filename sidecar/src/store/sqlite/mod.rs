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

use rusqlite::{Connection, OpenFlags};
use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};
use tokio::sync::Semaphore;

use super::columns::{
    ALERT_STATUS_QUERY, ConflictColumns, LedgerSizeColumns, MonitoringCounts, MovementColumns, OPEN_CONFLICTS_QUERY,
    OutboxColumns, SummaryColumns, alert_status, conflict_from_columns, ledger_sizes_from_rows, monitoring_from_rows,
    movement_from_columns, outbox_entries_from_rows, reads, totals_from_rows,
};
use super::{
    AlertCrossing, ConflictRecord, EventOutcome, ImportOutcome, LaneClaim, LedgerSize, Monitoring, MovementOutcome,
    MovementRecord, MovementRequest, MovementTotal, OLDEST_LISTED, OutboxEntry, ProjectionSettings, ReleaseOutcome,
    ReservationRecord, ReserveOutcome, ResolveOutcome, SizeRecord, StockAlert, StoreError, StripeAction,
    StripeEventRecord,
};

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

/// Units held by the reservations of one size at `?2` (now): `held_units` (kept by triggers equal to the items
/// with `holds_until > 0`, see migration 0004) less the items of active reservations already past their expiry
/// but not yet marked expired. `holds_until` is the SQL form of stock-core's `Reservation::holds_units` (see
/// [`holds_until`]); the lapsed items are read through a covering index and are few (cleanup marks them).
const RESERVED_UNITS: &str = "s.held_units - COALESCE((SELECT SUM(ri.quantity) FROM reservation_items ri \
    WHERE ri.product = s.product AND ri.size = s.size AND ri.holds_until > 0 AND ri.holds_until <= ?2), 0)";

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

/// The first column of every row `sql` gives.
fn column<Value: rusqlite::types::FromSql>(
    connection: &Connection,
    sql: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<Value>, StoreError> {
    Ok(rows::<(Value,)>(connection, sql, parameters)?.into_iter().map(|(value,)| value).collect())
}

/// `SELECT` of a product's sizes with their reserved units, in one statement (one consistent snapshot).
fn sizes_query() -> &'static str {
    static QUERY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    QUERY.get_or_init(|| {
        format!(
            "SELECT s.size, s.stock, s.low_stock_threshold, {RESERVED_UNITS} AS reserved \
             FROM sizes s WHERE s.product = ?1 ORDER BY s.rowid"
        )
    })
}

/// `SELECT` of one size (`?1` product, `?3` size) with its reserved units.
fn size_query() -> &'static str {
    static QUERY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    QUERY.get_or_init(|| {
        format!(
            "SELECT s.size, s.stock, s.low_stock_threshold, {RESERVED_UNITS} AS reserved \
             FROM sizes s WHERE s.product = ?1 AND s.size = ?3"
        )
    })
}

/// `SELECT` of a reservation joined with its items, in item order (`?1` the reference).
const RESERVATION_QUERY: &str = "SELECT r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
     FROM reservations r JOIN reservation_items ri ON ri.reference = r.reference \
     WHERE r.reference = ?1 ORDER BY ri.rowid";

/// The columns of a reservation joined with one of its items.
type ReservationColumns = (String, i64, i64, String, String, i64);

mod group_commit;
mod migrate;
mod writes;

use group_commit::Writer;
pub use group_commit::WriterCounts;

/// The ledger's operations on this store, as [`crate::ledger::Ledger`] documents them.
impl SqliteStore {
    pub async fn reserve(
        &self,
        reference: &str,
        lines: &[CartLine],
        ttl: ReservationTtl,
        now: Timestamp,
    ) -> Result<ReserveOutcome, StoreError> {
        let (reference, lines, outbox) = (reference.to_owned(), lines.to_vec(), self.outbox());
        self.writer.write(move |connection| writes::reserve(connection, outbox, (&reference, &lines), ttl, now)).await
    }

    pub async fn reservation(&self, reference: &str) -> Result<Option<ReservationRecord>, StoreError> {
        let reference = reference.to_owned();
        self.readers.read(move |connection| writes::load_reservation(connection, &reference)).await
    }

    pub async fn release(&self, reference: &str, now: Timestamp) -> Result<ReleaseOutcome, StoreError> {
        let (reference, outbox) = (reference.to_owned(), self.outbox());
        self.writer.write(move |connection| writes::release(connection, outbox, &reference, now)).await
    }

    pub async fn release_expired(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let queue_for_payload = self.projection.is_some();
        self.writer.write(move |connection| writes::release_expired(connection, queue_for_payload, now)).await
    }

    pub async fn expired_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.readers
            .read(move |connection| column(connection, reads::EXPIRED_CANDIDATES, (now.unix_millis(), limit)))
            .await
    }

    pub async fn expire_one(&self, reference: &str, now: Timestamp) -> Result<bool, StoreError> {
        let (reference, outbox) = (reference.to_owned(), self.outbox());
        self.writer.write(move |connection| writes::expire(connection, outbox, &reference, now)).await
    }

    pub async fn product_stock(&self, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
        let product = product.to_owned();
        self.readers.read(move |connection| writes::sizes_of(connection, &product, now)).await
    }

    pub async fn every_size(&self, now: Timestamp) -> Result<Vec<LedgerSize>, StoreError> {
        self.readers
            .read(move |connection| {
                let query = format!(
                    "SELECT s.product, s.size, s.stock, s.low_stock_threshold, {RESERVED_UNITS} AS reserved, \
                       s.alert_state FROM sizes s ORDER BY s.product, s.rowid"
                );
                // ?1 is unused: RESERVED_UNITS reads now from ?2.
                ledger_sizes_from_rows(rows::<LedgerSizeColumns>(connection, &query, (0, now.unix_millis()))?)
            })
            .await
    }

    pub async fn record_stock_alerts(
        &self,
        crossings: Vec<AlertCrossing>,
        now: Timestamp,
    ) -> Result<Vec<StockAlert>, StoreError> {
        self.writer.write(move |connection| writes::record_stock_alerts(connection, &crossings, now)).await
    }

    pub async fn claim_stock_alerts(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<StockAlert>, StoreError> {
        self.writer.write(move |connection| writes::claim_stock_alerts(connection, now, until, limit)).await
    }

    pub async fn stock_alert_delivered(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.writer.write(move |connection| writes::stock_alert_delivered(connection, id, now)).await
    }

    pub async fn stock_alert_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        let error = error.to_owned();
        self.writer.write(move |connection| writes::stock_alert_failed(connection, id, &error, retry_at)).await
    }

    pub async fn record_movement(
        &self,
        request: MovementRequest,
        now: Timestamp,
    ) -> Result<MovementOutcome, StoreError> {
        let outbox = self.outbox();
        self.writer.write(move |connection| writes::record_movement(connection, outbox, &request, now)).await
    }

    pub async fn monitoring(&self, now: Timestamp) -> Result<Monitoring, StoreError> {
        let ledger_writes = self.writer.counts();
        self.readers.read(move |connection| monitoring(connection, now.unix_millis(), ledger_writes)).await
    }

    pub async fn movement_totals(&self, since: Timestamp) -> Result<Vec<MovementTotal>, StoreError> {
        let since = since.unix_millis();
        self.readers.read(move |connection| totals_from_rows(rows(connection, reads::MOVEMENT_TOTALS, [since])?)).await
    }

    pub async fn apply_stripe_event(
        &self,
        event: &StripeEventRecord,
        action: &StripeAction,
        now: Timestamp,
    ) -> Result<EventOutcome, StoreError> {
        let (event, action, outbox) = (event.clone(), action.clone(), self.outbox());
        self.writer.write(move |connection| writes::apply_stripe_event(connection, outbox, &event, &action, now)).await
    }

    pub async fn open_conflicts(&self, limit: u32) -> Result<Vec<ConflictRecord>, StoreError> {
        self.readers
            .read(move |connection| {
                rows::<ConflictColumns>(connection, OPEN_CONFLICTS_QUERY, [limit])?
                    .into_iter()
                    .map(conflict_from_columns)
                    .collect()
            })
            .await
    }

    pub async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
        now: Timestamp,
    ) -> Result<ResolveOutcome, StoreError> {
        let resolution = resolution.to_owned();
        self.writer.write(move |connection| writes::resolve_conflict(connection, id, &resolution, now)).await
    }

    pub async fn prune_stripe_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = before.unix_millis();
        self.writer.write(move |connection| writes::prune_stripe_events(connection, before)).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.readers.read(|connection| column::<i64>(connection, "SELECT 1", []).map(drop)).await
    }

    pub async fn movement(&self, id: i64) -> Result<Option<MovementRecord>, StoreError> {
        self.readers
            .read(move |connection| {
                rows::<MovementColumns>(connection, reads::MOVEMENT, [id])?.pop().map(movement_from_columns).transpose()
            })
            .await
    }

    pub async fn movement_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        self.readers.read(move |connection| column(connection, reads::MOVEMENT_IDS, (after, limit))).await
    }

    pub async fn ledger_products(&self) -> Result<Vec<String>, StoreError> {
        self.readers.read(move |connection| column(connection, reads::LEDGER_PRODUCTS, [])).await
    }

    pub async fn import_size(
        &self,
        (product, size): (&str, &str),
        stock: Quantity,
        low_stock_threshold: Quantity,
        reason: &str,
        now: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        let (product, size, reason, outbox) = (product.to_owned(), size.to_owned(), reason.to_owned(), self.outbox());
        self.writer
            .write(move |connection| {
                let figures = (stock, low_stock_threshold);
                writes::import_size(connection, outbox, (&product, &size), figures, &reason, now)
            })
            .await
    }

    pub async fn due_lanes(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.readers.read(move |connection| column(connection, reads::DUE_LANES, (now.unix_millis(), limit))).await
    }

    pub async fn lane_entries(&self, lane: &str, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let lane = lane.to_owned();
        self.readers
            .read(move |connection| {
                outbox_entries_from_rows(rows::<OutboxColumns>(connection, reads::LANE_ENTRIES, (&lane, limit))?)
            })
            .await
    }

    pub async fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<bool, StoreError> {
        let (id, revision) = (entry.id, entry.revision);
        self.writer.write(move |connection| writes::outbox_delivered(connection, id, revision)).await
    }

    pub async fn outbox_failed(&self, entry: &OutboxEntry, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        let (id, lane, error, retry_at) = (entry.id, entry.lane.clone(), error.to_owned(), retry_at.unix_millis());
        self.writer.write(move |connection| writes::outbox_failed(connection, (id, &lane), &error, retry_at)).await
    }

    pub async fn claim_lane(&self, lane: &str, claim: &LaneClaim, now: Timestamp) -> Result<bool, StoreError> {
        let (lane, owner, until) = (lane.to_owned(), claim.owner.clone(), claim.until.unix_millis());
        self.writer
            .write(move |connection| writes::claim_lane(connection, &lane, &owner, (now.unix_millis(), until)))
            .await
    }

    pub async fn release_lane(&self, lane: &str, owner: &str) -> Result<(), StoreError> {
        let (lane, owner) = (lane.to_owned(), owner.to_owned());
        self.writer.write(move |connection| writes::release_lane(connection, &lane, &owner)).await
    }

    /// Closes every connection (the WAL is checkpointed when the last one closes).
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close();
    }
}

/// The figures an operator watches, read in one transaction of a reader connection (one snapshot).
fn monitoring(connection: &Connection, now: i64, ledger_writes: WriterCounts) -> Result<Monitoring, StoreError> {
    let snapshot = connection.unchecked_transaction()?;
    let counts = rows::<MonitoringCounts>(&snapshot, reads::MONITORING_COUNTS, [now])?
        .pop()
        .ok_or_else(|| StoreError::Inconsistent("the monitoring counts gave no row".to_owned()))?;
    let oldest = rows::<SummaryColumns>(&snapshot, reads::OLDEST_ACTIVE, (now, OLDEST_LISTED))?;
    let alerts = rows::<(i64, Option<String>)>(&snapshot, ALERT_STATUS_QUERY, [])?.pop().map(alert_status);
    monitoring_from_rows(counts, oldest, alerts.unwrap_or_default(), ledger_writes)
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
