//! Every decision that changes the PostgreSQL ledger, as an async function on a connection inside the
//! transaction `in_transaction!` opened. Each one locks the rows it decides on before it reads them (the
//! reservation first, then its sizes in product and size order), reads the figures in a statement of its own after
//! the locks are held (so it sees what the previous holder committed), asks stock-core, and writes. The outbox rows
//! of a decision are gathered while it runs and written by one statement at its end.

use sqlx::postgres::PgConnection;
use stock_core::{
    CartLine, MovementType, Quantity, ReservationStatus, ReservationTtl, StockLevel, StockMovement, Timestamp,
};

use super::{load_reservation, load_reservations, reserved_units, select_movements_where, sizes_of};

/// `INSERT` of outbox rows from the arrays in the given parameters (topics, subjects, lanes, created_at,
/// next_attempt_at), in array order, `$guard` a condition added to its `WHERE` (or nothing); a row already queued
/// for the same subject has its revision bumped instead.
macro_rules! queue_outbox {
    ($topics:literal, $subjects:literal, $lanes:literal, $created:literal, $due:literal, $guard:literal) => {
        concat!(
            "INSERT INTO outbox (topic, subject, lane, created_at, next_attempt_at) ",
            "SELECT topic, subject, lane, created_at, next_attempt_at FROM UNNEST(",
            $topics,
            "::TEXT[], ",
            $subjects,
            "::TEXT[], ",
            $lanes,
            "::TEXT[], ",
            $created,
            "::BIGINT[], ",
            $due,
            "::BIGINT[]) WITH ORDINALITY AS queued (topic, subject, lane, created_at, next_attempt_at, position) ",
            "WHERE TRUE ",
            $guard,
            " ORDER BY position ON CONFLICT (topic, subject) DO UPDATE SET revision = outbox.revision + 1"
        )
    };
}
use crate::store::columns::{
    MovementColumns, holds_until, import_key, level, movement_columns, movement_from_columns, movement_key,
    movement_lane, product_lane, reservation_lane, sale_key,
};
use crate::store::decide;
use crate::store::plan::{self, Snapshot, Write};
use crate::store::{
    EventOutcome, ImportOutcome, MovementOrigin, MovementOutcome, MovementRecord, MovementRequest, ReleaseOutcome,
    ReservationRecord, ReserveOutcome, ReservedItem, StoreError, StripeAction, StripeEventRecord,
};

/// What a decision writes in its last statement: the outbox rows it queued (if this store queues changes for
/// Payload), the reservation's new status, and the Stripe event's outcome. One statement instead of three saves
/// round trips while the decision holds its locks.
#[derive(Debug, Clone)]
pub(super) struct Outbox {
    enabled: bool,
    /// How long a movement recorded for Payload's stock-movements hook waits before the outbox creates its document.
    payload_save_grace_millis: i64,
    /// (topic, subject, lane, created_at, next_attempt_at), in the order queued.
    rows: Vec<(&'static str, String, String, i64, i64)>,
    /// A reservation moving to a new status: (reference, status, finished_at, holds_until of its items).
    status: Option<(String, &'static str, Option<i64>, i64)>,
    /// The outcome of the Stripe event the decision applies: (event id, outcome).
    event_outcome: Option<(String, &'static str)>,
}

/// The columns of queued outbox rows, as the arrays `UNNEST` takes.
type OutboxColumns = (Vec<&'static str>, Vec<String>, Vec<String>, Vec<i64>, Vec<i64>);

impl Outbox {
    pub(super) fn new(enabled: bool, payload_save_grace_millis: i64) -> Self {
        Outbox { enabled, payload_save_grace_millis, rows: Vec::new(), status: None, event_outcome: None }
    }

    fn queue(&mut self, (topic, subject, lane): (&'static str, &str, String), now: Timestamp, delay_millis: i64) {
        if self.enabled && !self.rows.iter().any(|row| row.0 == topic && row.1 == subject) {
            let now = now.unix_millis();
            self.rows.push((topic, subject.to_owned(), lane, now, now.saturating_add(delay_millis)));
        }
    }

    fn product(&mut self, product: &str, now: Timestamp) {
        self.queue(("product", product, product_lane(product)), now, 0);
    }

    /// A reservation's document and the sizes of every product it holds units of.
    fn reservation(&mut self, reference: &str, items: &[ReservedItem], now: Timestamp) {
        for item in items {
            self.product(&item.product, now);
        }
        self.queue(("reservation", reference, reservation_lane(reference)), now, 0);
    }

    /// A movement's document, and its product's sizes.
    fn movement(&mut self, id: i64, product: &str, origin: MovementOrigin, now: Timestamp) {
        self.product(product, now);
        let subject = id.to_string();
        match origin {
            MovementOrigin::Sidecar => self.queue(("movement", &subject, product_lane(product)), now, 0),
            MovementOrigin::Payload => {
                let grace = self.payload_save_grace_millis;
                self.queue(("movement", &subject, movement_lane(id)), now, grace);
            }
        }
    }

    fn columns(rows: Vec<(&'static str, String, String, i64, i64)>) -> OutboxColumns {
        let mut columns: OutboxColumns = Default::default();
        for (topic, subject, lane, created_at, next_attempt_at) in rows {
            columns.0.push(topic);
            columns.1.push(subject);
            columns.2.push(lane);
            columns.3.push(created_at);
            columns.4.push(next_attempt_at);
        }
        columns
    }

    /// Writes what is pending in one statement: the status change, the event's outcome, and the queued outbox rows
    /// in the order queued (a row already queued for the same subject has its revision bumped instead: the changes
    /// coalesce). A part with nothing pending is bound NULL or empty and changes nothing.
    async fn write(self, connection: &mut PgConnection) -> Result<(), StoreError> {
        if self.rows.is_empty() && self.status.is_none() && self.event_outcome.is_none() {
            return Ok(());
        }
        let (reference, status, finished_at, holds) = match self.status {
            Some((reference, status, finished_at, holds)) => (Some(reference), Some(status), finished_at, Some(holds)),
            None => (None, None, None, None),
        };
        let (event_id, outcome) = self.event_outcome.unzip();
        let (topics, subjects, lanes, created, due) = Outbox::columns(self.rows);
        sqlx::query(concat!(
            "WITH items AS (UPDATE reservation_items SET holds_until = $3 WHERE reference = $1), \
             status AS (UPDATE reservations SET status = $2, finished_at = $4 WHERE reference = $1), \
             event AS (UPDATE stripe_events SET outcome = $6 WHERE id = $5), \
             queued AS (",
            queue_outbox!("$7", "$8", "$9", "$10", "$11", ""),
            ") SELECT 1"
        ))
        .bind(reference)
        .bind(status)
        .bind(holds)
        .bind(finished_at)
        .bind(event_id)
        .bind(outcome)
        .bind(topics)
        .bind(subjects)
        .bind(lanes)
        .bind(created)
        .bind(due)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

/// Locks the sizes `(product, size)` for the rest of the transaction, in product and size order (the order every
/// decision locks sizes in, so two decisions never wait on each other in a cycle).
async fn lock_sizes(connection: &mut PgConnection, sizes: &[(&str, &str)]) -> Result<(), StoreError> {
    let (products, labels): (Vec<&str>, Vec<&str>) = sizes.iter().copied().unzip();
    sqlx::query(
        "SELECT 1 FROM sizes WHERE (product, size) IN (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[])) \
         ORDER BY product, size FOR UPDATE",
    )
    .bind(products)
    .bind(labels)
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Locks the sizes `(product, size)` as [`lock_sizes`] does; the ones that exist (and are now locked), sorted.
async fn lock_sizes_returning(
    connection: &mut PgConnection,
    sizes: &[(&str, &str)],
) -> Result<Vec<(String, String)>, StoreError> {
    let (products, labels): (Vec<&str>, Vec<&str>) = sizes.iter().copied().unzip();
    let locked: Vec<(String, String)> = sqlx::query_as(
        "SELECT product, size FROM sizes WHERE (product, size) IN (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[])) \
         ORDER BY product, size FOR UPDATE",
    )
    .bind(products)
    .bind(labels)
    .fetch_all(&mut *connection)
    .await?;
    let mut locked = locked;
    locked.sort_unstable();
    Ok(locked)
}

fn item_sizes(items: &[ReservedItem]) -> Vec<(&str, &str)> {
    items.iter().map(|item| (item.product.as_str(), item.size.as_str())).collect()
}

/// The stock levels of `sizes` at `now`, in the order asked; an absent size is an inconsistent ledger.
async fn size_levels(
    connection: &mut PgConnection,
    sizes: &[(&str, &str)],
    now: Timestamp,
) -> Result<Vec<StockLevel>, StoreError> {
    let (products, labels): (Vec<&str>, Vec<&str>) = sizes.iter().copied().unzip();
    let rows: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(concat!(
        "SELECT s.product, s.size, s.stock, s.low_stock_threshold, ",
        reserved_units!(),
        " FROM sizes s WHERE (s.product, s.size) IN (SELECT * FROM UNNEST($1::TEXT[], $3::TEXT[]))"
    ))
    .bind(products)
    .bind(now.unix_millis())
    .bind(labels)
    .fetch_all(&mut *connection)
    .await?;
    sizes
        .iter()
        .map(|(product, size)| {
            let (_, _, stock, threshold, reserved) =
                rows.iter().find(|row| row.0 == *product && row.1 == *size).ok_or_else(|| {
                    StoreError::Inconsistent(format!("reserved size {product} {size} is missing from sizes"))
                })?;
            level(*stock, *reserved, *threshold)
        })
        .collect()
}

async fn load_movement(connection: &mut PgConnection, key: &str) -> Result<Option<MovementRecord>, StoreError> {
    let row: Option<MovementColumns> = sqlx::query_as(select_movements_where!("idempotency_key = $1"))
        .bind(key)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(movement_from_columns).transpose()
}

/// Records a movement and sets the size's units on hand to its `stock_after` (and the threshold, if given).
/// The size must be locked. Returns the movement's id.
async fn write_movement(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    key: Option<&str>,
    (product, size): (&str, &str),
    (movement, origin): (&StockMovement, MovementOrigin),
    low_stock_threshold: Option<Quantity>,
) -> Result<i64, StoreError> {
    let date = movement.details.date.unix_millis();
    let (id,): (i64,) = sqlx::query_as(
        "WITH updated AS (UPDATE sizes SET stock = $3, low_stock_threshold = COALESCE($4, low_stock_threshold), \
           updated_at = $5 WHERE product = $1 AND size = $2) \
         INSERT INTO movements (idempotency_key, product, size, type, quantity, stock_before, stock_after, reason, \
           reference, order_reference, date, origin) \
         VALUES ($6, $1, $2, $7, $8, $9, $3, $10, $11, $12, $5, $13) RETURNING id",
    )
    .bind(product)
    .bind(size)
    .bind(i64::from(movement.stock_after))
    .bind(low_stock_threshold.map(i64::from))
    .bind(date)
    .bind(key)
    .bind(movement.kind.as_str())
    .bind(movement.quantity.get())
    .bind(i64::from(movement.stock_before))
    .bind(&movement.details.reason)
    .bind(&movement.details.reference)
    .bind(&movement.details.order_reference)
    .bind(origin.as_str())
    .fetch_one(&mut *connection)
    .await?;
    outbox.movement(id, product, origin, movement.details.date);
    Ok(id)
}

/// Moves a locked reservation to `status`, and its items' `holds_until` with it, in the decision's last statement
/// (the triggers move the sizes' held units). The sizes are locked first, in order, unless the caller already holds
/// them.
async fn set_status(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    record: &ReservationRecord,
    (status, sizes_locked): (ReservationStatus, bool),
    now: Timestamp,
) -> Result<(), StoreError> {
    if !sizes_locked {
        lock_sizes(connection, &item_sizes(&record.items)).await?;
    }
    let finished_at = status.is_terminal().then_some(now.unix_millis());
    outbox.status =
        Some((record.reference.clone(), status.as_str(), finished_at, holds_until(status, record.expires_at)));
    outbox.reservation(&record.reference, &record.items, now);
    Ok(())
}

async fn record_conflict(
    connection: &mut PgConnection,
    kind: &'static str,
    (reference, event_id): (&str, &str),
    details: &serde_json::Value,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    sqlx::query("INSERT INTO conflicts (kind, reference, event_id, details, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(kind)
        .bind(reference)
        .bind(event_id)
        .bind(details.to_string())
        .bind(now.unix_millis())
        .execute(&mut *connection)
        .await?;
    Ok(EventOutcome::Conflict { kind })
}

/// Sells a reservation's units (see [`crate::store::decide::sales`]): a reservation that still holds them sells
/// them; one that no longer does is reserved again first if every size has the units, and is otherwise recorded as
/// an `oversold` conflict.
async fn commit_reservation(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    (reference, order_reference, marked): (&str, Option<&str>, bool),
    event_id: &str,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let Some(record) = load_reservation(connection, reference, true).await? else {
        return match decide::unknown_payment(marked) {
            Some(details) => {
                record_conflict(connection, "unknown_reference", (reference, event_id), &details, now).await
            }
            None => Ok(EventOutcome::Ignored { reason: crate::store::FOREIGN_PAYMENT }),
        };
    };
    let late = match decide::commit(&record, now)? {
        decide::Commit::Unchanged(status) => return Ok(EventOutcome::Unchanged { status }),
        decide::Commit::Sell { late } => late,
    };
    let sizes = item_sizes(&record.items);
    lock_sizes(connection, &sizes).await?;
    let levels = size_levels(connection, &sizes, now).await?;
    let sales = match decide::sales(&record, levels, (late, order_reference), now)? {
        Ok(sales) => sales,
        Err(details) => return record_conflict(connection, "oversold", (reference, event_id), &details, now).await,
    };
    for (item, movement) in &sales {
        let key = sale_key(reference, &item.product, &item.size);
        let sale = (movement, MovementOrigin::Sidecar);
        write_movement(connection, outbox, Some(&key), (&item.product, &item.size), sale, None).await?;
    }
    set_status(connection, outbox, &record, (ReservationStatus::Committed, true), now).await?;
    Ok(EventOutcome::Committed { late })
}

/// Releases a reservation (see [`crate::store::Store::release`]).
pub(super) async fn release(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<ReleaseOutcome, StoreError> {
    let outcome = release_locked(connection, &mut outbox, reference, now).await?;
    outbox.write(connection).await?;
    Ok(outcome)
}

/// Releases a reservation (see [`plan::release`]), its row locked first.
async fn release_locked(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<ReleaseOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    snapshot.add_reservation(reference, load_reservation(connection, reference, true).await?);
    let plan = plan::release(&mut snapshot, reference, now)?;
    apply(connection, outbox, &plan.writes, now).await?;
    Ok(plan.outcome)
}

/// Keeps a reservation whose payment is under way (see [`plan::start_processing`]), its row locked first.
async fn start_processing(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    snapshot.add_reservation(reference, load_reservation(connection, reference, true).await?);
    let plan = plan::start_processing(&mut snapshot, reference, now)?;
    apply(connection, outbox, &plan.writes, now).await?;
    Ok(plan.outcome)
}

/// Gathers a decision's writes into what `Outbox::write` writes in one statement at the decision's end: the status
/// change (its sizes locked now, after the reservation's row) and the outbox rows. A reservation's insert is
/// written by [`reserve_all`] itself.
async fn apply(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    writes: &[Write],
    now: Timestamp,
) -> Result<(), StoreError> {
    for write in writes {
        match write {
            Write::SetStatus { record, finished_at } => {
                lock_sizes(connection, &item_sizes(&record.items)).await?;
                outbox.status = Some((
                    record.reference.clone(),
                    record.status.as_str(),
                    finished_at.map(Timestamp::unix_millis),
                    holds_until(record.status, record.expires_at),
                ));
            }
            Write::Queue(queued) => {
                outbox.queue((queued.topic.as_str(), &queued.subject, queued.lane.clone()), now, queued.delay_millis);
            }
            Write::InsertReservation(record) => {
                return Err(StoreError::Inconsistent(format!(
                    "reservation {} was planned outside a reservation batch",
                    record.reference
                )));
            }
        }
    }
    Ok(())
}

/// A reservation request as a batch carries it.
#[derive(Debug, Clone)]
pub(super) struct ReserveRequest {
    pub(super) reference: String,
    pub(super) lines: Vec<CartLine>,
    pub(super) ttl: ReservationTtl,
    pub(super) now: Timestamp,
}

/// Reserves the carts of `requests` in one transaction, in their order (see [`plan::reserve`]): locks every size
/// they ask for in one statement (in product and size order, as every decision locks sizes, so two sidecars never
/// wait on each other in a cycle), loads what they read once the locks are held (two statements), plans each
/// against what the ones before it planned, and writes every plan in one statement. If another sidecar reserved
/// one of the references after this transaction read it, the write fails on the reference's unique key
/// ([`is_reference_taken`]) and nothing is written: run it again, and that request is planned on what the other
/// one wrote.
pub(super) async fn reserve_all(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    requests: &[ReserveRequest],
) -> Result<Vec<ReserveOutcome>, StoreError> {
    let lines = requests.iter().flat_map(|request| request.lines.iter());
    let mut asked: Vec<(&str, &str)> = lines.map(|line| (line.product.as_str(), line.size.as_str())).collect();
    asked.sort_unstable();
    asked.dedup();
    let locked = lock_sizes_returning(connection, &asked).await?;
    // The figures at the earliest instant of the batch: a hold that ends between its requests' instants still
    // counts for all of them (refusing too much, never selling a unit twice).
    let Some(now) = requests.iter().map(|request| request.now).min() else {
        return Ok(Vec::new());
    };
    let mut products: Vec<&str> = requests.iter().flat_map(|request| plan::reserve_reads(&request.lines)).collect();
    products.sort_unstable();
    products.dedup();
    let mut snapshot = Snapshot::default();
    let mut sizes = sizes_of(connection, &products, now).await?.into_iter().peekable();
    for product in products {
        let mut records = Vec::new();
        while let Some((_, record)) = sizes.next_if(|(owner, _)| owner == product) {
            // A size asked for that did not exist when the sizes were locked (another sidecar created it since) is
            // not known to this batch: planning on its unlocked figures could sell its units twice.
            let asked_but_unlocked = asked.binary_search(&(product, record.size.as_str())).is_ok()
                && locked.binary_search(&(product.to_owned(), record.size.clone())).is_err();
            if !asked_but_unlocked {
                records.push(record);
            }
        }
        snapshot.add_product(product, records);
    }
    let mut references: Vec<&str> = requests.iter().map(|request| request.reference.as_str()).collect();
    references.sort_unstable();
    references.dedup();
    let existing = load_reservations(connection, &references).await?;
    for reference in references {
        snapshot.add_reservation(reference, existing.get(reference).cloned());
    }

    let mut outcomes = Vec::with_capacity(requests.len());
    let (mut reservations, mut items) = (PlannedReservations::default(), PlannedItems::default());
    for request in requests {
        let plan = plan::reserve(&mut snapshot, (&request.reference, &request.lines), request.ttl, request.now)?;
        for write in &plan.writes {
            match write {
                Write::InsertReservation(record) => {
                    let holds = holds_until(record.status, record.expires_at);
                    reservations.0.push(record.reference.clone());
                    reservations.1.push(record.created_at.unix_millis());
                    reservations.2.push(record.expires_at.unix_millis());
                    for item in &record.items {
                        items.0.push(record.reference.clone());
                        items.1.push(item.product.clone());
                        items.2.push(item.size.clone());
                        items.3.push(i64::from(item.quantity));
                        items.4.push(holds);
                    }
                }
                Write::Queue(queued) => {
                    let entry = (queued.topic.as_str(), queued.subject.as_str(), queued.lane.clone());
                    outbox.queue(entry, request.now, queued.delay_millis);
                }
                Write::SetStatus { record, .. } => {
                    return Err(StoreError::Inconsistent(format!(
                        "a reservation batch planned a status change of {}",
                        record.reference
                    )));
                }
            }
        }
        outcomes.push(plan.outcome);
    }
    if reservations.0.is_empty() {
        return Ok(outcomes);
    }
    // The outbox rows in (topic, subject) order, whatever the order of the requests: the upsert locks the rows it
    // finds, and two batches (or a batch and a release) taking them in different orders could deadlock. A lane has
    // at most one row per batch, so no lane's delivery order changes.
    let mut rows = std::mem::take(&mut outbox.rows);
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let (topics, subjects, lanes, created, due) = Outbox::columns(rows);
    // Every reservation, its items and the outbox rows in one statement.
    sqlx::query(concat!(
        "WITH reservation AS (INSERT INTO reservations (reference, status, created_at, expires_at) \
           SELECT reference, 'active', created_at, expires_at \
           FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::BIGINT[]) WITH ORDINALITY \
             AS planned (reference, created_at, expires_at, position) ORDER BY position RETURNING reference), \
         items AS (INSERT INTO reservation_items (reference, product, size, quantity, holds_until) \
           SELECT item.reference, item.product, item.size, item.quantity, item.holds_until \
           FROM UNNEST($4::TEXT[], $5::TEXT[], $6::TEXT[], $7::BIGINT[], $8::BIGINT[]) WITH ORDINALITY \
             AS item (reference, product, size, quantity, holds_until, position) \
           WHERE item.reference IN (SELECT reference FROM reservation) ORDER BY item.position), \
         queued AS (",
        queue_outbox!("$9", "$10", "$11", "$12", "$13", ""),
        ") SELECT COUNT(*) FROM reservation"
    ))
    .bind(reservations.0)
    .bind(reservations.1)
    .bind(reservations.2)
    .bind(items.0)
    .bind(items.1)
    .bind(items.2)
    .bind(items.3)
    .bind(items.4)
    .bind(topics)
    .bind(subjects)
    .bind(lanes)
    .bind(created)
    .bind(due)
    .execute(&mut *connection)
    .await?;
    Ok(outcomes)
}

/// The planned reservations as the write's arrays: references, created_at, expires_at.
type PlannedReservations = (Vec<String>, Vec<i64>, Vec<i64>);
/// Their items: references, products, sizes, quantities, holds_until.
type PlannedItems = (Vec<String>, Vec<String>, Vec<String>, Vec<i64>, Vec<i64>);

/// Whether a failed reservation batch failed because another sidecar took one of its references meanwhile (the
/// reservations' unique key): planned again, that request answers what the other one reserved.
pub(super) fn is_reference_taken(error: &StoreError) -> bool {
    super::sqlstate(error).as_deref() == Some("23505")
}

/// Expires every active reservation due at `now` that no other transaction holds (see
/// [`crate::store::Store::release_expired`]); returns their references, sorted. Several sidecars running
/// cleanup at once each take the reservations the others have not locked (`SKIP LOCKED`), so each reservation
/// is released once.
pub(super) async fn release_expired(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    let due: Vec<(String,)> = sqlx::query_as(
        "SELECT reference FROM reservations WHERE status = 'active' AND expires_at <= $1 \
         ORDER BY reference FOR UPDATE SKIP LOCKED",
    )
    .bind(now.unix_millis())
    .fetch_all(&mut *connection)
    .await?;
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let references: Vec<String> = due.into_iter().map(|(reference,)| reference).collect();
    let items: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT reference, product, size FROM reservation_items WHERE reference = ANY($1) ORDER BY product, size",
    )
    .bind(&references)
    .fetch_all(&mut *connection)
    .await?;
    let sizes: Vec<(&str, &str)> = items.iter().map(|(_, product, size)| (product.as_str(), size.as_str())).collect();
    lock_sizes(connection, &sizes).await?;
    // The SQL form of stock-core's `Reservation::expire` on every reservation taken: their items stopped
    // counting at the expiry instant already; zeroing holds_until keeps the column's meaning.
    let mut expired: Vec<(String,)> = sqlx::query_as(
        "WITH items AS (UPDATE reservation_items SET holds_until = 0 WHERE reference = ANY($1)) \
         UPDATE reservations SET status = 'expired', finished_at = $2 \
         WHERE reference = ANY($1) AND status = 'active' RETURNING reference",
    )
    .bind(&references)
    .bind(now.unix_millis())
    .fetch_all(&mut *connection)
    .await?;
    expired.sort();
    for (_, product, _) in &items {
        outbox.product(product, now);
    }
    for (reference,) in &expired {
        outbox.queue(("reservation", reference, reservation_lane(reference)), now, 0);
    }
    outbox.write(connection).await?;
    Ok(expired.into_iter().map(|(reference,)| reference).collect())
}

/// Expires one reservation due at `now` (see [`plan::expire`]), its row locked first; whether it changed.
pub(super) async fn expire(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut snapshot = Snapshot::default();
    snapshot.add_reservation(reference, load_reservation(connection, reference, true).await?);
    let plan = plan::expire(&mut snapshot, reference, now)?;
    apply(connection, &mut outbox, &plan.writes, now).await?;
    outbox.write(connection).await?;
    Ok(plan.outcome)
}

/// Adds a size with no units, unless it exists; whether it was added.
async fn insert_size(
    connection: &mut PgConnection,
    (product, size): (&str, &str),
    threshold: Quantity,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO sizes (product, size, stock, low_stock_threshold, updated_at) VALUES ($1, $2, 0, $3, $4) \
         ON CONFLICT (product, size) DO NOTHING",
    )
    .bind(product)
    .bind(size)
    .bind(i64::from(threshold))
    .bind(now.unix_millis())
    .execute(&mut *connection)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Applies one stock movement (see [`crate::store::Store::record_movement`]). The size is locked before its
/// idempotency key is looked up, so the same request on two sidecars at once records one movement.
pub(super) async fn record_movement(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    request: MovementRequest,
    now: Timestamp,
) -> Result<MovementOutcome, StoreError> {
    let key = request.reference.as_deref().map(movement_key);
    // A reference already recorded decides the answer before anything is locked or created (a conflicting request
    // must not leave an empty size behind).
    if let Some(key) = &key
        && let Some(previous) = load_movement(connection, key).await?
    {
        return Ok(decide::repeated_movement(previous, &request));
    }
    let target = (request.product.as_str(), request.size.as_str());
    let (locked,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM (SELECT 1 FROM sizes WHERE product = $1 AND size = $2 FOR UPDATE) s")
            .bind(target.0)
            .bind(target.1)
            .fetch_one(&mut *connection)
            .await?;
    if locked == 0 {
        if request.kind != MovementType::Restock {
            return Ok(MovementOutcome::UnknownSize);
        }
        // Another sidecar adding the same size meanwhile makes this insert wait for it, then do nothing.
        let threshold = request.low_stock_threshold.unwrap_or(Quantity::ZERO);
        insert_size(connection, target, threshold, now).await?;
        lock_sizes(connection, &[target]).await?;
    }
    // Checked again under the size's lock: the same reference sent to two sidecars at once is decided once.
    if let Some(key) = &key
        && let Some(previous) = load_movement(connection, key).await?
    {
        return Ok(decide::repeated_movement(previous, &request));
    }
    let current = size_levels(connection, &[target], now).await?.remove(0);
    let movement = match decide::movement(&current, &request, now) {
        Ok(movement) => movement,
        Err(refusal) => return Ok(*refusal),
    };
    let id = write_movement(
        connection,
        &mut outbox,
        key.as_deref(),
        target,
        (&movement, request.origin),
        request.low_stock_threshold,
    )
    .await?;
    outbox.write(connection).await?;
    Ok(MovementOutcome::Applied(MovementRecord { id, product: request.product, size: request.size, movement }))
}

/// Applies one Stripe event once (see [`crate::store::Store::apply_stripe_event`]). The claim of its id commits
/// with its effect; the same event arriving at a second sidecar meanwhile waits on the claim, then finds it.
pub(super) async fn apply_stripe_event(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    event: &StripeEventRecord,
    action: &StripeAction,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let claimed = sqlx::query(
        "INSERT INTO stripe_events (id, type, outcome, received_at) VALUES ($1, $2, 'pending', $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(&event.kind)
    .bind(now.unix_millis())
    .execute(&mut *connection)
    .await?;
    if claimed.rows_affected() == 0 {
        return Ok(EventOutcome::Duplicate);
    }
    let outcome = match action {
        StripeAction::Commit { reference, order_reference, marked } => {
            let references = (reference.as_str(), order_reference.as_deref(), *marked);
            commit_reservation(connection, &mut outbox, references, &event.id, now).await?
        }
        StripeAction::Release { reference } => {
            decide::release_event_outcome(&release_locked(connection, &mut outbox, reference, now).await?)
        }
        StripeAction::StartProcessing { reference } => {
            start_processing(connection, &mut outbox, reference, now).await?
        }
        StripeAction::Ignore { reason } => EventOutcome::Ignored { reason },
        StripeAction::Unreadable { reference, problem } => {
            let details = decide::unreadable_event_details(problem);
            let reference = reference.as_deref().unwrap_or("-");
            record_conflict(connection, "unreadable_event", (reference, &event.id), &details, now).await?
        }
    };
    outbox.event_outcome = Some((event.id.clone(), outcome.as_str()));
    outbox.write(connection).await?;
    Ok(outcome)
}

/// Brings one size Payload has into the ledger unless it is there already (see
/// [`crate::store::Store::import_size`]).
pub(super) async fn import_size(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    (product, size): (&str, &str),
    (stock, low_stock_threshold): (Quantity, Quantity),
    reason: &str,
    now: Timestamp,
) -> Result<ImportOutcome, StoreError> {
    if !insert_size(connection, (product, size), low_stock_threshold, now).await? {
        let current = size_levels(connection, &[(product, size)], now).await?.remove(0);
        return Ok(ImportOutcome::AlreadyInLedger { stock: current.stock() });
    }
    let record = if let Some(movement) = decide::import(stock, low_stock_threshold, reason, now)? {
        let key = import_key(product, size);
        let adjustment = (&movement, MovementOrigin::Sidecar);
        let id = write_movement(connection, &mut outbox, Some(&key), (product, size), adjustment, None).await?;
        Some(MovementRecord { id, product: product.to_owned(), size: size.to_owned(), movement })
    } else {
        outbox.product(product, now);
        None
    };
    outbox.write(connection).await?;
    Ok(ImportOutcome::Imported(record))
}

/// Records a failed delivery and holds the whole lane back until `retry_at`.
pub(super) async fn outbox_failed(
    connection: &mut PgConnection,
    (id, lane): (i64, &str),
    error: &str,
    retry_at: i64,
) -> Result<(), StoreError> {
    // Two statements: one statement must not update the same row twice.
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(&mut *connection)
        .await?;
    sqlx::query("UPDATE outbox SET next_attempt_at = GREATEST(next_attempt_at, $2) WHERE lane = $1")
        .bind(lane)
        .bind(retry_at)
        .execute(&mut *connection)
        .await?;
    Ok(())
}
