//! The ledger in an embedded SQLite database (WAL, synchronous=FULL by default). All writes go through one
//! connection, each decision run whole before the next begins, so a check and the write it allows can never
//! interleave with another decision; decisions that queue up meanwhile share one durable commit (group commit,
//! see [`super::group_commit`]). Reads use a pool of read-only connections.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqliteConnection};
use stock_core::{
    CartLine, MovementDetails, MovementType, ProductSnapshot, Quantity, Reservation, ReservationError,
    ReservationStatus, ReservationTtl, SignedQuantity, SizeStock, StatusChange, StockLevel, StockMovement, Timestamp,
    apply_movement, commit_reserved_sale, reservation_expires_at, validate_cart,
};
use tokio::sync::Notify;

use super::group_commit::Writer;
use super::{
    EventOutcome, ImportOutcome, Monitoring, MovementOrigin, MovementOutcome, MovementRecord, MovementRequest,
    OutboxEntry, OutboxStatus, OutboxTopic, ReleaseOutcome, ReservationRecord, ReservationSummary, ReserveOutcome,
    ReservedItem, SizeRecord, Store, StoreError, StripeAction, StripeEventRecord,
};
use crate::config::SqliteDurability;

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

/// Until when a reservation in `status`, expiring at `expires_at`, holds its units: what
/// `Reservation::holds_units` says, as a column the availability query can compare with now.
fn holds_until(status: ReservationStatus, expires_at: Timestamp) -> i64 {
    match status {
        ReservationStatus::Active => expires_at.unix_millis(),
        ReservationStatus::Processing => i64::MAX,
        _ => 0,
    }
}

/// Outbox rows of movements whose Payload document the stock-movements hook is saving itself, still in their grace
/// period (never attempted, not yet due): expected to be there, not a backlog. `?1` is now.
macro_rules! awaiting_payload_save {
    () => {
        "(lane LIKE 'movement:%' AND attempts = 0 AND next_attempt_at > ?1)"
    };
}

/// The lane of a product's changes: its sizes and its movements reach Payload in the order they were made.
pub(crate) fn product_lane(product: &str) -> String {
    format!("product:{product}")
}

/// Whether this store queues ledger changes for Payload; handed to every helper that changes the ledger, so that
/// the rows are written in the transaction of the change.
#[derive(Debug, Clone, Copy)]
struct Outbox {
    enabled: bool,
    /// How long a movement recorded for Payload's stock-movements hook waits before the outbox creates its document
    /// (see [`ProjectionSettings::payload_save_grace`]).
    payload_save_grace_millis: i64,
}

impl Outbox {
    /// Queues `rows` (topic, subject, lane, delay before the first attempt) in one statement: each round trip to
    /// SQLite's thread costs more than the insert itself. A row already queued for the same subject has its
    /// revision bumped instead (see migration 0003).
    async fn queue(
        self,
        connection: &mut SqliteConnection,
        rows: &[(&str, &str, &str, i64)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if !self.enabled || rows.is_empty() {
            return Ok(());
        }
        let rows = serde_json::to_string(rows).map_err(|error| StoreError::Inconsistent(error.to_string()))?;
        sqlx::query(
            "INSERT INTO outbox (topic, subject, lane, created_at, next_attempt_at) \
             SELECT value ->> 0, value ->> 1, value ->> 2, ?1, ?1 + (value ->> 3) FROM json_each(?2) WHERE true \
             ON CONFLICT (topic, subject) DO UPDATE SET revision = revision + 1",
        )
        .bind(now.unix_millis())
        .bind(rows)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }

    async fn product(self, connection: &mut SqliteConnection, product: &str, now: Timestamp) -> Result<(), StoreError> {
        self.queue(connection, &[("product", product, &product_lane(product), 0)], now).await
    }

    /// A reservation's document and the sizes of every product it holds units of.
    async fn reservation(
        self,
        connection: &mut SqliteConnection,
        reference: &str,
        items: &[ReservedItem],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if !self.enabled {
            return Ok(());
        }
        let mut products: Vec<&str> = items.iter().map(|item| item.product.as_str()).collect();
        products.sort_unstable();
        products.dedup();
        let lanes: Vec<String> = products.iter().map(|product| product_lane(product)).collect();
        let reservation_lane = format!("reservation:{reference}");
        let mut rows: Vec<(&str, &str, &str, i64)> =
            products.iter().zip(&lanes).map(|(product, lane)| ("product", *product, lane.as_str(), 0)).collect();
        rows.push(("reservation", reference, &reservation_lane, 0));
        self.queue(connection, &rows, now).await
    }

    /// A movement's document, and its product's sizes.
    async fn movement(
        self,
        connection: &mut SqliteConnection,
        id: i64,
        product: &str,
        origin: MovementOrigin,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let subject = id.to_string();
        let product_lane = product_lane(product);
        let sizes = ("product", product, product_lane.as_str(), 0);
        match origin {
            MovementOrigin::Sidecar => {
                self.queue(connection, &[sizes, ("movement", &subject, &product_lane, 0)], now).await
            }
            // In a lane of its own, so that its grace period holds up nothing else.
            MovementOrigin::Payload => {
                let lane = format!("movement:{id}");
                let grace = self.payload_save_grace_millis;
                self.queue(connection, &[sizes, ("movement", &subject, &lane, grace)], now).await
            }
        }
    }
}

/// The embedded SQLite ledger.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    /// Every write goes through here: one connection, writes serialized in arrival order and group-committed
    /// (see [`super::group_commit`]) instead of failing on SQLite's single write lock.
    writer: Writer,
    /// The pool holding the writer's one connection, closed last.
    writer_pool: SqlitePool,
    readers: SqlitePool,
    /// Whether ledger changes are queued for Payload, and how.
    projection: Option<Projection>,
}

#[derive(Debug, Clone)]
struct Projection {
    /// Woken when a transaction that queued changes commits.
    wakeup: Arc<Notify>,
    grace_millis: i64,
}

/// How the store queues ledger changes for Payload.
#[derive(Debug, Clone)]
pub struct ProjectionSettings {
    /// Woken whenever a transaction that queued changes commits.
    pub wakeup: Arc<Notify>,
    /// How long the outbox waits before creating the Payload document of a movement that Payload's
    /// stock-movements hook asked for: the hook saves that document itself right after the sidecar answers, so
    /// the outbox only fills in for a save that failed, and otherwise finds the document there (unique
    /// idempotencyKey).
    pub payload_save_grace: Duration,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) with durable commits and runs the
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        SqliteStore::open(url, SqliteDurability::Full).await
    }

    /// Opens (creating if needed) the database at `url` with the given durability and runs the migrations.
    pub async fn open(url: &str, durability: SqliteDurability) -> Result<Self, StoreError> {
        let synchronous = match durability {
            SqliteDurability::Full => SqliteSynchronous::Full,
            SqliteDurability::Normal => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer_pool = SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer_pool).await?;
        let readers = SqlitePoolOptions::new().max_connections(READERS).connect_with(options.read_only(true)).await?;
        let writer = Writer::start(&writer_pool).await?;
        Ok(SqliteStore { writer, writer_pool, readers, projection: None })
    }

    /// From now on every ledger change also writes, in its own transaction, what Payload must show (the outbox),
    /// and wakes the projection when it commits. Without this (no PAYLOAD_URL) nothing is queued.
    pub fn with_projection(mut self, settings: ProjectionSettings) -> Self {
        let grace_millis = i64::try_from(settings.payload_save_grace.as_millis()).unwrap_or(i64::MAX);
        self.projection = Some(Projection { wakeup: settings.wakeup, grace_millis });
        self
    }

    fn outbox(&self) -> Outbox {
        match &self.projection {
            Some(projection) => Outbox { enabled: true, payload_save_grace_millis: projection.grace_millis },
            None => Outbox { enabled: false, payload_save_grace_millis: 0 },
        }
    }

    /// Tells the projection worker that a transaction queued changes.
    fn changes_committed(&self) {
        if let Some(projection) = &self.projection {
            projection.wakeup.notify_one();
        }
    }

    /// Closes every connection (the WAL is checkpointed when the last one closes).
    pub async fn close(&self) {
        self.writer.close().await;
        self.readers.close().await;
        self.writer_pool.close().await;
    }
}

fn quantity(value: i64, what: &str) -> Result<Quantity, StoreError> {
    u32::try_from(value)
        .ok()
        .and_then(|units| Quantity::new(units).ok())
        .ok_or_else(|| StoreError::Inconsistent(format!("{what} holds {value}, not a quantity")))
}

fn timestamp(value: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(value).map_err(|_| StoreError::Inconsistent(format!("{value} is not an instant")))
}

fn level(stock: i64, reserved: i64, threshold: i64) -> Result<StockLevel, StoreError> {
    StockLevel::new(quantity(stock, "stock")?, quantity(reserved, "reserved units")?, quantity(threshold, "threshold")?)
        .map_err(|error| StoreError::Inconsistent(error.to_string()))
}

async fn sizes_of(
    connection: &mut SqliteConnection,
    product: &str,
    now: Timestamp,
) -> Result<Vec<SizeRecord>, StoreError> {
    let sql = sizes_query();
    let rows = sqlx::query(sql).bind(product).bind(now.unix_millis()).fetch_all(&mut *connection).await?;
    rows.iter()
        .map(|row| {
            Ok(SizeRecord {
                size: row.try_get("size")?,
                level: level(row.try_get("stock")?, row.try_get("reserved")?, row.try_get("low_stock_threshold")?)?,
            })
        })
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

async fn load_reservation(
    connection: &mut SqliteConnection,
    reference: &str,
) -> Result<Option<ReservationRecord>, StoreError> {
    // One statement: the reservation's columns repeated on each of its items (every reservation has at least one).
    let rows = sqlx::query(
        "SELECT r.reference, r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
         FROM reservations r JOIN reservation_items ri ON ri.reference = r.reference \
         WHERE r.reference = ?1 ORDER BY ri.rowid",
    )
    .bind(reference)
    .fetch_all(&mut *connection)
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let status: String = first.try_get("status")?;
    let status = ReservationStatus::parse(&status).map_err(|error| StoreError::Inconsistent(error.to_string()))?;
    let items = rows
        .iter()
        .map(|item| {
            Ok(ReservedItem {
                product: item.try_get("product")?,
                size: item.try_get("size")?,
                quantity: quantity(item.try_get("quantity")?, "a reservation item")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(ReservationRecord {
        reference: first.try_get("reference")?,
        status,
        created_at: timestamp(first.try_get("created_at")?)?,
        expires_at: timestamp(first.try_get("expires_at")?)?,
        items,
    }))
}

/// Whether a new request for an existing reference asks for exactly the same units (lines summed per size).
fn same_items(existing: &[ReservedItem], lines: &[CartLine]) -> bool {
    let mut requested: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for line in lines {
        *requested.entry((line.product.as_str(), line.size.as_str())).or_default() += line.quantity;
    }
    let reserved: BTreeMap<(&str, &str), f64> =
        existing.iter().map(|item| ((item.product.as_str(), item.size.as_str()), f64::from(item.quantity))).collect();
    requested == reserved
}

fn movement_key(reference: &str) -> String {
    format!("movement:{reference}")
}

/// `SELECT` of whole movements, `WHERE` the given condition.
macro_rules! select_movements_where {
    ($condition:literal) => {
        concat!(
            "SELECT id, product, size, type, quantity, stock_before, stock_after, reason, reference, ",
            "order_reference, date FROM movements WHERE ",
            $condition
        )
    };
}

async fn load_movement(connection: &mut SqliteConnection, key: &str) -> Result<Option<MovementRecord>, StoreError> {
    let row =
        sqlx::query(select_movements_where!("idempotency_key = ?1")).bind(key).fetch_optional(&mut *connection).await?;
    row.as_ref().map(movement_from_row).transpose()
}

fn movement_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<MovementRecord, StoreError> {
    let inconsistent = |error: stock_core::MovementError| StoreError::Inconsistent(error.to_string());
    let kind: String = row.try_get("type")?;
    Ok(MovementRecord {
        id: row.try_get("id")?,
        product: row.try_get("product")?,
        size: row.try_get("size")?,
        movement: StockMovement {
            kind: MovementType::parse(&kind).map_err(inconsistent)?,
            quantity: SignedQuantity::new(row.try_get("quantity")?).map_err(inconsistent)?,
            stock_before: quantity(row.try_get("stock_before")?, "stock before")?,
            stock_after: quantity(row.try_get("stock_after")?, "stock after")?,
            details: MovementDetails {
                reason: row.try_get("reason")?,
                reference: row.try_get("reference")?,
                order_reference: row.try_get("order_reference")?,
                date: timestamp(row.try_get("date")?)?,
            },
        },
    })
}

/// Records a movement and sets the size's units on hand to its `stock_after` (and the threshold, if given).
/// Returns the movement's id. The idempotency key, when given, is unique: a second insert fails the transaction.
async fn write_movement(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    key: Option<&str>,
    (product, size): (&str, &str),
    (movement, origin): (&StockMovement, MovementOrigin),
    low_stock_threshold: Option<Quantity>,
) -> Result<i64, StoreError> {
    // Two statements in one round trip (sharing the numbered parameters); the INSERT's row is the only one.
    let rows = sqlx::query(
        "UPDATE sizes SET stock = ?7, low_stock_threshold = COALESCE(?13, low_stock_threshold), updated_at = ?11 \
         WHERE product = ?2 AND size = ?3; \
         INSERT INTO movements (idempotency_key, product, size, type, quantity, stock_before, stock_after, reason, \
         reference, order_reference, date, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         RETURNING id",
    )
    .bind(key)
    .bind(product)
    .bind(size)
    .bind(movement.kind.as_str())
    .bind(movement.quantity.get())
    .bind(i64::from(movement.stock_before))
    .bind(i64::from(movement.stock_after))
    .bind(&movement.details.reason)
    .bind(&movement.details.reference)
    .bind(&movement.details.order_reference)
    .bind(movement.details.date.unix_millis())
    .bind(origin.as_str())
    .bind(low_stock_threshold.map(i64::from))
    .fetch_all(&mut *connection)
    .await?;
    let id: i64 = rows
        .first()
        .ok_or_else(|| StoreError::Inconsistent("a movement insert returned no id".into()))?
        .try_get("id")?;
    outbox.movement(connection, id, product, origin, movement.details.date).await?;
    Ok(id)
}

/// The stock level of one size at `now`.
async fn size_level(
    connection: &mut SqliteConnection,
    product: &str,
    size: &str,
    now: Timestamp,
) -> Result<StockLevel, StoreError> {
    sizes_of(connection, product, now)
        .await?
        .into_iter()
        .find(|record| record.size == size)
        .map(|record| record.level)
        .ok_or_else(|| StoreError::Inconsistent(format!("reserved size {product} {size} is missing from sizes")))
}

/// The stock-core lifecycle of a stored reservation, which decides every change of status.
fn lifecycle_of(record: &ReservationRecord) -> Result<Reservation, StoreError> {
    Reservation::restore(record.created_at, record.expires_at, record.status)
        .map_err(|error| StoreError::Inconsistent(error.to_string()))
}

/// Moves a reservation to `status`, and its items' `holds_until` with it.
async fn set_status(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    record: &ReservationRecord,
    status: ReservationStatus,
    now: Timestamp,
) -> Result<(), StoreError> {
    let finished_at = status.is_terminal().then_some(now.unix_millis());
    sqlx::query(
        "UPDATE reservations SET status = ?2, finished_at = ?3 WHERE reference = ?1; \
         UPDATE reservation_items SET holds_until = ?4 WHERE reference = ?1",
    )
    .bind(&record.reference)
    .bind(status.as_str())
    .bind(finished_at)
    .bind(holds_until(status, record.expires_at))
    .execute(&mut *connection)
    .await?;
    outbox.reservation(connection, &record.reference, &record.items, now).await
}

async fn record_conflict(
    connection: &mut SqliteConnection,
    kind: &'static str,
    reference: &str,
    event_id: &str,
    details: serde_json::Value,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    sqlx::query("INSERT INTO conflicts (kind, reference, event_id, details, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(kind)
        .bind(reference)
        .bind(event_id)
        .bind(details.to_string())
        .bind(now.unix_millis())
        .execute(&mut *connection)
        .await?;
    Ok(EventOutcome::Conflict { kind })
}

/// Sells a reservation's units. A reservation that still holds them sells them (stock and reserved go down
/// together); one that no longer does (late payment) is reserved again first if every size has the units, and
/// is otherwise recorded as an `oversold` conflict, changing nothing else.
async fn commit_reservation(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    reference: &str,
    order_reference: Option<&str>,
    event_id: &str,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let Some(record) = load_reservation(connection, reference).await? else {
        let details = serde_json::json!({ "message": "a payment succeeded for a reference that was never reserved" });
        return record_conflict(connection, "unknown_reference", reference, event_id, details, now).await;
    };
    let mut lifecycle = lifecycle_of(&record)?;
    let late = match lifecycle.commit(now) {
        Ok(StatusChange::Unchanged(status)) => return Ok(EventOutcome::Unchanged { status }),
        Ok(StatusChange::Changed(_)) => false,
        Err(ReservationError::PastExpiry { .. } | ReservationError::NotActive { .. }) => true,
        Err(error) => return Err(StoreError::Inconsistent(error.to_string())),
    };

    let order = order_reference.unwrap_or(reference);
    let details = || MovementDetails {
        reason: format!("Order {order}"),
        reference: Some(reference.to_owned()),
        order_reference: order_reference.map(str::to_owned),
        date: now,
    };
    // Work out every size first, so that a shortage on the last one changes nothing on the first.
    let mut sales = Vec::with_capacity(record.items.len());
    let mut shortages = Vec::new();
    for item in &record.items {
        let level = size_level(connection, &item.product, &item.size, now).await?;
        let held = if late {
            match level.reserve(item.quantity) {
                Ok(held) => held,
                Err(_) => {
                    shortages.push(serde_json::json!({ "product": item.product, "size": item.size,
                        "requested": item.quantity.get(), "available": level.available().get() }));
                    continue;
                }
            }
        } else {
            level
        };
        let applied = commit_reserved_sale(&held, item.quantity, details())
            .map_err(|error| StoreError::Inconsistent(error.to_string()))?;
        sales.push((item, applied.movement));
    }
    if !shortages.is_empty() {
        let details = serde_json::json!({
            "message": "a payment succeeded after its reservation ended, and the units are no longer available",
            "reservationStatus": record.status.as_str(),
            "shortages": shortages,
        });
        return record_conflict(connection, "oversold", reference, event_id, details, now).await;
    }
    for (item, movement) in &sales {
        let key = format!("sale:{reference}:{}:{}", item.product, item.size);
        let sale = (movement, MovementOrigin::Sidecar);
        write_movement(connection, outbox, Some(&key), (&item.product, &item.size), sale, None).await?;
    }
    if late {
        lifecycle.commit_late().map_err(|error| StoreError::Inconsistent(error.to_string()))?;
    }
    set_status(connection, outbox, &record, ReservationStatus::Committed, now).await?;
    Ok(EventOutcome::Committed { late })
}

/// Releases a reservation inside the caller's transaction: the one release decision that the `/v1` route and
/// Stripe's cancellation events share.
async fn release_in(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<ReleaseOutcome, StoreError> {
    let Some(mut record) = load_reservation(connection, reference).await? else {
        return Ok(ReleaseOutcome::NotFound);
    };
    match lifecycle_of(&record)?.release() {
        Ok(StatusChange::Changed(status)) => {
            set_status(connection, outbox, &record, status, now).await?;
            record.status = status;
            Ok(ReleaseOutcome::Released(record))
        }
        Ok(StatusChange::Unchanged(_)) => Ok(ReleaseOutcome::Unchanged(record)),
        Err(ReservationError::AlreadyCommitted { .. }) => Ok(ReleaseOutcome::AlreadyCommitted(record)),
        Err(error) => Err(StoreError::Inconsistent(error.to_string())),
    }
}

async fn release_for_event(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    Ok(match release_in(connection, outbox, reference, now).await? {
        ReleaseOutcome::Released(_) => EventOutcome::Released,
        ReleaseOutcome::Unchanged(record) => EventOutcome::Unchanged { status: record.status },
        ReleaseOutcome::AlreadyCommitted(_) => {
            EventOutcome::Ignored { reason: "the reservation was already paid; its units stay sold" }
        }
        ReleaseOutcome::NotFound => EventOutcome::Ignored { reason: "no reservation has this reference" },
    })
}

async fn start_processing(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let Some(record) = load_reservation(connection, reference).await? else {
        return Ok(EventOutcome::Ignored { reason: "no reservation has this reference" });
    };
    let mut lifecycle = lifecycle_of(&record)?;
    match lifecycle.start_processing(now) {
        Ok(StatusChange::Changed(status)) => {
            set_status(connection, outbox, &record, status, now).await?;
            Ok(EventOutcome::Processing)
        }
        Ok(StatusChange::Unchanged(status)) => Ok(EventOutcome::Unchanged { status }),
        Err(_) => Ok(EventOutcome::Ignored {
            reason: "the reservation no longer holds its units; the payment's success will reserve them again",
        }),
    }
}

/// Reserves `lines` under `reference` if every size has the units (see [`Store::reserve`]).
async fn reserve_in(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    reference: &str,
    lines: &[CartLine],
    ttl: ReservationTtl,
    now: Timestamp,
) -> Result<ReserveOutcome, StoreError> {
    if let Some(existing) = load_reservation(connection, reference).await? {
        return Ok(if same_items(&existing.items, lines) {
            ReserveOutcome::Existing(existing)
        } else {
            ReserveOutcome::ReferenceConflict(existing)
        });
    }

    let mut products: Vec<&str> = lines.iter().map(|line| line.product.as_str()).collect();
    products.sort_unstable();
    products.dedup();
    let mut snapshots = Vec::with_capacity(products.len());
    for product in products {
        let sizes = sizes_of(connection, product, now).await?;
        if !sizes.is_empty() {
            let sizes = sizes.into_iter().map(|record| SizeStock { size: record.size, level: record.level });
            snapshots.push(ProductSnapshot { id: product.to_owned(), sizes: sizes.collect() });
        }
    }
    let validation = validate_cart(&snapshots, lines);
    if !validation.is_ok() {
        return Ok(ReserveOutcome::Rejected(validation));
    }

    let expires_at = reservation_expires_at(now, ttl)
        .map_err(|error: ReservationError| StoreError::Inconsistent(error.to_string()))?;
    let items: Vec<ReservedItem> = validation
        .items
        .into_iter()
        .map(|item| ReservedItem { product: item.product, size: item.size, quantity: item.quantity })
        .collect();
    let rows: Vec<(&str, &str, u32)> =
        items.iter().map(|item| (item.product.as_str(), item.size.as_str(), item.quantity.get())).collect();
    let rows = serde_json::to_string(&rows).map_err(|error| StoreError::Inconsistent(error.to_string()))?;
    // The reservation and all its items in one round trip (two statements sharing the numbered parameters).
    sqlx::query(
        "INSERT INTO reservations (reference, status, created_at, expires_at) VALUES (?1, 'active', ?2, ?3); \
         INSERT INTO reservation_items (reference, product, size, quantity, holds_until) \
         SELECT ?1, value ->> 0, value ->> 1, value ->> 2, ?4 FROM json_each(?5)",
    )
    .bind(reference)
    .bind(now.unix_millis())
    .bind(expires_at.unix_millis())
    .bind(holds_until(ReservationStatus::Active, expires_at))
    .bind(rows)
    .execute(&mut *connection)
    .await?;
    outbox.reservation(connection, reference, &items, now).await?;
    Ok(ReserveOutcome::Created(ReservationRecord {
        reference: reference.to_owned(),
        status: ReservationStatus::Active,
        created_at: now,
        expires_at,
        items,
    }))
}

/// Expires every active reservation due at `now` (see [`Store::release_expired`]); returns their references.
async fn release_expired_in(
    connection: &mut SqliteConnection,
    queue_for_payload: bool,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    // The SQL form of stock-core's `Reservation::expire` on every active reservation due. Their items already
    // stopped counting at the expiry instant (holds_until <= now); zeroing it keeps the column's meaning.
    if queue_for_payload {
        // The outbox rows first, while the reservations due are still the active ones (`WHERE` before
        // `ON CONFLICT` is what SQLite's upsert-from-select needs).
        for statement in [
            "INSERT INTO outbox (topic, subject, lane, created_at, next_attempt_at) \
             SELECT DISTINCT 'product', ri.product, 'product:' || ri.product, ?1, ?1 \
             FROM reservations r JOIN reservation_items ri ON ri.reference = r.reference \
             WHERE r.status = 'active' AND r.expires_at <= ?1 \
             ON CONFLICT (topic, subject) DO UPDATE SET revision = revision + 1",
            "INSERT INTO outbox (topic, subject, lane, created_at, next_attempt_at) \
             SELECT 'reservation', reference, 'reservation:' || reference, ?1, ?1 \
             FROM reservations WHERE status = 'active' AND expires_at <= ?1 \
             ON CONFLICT (topic, subject) DO UPDATE SET revision = revision + 1",
        ] {
            sqlx::query(statement).bind(now.unix_millis()).execute(&mut *connection).await?;
        }
    }
    sqlx::query(
        "UPDATE reservation_items SET holds_until = 0 WHERE reference IN \
         (SELECT reference FROM reservations WHERE status = 'active' AND expires_at <= ?1)",
    )
    .bind(now.unix_millis())
    .execute(&mut *connection)
    .await?;
    let rows = sqlx::query(
        "UPDATE reservations SET status = 'expired', finished_at = ?1 \
         WHERE status = 'active' AND expires_at <= ?1 RETURNING reference",
    )
    .bind(now.unix_millis())
    .fetch_all(&mut *connection)
    .await?;
    let mut references = rows.iter().map(|row| row.try_get("reference")).collect::<Result<Vec<String>, _>>()?;
    references.sort();
    Ok(references)
}

/// Expires one reservation if it is active and due (see [`Store::expire_one`]).
async fn expire_in(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let Some(record) = load_reservation(connection, reference).await? else {
        return Ok(false);
    };
    let mut lifecycle = lifecycle_of(&record)?;
    match lifecycle.expire(now) {
        Ok(StatusChange::Changed(status)) => {
            set_status(connection, outbox, &record, status, now).await?;
            Ok(true)
        }
        // Already finished, not yet due, or processing (a webhook moved it meanwhile): nothing to do.
        Ok(StatusChange::Unchanged(_)) | Err(_) => Ok(false),
    }
}

/// Applies one stock movement (see [`Store::record_movement`]).
async fn record_movement_in(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    request: MovementRequest,
    now: Timestamp,
) -> Result<MovementOutcome, StoreError> {
    let key = request.reference.as_deref().map(movement_key);
    if let Some(key) = &key
        && let Some(previous) = load_movement(connection, key).await?
    {
        return Ok(MovementOutcome::Replayed(previous));
    }

    let sizes = sizes_of(connection, &request.product, now).await?;
    let current = match sizes.into_iter().find(|record| record.size == request.size) {
        Some(record) => record.level,
        None if request.kind == MovementType::Restock => {
            let threshold = request.low_stock_threshold.unwrap_or(Quantity::ZERO);
            sqlx::query(
                "INSERT INTO sizes (product, size, stock, low_stock_threshold, updated_at) VALUES (?1, ?2, 0, ?3, ?4)",
            )
            .bind(&request.product)
            .bind(&request.size)
            .bind(i64::from(threshold))
            .bind(now.unix_millis())
            .execute(&mut *connection)
            .await?;
            level(0, 0, i64::from(threshold))?
        }
        None => return Ok(MovementOutcome::UnknownSize),
    };
    if let Some(expected) = request.expected_stock
        && expected != current.stock()
    {
        return Ok(MovementOutcome::StaleStock { current: current.stock() });
    }

    let details =
        MovementDetails { reason: request.reason, reference: request.reference, order_reference: None, date: now };
    let applied = match apply_movement(&current, request.kind, request.quantity, details) {
        Ok(applied) => applied,
        Err(error) => return Ok(MovementOutcome::Refused(error)),
    };
    let movement = applied.movement;
    let id = write_movement(
        connection,
        outbox,
        key.as_deref(),
        (&request.product, &request.size),
        (&movement, request.origin),
        request.low_stock_threshold,
    )
    .await?;
    Ok(MovementOutcome::Applied(MovementRecord { id, product: request.product, size: request.size, movement }))
}

/// Applies one Stripe event once (see [`Store::apply_stripe_event`]).
async fn apply_stripe_event_in(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    event: &StripeEventRecord,
    action: &StripeAction,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let claimed = sqlx::query(
        "INSERT INTO stripe_events (id, type, outcome, received_at) VALUES (?1, ?2, 'pending', ?3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(now.unix_millis())
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(EventOutcome::Duplicate);
    }
    let outcome = match action {
        StripeAction::Commit { reference, order_reference } => {
            let order_reference = order_reference.as_deref();
            commit_reservation(connection, outbox, reference, order_reference, &event.id, now).await?
        }
        StripeAction::Release { reference } => release_for_event(connection, outbox, reference, now).await?,
        StripeAction::StartProcessing { reference } => start_processing(connection, outbox, reference, now).await?,
        StripeAction::Ignore { reason } => EventOutcome::Ignored { reason },
    };
    sqlx::query("UPDATE stripe_events SET outcome = ?2 WHERE id = ?1")
        .bind(&event.id)
        .bind(outcome.as_str())
        .execute(&mut *connection)
        .await?;
    Ok(outcome)
}

/// Brings one size Payload has into the ledger unless it is there already (see [`Store::import_size`]).
async fn import_size_in(
    connection: &mut SqliteConnection,
    outbox: Outbox,
    (product, size): (&str, &str),
    (stock, low_stock_threshold): (Quantity, Quantity),
    reason: &str,
    now: Timestamp,
) -> Result<ImportOutcome, StoreError> {
    let existing = sizes_of(connection, product, now).await?.into_iter().find(|record| record.size == size);
    if let Some(record) = existing {
        return Ok(ImportOutcome::AlreadyInLedger { stock: record.level.stock() });
    }
    sqlx::query("INSERT INTO sizes (product, size, stock, low_stock_threshold, updated_at) VALUES (?1, ?2, 0, ?3, ?4)")
        .bind(product)
        .bind(size)
        .bind(i64::from(low_stock_threshold))
        .bind(now.unix_millis())
        .execute(&mut *connection)
        .await?;
    let record = if stock == Quantity::ZERO {
        outbox.product(connection, product, now).await?;
        None
    } else {
        let empty = level(0, 0, i64::from(low_stock_threshold))?;
        let quantity =
            SignedQuantity::new(i64::from(stock)).map_err(|error| StoreError::Inconsistent(error.to_string()))?;
        let details = MovementDetails { reason: reason.to_owned(), reference: None, order_reference: None, date: now };
        let movement = apply_movement(&empty, MovementType::Adjustment, quantity, details)
            .map_err(|error| StoreError::Inconsistent(error.to_string()))?
            .movement;
        let key = format!("import:{product}:{size}");
        let sized = (product, size);
        let id =
            write_movement(connection, outbox, Some(&key), sized, (&movement, MovementOrigin::Sidecar), None).await?;
        Some(MovementRecord { id, product: product.to_owned(), size: size.to_owned(), movement })
    };
    Ok(ImportOutcome::Imported(record))
}

#[async_trait]
impl Store for SqliteStore {
    async fn reserve(
        &self,
        reference: &str,
        lines: &[CartLine],
        ttl: ReservationTtl,
        now: Timestamp,
    ) -> Result<ReserveOutcome, StoreError> {
        let (reference, lines, outbox) = (reference.to_owned(), lines.to_vec(), self.outbox());
        let outcome = self
            .writer
            .write(move |connection| {
                Box::pin(async move { reserve_in(connection, outbox, &reference, &lines, ttl, now).await })
            })
            .await?;
        if matches!(outcome, ReserveOutcome::Created(_)) {
            self.changes_committed();
        }
        Ok(outcome)
    }

    async fn reservation(&self, reference: &str) -> Result<Option<ReservationRecord>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        load_reservation(&mut connection, reference).await
    }

    async fn release(&self, reference: &str, now: Timestamp) -> Result<ReleaseOutcome, StoreError> {
        let (reference, outbox) = (reference.to_owned(), self.outbox());
        let outcome = self
            .writer
            .write(move |connection| Box::pin(async move { release_in(connection, outbox, &reference, now).await }))
            .await?;
        if matches!(outcome, ReleaseOutcome::Released(_)) {
            self.changes_committed();
        }
        Ok(outcome)
    }

    async fn release_expired(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let queue_for_payload = self.projection.is_some();
        let references = self
            .writer
            .write(move |connection| {
                Box::pin(async move { release_expired_in(connection, queue_for_payload, now).await })
            })
            .await?;
        if !references.is_empty() {
            self.changes_committed();
        }
        Ok(references)
    }

    async fn expired_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
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

    async fn expire_one(&self, reference: &str, now: Timestamp) -> Result<bool, StoreError> {
        let (reference, outbox) = (reference.to_owned(), self.outbox());
        let expired = self
            .writer
            .write(move |connection| Box::pin(async move { expire_in(connection, outbox, &reference, now).await }))
            .await?;
        if expired {
            self.changes_committed();
        }
        Ok(expired)
    }

    async fn product_stock(&self, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
        let mut connection = self.readers.acquire().await?;
        sizes_of(&mut connection, product, now).await
    }

    async fn record_movement(&self, request: MovementRequest, now: Timestamp) -> Result<MovementOutcome, StoreError> {
        let outbox = self.outbox();
        let outcome = self
            .writer
            .write(move |connection| {
                Box::pin(async move { record_movement_in(connection, outbox, request, now).await })
            })
            .await?;
        if matches!(outcome, MovementOutcome::Applied(_)) {
            self.changes_committed();
        }
        Ok(outcome)
    }

    async fn monitoring(&self, now: Timestamp) -> Result<Monitoring, StoreError> {
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
        let oldest = sqlx::query(
            "SELECT reference, created_at, expires_at FROM reservations \
             WHERE (status = 'active' AND expires_at > ?1) OR status = 'processing' \
             ORDER BY created_at, reference LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&mut *connection)
        .await?;
        let count = |name: &str| -> Result<u64, StoreError> {
            let value: i64 = counts.try_get(name)?;
            u64::try_from(value).map_err(|_| StoreError::Inconsistent(format!("{name} is negative")))
        };
        Ok(Monitoring {
            active_reservations: count("active")?,
            reserved_units: count("reserved_units")?,
            oldest_active: match oldest {
                Some(row) => Some(ReservationSummary {
                    reference: row.try_get("reference")?,
                    created_at: timestamp(row.try_get("created_at")?)?,
                    expires_at: timestamp(row.try_get("expires_at")?)?,
                }),
                None => None,
            },
            expired_not_released: count("expired")?,
            open_conflicts: count("open_conflicts")?,
            outbox: OutboxStatus {
                backlog: count("outbox_backlog")?,
                awaiting_payload_save: count("outbox_awaiting")?,
                oldest_change_at: counts.try_get::<Option<i64>, _>("outbox_oldest")?.map(timestamp).transpose()?,
                failing: count("outbox_failing")?,
                last_error: counts.try_get("outbox_last_error")?,
            },
            ledger_writes: self.writer.counts(),
        })
    }

    async fn apply_stripe_event(
        &self,
        event: &StripeEventRecord,
        action: &StripeAction,
        now: Timestamp,
    ) -> Result<EventOutcome, StoreError> {
        let (event, action, outbox) = (event.clone(), action.clone(), self.outbox());
        let outcome = self
            .writer
            .write(move |connection| {
                Box::pin(async move { apply_stripe_event_in(connection, outbox, &event, &action, now).await })
            })
            .await?;
        if !matches!(outcome, EventOutcome::Duplicate) {
            self.changes_committed();
        }
        Ok(outcome)
    }

    async fn prune_stripe_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        let before = before.unix_millis();
        self.writer
            .write(move |connection| {
                Box::pin(async move {
                    let result = sqlx::query("DELETE FROM stripe_events WHERE received_at < ?1")
                        .bind(before)
                        .execute(connection)
                        .await?;
                    Ok(result.rows_affected())
                })
            })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }
    async fn movement(&self, id: i64) -> Result<Option<MovementRecord>, StoreError> {
        let row = sqlx::query(select_movements_where!("id = ?1")).bind(id).fetch_optional(&self.readers).await?;
        row.as_ref().map(movement_from_row).transpose()
    }

    async fn movement_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT id FROM movements WHERE id > ?1 ORDER BY id LIMIT ?2")
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.iter().map(|row| row.try_get("id")).collect::<Result<Vec<i64>, _>>()?)
    }

    async fn ledger_products(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT product FROM sizes ORDER BY product").fetch_all(&self.readers).await?;
        Ok(rows.iter().map(|row| row.try_get("product")).collect::<Result<Vec<String>, _>>()?)
    }

    async fn import_size(
        &self,
        (product, size): (&str, &str),
        stock: Quantity,
        low_stock_threshold: Quantity,
        reason: &str,
        now: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        let (product, size, reason, outbox) = (product.to_owned(), size.to_owned(), reason.to_owned(), self.outbox());
        let outcome = self
            .writer
            .write(move |connection| {
                Box::pin(async move {
                    let sized = (product.as_str(), size.as_str());
                    import_size_in(connection, outbox, sized, (stock, low_stock_threshold), &reason, now).await
                })
            })
            .await?;
        if matches!(outcome, ImportOutcome::Imported(_)) {
            self.changes_committed();
        }
        Ok(outcome)
    }

    async fn due_lanes(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT lane FROM outbox GROUP BY lane HAVING MAX(next_attempt_at) <= ?1 ORDER BY MIN(id) LIMIT ?2",
        )
        .bind(now.unix_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.iter().map(|row| row.try_get("lane")).collect::<Result<Vec<String>, _>>()?)
    }

    async fn lane_entries(&self, lane: &str, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
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

    async fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<bool, StoreError> {
        let (id, revision) = (entry.id, entry.revision);
        self.writer
            .write(move |connection| {
                Box::pin(async move {
                    let deleted = sqlx::query("DELETE FROM outbox WHERE id = ?1 AND revision = ?2")
                        .bind(id)
                        .bind(revision)
                        .execute(connection)
                        .await?
                        .rows_affected();
                    Ok(deleted == 1)
                })
            })
            .await
    }

    async fn outbox_failed(&self, entry: &OutboxEntry, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        let (id, lane, error, retry_at) = (entry.id, entry.lane.clone(), error.to_owned(), retry_at.unix_millis());
        self.writer
            .write(move |connection| {
                Box::pin(async move {
                    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1")
                        .bind(id)
                        .bind(&error)
                        .execute(&mut *connection)
                        .await?;
                    sqlx::query("UPDATE outbox SET next_attempt_at = MAX(next_attempt_at, ?2) WHERE lane = ?1")
                        .bind(&lane)
                        .bind(retry_at)
                        .execute(&mut *connection)
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}
