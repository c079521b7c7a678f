//! Every decision that changes the ledger, as a synchronous function on the writer connection (run on the
//! writer thread, inside the transaction the group commit opened; see `group_commit`). The rules themselves come
//! from stock-core; these functions read what the rules need and write what they decided.

use rusqlite::{Connection, OptionalExtension, params};
use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};

use super::{RESERVATION_QUERY, ReservationColumns, size_query, sizes_query};
use crate::store::columns::{
    ALERT_COLUMNS, AlertColumns, CONFLICT_QUERY, MovementColumns, RESOLVE_CONFLICT, alerts_from_rows,
    conflict_from_columns, holds_until, level, movement_from_columns, reads, reservation_from_rows,
};
use crate::store::decide;
use crate::store::plan::{self, NewMovement, Queued, Snapshot, Write};
use crate::store::{
    AlertCrossing, EventOutcome, ImportOutcome, MovementOutcome, MovementRecord, MovementRequest, ReleaseOutcome,
    ReservationRecord, ReserveOutcome, ResolveOutcome, SizeRecord, StockAlert, StoreError, StripeAction,
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

/// Reads one size of `product` into the snapshot, with its figures at `now` (absent if the ledger lacks it).
fn load_size(
    connection: &Connection,
    snapshot: &mut Snapshot,
    (product, size): (&str, &str),
    now: Timestamp,
) -> Result<(), StoreError> {
    let figures = connection
        .prepare_cached(size_query())?
        .query_row(params![product, now.unix_millis(), size], |row| {
            Ok((row.get::<_, i64>(1)?, row.get::<_, i64>(2)?, row.get::<_, i64>(3)?))
        })
        .optional()?;
    let record = match figures {
        Some((stock, threshold, reserved)) => {
            Some(SizeRecord { size: size.to_owned(), level: level(stock, reserved, threshold)? })
        }
        None => None,
    };
    snapshot.add_size(product, size, record);
    Ok(())
}

/// A reservation with its items, in one statement.
pub(super) fn load_reservation(
    connection: &Connection,
    reference: &str,
) -> Result<Option<ReservationRecord>, StoreError> {
    let mut statement = connection.prepare_cached(RESERVATION_QUERY)?;
    let rows = statement.query_map([reference], |row| ReservationColumns::try_from(row))?;
    reservation_from_rows(reference, rows.collect::<Result<Vec<_>, _>>()?)
}

fn load_movement(connection: &Connection, key: &str) -> Result<Option<MovementRecord>, StoreError> {
    let mut statement = connection.prepare_cached(reads::MOVEMENT_BY_KEY)?;
    let row = statement.query_row([key], |row| MovementColumns::try_from(row)).optional()?;
    row.map(movement_from_columns).transpose()
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

/// Applies one stock movement (see [`plan::record_movement`]).
pub(super) fn record_movement(
    connection: &Connection,
    outbox: Outbox,
    request: &MovementRequest,
    now: Timestamp,
) -> Result<MovementOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    if let Some(key) = plan::movement_reads(request) {
        snapshot.add_movement(&key, load_movement(connection, &key)?);
    }
    load_size(connection, &mut snapshot, (&request.product, &request.size), now)?;
    let plan = plan::record_movement(&mut snapshot, request, now)?;
    let recorded = apply(connection, outbox, &plan.writes, now)?;
    plan.outcome.answer(recorded)
}

/// Applies one Stripe event once (see [`plan::apply_stripe_event`]): its record commits with its effect.
pub(super) fn apply_stripe_event(
    connection: &Connection,
    outbox: Outbox,
    event: &StripeEventRecord,
    action: &StripeAction,
    now: Timestamp,
) -> Result<EventOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    let applied: bool = connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM stripe_events WHERE id = ?1)")?
        .query_row([&event.id], |row| row.get(0))?;
    snapshot.add_event(&event.id, applied);
    if let Some(reference) = plan::event_reads(action).filter(|_| !applied) {
        let record = load_reservation(connection, reference)?;
        if let (StripeAction::Commit { .. }, Some(record)) = (action, &record) {
            for item in &record.items {
                load_size(connection, &mut snapshot, (&item.product, &item.size), now)?;
            }
        }
        snapshot.add_reservation(reference, record);
    }
    let plan = plan::apply_stripe_event(&mut snapshot, event, action, now)?;
    apply(connection, outbox, &plan.writes, now)?;
    Ok(plan.outcome)
}

/// Brings one size Payload has into the ledger unless it is there already (see [`plan::import_size`]).
pub(super) fn import_size(
    connection: &Connection,
    outbox: Outbox,
    (product, size): (&str, &str),
    figures: (Quantity, Quantity),
    reason: &str,
    now: Timestamp,
) -> Result<ImportOutcome, StoreError> {
    let mut snapshot = Snapshot::default();
    load_size(connection, &mut snapshot, (product, size), now)?;
    let plan = plan::import_size(&mut snapshot, (product, size), figures, reason, now)?;
    let recorded = apply(connection, outbox, &plan.writes, now)?;
    Ok(plan.outcome.answer(recorded))
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
/// Resolves a conflict (see [`crate::ledger::Ledger::resolve_conflict`]): only an open one takes the note.
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
/// [`crate::ledger::Ledger::claim_lane`]).
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

/// Records each crossing whose size is still in its `previous` alerted state (see
/// [`crate::ledger::Ledger::record_stock_alerts`]).
pub(super) fn record_stock_alerts(
    connection: &Connection,
    crossings: &[AlertCrossing],
    now: Timestamp,
) -> Result<Vec<StockAlert>, StoreError> {
    let now = now.unix_millis();
    let mut rows = Vec::new();
    for crossing in crossings {
        let (product, size, state) = (&crossing.product, &crossing.size, crossing.state());
        let crossed = connection
            .prepare_cached("UPDATE sizes SET alert_state = ?3 WHERE product = ?1 AND size = ?2 AND alert_state = ?4")?
            .execute(params![product, size.size, state.as_str(), crossing.previous.as_str()])?;
        if crossed == 0 {
            continue;
        }
        let level = &size.level;
        let mut statement = connection.prepare_cached(&format!(
            "INSERT INTO stock_alerts (product, size, previous_state, state, stock, reserved, low_stock_threshold, \
               created_at, delivered_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8) \
             RETURNING {ALERT_COLUMNS}"
        ))?;
        rows.push(statement.query_row(
            params![
                product,
                size.size,
                crossing.previous.as_str(),
                state.as_str(),
                level.stock().get(),
                level.reserved().get(),
                level.low_stock_threshold().get(),
                now,
                if crossing.deliver { None } else { Some(now) },
            ],
            |row| AlertColumns::try_from(row),
        )?);
    }
    alerts_from_rows(rows)
}

/// Claims undelivered alerts due at `now` (see [`crate::ledger::Ledger::claim_stock_alerts`]).
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
        .query_map(params![now.unix_millis(), until.unix_millis(), limit], |row| AlertColumns::try_from(row))?
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
