//! The ledger in an embedded SQLite database (WAL, synchronous=FULL by default). All writes go through one
//! connection, each decision run whole before the next begins, so a check and the write it allows can never
//! interleave with another decision; decisions that queue up meanwhile share one durable commit (group commit,
//! see [`group_commit`]). Reads use a pool of read-only connections.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection};
use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};

use super::columns::{
    ALERT_STATUS_QUERY, ConflictColumns, LedgerSizeColumns, MovementColumns, OPEN_CONFLICTS_QUERY, SummaryColumns,
    TotalColumns, alert_status, conflict_from_columns, ledger_sizes_from_rows, level, movement_columns,
    movement_from_columns, reservation_from_rows, summaries_from_rows, timestamp, totals_from_rows,
};
use super::{
    AlertCrossing, ConflictRecord, EventOutcome, ImportOutcome, LaneClaim, LedgerSize, Monitoring, MovementOutcome,
    MovementRecord, MovementRequest, MovementTotal, OLDEST_LISTED, OutboxEntry, OutboxStatus, OutboxTopic,
    ProjectionSettings, ReleaseOutcome, ReservationRecord, ReserveOutcome, ResolveOutcome, SizeRecord, StockAlert,
    StoreError, StripeAction, StripeEventRecord,
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
/// Read-only connections for GET requests.
const READERS: u32 = 4;

/// Units held by the reservations of one size at `?2` (now): `held_units` (kept by triggers equal to the items
/// with `holds_until > 0`, see migration 0004) less the items of active reservations already past their expiry
/// but not yet marked expired. `holds_until` is the SQL form of stock-core's `Reservation::holds_units` (see
/// [`holds_until`]); the lapsed items are read through a covering index and are few (cleanup marks them).
const RESERVED_UNITS: &str = "s.held_units - COALESCE((SELECT SUM(ri.quantity) FROM reservation_items ri \
    WHERE ri.product = s.product AND ri.size = s.size AND ri.holds_until > 0 AND ri.holds_until <= ?2), 0)";

/// Outbox rows of movements whose Payload document the stock-movements hook is saving itself, still in their grace
/// period (never attempted, not yet due): expected to be there, not a backlog. `?1` is now.
macro_rules! awaiting_payload_save {
    () => {
        "(lane LIKE 'movement:%' AND attempts = 0 AND next_attempt_at > ?1)"
    };
}

/// The embedded SQLite ledger.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write goes through here: one connection on a thread of its own, writes serialized in arrival order
    /// and group-committed (see [`group_commit`]) instead of failing on SQLite's single write lock.
    writer: Writer,
    readers: SqlitePool,
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
        let (synchronous, synchronous_pragma) = match durability {
            SqliteDurability::Full => (SqliteSynchronous::Full, "FULL"),
            SqliteDurability::Normal => (SqliteSynchronous::Normal, "NORMAL"),
        };
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let migrator = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&migrator).await?;
        migrator.close().await;
        let writer = Writer::start(open_writer(options.get_filename(), synchronous_pragma)?)?;
        let readers = SqlitePoolOptions::new().max_connections(READERS).connect_with(options.read_only(true)).await?;
        Ok(SqliteStore { writer, readers, projection: None })
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

/// The writer connection: the same file, pragmas set as the readers' are (WAL was set by the migrations' pool).
fn open_writer(path: &std::path::Path, synchronous: &str) -> Result<rusqlite::Connection, StoreError> {
    let connection = rusqlite::Connection::open(path)?;
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

/// A product's sizes with their figures at `now`, in one statement.
async fn sizes_of(
    connection: &mut SqliteConnection,
    product: &str,
    now: Timestamp,
) -> Result<Vec<SizeRecord>, StoreError> {
    let rows: Vec<(String, i64, i64, i64)> =
        sqlx::query_as(sizes_query()).bind(product).bind(now.unix_millis()).fetch_all(&mut *connection).await?;
    rows.into_iter()
        .map(|(size, stock, threshold, reserved)| Ok(SizeRecord { size, level: level(stock, reserved, threshold)? }))
        .collect()
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

async fn load_reservation(
    connection: &mut SqliteConnection,
    reference: &str,
) -> Result<Option<ReservationRecord>, StoreError> {
    let rows: Vec<ReservationColumns> =
        sqlx::query_as(RESERVATION_QUERY).bind(reference).fetch_all(&mut *connection).await?;
    reservation_from_rows(reference, rows)
}

/// `SELECT` of whole movements, `WHERE` the given condition.
macro_rules! select_movements_where {
    ($condition:literal) => {
        concat!("SELECT ", movement_columns!(), " FROM movements WHERE ", $condition)
    };
}

mod group_commit;
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
        let mut connection = self.readers.acquire().await?;
        load_reservation(&mut connection, reference).await
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
        let rows = sqlx::query(
            "SELECT reference FROM reservations WHERE status = 'active' AND expires_at <= ?1 \
             ORDER BY expires_at, reference LIMIT ?2",
        )
        .bind(now.unix_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.iter().map(|row| row.try_get("reference")).collect::<Result<Vec<String>, _>>()?)
    }

    pub async fn expire_one(&self, reference: &str, now: Timestamp) -> Result<bool, StoreError> {
        let (reference, outbox) = (reference.to_owned(), self.outbox());
        self.writer.write(move |connection| writes::expire(connection, outbox, &reference, now)).await
    }

    pub async fn product_stock(&self, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        sizes_of(&mut connection, product, now).await
    }

    pub async fn every_size(&self, now: Timestamp) -> Result<Vec<LedgerSize>, StoreError> {
        static QUERY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let query = QUERY.get_or_init(|| {
            format!(
                "SELECT s.product, s.size, s.stock, s.low_stock_threshold, {} AS reserved, s.alert_state \
                 FROM sizes s ORDER BY s.product, s.rowid",
                RESERVED_UNITS.replace("?2", "?1")
            )
        });
        let mut connection = self.readers.acquire().await?;
        let rows: Vec<LedgerSizeColumns> =
            sqlx::query_as(query.as_str()).bind(now.unix_millis()).fetch_all(&mut *connection).await?;
        ledger_sizes_from_rows(rows)
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
        let mut connection = self.readers.acquire().await?;
        let now = now.unix_millis();
        let counts = sqlx::query(concat!(
            "SELECT \
               (SELECT COUNT(*) FROM reservations \
                  WHERE (status = 'active' AND expires_at > ?1) OR status = 'processing') AS active, \
               (SELECT COALESCE(SUM(quantity), 0) FROM reservation_items WHERE holds_until > ?1) AS reserved_units, \
               (SELECT COUNT(*) FROM reservations WHERE status = 'active' AND expires_at <= ?1) AS expired, \
               (SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL) AS open_conflicts, \
               (SELECT COUNT(*) FROM outbox WHERE NOT ",
            awaiting_payload_save!(),
            ") AS outbox_backlog, (SELECT MIN(created_at) FROM outbox WHERE NOT ",
            awaiting_payload_save!(),
            ") AS outbox_oldest, (SELECT COUNT(*) FROM outbox WHERE ",
            awaiting_payload_save!(),
            ") AS outbox_awaiting, \
               (SELECT COUNT(*) FROM outbox WHERE attempts > 0) AS outbox_failing, \
               (SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY next_attempt_at DESC LIMIT 1) \
                 AS outbox_last_error",
        ))
        .bind(now)
        .fetch_one(&mut *connection)
        .await?;
        let oldest: Vec<SummaryColumns> = sqlx::query_as(
            "SELECT r.reference, r.status, r.created_at, r.expires_at, \
               (SELECT COALESCE(SUM(ri.quantity), 0) FROM reservation_items ri WHERE ri.reference = r.reference) \
             FROM reservations r WHERE (r.status = 'active' AND r.expires_at > ?1) OR r.status = 'processing' \
             ORDER BY r.created_at, r.reference LIMIT ?2",
        )
        .bind(now)
        .bind(OLDEST_LISTED)
        .fetch_all(&mut *connection)
        .await?;
        let count = |name: &str| -> Result<u64, StoreError> {
            let value: i64 = counts.try_get(name)?;
            u64::try_from(value).map_err(|_| StoreError::Inconsistent(format!("{name} is negative")))
        };
        let alerts = alert_status(sqlx::query_as(ALERT_STATUS_QUERY).fetch_one(&mut *connection).await?);
        Ok(Monitoring {
            active_reservations: count("active")?,
            reserved_units: count("reserved_units")?,
            oldest_active: summaries_from_rows(oldest)?,
            expired_not_released: count("expired")?,
            open_conflicts: count("open_conflicts")?,
            outbox: OutboxStatus {
                backlog: count("outbox_backlog")?,
                awaiting_payload_save: count("outbox_awaiting")?,
                oldest_change_at: counts.try_get::<Option<i64>, _>("outbox_oldest")?.map(timestamp).transpose()?,
                failing: count("outbox_failing")?,
                last_error: counts.try_get("outbox_last_error")?,
            },
            alerts,
            ledger_writes: self.writer.counts(),
        })
    }

    pub async fn movement_totals(&self, since: Timestamp) -> Result<Vec<MovementTotal>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        let rows: Vec<TotalColumns> = sqlx::query_as(
            "SELECT product, type, COUNT(*), SUM(quantity) FROM movements WHERE date >= ?1 \
             GROUP BY product, type ORDER BY product, type",
        )
        .bind(since.unix_millis())
        .fetch_all(&mut *connection)
        .await?;
        totals_from_rows(rows)
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
        let rows: Vec<ConflictColumns> =
            sqlx::query_as(OPEN_CONFLICTS_QUERY).bind(i64::from(limit)).fetch_all(&self.readers).await?;
        rows.into_iter().map(conflict_from_columns).collect()
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
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }
    pub async fn movement(&self, id: i64) -> Result<Option<MovementRecord>, StoreError> {
        let row: Option<MovementColumns> =
            sqlx::query_as(select_movements_where!("id = ?1")).bind(id).fetch_optional(&self.readers).await?;
        row.map(movement_from_columns).transpose()
    }

    pub async fn movement_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT id FROM movements WHERE id > ?1 ORDER BY id LIMIT ?2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.iter().map(|row| row.try_get("id")).collect::<Result<Vec<i64>, _>>()?)
    }

    pub async fn ledger_products(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT product FROM sizes ORDER BY product").fetch_all(&self.readers).await?;
        Ok(rows.iter().map(|row| row.try_get("product")).collect::<Result<Vec<String>, _>>()?)
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
        let rows = sqlx::query(
            "SELECT lane FROM outbox o GROUP BY lane HAVING MAX(next_attempt_at) <= ?1 \
             AND NOT EXISTS (SELECT 1 FROM outbox_claims c WHERE c.lane = o.lane AND c.claimed_until > ?1) \
             ORDER BY MIN(id) LIMIT ?2",
        )
        .bind(now.unix_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.iter().map(|row| row.try_get("lane")).collect::<Result<Vec<String>, _>>()?)
    }

    pub async fn lane_entries(&self, lane: &str, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, topic, subject, lane, revision, attempts, created_at FROM outbox \
             WHERE lane = ?1 ORDER BY id LIMIT ?2",
        )
        .bind(lane)
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        rows.iter()
            .map(|row| {
                let topic: String = row.try_get("topic")?;
                let attempts: i64 = row.try_get("attempts")?;
                Ok(OutboxEntry {
                    id: row.try_get("id")?,
                    topic: OutboxTopic::parse(&topic)
                        .ok_or_else(|| StoreError::Inconsistent(format!("outbox topic {topic:?}")))?,
                    subject: row.try_get("subject")?,
                    lane: row.try_get("lane")?,
                    revision: row.try_get("revision")?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    created_at: timestamp(row.try_get("created_at")?)?,
                })
            })
            .collect()
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
        self.readers.close().await;
    }
}
