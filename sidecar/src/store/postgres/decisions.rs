//! Every decision that changes the PostgreSQL ledger, as an async function on a connection inside the
//! transaction `in_transaction!` opened. Each one locks the rows it decides on before it reads them (the
//! reservation first, then its sizes in product and size order), reads the figures in a statement of its own after
//! the locks are held (so it sees what the previous holder committed), asks stock-core, and writes. The outbox rows
//! of a decision are gathered while it runs and written by one statement at its end.

use sqlx::postgres::PgConnection;
use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};

use super::{load_reservation, load_reservations, select_movements_where, sizes_of};

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
use crate::store::columns::{MovementColumns, holds_until, movement_columns, movement_from_columns};
use crate::store::plan::{self, NewMovement, Queued, Snapshot, Write};
use crate::store::{
    EventOutcome, ImportOutcome, MovementOutcome, MovementRecord, MovementRequest, ReleaseOutcome, ReserveOutcome,
    ReservedItem, StoreError, StripeAction, StripeEventRecord,
};

/// What a decision writes in its last statement: the outbox rows it queued (if this store queues changes for
/// Payload), the reservation's new status, and the Stripe event it applied. One statement instead of three saves
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
    /// The Stripe event the decision applies: (id, type, outcome, received_at).
    event: Option<(String, String, &'static str, i64)>,
}

/// The columns of queued outbox rows, as the arrays `UNNEST` takes.
type OutboxColumns = (Vec<&'static str>, Vec<String>, Vec<String>, Vec<i64>, Vec<i64>);

impl Outbox {
    pub(super) fn new(enabled: bool, payload_save_grace_millis: i64) -> Self {
        Outbox { enabled, payload_save_grace_millis, rows: Vec::new(), status: None, event: None }
    }

    /// Queues what Payload must show about a subject, once per decision.
    fn queue(&mut self, queued: &Queued, now: Timestamp) {
        let topic = queued.topic.as_str();
        if self.enabled && !self.rows.iter().any(|row| row.0 == topic && row.1 == queued.subject) {
            let now = now.unix_millis();
            let due = now.saturating_add(queued.delay_millis);
            self.rows.push((topic, queued.subject.clone(), queued.lane.clone(), now, due));
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

    /// Writes what is pending in one statement: the status change, the event's record, and the queued outbox rows
    /// in the order queued (a row already queued for the same subject has its revision bumped instead: the changes
    /// coalesce). A part with nothing pending is bound NULL or empty and changes nothing. An event another sidecar
    /// recorded since this one read it fails the statement on its unique id.
    async fn write(self, connection: &mut PgConnection) -> Result<(), StoreError> {
        if self.rows.is_empty() && self.status.is_none() && self.event.is_none() {
            return Ok(());
        }
        let (reference, status, finished_at, holds) = match self.status {
            Some((reference, status, finished_at, holds)) => (Some(reference), Some(status), finished_at, Some(holds)),
            None => (None, None, None, None),
        };
        let (event_id, kind, outcome, received_at) = match self.event {
            Some((id, kind, outcome, received_at)) => (Some(id), Some(kind), Some(outcome), Some(received_at)),
            None => (None, None, None, None),
        };
        let (topics, subjects, lanes, created, due) = Outbox::columns(self.rows);
        sqlx::query(concat!(
            "WITH items AS (UPDATE reservation_items SET holds_until = $3 WHERE reference = $1), \
             status AS (UPDATE reservations SET status = $2, finished_at = $4 WHERE reference = $1), \
             event AS (INSERT INTO stripe_events (id, type, outcome, received_at) \
               SELECT $5::TEXT, $12::TEXT, $6::TEXT, $13::BIGINT WHERE $5::TEXT IS NOT NULL), \
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
        .bind(kind)
        .bind(received_at)
        .execute(&mut *connection)
        .await?;
        Ok(())
    }
}

/// Locks the sizes `(product, size)` for the rest of the transaction, in product and size order (the order every
/// decision locks sizes in, so two decisions never wait on each other in a cycle); the ones that exist (and are now
/// locked), sorted.
async fn lock_sizes(
    connection: &mut PgConnection,
    sizes: &[(&str, &str)],
) -> Result<Vec<(String, String)>, StoreError> {
    let (products, labels): (Vec<&str>, Vec<&str>) = sizes.iter().copied().unzip();
    let mut locked: Vec<(String, String)> = sqlx::query_as(
        "SELECT product, size FROM sizes WHERE (product, size) IN (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[])) \
         ORDER BY product, size FOR UPDATE",
    )
    .bind(products)
    .bind(labels)
    .fetch_all(&mut *connection)
    .await?;
    locked.sort_unstable();
    Ok(locked)
}

fn item_sizes(items: &[ReservedItem]) -> Vec<(&str, &str)> {
    items.iter().map(|item| (item.product.as_str(), item.size.as_str())).collect()
}

/// Loads every size of `products` into the snapshot.
async fn load_products(
    connection: &mut PgConnection,
    snapshot: &mut Snapshot,
    products: &[&str],
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut sizes = sizes_of(connection, products, now).await?.into_iter().peekable();
    for product in products {
        let mut records = Vec::new();
        while let Some((_, record)) = sizes.next_if(|(owner, _)| owner == product) {
            records.push(record);
        }
        snapshot.add_product(product, records);
    }
    Ok(())
}

async fn load_movement(connection: &mut PgConnection, key: &str) -> Result<Option<MovementRecord>, StoreError> {
    let row: Option<MovementColumns> = sqlx::query_as(select_movements_where!("idempotency_key = $1"))
        .bind(key)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(movement_from_columns).transpose()
}

/// Records a movement and sets its size's units on hand to its `stock_after` (and the threshold, if given), in one
/// statement; the size must be locked. The id the database gave it.
async fn insert_movement(connection: &mut PgConnection, planned: &NewMovement) -> Result<i64, StoreError> {
    let NewMovement { key, product, size, movement, origin, low_stock_threshold } = planned;
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
    .bind(movement.details.date.unix_millis())
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
    Ok(id)
}

/// Releases a reservation (see [`plan::release`]), its row locked first.
pub(super) async fn release(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<ReleaseOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    snapshot.add_reservation(reference, load_reservation(connection, reference, true).await?);
    let plan = plan::release(&mut snapshot, reference, now)?;
    apply(connection, &mut outbox, &plan.writes, (now, false)).await?;
    outbox.write(connection).await?;
    Ok(plan.outcome)
}

/// Executes a plan's writes: a status change (its sizes locked now, after the reservation's row, unless
/// `sizes_locked`), the event's record and the outbox rows are gathered for `Outbox::write`, which writes them in
/// one statement at the decision's end; sizes, movements and conflicts are written at once. A reservation's
/// insert is written by [`reserve_all`] itself. The movements recorded, with their ids.
async fn apply(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    writes: &[Write],
    (now, sizes_locked): (Timestamp, bool),
) -> Result<Vec<MovementRecord>, StoreError> {
    let mut recorded = Vec::new();
    for write in writes {
        match write {
            Write::SetStatus { record, finished_at } => {
                if !sizes_locked {
                    lock_sizes(connection, &item_sizes(&record.items)).await?;
                }
                outbox.status = Some((
                    record.reference.clone(),
                    record.status.as_str(),
                    finished_at.map(Timestamp::unix_millis),
                    holds_until(record.status, record.expires_at),
                ));
            }
            Write::Queue(queued) => outbox.queue(queued, now),
            Write::InsertSize { product, size, low_stock_threshold } => {
                // No ON CONFLICT: a size another sidecar created since this one read fails the decision, which runs
                // again and finds it.
                sqlx::query(
                    "INSERT INTO sizes (product, size, stock, low_stock_threshold, updated_at) \
                     VALUES ($1, $2, 0, $3, $4)",
                )
                .bind(product)
                .bind(size)
                .bind(i64::from(*low_stock_threshold))
                .bind(now.unix_millis())
                .execute(&mut *connection)
                .await?;
            }
            Write::InsertMovement(planned) => {
                let id = insert_movement(connection, planned).await?;
                let grace = outbox.payload_save_grace_millis;
                for queued in plan::movement_entries(id, &planned.product, planned.origin, grace) {
                    outbox.queue(&queued, planned.movement.details.date);
                }
                recorded.push(planned.recorded(id));
            }
            Write::RecordConflict { kind, reference, event_id, details } => {
                sqlx::query(
                    "INSERT INTO conflicts (kind, reference, event_id, details, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(kind)
                .bind(reference)
                .bind(event_id)
                .bind(details)
                .bind(now.unix_millis())
                .execute(&mut *connection)
                .await?;
            }
            Write::RecordEvent { id, kind, outcome, received_at } => {
                outbox.event = Some((id.clone(), kind.clone(), outcome, received_at.unix_millis()));
            }
            Write::InsertReservation(record) => {
                return Err(StoreError::Inconsistent(format!(
                    "reservation {} was planned outside a reservation batch",
                    record.reference
                )));
            }
        }
    }
    Ok(recorded)
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
/// ([`is_key_taken`]) and nothing is written: run it again, and that request is planned on what the other
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
    let locked = lock_sizes(connection, &asked).await?;
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
                Write::Queue(queued) => outbox.queue(queued, request.now),
                other => {
                    return Err(StoreError::Inconsistent(format!("a reservation batch planned {other:?}")));
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

/// Whether a decision failed because another sidecar took one of the unique keys it planned on meanwhile (a
/// reservation's reference, a Stripe event's id, a movement's idempotency key, a size): planned again, it answers
/// what the other one wrote.
pub(super) fn is_key_taken(error: &StoreError) -> bool {
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
        outbox.queue(&Queued::product(product), now);
    }
    for (reference,) in &expired {
        outbox.queue(&Queued::reservation(reference), now);
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
    apply(connection, &mut outbox, &plan.writes, (now, false)).await?;
    outbox.write(connection).await?;
    Ok(plan.outcome)
}

/// Applies one stock movement (see [`plan::record_movement`]). The size is locked before its idempotency key is
/// read, so the same request on two sidecars at once records one movement; a size or key another sidecar created
/// meanwhile fails the write on its unique key ([`is_key_taken`]), and the decision runs again.
pub(super) async fn record_movement(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    request: &MovementRequest,
    now: Timestamp,
) -> Result<MovementOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    lock_sizes(connection, &[(&request.product, &request.size)]).await?;
    if let Some(key) = plan::movement_reads(request) {
        snapshot.add_movement(&key, load_movement(connection, &key).await?);
    }
    load_products(connection, &mut snapshot, &[&request.product], now).await?;
    let plan = plan::record_movement(&mut snapshot, request, now)?;
    let recorded = apply(connection, &mut outbox, &plan.writes, (now, true)).await?;
    outbox.write(connection).await?;
    plan.outcome.answer(recorded)
}

/// Applies one Stripe event once (see [`plan::apply_stripe_event`]). An event already applied is answered at once;
/// otherwise the reservation is locked, then its sizes for a sale, and the event is recorded in the decision's last
/// statement: the same event applied by another sidecar meanwhile fails it on its unique id ([`is_key_taken`]), and
/// the decision runs again and finds it.
pub(super) async fn apply_stripe_event(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    event: &StripeEventRecord,
    action: &StripeAction,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    let (applied,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM stripe_events WHERE id = $1)")
        .bind(&event.id)
        .fetch_one(&mut *connection)
        .await?;
    snapshot.add_event(&event.id, applied);
    let mut sizes_locked = false;
    if let Some(reference) = plan::event_reads(action).filter(|_| !applied) {
        let record = load_reservation(connection, reference, true).await?;
        if let (StripeAction::Commit { .. }, Some(record)) = (action, &record) {
            lock_sizes(connection, &item_sizes(&record.items)).await?;
            load_products(connection, &mut snapshot, &plan::item_products(&record.items), now).await?;
            sizes_locked = true;
        }
        snapshot.add_reservation(reference, record);
    }
    let plan = plan::apply_stripe_event(&mut snapshot, event, action, now)?;
    apply(connection, &mut outbox, &plan.writes, (now, sizes_locked)).await?;
    outbox.write(connection).await?;
    Ok(plan.outcome)
}

/// Brings one size Payload has into the ledger unless it is there already (see [`plan::import_size`]); the same
/// size imported by another sidecar meanwhile fails the insert on its key, and the decision runs again.
pub(super) async fn import_size(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    (product, size): (&str, &str),
    figures: (Quantity, Quantity),
    reason: &str,
    now: Timestamp,
) -> Result<ImportOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    load_products(connection, &mut snapshot, &[product], now).await?;
    let plan = plan::import_size(&mut snapshot, (product, size), figures, reason, now)?;
    let recorded = apply(connection, &mut outbox, &plan.writes, (now, true)).await?;
    outbox.write(connection).await?;
    Ok(plan.outcome.answer(recorded))
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
