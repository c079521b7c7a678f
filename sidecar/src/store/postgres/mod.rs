//! The ledger in PostgreSQL, for shops that run several sidecars (several app servers, high availability,
//! blue-green deploys) on one database. Every decision runs in a READ COMMITTED transaction that locks what it
//! decides on before reading it, in one order (reservations, then their sizes sorted by product and size; see
//! migrations/postgres), so two sidecars can never both take the last unit; reservations and Stripe events are
//! decided in batches, many in one transaction (see `batch`), other decisions one transaction each; Stripe events
//! are recorded under their unique id in the transaction of their effect; cleanup claims expired reservations with
//! `FOR UPDATE SKIP LOCKED`, and the projection claims outbox lanes with a lease, so each change is applied and
//! delivered once however many sidecars run. A deadlock or serialization failure PostgreSQL reports, or a unique
//! key another sidecar took meanwhile, rolls the decision back and runs it again.

mod batch;
mod decisions;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};

use super::columns::{
    ALERT_COLUMNS, ALERT_STATUS_QUERY, AlertColumns, CONFLICT_QUERY, ConflictColumns, LedgerSizeColumns,
    MovementColumns, OPEN_CONFLICTS_QUERY, RESOLVE_CONFLICT, SizeColumns, alert_status, alerts_from_rows,
    conflict_from_columns, ledger_sizes_from_rows, monitoring_from_rows, movement_from_columns,
    outbox_entries_from_rows, reads, reservation_from_rows, sizes_from_rows, totals_from_rows,
};
use super::decide;
use super::{
    AlertCrossing, ConflictRecord, EventOutcome, ImportOutcome, LaneClaim, LedgerSize, Monitoring, MovementOutcome,
    MovementRecord, MovementRequest, MovementTotal, OLDEST_LISTED, OutboxEntry, ProjectionSettings, ReleaseOutcome,
    ReservationRecord, ReserveOutcome, ResolveOutcome, SizeRecord, StockAlert, StoreError, StripeAction,
    StripeEventRecord, WriterCounts,
};

/// How many times a decision PostgreSQL aborted as a deadlock or a serialization failure runs again.
const ATTEMPTS: u32 = 8;
/// How long a request waits for a free connection of the pool before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Units held by a size's reservations at `$2` (now), as in the SQLite store: `held_units` (kept by triggers)
/// less the items of active reservations past their expiry that cleanup has not marked expired yet.
macro_rules! reserved_units {
    () => {
        "(s.held_units - COALESCE((SELECT SUM(ri.quantity) FROM reservation_items ri \
          WHERE ri.product = s.product AND ri.size = s.size AND ri.holds_until > 0 AND ri.holds_until <= $2), 0))\
          ::BIGINT"
    };
}

/// The columns of a reservation joined with one of its items.
type ReservationColumns = (String, i64, i64, String, String, i64);

/// The PostgreSQL ledger.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// Whether ledger changes are queued for Payload, and what wakes the projection.
    projection: Option<Projection>,
    counters: Arc<Counters>,
    /// Where reservations and Stripe events queue for their next batch; `None` in the store the batching tasks
    /// themselves decide with.
    queues: Option<Queues>,
}

#[derive(Debug, Clone)]
struct Queues {
    reservations: tokio::sync::mpsc::Sender<batch::Queued<decisions::ReserveRequest>>,
    events: tokio::sync::mpsc::Sender<batch::Queued<decisions::EventRequest>>,
}

#[derive(Debug, Clone)]
struct Projection {
    grace_millis: i64,
}

/// Decisions run and transactions committed (a decision that had to run again commits once).
#[derive(Debug, Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

/// How long a statement waits for a row or table lock that another process (a long transaction of an operator,
/// a migration) holds before the decision fails as [`StoreError::Busy`], as SQLite's busy timeout does.
const LOCK_TIMEOUT: &str = "5s";

/// PostgreSQL's SQLSTATE of a store failure, if it is one.
fn sqlstate(error: &StoreError) -> Option<String> {
    let StoreError::Database(error) = error else {
        return None;
    };
    (**error)
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlx::Error::as_database_error)
        .and_then(|database| database.code().map(|code| code.into_owned()))
}

/// Whether a store failure is PostgreSQL aborting a transaction that can simply run again: a deadlock (40P01) or
/// a serialization failure (40001).
fn is_retryable(error: &StoreError) -> bool {
    matches!(sqlstate(error).as_deref(), Some("40P01" | "40001"))
}

/// Whether a decision that plans on unique keys runs again: [`is_retryable`], or another sidecar took one of its
/// keys meanwhile ([`decisions::is_key_taken`]).
fn retry_or_key_taken(error: &StoreError) -> bool {
    is_retryable(error) || decisions::is_key_taken(error)
}

/// A lock that was not granted within [`LOCK_TIMEOUT`] (55P03) is [`StoreError::Busy`]: transient, answered 503
/// with Retry-After.
fn busy_if_locked(error: StoreError) -> StoreError {
    match (sqlstate(&error).as_deref(), error) {
        (Some("55P03"), StoreError::Database(error)) => StoreError::Busy(error),
        (_, error) => error,
    }
}

/// Runs a decision (an expression of `$connection`, a `&mut PgConnection` inside a transaction) and commits it;
/// a deadlock or serialization failure rolls it back and runs it again, up to [`ATTEMPTS`] times in all.
macro_rules! in_transaction {
    ($store:expr, |$connection:ident| $decision:expr) => {
        in_transaction!($store, retry_if is_retryable, |$connection| $decision)
    };
    ($store:expr, retry_if $retry:expr, |$connection:ident| $decision:expr) => {{
        let store: &PostgresStore = $store;
        let mut attempt = 1;
        loop {
            store.counters.writes.fetch_add(1, Ordering::Relaxed);
            let mut transaction = store.pool.begin().await?;
            let $connection: &mut PgConnection = &mut *transaction;
            let outcome = match $decision.await {
                Ok(value) => transaction.commit().await.map(|()| value).map_err(StoreError::from),
                Err(error) => {
                    // Failing to roll back only leaves the connection to be closed by the pool.
                    let _ = transaction.rollback().await;
                    Err(error)
                }
            };
            match outcome {
                Ok(value) => {
                    store.counters.commits.fetch_add(1, Ordering::Relaxed);
                    break Ok(value);
                }
                Err(error) if attempt < ATTEMPTS && $retry(&error) => {
                    tracing::debug!(error = %error, attempt, "PostgreSQL aborted a decision; running it again");
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 2)).await;
                    attempt += 1;
                }
                Err(error) if $retry(&error) => break Err(StoreError::Busy(Arc::new(std::io::Error::other(
                    format!("PostgreSQL aborted the decision {ATTEMPTS} times: {error}"),
                )))),
                Err(error) => break Err(busy_if_locked(error)),
            }
        }
    }};
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:5432/database`) with up to
    /// `max_connections` connections and runs the migrations (several sidecars starting together take turns:
    /// sqlx holds an advisory lock while it migrates). The connections show as `stock-sidecar` in
    /// `pg_stat_activity` unless the URL's `application_name` (or PGAPPNAME) names them otherwise, say one name
    /// per replica.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url)?.options([("lock_timeout", LOCK_TIMEOUT)]);
        if options.get_application_name().is_none() {
            options = options.application_name("stock-sidecar");
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let deciding = PostgresStore { pool, projection: None, counters: Arc::default(), queues: None };
        let queues = Queues { reservations: batch::start(deciding.clone()), events: batch::start(deciding.clone()) };
        Ok(PostgresStore { queues: Some(queues), ..deciding })
    }

    /// With settings, every ledger change from now on also queues, in its own transaction, what Payload must show
    /// (the outbox); without (no PAYLOAD_URL) nothing is queued.
    pub fn with_projection(mut self, settings: Option<ProjectionSettings>) -> Self {
        self.projection = settings.map(|settings| Projection {
            grace_millis: i64::try_from(settings.payload_save_grace.as_millis()).unwrap_or(i64::MAX),
        });
        self
    }

    fn outbox(&self) -> decisions::Outbox {
        match &self.projection {
            Some(projection) => decisions::Outbox::new(true, projection.grace_millis),
            None => decisions::Outbox::new(false, 0),
        }
    }

    /// Takes one decision in a transaction of its own, planned again if another sidecar took one of its keys
    /// meanwhile.
    async fn decide_alone<Decision: batch::Batched>(
        &self,
        decision: &Decision,
        outbox: decisions::Outbox,
    ) -> Result<Decision::Outcome, StoreError> {
        let mut outcomes = in_transaction!(self, retry_if retry_or_key_taken, |connection| Decision::decide_all(
            connection,
            outbox.clone(),
            std::slice::from_ref(decision)
        ))?;
        outcomes
            .pop()
            .ok_or_else(|| StoreError::Inconsistent(format!("a {} was decided without an outcome", Decision::NAME)))
    }
}

/// `SELECT` of the sizes of the products in `$1` (an array) with their reserved units at `$2`.
const SIZES_QUERY: &str = concat!(
    "SELECT s.product, s.size, s.stock, s.low_stock_threshold, ",
    reserved_units!(),
    " AS reserved FROM sizes s WHERE s.product = ANY($1) ORDER BY s.product, s.seq"
);

/// `SELECT` of the sizes named by the pairs of `$1` (products) and `$3` (labels), with their reserved units at `$2`.
const SIZE_PAIRS_QUERY: &str = concat!(
    "SELECT s.product, s.size, s.stock, s.low_stock_threshold, ",
    reserved_units!(),
    " AS reserved FROM UNNEST($1::TEXT[], $3::TEXT[]) AS asked (product, size) \
     JOIN sizes s ON s.product = asked.product AND s.size = asked.size"
);

/// The sizes of `products` at `now`, each product's in the order they were added.
async fn sizes_of(
    connection: &mut PgConnection,
    products: &[&str],
    now: Timestamp,
) -> Result<Vec<(String, SizeRecord)>, StoreError> {
    let rows: Vec<SizeColumns> =
        sqlx::query_as(SIZES_QUERY).bind(products).bind(now.unix_millis()).fetch_all(&mut *connection).await?;
    sizes_from_rows(rows)
}

/// A reservation with its items; `lock` takes the reservation's row lock for the rest of the transaction.
async fn load_reservation(
    connection: &mut PgConnection,
    reference: &str,
    lock: bool,
) -> Result<Option<ReservationRecord>, StoreError> {
    const PLAIN: &str = "SELECT r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
         FROM reservations r JOIN reservation_items ri ON ri.reference = r.reference \
         WHERE r.reference = $1 ORDER BY ri.seq";
    const LOCKING: &str = "SELECT r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
         FROM reservations r JOIN reservation_items ri ON ri.reference = r.reference \
         WHERE r.reference = $1 ORDER BY ri.seq FOR UPDATE OF r";
    let rows: Vec<ReservationColumns> =
        sqlx::query_as(if lock { LOCKING } else { PLAIN }).bind(reference).fetch_all(&mut *connection).await?;
    reservation_from_rows(reference, rows)
}

/// The reservations under `references`, each with its items, by reference; a reference nobody reserved is absent.
/// `lock` takes their row locks for the rest of the transaction, in reference order.
async fn load_reservations(
    connection: &mut PgConnection,
    references: &[&str],
    lock: bool,
) -> Result<std::collections::BTreeMap<String, ReservationRecord>, StoreError> {
    // Driven by the array, one index lookup per reference: `WHERE r.reference = ANY($1)` got a generic plan that
    // scanned every reservation item (measured: 4 ms against 0.08 ms at 24,000 items, most of a batch).
    const PLAIN: &str = "SELECT r.reference, r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
         FROM UNNEST($1::TEXT[]) AS asked (reference) \
         JOIN reservations r ON r.reference = asked.reference \
         JOIN reservation_items ri ON ri.reference = r.reference \
         ORDER BY r.reference, ri.seq";
    const LOCKING: &str = "SELECT r.reference, r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
         FROM UNNEST($1::TEXT[]) AS asked (reference) \
         JOIN reservations r ON r.reference = asked.reference \
         JOIN reservation_items ri ON ri.reference = r.reference \
         ORDER BY r.reference, ri.seq FOR UPDATE OF r";
    let rows: Vec<(String, String, i64, i64, String, String, i64)> =
        sqlx::query_as(if lock { LOCKING } else { PLAIN }).bind(references).fetch_all(&mut *connection).await?;
    let mut by_reference: std::collections::BTreeMap<String, Vec<ReservationColumns>> = Default::default();
    for (reference, status, created_at, expires_at, product, size, quantity) in rows {
        by_reference.entry(reference).or_default().push((status, created_at, expires_at, product, size, quantity));
    }
    let mut records = std::collections::BTreeMap::new();
    for (reference, rows) in by_reference {
        if let Some(record) = reservation_from_rows(&reference, rows)? {
            records.insert(reference, record);
        }
    }
    Ok(records)
}

/// The ledger's operations on this store, as [`crate::ledger::Ledger`] documents them.
impl PostgresStore {
    pub async fn reserve(
        &self,
        reference: &str,
        lines: &[CartLine],
        ttl: ReservationTtl,
        now: Timestamp,
    ) -> Result<ReserveOutcome, StoreError> {
        let request = decisions::ReserveRequest { reference: reference.to_owned(), lines: lines.to_vec(), ttl, now };
        match &self.queues {
            Some(queues) => batch::decide_in_next_batch(&queues.reservations, request, self.outbox()).await,
            None => self.decide_alone(&request, self.outbox()).await,
        }
    }

    pub async fn reservation(&self, reference: &str) -> Result<Option<ReservationRecord>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        load_reservation(&mut connection, reference, false).await
    }

    pub async fn release(&self, reference: &str, now: Timestamp) -> Result<ReleaseOutcome, StoreError> {
        in_transaction!(self, |connection| decisions::release(connection, self.outbox(), reference, now))
    }

    pub async fn release_expired(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        in_transaction!(self, |connection| decisions::release_expired(connection, self.outbox(), now))
    }

    pub async fn expired_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        let query = sqlx::query_scalar(reads::EXPIRED_CANDIDATES).bind(now.unix_millis()).bind(i64::from(limit));
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn expire_one(&self, reference: &str, now: Timestamp) -> Result<bool, StoreError> {
        in_transaction!(self, |connection| decisions::expire(connection, self.outbox(), reference, now))
    }

    pub async fn product_stock(&self, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
        let mut connection = self.pool.acquire().await?;
        let sizes = sizes_of(&mut connection, &[product], now).await?;
        Ok(sizes.into_iter().map(|(_, record)| record).collect())
    }

    pub async fn every_size(&self, now: Timestamp) -> Result<Vec<LedgerSize>, StoreError> {
        static QUERY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let query = QUERY.get_or_init(|| {
            format!(
                "SELECT s.product, s.size, s.stock, s.low_stock_threshold, {} AS reserved, s.alert_state \
                 FROM sizes s ORDER BY s.product, s.seq",
                reserved_units!().replace("$2", "$1")
            )
        });
        let mut connection = self.pool.acquire().await?;
        let rows: Vec<LedgerSizeColumns> =
            sqlx::query_as(query.as_str()).bind(now.unix_millis()).fetch_all(&mut *connection).await?;
        ledger_sizes_from_rows(rows)
    }

    pub async fn record_stock_alerts(
        &self,
        crossings: Vec<AlertCrossing>,
        now: Timestamp,
    ) -> Result<Vec<StockAlert>, StoreError> {
        static QUERY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        // One statement a crossing, each committed alone: the compare-and-set on the size's alert state and the
        // alert's insert commit together, and no transaction holds more than one size's row lock.
        let query = QUERY.get_or_init(|| {
            format!(
                "WITH crossed AS (UPDATE sizes SET alert_state = $3 \
                   WHERE product = $1 AND size = $2 AND alert_state = $4 RETURNING product, size) \
                 INSERT INTO stock_alerts (product, size, previous_state, state, stock, reserved, \
                   low_stock_threshold, created_at, delivered_at, next_attempt_at) \
                 SELECT product, size, $4, $3, $5, $6, $7, $8, $9, $8 FROM crossed RETURNING {ALERT_COLUMNS}"
            )
        });
        let now = now.unix_millis();
        let mut rows: Vec<AlertColumns> = Vec::new();
        for crossing in &crossings {
            let level = &crossing.size.level;
            let row: Result<Option<AlertColumns>, sqlx::Error> = sqlx::query_as(query.as_str())
                .bind(&crossing.product)
                .bind(&crossing.size.size)
                .bind(crossing.state().as_str())
                .bind(crossing.previous.as_str())
                .bind(i64::from(level.stock().get()))
                .bind(i64::from(level.reserved().get()))
                .bind(i64::from(level.low_stock_threshold().get()))
                .bind(now)
                .bind(if crossing.deliver { None } else { Some(now) })
                .fetch_optional(&self.pool)
                .await;
            match row {
                Ok(row) => rows.extend(row),
                // Each crossing commits alone: the ones recorded before a failure stay recorded and are answered (to
                // be logged and counted); the failed one is not, and the next check sees it again.
                Err(error) if !rows.is_empty() => {
                    tracing::warn!(error = %error, product = %crossing.product, size = %crossing.size.size,
                        "recording a stock alert failed; the next check tries again");
                }
                Err(error) => return Err(error.into()),
            }
        }
        alerts_from_rows(rows)
    }

    pub async fn claim_stock_alerts(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<StockAlert>, StoreError> {
        static QUERY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        // SKIP LOCKED: two sidecars claiming at once each take other alerts.
        let query = QUERY.get_or_init(|| {
            format!(
                "UPDATE stock_alerts SET claimed_until = $2 WHERE id IN (SELECT id FROM stock_alerts \
                   WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND claimed_until <= $1 \
                   ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 RETURNING {ALERT_COLUMNS}"
            )
        });
        let rows: Vec<AlertColumns> = sqlx::query_as(query.as_str())
            .bind(now.unix_millis())
            .bind(until.unix_millis())
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        alerts_from_rows(rows)
    }

    pub async fn stock_alert_delivered(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        sqlx::query("UPDATE stock_alerts SET delivered_at = $2, claimed_until = 0, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now.unix_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn stock_alert_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE stock_alerts SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, claimed_until = 0 \
             WHERE id = $1",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at.unix_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn record_movement(
        &self,
        request: MovementRequest,
        now: Timestamp,
    ) -> Result<MovementOutcome, StoreError> {
        in_transaction!(self, retry_if retry_or_key_taken, |connection| decisions::record_movement(
            connection,
            self.outbox(),
            &request,
            now
        ))
    }

    pub async fn monitoring(&self, now: Timestamp) -> Result<Monitoring, StoreError> {
        let mut connection = self.pool.acquire().await?;
        let now = now.unix_millis();
        let counts = sqlx::query_as(reads::MONITORING_COUNTS).bind(now).fetch_one(&mut *connection).await?;
        let oldest_query = sqlx::query_as(reads::OLDEST_ACTIVE).bind(now).bind(i64::from(OLDEST_LISTED));
        let oldest = oldest_query.fetch_all(&mut *connection).await?;
        let alerts = alert_status(sqlx::query_as(ALERT_STATUS_QUERY).fetch_one(&mut *connection).await?);
        let ledger_writes = WriterCounts {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        };
        monitoring_from_rows(counts, oldest, alerts, ledger_writes)
    }

    pub async fn movement_totals(&self, since: Timestamp) -> Result<Vec<MovementTotal>, StoreError> {
        let query = sqlx::query_as(reads::MOVEMENT_TOTALS).bind(since.unix_millis());
        totals_from_rows(query.fetch_all(&self.pool).await?)
    }

    pub async fn apply_stripe_event(
        &self,
        event: &StripeEventRecord,
        action: &StripeAction,
        now: Timestamp,
    ) -> Result<EventOutcome, StoreError> {
        let request = decisions::EventRequest { event: event.clone(), action: action.clone(), now };
        match &self.queues {
            Some(queues) => batch::decide_in_next_batch(&queues.events, request, self.outbox()).await,
            None => self.decide_alone(&request, self.outbox()).await,
        }
    }

    pub async fn open_conflicts(&self, limit: u32) -> Result<Vec<ConflictRecord>, StoreError> {
        let rows: Vec<ConflictColumns> =
            sqlx::query_as(OPEN_CONFLICTS_QUERY).bind(i64::from(limit)).fetch_all(&self.pool).await?;
        rows.into_iter().map(conflict_from_columns).collect()
    }

    pub async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
        now: Timestamp,
    ) -> Result<ResolveOutcome, StoreError> {
        // One statement each: the conditional update decides which resolution stands, whichever sidecar runs first.
        let updated = sqlx::query(RESOLVE_CONFLICT)
            .bind(now.unix_millis())
            .bind(resolution)
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let row: Option<ConflictColumns> = sqlx::query_as(CONFLICT_QUERY).bind(id).fetch_optional(&self.pool).await?;
        Ok(decide::resolution(updated > 0, row.map(conflict_from_columns).transpose()?))
    }

    pub async fn prune_stripe_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let deleted = sqlx::query("DELETE FROM stripe_events WHERE received_at < $1")
            .bind(before.unix_millis())
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn movement(&self, id: i64) -> Result<Option<MovementRecord>, StoreError> {
        let row: Option<MovementColumns> = sqlx::query_as(reads::MOVEMENT).bind(id).fetch_optional(&self.pool).await?;
        row.map(movement_from_columns).transpose()
    }

    pub async fn movement_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        let query = sqlx::query_scalar(reads::MOVEMENT_IDS).bind(after).bind(i64::from(limit));
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn ledger_products(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(reads::LEDGER_PRODUCTS).fetch_all(&self.pool).await?)
    }

    pub async fn import_size(
        &self,
        (product, size): (&str, &str),
        stock: Quantity,
        low_stock_threshold: Quantity,
        reason: &str,
        now: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        in_transaction!(self, retry_if retry_or_key_taken, |connection| decisions::import_size(
            connection,
            self.outbox(),
            (product, size),
            (stock, low_stock_threshold),
            reason,
            now
        ))
    }

    pub async fn due_lanes(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        let query = sqlx::query_scalar(reads::DUE_LANES).bind(now.unix_millis()).bind(i64::from(limit));
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn lane_entries(&self, lane: &str, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let query = sqlx::query_as(reads::LANE_ENTRIES).bind(lane).bind(i64::from(limit));
        outbox_entries_from_rows(query.fetch_all(&self.pool).await?)
    }

    pub async fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM outbox WHERE id = $1 AND revision = $2")
            .bind(entry.id)
            .bind(entry.revision)
            .execute(&self.pool)
            .await?;
        Ok(deleted.rows_affected() == 1)
    }

    pub async fn outbox_failed(&self, entry: &OutboxEntry, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        in_transaction!(self, |connection| decisions::outbox_failed(
            connection,
            (entry.id, &entry.lane),
            error,
            retry_at.unix_millis()
        ))
    }

    pub async fn claim_lane(&self, lane: &str, claim: &LaneClaim, now: Timestamp) -> Result<bool, StoreError> {
        // A conditional upsert: a second sidecar claiming the same lane at the same moment waits for the first
        // one's insert, then finds the claim running and changes nothing.
        let claimed = sqlx::query(
            "INSERT INTO outbox_claims (lane, owner, claimed_until) VALUES ($1, $2, $4) \
             ON CONFLICT (lane) DO UPDATE SET owner = EXCLUDED.owner, claimed_until = EXCLUDED.claimed_until \
             WHERE outbox_claims.claimed_until <= $3 OR outbox_claims.owner = EXCLUDED.owner",
        )
        .bind(lane)
        .bind(&claim.owner)
        .bind(now.unix_millis())
        .bind(claim.until.unix_millis())
        .execute(&self.pool)
        .await?;
        Ok(claimed.rows_affected() == 1)
    }

    pub async fn release_lane(&self, lane: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox_claims WHERE lane = $1 AND owner = $2")
            .bind(lane)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
