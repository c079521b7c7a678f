//! The SQLite executor of the ledger's decisions, synchronous on the writer connection (run on the writer thread,
//! inside the transaction the group commit opened; see `group_commit`): it loads what a decision reads, has it
//! planned by `store/plan.rs`, and writes the plan statement by statement (each a prepared statement on the
//! writer's own thread, 3 us or so). Cleanup's expiry of every reservation due is one set-based statement.

use rusqlite::{Connection, params};
use stock_core::Timestamp;

use super::{SIZE_QUERY, SIZES_QUERY, rows};
use crate::store::columns::{
    MovementColumns, PaymentColumns, ReturnLineColumns, holds_until, level, movement_from_columns, payment_columns,
    payment_from_columns, reservation_from_rows, returns_from_rows,
};
use crate::store::plan::{self, NewMovement, Outcome, Queued, Reads, Request, Snapshot, Write};
use crate::store::sql::statements;
use crate::store::{MovementRecord, SizeRecord, StoreError};

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
    /// Queues what Payload must show about a subject. A row already queued for the same subject has its revision
    /// bumped instead (see migration 0003), so changes coalesce.
    fn queue(self, connection: &Connection, queued: &Queued, now: Timestamp) -> Result<(), StoreError> {
        if !self.enabled {
            return Ok(());
        }
        connection
            .prepare_cached(
                "INSERT INTO outbox (topic, subject, lane, created_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (topic, subject) DO UPDATE SET revision = revision + 1",
            )?
            .execute(params![
                queued.topic.as_str(),
                queued.subject,
                queued.lane,
                now.unix_millis(),
                now.unix_millis().saturating_add(queued.delay_millis)
            ])?;
        Ok(())
    }
}

/// Takes one decision (see [`plan::Decision`]): loads what it reads, plans it, writes the plan. `reads` is
/// `plan::reads` of the request, worked out before the hand-off, off the writer thread that every decision waits for.
pub(super) fn decide(
    connection: &Connection,
    outbox: Outbox,
    (request, reads): (&Request, &Reads),
) -> Result<Outcome, StoreError> {
    let batch = std::slice::from_ref(request);
    let mut snapshot = load(connection, reads, request.now)?;
    let plan = plan::plan_batch(&mut snapshot, batch)?;
    let recorded = apply(connection, outbox, &plan.writes, request.now)?;
    plan.answer(recorded)?.pop().ok_or_else(|| {
        StoreError::Inconsistent(format!("a {} was decided without an outcome", request.decision.kind()))
    })
}

/// Loads what a decision reads, with the sizes' figures at `now` (the writer's transaction is the snapshot).
fn load(connection: &Connection, reads: &Reads, now: Timestamp) -> Result<Snapshot, StoreError> {
    let mut snapshot = Snapshot::default();
    let mut applied = Vec::new();
    for (id, _) in &reads.events {
        let known = !rows::<(i64,)>(connection, "SELECT 1 FROM stripe_events WHERE id = ?1", [id])?.is_empty();
        if known {
            applied.push(id.clone());
        }
        snapshot.add_event(id, known);
    }
    for payment_intent in plan::payments_read(reads, &applied) {
        let row = rows::<PaymentColumns>(connection, PAYMENT_QUERY, [&payment_intent])?.pop();
        snapshot.add_payment(&payment_intent, row.map(payment_from_columns).transpose()?);
    }
    let mut records = Vec::new();
    for reference in plan::references_read(reads, &applied, &snapshot) {
        let record =
            reservation_from_rows(&reference, rows(connection, statements::RESERVATION.sqlite, [&reference])?)?;
        records.push((reference, record));
    }
    for product in &reads.products {
        let sizes = rows::<SizeFigures>(connection, SIZES_QUERY, rusqlite::params![product, now.unix_millis()])?;
        snapshot.add_product(product, sizes.into_iter().map(size_record).collect::<Result<_, _>>()?);
    }
    let locked = plan::sizes_read(reads, records.iter().filter_map(|(_, record)| record.as_ref()));
    for (product, size) in locked.iter().chain(&reads.unlocked_sizes) {
        if !reads.products.contains(product) {
            let found =
                rows::<SizeFigures>(connection, SIZE_QUERY, rusqlite::params![product, now.unix_millis(), size])?;
            snapshot.add_size(product, size, found.into_iter().next().map(size_record).transpose()?);
        }
    }
    let (returns, movements) = plan::after_sale_reads(reads, records.iter().filter_map(|(_, record)| record.as_ref()));
    for reference in &returns {
        let rows = rows::<ReturnLineColumns>(connection, RETURNS_QUERY, [reference])?;
        snapshot.add_returns(reference, returns_from_rows(reference, rows)?);
    }
    for (reference, record) in records {
        snapshot.add_reservation(&reference, record);
    }
    for key in &movements {
        let row = rows::<MovementColumns>(connection, statements::MOVEMENT_BY_KEY.sqlite, [key])?.pop();
        snapshot.add_movement(key, row.map(movement_from_columns).transpose()?);
    }
    Ok(snapshot)
}

/// The lines of a reservation's returns, by return id and line.
const RETURNS_QUERY: &str = "SELECT return_id, line, product, size, quantity, reason, created_at FROM return_lines \
     WHERE reference = ?1 ORDER BY return_id, line";

/// A payment by its PaymentIntent.
const PAYMENT_QUERY: &str =
    "SELECT payment_intent, reference, amount, refunded, dispute FROM payments WHERE payment_intent = ?1";

/// A size's columns as [`SIZES_QUERY`] and [`SIZE_QUERY`] read them: size, stock, threshold, reserved.
type SizeFigures = (String, i64, i64, i64);

fn size_record((size, stock, threshold, reserved): SizeFigures) -> Result<SizeRecord, StoreError> {
    Ok(SizeRecord { size, level: level(stock, reserved, threshold)? })
}

/// Executes a plan's writes in order, on the writer's transaction; the movements it recorded, with their ids.
fn apply(
    connection: &Connection,
    outbox: Outbox,
    writes: &[Write],
    now: Timestamp,
) -> Result<Vec<MovementRecord>, StoreError> {
    let mut recorded = Vec::new();
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
                // The triggers of migration 0004 move the sizes' held units with the items.
                connection
                    .prepare_cached("UPDATE reservation_items SET holds_until = ?2 WHERE reference = ?1")?
                    .execute(params![record.reference, holds_until(record.status, record.expires_at)])?;
            }
            Write::Queue(queued) => outbox.queue(connection, queued, now)?,
            Write::InsertSize { product, size, low_stock_threshold } => {
                connection
                    .prepare_cached(
                        "INSERT INTO sizes (product, size, stock, low_stock_threshold, updated_at) \
                         VALUES (?1, ?2, 0, ?3, ?4)",
                    )?
                    .execute(params![product, size, i64::from(*low_stock_threshold), now.unix_millis()])?;
            }
            Write::InsertMovement(planned) => {
                let id = insert_movement(connection, planned)?;
                for queued in
                    plan::movement_entries(id, &planned.product, planned.origin, outbox.payload_save_grace_millis)
                {
                    outbox.queue(connection, &queued, planned.movement.details.date)?;
                }
                recorded.push(planned.recorded(id));
            }
            Write::RecordConflict { kind, reference, event_id, details } => {
                connection
                    .prepare_cached(
                        "INSERT INTO conflicts (kind, reference, event_id, details, created_at) \
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![kind, reference, event_id, details, now.unix_millis()])?;
            }
            Write::RecordReturn(record) => {
                let mut insert = connection.prepare_cached(
                    "INSERT INTO return_lines (reference, return_id, line, product, size, quantity, reason, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for (index, line) in record.lines.iter().enumerate() {
                    insert.execute(params![
                        record.reference,
                        record.return_id,
                        i64::try_from(index).unwrap_or(i64::MAX),
                        line.product,
                        line.size,
                        i64::from(line.quantity),
                        line.reason.as_str(),
                        record.created_at.unix_millis()
                    ])?;
                }
            }
            Write::RecordPayment { record, existed } => {
                let (payment_intent, reference, amount, refunded, dispute) = payment_columns(record);
                let statement = if *existed {
                    "UPDATE payments SET reference = ?2, amount = ?3, refunded = ?4, dispute = ?5, updated_at = ?6 \
                     WHERE payment_intent = ?1"
                } else {
                    "INSERT INTO payments (payment_intent, reference, amount, refunded, dispute, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                };
                connection.prepare_cached(statement)?.execute(params![
                    payment_intent,
                    reference,
                    amount,
                    refunded,
                    dispute,
                    now.unix_millis()
                ])?;
            }
            Write::RecordEvent { id, kind, outcome, received_at } => {
                connection
                    .prepare_cached(
                        "INSERT INTO stripe_events (id, type, outcome, received_at) VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![id, kind, outcome, received_at.unix_millis()])?;
            }
        }
    }
    Ok(recorded)
}

/// Records a movement and sets its size's units on hand to its `stock_after` (and the threshold, if given); the id
/// the database gave it.
fn insert_movement(connection: &Connection, planned: &NewMovement) -> Result<i64, StoreError> {
    let NewMovement { key, product, size, movement, origin, low_stock_threshold } = planned;
    let date = movement.details.date.unix_millis();
    connection
        .prepare_cached(
            "UPDATE sizes SET stock = ?3, low_stock_threshold = COALESCE(?4, low_stock_threshold), updated_at = ?5 \
             WHERE product = ?1 AND size = ?2",
        )?
        .execute(params![product, size, i64::from(movement.stock_after), low_stock_threshold.map(i64::from), date])?;
    let id = connection
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
    Ok(id)
}

/// Expires every active reservation due at `now` (see [`crate::ledger::Ledger::release_expired`]); returns their
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
