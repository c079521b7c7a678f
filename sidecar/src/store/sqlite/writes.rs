//! Every decision that changes the ledger, as a synchronous function on the writer connection (run on the
//! writer thread, inside the transaction the group commit opened; see `group_commit`). The rules themselves come
//! from stock-core; these functions read what the rules need and write what they decided.

use rusqlite::{Connection, OptionalExtension, params};
use stock_core::{
    CartLine, MovementType, Quantity, ReservationStatus, ReservationTtl, StockLevel, StockMovement, StockState,
    Timestamp,
};

use super::{RESERVATION_QUERY, ReservationColumns, size_query, sizes_query};
use crate::store::columns::{
    ALERT_COLUMNS, AlertColumns, MovementColumns, alerts_from_rows, holds_until, import_key, level, movement_columns,
    movement_from_columns, movement_key, movement_lane, product_lane, reservation_from_rows, reservation_lane,
    sale_key,
};
use crate::store::columns::{CONFLICT_QUERY, RESOLVE_CONFLICT, conflict_from_columns};
use crate::store::decide;
use crate::store::plan::{self, Snapshot, Write};
use crate::store::{
    EventOutcome, ImportOutcome, MovementOrigin, MovementOutcome, MovementRecord, MovementRequest, ReleaseOutcome,
    ReservationRecord, ReserveOutcome, ReservedItem, ResolveOutcome, SizeRecord, StockAlert, StoreError, StripeAction,
    StripeEventRecord,
};

/// Whether this store queues ledger changes for Payload; handed to every helper that changes the ledger, so that
/// the rows are written in the transaction of the change.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outbox {
    pub(super) enabled: bool,
    /// How long a movement recorded for Payload's stock-movements hook waits before the outbox creates its document
    /// (see [`super::ProjectionSettings::payload_save_grace`]).
    pub(super) payload_save_grace_millis: i64,
}

impl Outbox {
    /// Queues what Payload must show about `subject`. A row already queued for the same subject has its revision
    /// bumped instead (see migration 0003), so changes coalesce.
    fn queue(
        self,
        connection: &Connection,
        (topic, subject, lane): (&str, &str, &str),
        now: Timestamp,
        delay_millis: i64,
    ) -> Result<(), StoreError> {
        if !self.enabled {
            return Ok(());
        }
        connection
            .prepare_cached(
                "INSERT INTO outbox (topic, subject, lane, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (topic, subject) DO UPDATE SET revision = revision + 1",
            )?
            .execute(params![
                topic,
                subject,
                lane,
                now.unix_millis(),
                now.unix_millis().saturating_add(delay_millis)
            ])?;
        Ok(())
    }

    fn product(self, connection: &Connection, product: &str, now: Timestamp) -> Result<(), StoreError> {
        self.queue(connection, ("product", product, &product_lane(product)), now, 0)
    }

    /// A reservation's document and the sizes of every product it holds units of.
    fn reservation(
        self,
        connection: &Connection,
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
        for product in products {
            self.product(connection, product, now)?;
        }
        self.queue(connection, ("reservation", reference, &reservation_lane(reference)), now, 0)
    }

    /// A movement's document, and its product's sizes (one lane: they reach Payload in order).
    fn movement(
        self,
        connection: &Connection,
        id: i64,
        product: &str,
        origin: MovementOrigin,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.product(connection, product, now)?;
        let subject = id.to_string();
        match origin {
            MovementOrigin::Sidecar => self.queue(connection, ("movement", &subject, &product_lane(product)), now, 0),
            // In a lane of its own, so that its grace period holds up nothing else.
            MovementOrigin::Payload => {
                let lane = movement_lane(id);
                self.queue(connection, ("movement", &subject, &lane), now, self.payload_save_grace_millis)
            }
        }
    }
}

/// A product's sizes with their figures at `now`, in one statement.
pub(super) fn sizes_of(connection: &Connection, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
    let mut statement = connection.prepare_cached(sizes_query())?;
    let rows = statement.query_map(params![product, now.unix_millis()], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?))
    })?;
    let mut sizes = Vec::new();
    for row in rows {
        let (size, stock, threshold, reserved) = row?;
        sizes.push(SizeRecord { size, level: level(stock, reserved, threshold)? });
    }
    Ok(sizes)
}

/// A reservation with its items, in one statement.
pub(super) fn load_reservation(
    connection: &Connection,
    reference: &str,
) -> Result<Option<ReservationRecord>, StoreError> {
    let mut statement = connection.prepare_cached(RESERVATION_QUERY)?;
    let rows = statement.query_map([reference], |row| -> rusqlite::Result<ReservationColumns> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
    })?;
    reservation_from_rows(reference, rows.collect::<Result<Vec<_>, _>>()?)
}

fn load_movement(connection: &Connection, key: &str) -> Result<Option<MovementRecord>, StoreError> {
    let mut statement = connection.prepare_cached(select_movements_where!("idempotency_key = ?1"))?;
    let row = statement.query_row([key], movement_row).optional()?;
    row.map(movement_from_columns).transpose()
}

fn movement_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MovementColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

/// Records a movement and sets the size's units on hand to its `stock_after` (and the threshold, if given).
/// Returns the movement's id. The idempotency key, when given, is unique: a second insert fails the write.
fn write_movement(
    connection: &Connection,
    outbox: Outbox,
    key: Option<&str>,
    (product, size): (&str, &str),
    (movement, origin): (&StockMovement, MovementOrigin),
    low_stock_threshold: Option<Quantity>,
) -> Result<i64, StoreError> {
    let date = movement.details.date.unix_millis();
    connection
        .prepare_cached(
            "UPDATE sizes SET stock = ?3, low_stock_threshold = COALESCE(?4, low_stock_threshold), updated_at = ?5 \
             WHERE product = ?1 AND size = ?2",
        )?
        .execute(params![product, size, i64::from(movement.stock_after), low_stock_threshold.map(i64::from), date])?;
    let id: i64 = connection
        .prepare_cached(
            "INSERT INTO movements (idempotency_key, product, size, type, quantity, stock_before, stock_after, \
             reason, reference, order_reference, date, origin) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id",
        )?
        .query_row(
            params![
                key,
                product,
                size,
                movement.kind.as_str(),
                movement.quantity.get(),
                i64::from(movement.stock_before),
                i64::from(movement.stock_after),
                movement.details.reason,
                movement.details.reference,
                movement.details.order_reference,
                date,
                origin.as_str(),
            ],
            |row| row.get(0),
        )?;
    outbox.movement(connection, id, product, origin, movement.details.date)?;
    Ok(id)
}

/// The stock level of one size at `now`.
fn size_level(connection: &Connection, product: &str, size: &str, now: Timestamp) -> Result<StockLevel, StoreError> {
    let figures = connection
        .prepare_cached(size_query())?
        .query_row(params![product, now.unix_millis(), size], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?))
        })
        .optional()?;
    let (stock, threshold, reserved) = figures
        .ok_or_else(|| StoreError::Inconsistent(format!("reserved size {product} {size} is missing from sizes")))?;
    level(stock, reserved, threshold)
}

/// Moves a reservation to `status`, and its items' `holds_until` with it (the triggers of migration 0004 move
/// the sizes' held units).
fn set_status(
    connection: &Connection,
    outbox: Outbox,
    record: &ReservationRecord,
    status: ReservationStatus,
    now: Timestamp,
) -> Result<(), StoreError> {
    let finished_at = status.is_terminal().then_some(now.unix_millis());
    connection
        .prepare_cached("UPDATE reservations SET status = ?2, finished_at = ?3 WHERE reference = ?1")?
        .execute(params![record.reference, status.as_str(), finished_at])?;
    connection
        .prepare_cached("UPDATE reservation_items SET holds_until = ?2 WHERE reference = ?1")?
        .execute(params![record.reference, holds_until(status, record.expires_at)])?;
    outbox.reservation(connection, &record.reference, &record.items, now)
}

fn record_conflict(
    connection: &Connection,
    kind: &'static str,
    (reference, event_id): (&str, &str),
    details: &serde_json::Value,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO conflicts (kind, reference, event_id, details, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![kind, reference, event_id, details.to_string(), now.unix_millis()])?;
    Ok(EventOutcome::Conflict { kind })
}

/// Sells a reservation's units. A reservation that still holds them sells them (stock and reserved go down
/// together); one that no longer does (late payment) is reserved again first if every size has the units, and
/// is otherwise recorded as an `oversold` conflict, changing nothing else.
fn commit_reservation(
    connection: &Connection,
    outbox: Outbox,
    (reference, order_reference, marked): (&str, Option<&str>, bool),
    event_id: &str,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let Some(record) = load_reservation(connection, reference)? else {
        return match decide::unknown_payment(marked) {
            Some(details) => record_conflict(connection, "unknown_reference", (reference, event_id), &details, now),
            None => Ok(EventOutcome::Ignored { reason: crate::store::FOREIGN_PAYMENT }),
        };
    };
    let late = match decide::commit(&record, now)? {
        decide::Commit::Unchanged(status) => return Ok(EventOutcome::Unchanged { status }),
        decide::Commit::Sell { late } => late,
    };
    let levels = record
        .items
        .iter()
        .map(|item| size_level(connection, &item.product, &item.size, now))
        .collect::<Result<Vec<_>, _>>()?;
    let sales = match decide::sales(&record, levels, (late, order_reference), now)? {
        Ok(sales) => sales,
        Err(details) => return record_conflict(connection, "oversold", (reference, event_id), &details, now),
    };
    for (item, movement) in &sales {
        let key = sale_key(reference, &item.product, &item.size);
        let sale = (movement, MovementOrigin::Sidecar);
        write_movement(connection, outbox, Some(&key), (&item.product, &item.size), sale, None)?;
    }
    set_status(connection, outbox, &record, ReservationStatus::Committed, now)?;
    Ok(EventOutcome::Committed { late })
}

/// Releases a reservation (see [`plan::release`]).
pub(super) fn release(
    connection: &Connection,
    outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<ReleaseOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    snapshot.add_reservation(reference, load_reservation(connection, reference)?);
    let plan = plan::release(&mut snapshot, reference, now)?;
    apply(connection, outbox, &plan.writes, now)?;
    Ok(plan.outcome)
}

/// Keeps a reservation whose payment is under way (see [`plan::start_processing`]).
fn start_processing(
    connection: &Connection,
    outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    snapshot.add_reservation(reference, load_reservation(connection, reference)?);
    let plan = plan::start_processing(&mut snapshot, reference, now)?;
    apply(connection, outbox, &plan.writes, now)?;
    Ok(plan.outcome)
}

/// Reserves a cart (see [`plan::reserve`]): loads what the decision reads, plans it, writes the plan.
pub(super) fn reserve(
    connection: &Connection,
    outbox: Outbox,
    (reference, lines): (&str, &[CartLine]),
    ttl: ReservationTtl,
    now: Timestamp,
) -> Result<ReserveOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    for product in plan::reserve_reads(lines) {
        snapshot.add_product(product, sizes_of(connection, product, now)?);
    }
    snapshot.add_reservation(reference, load_reservation(connection, reference)?);
    let plan = plan::reserve(&mut snapshot, (reference, lines), ttl, now)?;
    apply(connection, outbox, &plan.writes, now)?;
    Ok(plan.outcome)
}

/// Executes a plan's writes in order, on the writer's transaction.
fn apply(connection: &Connection, outbox: Outbox, writes: &[Write], now: Timestamp) -> Result<(), StoreError> {
    for write in writes {
        match write {
            Write::InsertReservation(record) => {
                connection
                    .prepare_cached(
                        "INSERT INTO reservations (reference, status, created_at, expires_at) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![
                        record.reference,
                        record.status.as_str(),
                        record.created_at.unix_millis(),
                        record.expires_at.unix_millis()
                    ])?;
                let holds = holds_until(record.status, record.expires_at);
                let mut insert_item = connection.prepare_cached(
                    "INSERT INTO reservation_items (reference, product, size, quantity, holds_until) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?;
                for item in &record.items {
                    insert_item.execute(params![
                        record.reference,
                        item.product,
                        item.size,
                        i64::from(item.quantity),
                        holds
                    ])?;
                }
            }
            Write::SetStatus { record, finished_at } => {
                connection
                    .prepare_cached("UPDATE reservations SET status = ?2, finished_at = ?3 WHERE reference = ?1")?
                    .execute(params![
                        record.reference,
                        record.status.as_str(),
                        finished_at.map(Timestamp::unix_millis)
                    ])?;
                connection
                    .prepare_cached("UPDATE reservation_items SET holds_until = ?2 WHERE reference = ?1")?
                    .execute(params![record.reference, holds_until(record.status, record.expires_at)])?;
            }
            Write::Queue(queued) => outbox.queue(
                connection,
                (queued.topic.as_str(), &queued.subject, &queued.lane),
                now,
                queued.delay_millis,
            )?,
        }
    }
    Ok(())
}

/// Expires every active reservation due at `now` (see [`crate::store::Store::release_expired`]); returns their
/// references, sorted.
pub(super) fn release_expired(
    connection: &Connection,
    queue_for_payload: bool,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    // The SQL form of stock-core's `Reservation::expire` on every active reservation due. Their items already
    // stopped counting at the expiry instant (holds_until <= now); zeroing it keeps the column's meaning.
    let now = now.unix_millis();
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
            connection.prepare_cached(statement)?.execute([now])?;
        }
    }
    connection
        .prepare_cached(
            "UPDATE reservation_items SET holds_until = 0 WHERE reference IN \
             (SELECT reference FROM reservations WHERE status = 'active' AND expires_at <= ?1)",
        )?
        .execute([now])?;
    let mut statement = connection.prepare_cached(
        "UPDATE reservations SET status = 'expired', finished_at = ?1 \
         WHERE status = 'active' AND expires_at <= ?1 RETURNING reference",
    )?;
    let mut references = statement.query_map([now], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    references.sort();
    Ok(references)
}

/// Expires one reservation due at `now` (see [`plan::expire`]); whether it changed.
pub(super) fn expire(
    connection: &Connection,
    outbox: Outbox,
    reference: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    let mut snapshot = Snapshot::default();
    snapshot.add_reservation(reference, load_reservation(connection, reference)?);
    let plan = plan::expire(&mut snapshot, reference, now)?;
    apply(connection, outbox, &plan.writes, now)?;
    Ok(plan.outcome)
}

fn insert_size(
    connection: &Connection,
    (product, size): (&str, &str),
    threshold: Quantity,
    now: Timestamp,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "INSERT INTO sizes (product, size, stock, low_stock_threshold, updated_at) VALUES (?1, ?2, 0, ?3, ?4)",
        )?
        .execute(params![product, size, i64::from(threshold), now.unix_millis()])?;
    Ok(())
}

/// Applies one stock movement (see [`crate::store::Store::record_movement`]).
pub(super) fn record_movement(
    connection: &Connection,
    outbox: Outbox,
    request: MovementRequest,
    now: Timestamp,
) -> Result<MovementOutcome, StoreError> {
    let key = request.reference.as_deref().map(movement_key);
    if let Some(key) = &key
        && let Some(previous) = load_movement(connection, key)?
    {
        return Ok(decide::repeated_movement(previous, &request));
    }

    let sizes = sizes_of(connection, &request.product, now)?;
    let current = match sizes.into_iter().find(|record| record.size == request.size) {
        Some(record) => record.level,
        None if request.kind == MovementType::Restock => {
            let threshold = request.low_stock_threshold.unwrap_or(Quantity::ZERO);
            insert_size(connection, (&request.product, &request.size), threshold, now)?;
            level(0, 0, i64::from(threshold))?
        }
        None => return Ok(MovementOutcome::UnknownSize),
    };
    let movement = match decide::movement(&current, &request, now) {
        Ok(movement) => movement,
        Err(refusal) => return Ok(*refusal),
    };
    let id = write_movement(
        connection,
        outbox,
        key.as_deref(),
        (&request.product, &request.size),
        (&movement, request.origin),
        request.low_stock_threshold,
    )?;
    Ok(MovementOutcome::Applied(MovementRecord { id, product: request.product, size: request.size, movement }))
}

/// Applies one Stripe event once (see [`crate::store::Store::apply_stripe_event`]): the claim of its id commits
/// with its effect.
pub(super) fn apply_stripe_event(
    connection: &Connection,
    outbox: Outbox,
    event: &StripeEventRecord,
    action: &StripeAction,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let claimed = connection
        .prepare_cached(
            "INSERT INTO stripe_events (id, type, outcome, received_at) VALUES (?1, ?2, 'pending', ?3) \
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![event.id, event.kind, now.unix_millis()])?;
    if claimed == 0 {
        return Ok(EventOutcome::Duplicate);
    }
    let outcome = match action {
        StripeAction::Commit { reference, order_reference, marked } => {
            let references = (reference.as_str(), order_reference.as_deref(), *marked);
            commit_reservation(connection, outbox, references, &event.id, now)?
        }
        StripeAction::Release { reference } => {
            decide::release_event_outcome(&release(connection, outbox, reference, now)?)
        }
        StripeAction::StartProcessing { reference } => start_processing(connection, outbox, reference, now)?,
        StripeAction::Ignore { reason } => EventOutcome::Ignored { reason },
        StripeAction::Unreadable { reference, problem } => {
            let details = decide::unreadable_event_details(problem);
            let reference = reference.as_deref().unwrap_or("-");
            record_conflict(connection, "unreadable_event", (reference, &event.id), &details, now)?
        }
    };
    connection
        .prepare_cached("UPDATE stripe_events SET outcome = ?2 WHERE id = ?1")?
        .execute(params![event.id, outcome.as_str()])?;
    Ok(outcome)
}

/// Brings one size Payload has into the ledger unless it is there already (see
/// [`crate::store::Store::import_size`]).
pub(super) fn import_size(
    connection: &Connection,
    outbox: Outbox,
    (product, size): (&str, &str),
    (stock, low_stock_threshold): (Quantity, Quantity),
    reason: &str,
    now: Timestamp,
) -> Result<ImportOutcome, StoreError> {
    let existing = sizes_of(connection, product, now)?.into_iter().find(|record| record.size == size);
    if let Some(record) = existing {
        return Ok(ImportOutcome::AlreadyInLedger { stock: record.level.stock() });
    }
    insert_size(connection, (product, size), low_stock_threshold, now)?;
    let record = if let Some(movement) = decide::import(stock, low_stock_threshold, reason, now)? {
        let key = import_key(product, size);
        let id = write_movement(
            connection,
            outbox,
            Some(&key),
            (product, size),
            (&movement, MovementOrigin::Sidecar),
            None,
        )?;
        Some(MovementRecord { id, product: product.to_owned(), size: size.to_owned(), movement })
    } else {
        outbox.product(connection, product, now)?;
        None
    };
    Ok(ImportOutcome::Imported(record))
}

/// Removes a delivered outbox row, unless a change came in since it was read (its revision moved on).
pub(super) fn outbox_delivered(connection: &Connection, id: i64, revision: i64) -> Result<bool, StoreError> {
    let deleted = connection
        .prepare_cached("DELETE FROM outbox WHERE id = ?1 AND revision = ?2")?
        .execute(params![id, revision])?;
    Ok(deleted == 1)
}

/// Records a failed delivery and holds the whole lane back until `retry_at`.
pub(super) fn outbox_failed(
    connection: &Connection,
    (id, lane): (i64, &str),
    error: &str,
    retry_at: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1")?
        .execute(params![id, error])?;
    connection
        .prepare_cached("UPDATE outbox SET next_attempt_at = MAX(next_attempt_at, ?2) WHERE lane = ?1")?
        .execute(params![lane, retry_at])?;
    Ok(())
}

/// Forgets Stripe events received before `before` (their redeliveries are long over).
/// Resolves a conflict (see [`crate::store::Store::resolve_conflict`]): only an open one takes the note.
pub(super) fn resolve_conflict(
    connection: &Connection,
    id: i64,
    resolution: &str,
    now: Timestamp,
) -> Result<ResolveOutcome, StoreError> {
    let updated = connection.prepare_cached(RESOLVE_CONFLICT)?.execute(params![now.unix_millis(), resolution, id])?;
    let row = connection
        .prepare_cached(CONFLICT_QUERY)?
        .query_row([id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?, row.get(7)?))
        })
        .optional()?;
    Ok(decide::resolution(updated > 0, row.map(conflict_from_columns).transpose()?))
}

pub(super) fn prune_stripe_events(connection: &Connection, before: i64) -> Result<u64, StoreError> {
    let deleted = connection.prepare_cached("DELETE FROM stripe_events WHERE received_at < ?1")?.execute([before])?;
    Ok(deleted as u64)
}

/// Claims `lane` for `owner` until `until` unless another owner's claim runs past `now` (see
/// [`crate::store::Store::claim_lane`]).
pub(super) fn claim_lane(
    connection: &Connection,
    lane: &str,
    owner: &str,
    (now, until): (i64, i64),
) -> Result<bool, StoreError> {
    let claimed = connection
        .prepare_cached(
            "INSERT INTO outbox_claims (lane, owner, claimed_until) VALUES (?1, ?2, ?4) \
             ON CONFLICT (lane) DO UPDATE SET owner = excluded.owner, claimed_until = excluded.claimed_until \
             WHERE outbox_claims.claimed_until <= ?3 OR outbox_claims.owner = excluded.owner",
        )?
        .execute(params![lane, owner, now, until])?;
    Ok(claimed == 1)
}

/// Gives up `owner`'s claim on `lane`.
pub(super) fn release_lane(connection: &Connection, lane: &str, owner: &str) -> Result<(), StoreError> {
    connection
        .prepare_cached("DELETE FROM outbox_claims WHERE lane = ?1 AND owner = ?2")?
        .execute(params![lane, owner])?;
    Ok(())
}

/// Records a size's crossing into the state of its level if its last recorded state is still `previous` (see
/// [`crate::store::Store::record_stock_alert`]).
pub(super) fn record_stock_alert(
    connection: &Connection,
    product: &str,
    size: &SizeRecord,
    previous: StockState,
    deliver: bool,
    now: Timestamp,
) -> Result<Option<StockAlert>, StoreError> {
    let state = size.level.state();
    let crossed = connection
        .prepare_cached("UPDATE sizes SET alert_state = ?3 WHERE product = ?1 AND size = ?2 AND alert_state = ?4")?
        .execute(params![product, size.size, state.as_str(), previous.as_str()])?;
    if crossed == 0 {
        return Ok(None);
    }
    let now = now.unix_millis();
    let level = &size.level;
    let mut statement = connection.prepare_cached(&format!(
        "INSERT INTO stock_alerts (product, size, previous_state, state, stock, reserved, low_stock_threshold, \
           created_at, delivered_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8) \
         RETURNING {ALERT_COLUMNS}"
    ))?;
    let row = statement.query_row(
        params![
            product,
            size.size,
            previous.as_str(),
            state.as_str(),
            level.stock().get(),
            level.reserved().get(),
            level.low_stock_threshold().get(),
            now,
            if deliver { None } else { Some(now) },
        ],
        alert_row,
    )?;
    Ok(alerts_from_rows(vec![row])?.pop())
}

fn alert_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlertColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
    ))
}

/// Claims undelivered alerts due at `now` (see [`crate::store::Store::claim_stock_alerts`]).
pub(super) fn claim_stock_alerts(
    connection: &Connection,
    now: Timestamp,
    until: Timestamp,
    limit: u32,
) -> Result<Vec<StockAlert>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "UPDATE stock_alerts SET claimed_until = ?2 WHERE id IN (SELECT id FROM stock_alerts \
           WHERE delivered_at IS NULL AND next_attempt_at <= ?1 AND claimed_until <= ?1 ORDER BY id LIMIT ?3) \
         RETURNING {ALERT_COLUMNS}"
    ))?;
    let rows = statement
        .query_map(params![now.unix_millis(), until.unix_millis(), limit], alert_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    alerts_from_rows(rows)
}

pub(super) fn stock_alert_delivered(connection: &Connection, id: i64, now: Timestamp) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE stock_alerts SET delivered_at = ?2, claimed_until = 0, last_error = NULL WHERE id = ?1",
        )?
        .execute(params![id, now.unix_millis()])?;
    Ok(())
}

pub(super) fn stock_alert_failed(
    connection: &Connection,
    id: i64,
    error: &str,
    retry_at: Timestamp,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(
            "UPDATE stock_alerts SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, claimed_until = 0 \
             WHERE id = ?1",
        )?
        .execute(params![id, error, retry_at.unix_millis()])?;
    Ok(())
}
