//! The PostgreSQL executor of the ledger's decisions, on a connection inside a transaction (a batch's, or one
//! decision's): [`decide_all`] loads what a batch reads, locking before it reads figures (reservations first, in
//! reference order, then sizes in product and size order, so that a decision sees what the previous lock holder
//! committed), has every decision planned by `store/plan.rs`, and executes the plans set-based (`apply`): a
//! statement per kind of row, whatever the number of decisions, and the new reservations, status changes, event
//! records and outbox rows in one last statement. Cleanup's expiry of every reservation due is set-based too
//! ([`release_expired`]).
use std::collections::BTreeMap;

use sqlx::postgres::PgConnection;
use stock_core::Timestamp;

use super::{SIZE_PAIRS_QUERY, load_reservations, sizes_of};
use crate::store::columns::{SizeColumns, sizes_from_rows};

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
    MovementColumns, PaymentColumns, ReturnLineColumns, holds_until, movement_from_columns, payment_columns,
    payment_from_columns, returns_from_rows,
};
use crate::store::plan::{self, NewMovement, Outcome, Queued, Reads, Request, Snapshot, Write};
use crate::store::sql::statements;
use crate::store::{MovementRecord, PaymentRecord, ReservationRecord, StoreError};

/// What a transaction writes in its last statement: the reservations its decisions made, the new statuses of the
/// ones they moved, the Stripe events they applied, and the outbox rows they queued (if this store queues changes
/// for Payload). One statement instead of one per row saves round trips while the transaction holds its locks.
#[derive(Debug, Clone)]
pub(super) struct Pending {
    enabled: bool,
    /// How long a movement recorded for Payload's stock-movements hook waits before the outbox creates its document.
    payload_save_grace_millis: i64,
    /// (topic, subject, lane, created_at, next_attempt_at), each subject once.
    rows: Vec<(&'static str, String, String, i64, i64)>,
    /// Reservations moving to a new status: (reference, status, finished_at, holds_until of its items), each
    /// reference once, with the last status its decisions planned.
    statuses: Vec<(String, &'static str, Option<i64>, i64)>,
    /// The Stripe events applied: (id, type, outcome, received_at).
    events: Vec<(String, String, &'static str, i64)>,
    /// New reservations: (reference, status, created_at, expires_at).
    reservations: Vec<(String, &'static str, i64, i64)>,
    /// Their items: (reference, product, size, quantity, holds_until).
    items: Vec<(String, String, String, i64, i64)>,
}

/// The columns of queued outbox rows: topics, subjects, lanes, created_at, next_attempt_at.
type OutboxColumns = (Vec<&'static str>, Vec<String>, Vec<String>, Vec<i64>, Vec<i64>);

impl Pending {
    pub(super) fn new(enabled: bool, payload_save_grace_millis: i64) -> Self {
        Pending {
            enabled,
            payload_save_grace_millis,
            rows: Vec::new(),
            statuses: Vec::new(),
            events: Vec::new(),
            reservations: Vec::new(),
            items: Vec::new(),
        }
    }

    fn insert_reservation(&mut self, record: &ReservationRecord) {
        let holds = holds_until(record.status, record.expires_at);
        let (created_at, expires_at) = (record.created_at.unix_millis(), record.expires_at.unix_millis());
        self.reservations.push((record.reference.clone(), record.status.as_str(), created_at, expires_at));
        for item in &record.items {
            let quantity = i64::from(item.quantity);
            self.items.push((record.reference.clone(), item.product.clone(), item.size.clone(), quantity, holds));
        }
    }

    /// Queues what Payload must show about a subject, once per transaction.
    fn queue(&mut self, queued: &Queued, now: Timestamp) {
        let topic = queued.topic.as_str();
        if self.enabled && !self.rows.iter().any(|row| row.0 == topic && row.1 == queued.subject) {
            let now = now.unix_millis();
            let due = now.saturating_add(queued.delay_millis);
            self.rows.push((topic, queued.subject.clone(), queued.lane.clone(), now, due));
        }
    }

    /// A reservation's new status: the last one its decisions planned. One made in the same transaction is
    /// refused (the last statement inserts and updates in one snapshot, so the update would miss it): the batch
    /// then runs its decisions one by one.
    fn set_status(
        &mut self,
        (reference, status, finished_at, holds): (String, &'static str, Option<i64>, i64),
    ) -> Result<(), StoreError> {
        if self.reservations.iter().any(|made| made.0 == reference) {
            return Err(StoreError::Inconsistent(format!("reservation {reference} was made and moved in one batch")));
        }
        self.statuses.retain(|planned| planned.0 != reference);
        self.statuses.push((reference, status, finished_at, holds));
        Ok(())
    }

    /// The queued rows as the arrays `UNNEST` takes, products first, then reservations, each in key order, then
    /// movements in id order: the upsert locks the rows it finds, and two transactions taking them in different
    /// orders could deadlock (a movement's row is its own). A lane's rows keep their order: a product's lane has
    /// its sizes' row before its movements', as they were queued.
    fn take_rows(&mut self) -> OutboxColumns {
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by_cached_key(|row| match row.0 {
            "product" => (0, row.1.clone(), 0),
            "reservation" => (1, row.1.clone(), 0),
            _ => (2, String::new(), row.1.parse::<i64>().unwrap_or(i64::MAX)),
        });
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

    /// Writes what is pending in one statement: the new reservations and their items (a reservation batch), or the
    /// status changes and the events' records (the others), with the queued outbox rows (a row already queued for
    /// the same subject has its revision bumped instead: the changes coalesce). A reservation or an event another
    /// sidecar recorded since this one read it fails the statement on its unique key ([`is_key_taken`]).
    async fn write(mut self, connection: &mut PgConnection) -> Result<(), StoreError> {
        let changes = !self.statuses.is_empty() || !self.events.is_empty();
        if !self.reservations.is_empty() {
            // A reservation batch's own statement: an empty part of the other one would still fire the items'
            // statement triggers (migrations 0006, 0007) under the hot sizes' locks.
            let queued = if changes { Default::default() } else { self.take_rows() };
            let (made, items) = (&self.reservations, &self.items);
            let statement = sqlx::query(concat!(
                "WITH made AS (INSERT INTO reservations (reference, status, created_at, expires_at) \
                   SELECT reference, status, created_at, expires_at \
                   FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) WITH ORDINALITY \
                     AS planned (reference, status, created_at, expires_at, position) ORDER BY position), \
                 made_items AS (INSERT INTO reservation_items (reference, product, size, quantity, holds_until) \
                   SELECT reference, product, size, quantity, holds_until \
                   FROM UNNEST($5::TEXT[], $6::TEXT[], $7::TEXT[], $8::BIGINT[], $9::BIGINT[]) WITH ORDINALITY \
                     AS item (reference, product, size, quantity, holds_until, position) ORDER BY position), \
                 queued AS (",
                queue_outbox!("$10", "$11", "$12", "$13", "$14", ""),
                ") SELECT 1"
            ))
            .bind(made.iter().map(|made| made.0.as_str()).collect::<Vec<_>>())
            .bind(made.iter().map(|made| made.1).collect::<Vec<_>>())
            .bind(made.iter().map(|made| made.2).collect::<Vec<_>>())
            .bind(made.iter().map(|made| made.3).collect::<Vec<_>>())
            .bind(items.iter().map(|item| item.0.as_str()).collect::<Vec<_>>())
            .bind(items.iter().map(|item| item.1.as_str()).collect::<Vec<_>>())
            .bind(items.iter().map(|item| item.2.as_str()).collect::<Vec<_>>())
            .bind(items.iter().map(|item| item.3).collect::<Vec<_>>())
            .bind(items.iter().map(|item| item.4).collect::<Vec<_>>());
            bind_queued(statement, queued).execute(&mut *connection).await?;
        }
        if !changes && self.rows.is_empty() {
            return Ok(());
        }
        let queued = self.take_rows();
        // The events' records in id order: two sidecars inserting the same ids in opposite orders would deadlock.
        self.events.sort_by(|a, b| a.0.cmp(&b.0));
        let (statuses, events) = (&self.statuses, &self.events);
        let statement = sqlx::query(concat!(
            "WITH planned AS (SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) \
               AS planned (reference, status, finished_at, holds_until)), \
             items AS (UPDATE reservation_items ri SET holds_until = planned.holds_until FROM planned \
               WHERE ri.reference = planned.reference), \
             status AS (UPDATE reservations r SET status = planned.status, finished_at = planned.finished_at \
               FROM planned WHERE r.reference = planned.reference), \
             event AS (INSERT INTO stripe_events (id, type, outcome, received_at) \
               SELECT * FROM UNNEST($5::TEXT[], $6::TEXT[], $7::TEXT[], $8::BIGINT[])), \
             queued AS (",
            queue_outbox!("$9", "$10", "$11", "$12", "$13", ""),
            ") SELECT 1"
        ))
        .bind(statuses.iter().map(|status| status.0.as_str()).collect::<Vec<_>>())
        .bind(statuses.iter().map(|status| status.1).collect::<Vec<_>>())
        .bind(statuses.iter().map(|status| status.2).collect::<Vec<_>>())
        .bind(statuses.iter().map(|status| status.3).collect::<Vec<_>>())
        .bind(events.iter().map(|event| event.0.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|event| event.1.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|event| event.2).collect::<Vec<_>>())
        .bind(events.iter().map(|event| event.3).collect::<Vec<_>>());
        bind_queued(statement, queued).execute(&mut *connection).await?;
        Ok(())
    }
}

/// Binds the queued outbox rows' arrays to the parameters `queue_outbox!` names last.
fn bind_queued<'q>(
    statement: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    (topics, subjects, lanes, created, due): OutboxColumns,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    statement.bind(topics).bind(subjects).bind(lanes).bind(created).bind(due)
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

/// A size by product and label.
type SizeKey<'a> = (&'a str, &'a str);

/// Loads every size of `products` into the snapshot, but a size asked for that did not exist when the sizes were
/// locked (another sidecar created it since): planning on its unlocked figures could count its units twice, so the
/// decision sees it absent and its write of the size fails on the size's key. `asked` and `locked` are sorted.
async fn load_products(
    connection: &mut PgConnection,
    snapshot: &mut Snapshot,
    products: &[&str],
    (asked, locked): (&[SizeKey<'_>], &[(String, String)]),
    now: Timestamp,
) -> Result<(), StoreError> {
    let mut sizes = sizes_of(connection, products, now).await?.into_iter().peekable();
    for product in products {
        let mut records = Vec::new();
        while let Some((_, record)) = sizes.next_if(|(owner, _)| owner == product) {
            let asked_but_unlocked = asked.binary_search(&(product, record.size.as_str())).is_ok()
                && locked.binary_search(&(product.to_string(), record.size.clone())).is_err();
            if !asked_but_unlocked {
                records.push(record);
            }
        }
        snapshot.add_product(product, records);
    }
    Ok(())
}

/// Loads the sizes `asked` names into the snapshot; with `locked`, a size asked for that was not locked is absent
/// to the decision, as in [`load_products`].
async fn load_sizes(
    connection: &mut PgConnection,
    snapshot: &mut Snapshot,
    asked: &[SizeKey<'_>],
    locked: Option<&[(String, String)]>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let (products, labels): (Vec<&str>, Vec<&str>) = asked.iter().copied().unzip();
    let rows: Vec<SizeColumns> = sqlx::query_as(SIZE_PAIRS_QUERY)
        .bind(products)
        .bind(now.unix_millis())
        .bind(labels)
        .fetch_all(&mut *connection)
        .await?;
    let rows = sizes_from_rows(rows)?;
    for &(product, label) in asked {
        let unlocked =
            locked.is_some_and(|locked| !locked.iter().any(|(owner, size)| owner == product && size == label));
        let found = rows.iter().find(|(owner, record)| owner == product && record.size == label);
        snapshot.add_size(product, label, found.filter(|_| !unlocked).map(|(_, record)| record.clone()));
    }
    Ok(())
}

async fn load_movement(connection: &mut PgConnection, key: &str) -> Result<Option<MovementRecord>, StoreError> {
    let row: Option<MovementColumns> =
        sqlx::query_as(statements::MOVEMENT_BY_KEY.postgres).bind(key).fetch_optional(&mut *connection).await?;
    row.map(movement_from_columns).transpose()
}

/// One column of `rows`, as the array `UNNEST` takes.
fn column<'a, Row, Value>(rows: &'a [Row], value: impl Fn(&'a Row) -> Value) -> Vec<Value> {
    rows.iter().map(value).collect()
}

/// Records movements, and sets each size's units on hand (and threshold) to what its last movement leaves, in one
/// statement; the sizes must be locked. The ids given, in plan order: the identity numbers the rows in the order the
/// `SELECT` makes them (its `ORDER BY`), so the ids returned, sorted, follow the plan (checked row by row).
async fn insert_movements(connection: &mut PgConnection, planned: &[&NewMovement]) -> Result<Vec<i64>, StoreError> {
    // Each size once, with what its last movement leaves (the threshold: the last one a movement set).
    let mut sizes: Vec<(&str, &str, i64, Option<i64>, i64)> = Vec::new();
    for planned in planned {
        let threshold = planned.low_stock_threshold.map(i64::from);
        let after = i64::from(planned.movement.stock_after);
        let date = planned.movement.details.date.unix_millis();
        match sizes.iter_mut().find(|size| size.0 == planned.product && size.1 == planned.size) {
            Some(size) => *size = (size.0, size.1, after, threshold.or(size.3), date),
            None => sizes.push((&planned.product, &planned.size, after, threshold, date)),
        }
    }
    let mut rows: Vec<(i64, String, String, i64, Option<String>)> = sqlx::query_as(
        "WITH updated AS (UPDATE sizes s SET stock = u.stock, \
           low_stock_threshold = COALESCE(u.threshold, s.low_stock_threshold), updated_at = u.at \
           FROM UNNEST($13::TEXT[], $14::TEXT[], $15::BIGINT[], $16::BIGINT[], $17::BIGINT[]) \
             AS u (product, size, stock, threshold, at) \
           WHERE s.product = u.product AND s.size = u.size) \
         INSERT INTO movements (idempotency_key, product, size, type, quantity, stock_before, stock_after, reason, \
           reference, order_reference, date, origin) \
         SELECT key, product, size, type, quantity, stock_before, stock_after, reason, reference, order_reference, \
           date, origin \
         FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], $6::BIGINT[], $7::BIGINT[], \
           $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::BIGINT[], $12::TEXT[]) WITH ORDINALITY \
           AS planned (key, product, size, type, quantity, stock_before, stock_after, reason, reference, \
             order_reference, date, origin, position) \
         ORDER BY position RETURNING id, product, size, stock_after, idempotency_key",
    )
    .bind(column(planned, |planned| planned.key.as_deref()))
    .bind(column(planned, |planned| planned.product.as_str()))
    .bind(column(planned, |planned| planned.size.as_str()))
    .bind(column(planned, |planned| planned.movement.kind.as_str()))
    .bind(column(planned, |planned| planned.movement.quantity.get()))
    .bind(column(planned, |planned| i64::from(planned.movement.stock_before)))
    .bind(column(planned, |planned| i64::from(planned.movement.stock_after)))
    .bind(column(planned, |planned| planned.movement.details.reason.as_str()))
    .bind(column(planned, |planned| planned.movement.details.reference.as_deref()))
    .bind(column(planned, |planned| planned.movement.details.order_reference.as_deref()))
    .bind(column(planned, |planned| planned.movement.details.date.unix_millis()))
    .bind(column(planned, |planned| planned.origin.as_str()))
    .bind(column(&sizes, |size| size.0))
    .bind(column(&sizes, |size| size.1))
    .bind(column(&sizes, |size| size.2))
    .bind(column(&sizes, |size| size.3))
    .bind(column(&sizes, |size| size.4))
    .fetch_all(&mut *connection)
    .await?;
    rows.sort_unstable_by_key(|row| row.0);
    // Checked, not assumed: a movement given another's id would be answered and projected as the other.
    let in_plan_order = rows.len() == planned.len()
        && rows.iter().zip(planned).all(|((_, product, size, after, key), planned)| {
            *product == planned.product
                && *size == planned.size
                && *after == i64::from(planned.movement.stock_after)
                && key.as_deref() == planned.key.as_deref()
        });
    if !in_plan_order {
        return Err(StoreError::Inconsistent("the movements' ids did not follow the plan's order".to_owned()));
    }
    Ok(rows.into_iter().map(|(id, ..)| id).collect())
}

/// A return line's row with its reservation's reference first.
type ReturnLineRow = (String, String, i64, String, String, i64, String, i64);

/// The columns of return lines to insert: reference, return_id, line, product, size, quantity, reason, created_at.
type ReturnLineArrays<'a> =
    (Vec<&'a str>, Vec<&'a str>, Vec<i64>, Vec<&'a str>, Vec<&'a str>, Vec<i64>, Vec<&'static str>, Vec<i64>);

/// Writes payments' money: the new ones in one statement (no ON CONFLICT: a payment another sidecar recorded since
/// this one read it fails the transaction, which runs again and finds it), the others, read locked, in another.
async fn write_payments(
    connection: &mut PgConnection,
    payments: &[(&PaymentRecord, bool)],
    now: Timestamp,
) -> Result<(), StoreError> {
    for inserted in [true, false] {
        let rows: Vec<PaymentColumns> = payments
            .iter()
            .filter(|(_, existed)| *existed != inserted)
            .map(|(record, _)| payment_columns(record))
            .collect();
        if rows.is_empty() {
            continue;
        }
        let statement = if inserted {
            "INSERT INTO payments (payment_intent, reference, amount, refunded, dispute, updated_at) \
             SELECT payment_intent, reference, amount, refunded, dispute, $6 \
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[]) \
               AS planned (payment_intent, reference, amount, refunded, dispute) ORDER BY payment_intent"
        } else {
            "UPDATE payments p SET reference = planned.reference, amount = planned.amount, \
               refunded = planned.refunded, dispute = planned.dispute, updated_at = $6 \
             FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[]) \
               AS planned (payment_intent, reference, amount, refunded, dispute) \
             WHERE p.payment_intent = planned.payment_intent"
        };
        sqlx::query(statement)
            .bind(column(&rows, |row| row.0.as_str()))
            .bind(column(&rows, |row| row.1.as_deref()))
            .bind(column(&rows, |row| row.2))
            .bind(column(&rows, |row| row.3))
            .bind(column(&rows, |row| row.4.as_deref()))
            .bind(now.unix_millis())
            .execute(&mut *connection)
            .await?;
    }
    Ok(())
}

/// Executes the writes of a transaction's plans, in few statements: new sizes in one, conflicts in one, movements
/// and their sizes' figures in one; new reservations, status changes, the events' records and the outbox rows are
/// gathered for [`Pending::write`], which writes them in one statement at the transaction's end. The movements
/// recorded, with their ids, in plan order.
async fn apply(
    connection: &mut PgConnection,
    outbox: &mut Pending,
    writes: &[Write],
    now: Timestamp,
) -> Result<Vec<MovementRecord>, StoreError> {
    let mut new_sizes: (Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
    let mut movements: Vec<&NewMovement> = Vec::new();
    let mut conflicts: (Vec<&str>, Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
    // Each payment once, as the last decision left it: inserted if the first one found no row.
    let mut payments: Vec<(&PaymentRecord, bool)> = Vec::new();
    let mut return_lines: ReturnLineArrays<'_> = Default::default();
    for write in writes {
        match write {
            // The reservation's sizes were locked when it was read (`load`).
            Write::SetStatus { record, finished_at } => outbox.set_status((
                record.reference.clone(),
                record.status.as_str(),
                finished_at.map(Timestamp::unix_millis),
                holds_until(record.status, record.expires_at),
            ))?,
            Write::InsertReservation(record) => outbox.insert_reservation(record),
            Write::Queue(queued) => outbox.queue(queued, now),
            Write::InsertSize { product, size, low_stock_threshold } => {
                new_sizes.0.push(product);
                new_sizes.1.push(size);
                new_sizes.2.push(i64::from(*low_stock_threshold));
            }
            Write::InsertMovement(planned) => movements.push(planned),
            Write::RecordConflict { kind, reference, event_id, details } => {
                conflicts.0.push(kind);
                conflicts.1.push(reference);
                conflicts.2.push(event_id);
                conflicts.3.push(details);
            }
            Write::RecordEvent { id, kind, outcome, received_at } => {
                outbox.events.push((id.clone(), kind.clone(), outcome, received_at.unix_millis()));
            }
            Write::RecordReturn(record) => {
                for (index, line) in record.lines.iter().enumerate() {
                    return_lines.0.push(record.reference.as_str());
                    return_lines.1.push(record.return_id.as_str());
                    return_lines.2.push(i64::try_from(index).unwrap_or(i64::MAX));
                    return_lines.3.push(line.product.as_str());
                    return_lines.4.push(line.size.as_str());
                    return_lines.5.push(i64::from(line.quantity));
                    return_lines.6.push(line.reason.as_str());
                    return_lines.7.push(record.created_at.unix_millis());
                }
            }
            Write::RecordPayment { record, existed } => {
                match payments.iter_mut().find(|(known, _)| known.payment_intent == record.payment_intent) {
                    Some(payment) => payment.0 = record,
                    None => payments.push((record, *existed)),
                }
            }
        }
    }
    if !payments.is_empty() {
        write_payments(connection, &payments, now).await?;
    }
    if !return_lines.0.is_empty() {
        // No ON CONFLICT: a return another sidecar recorded since this one read fails the transaction, which runs
        // again and answers it as a replay.
        sqlx::query(
            "INSERT INTO return_lines (reference, return_id, line, product, size, quantity, reason, created_at) \
             SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::BIGINT[], \
               $7::TEXT[], $8::BIGINT[])",
        )
        .bind(return_lines.0)
        .bind(return_lines.1)
        .bind(return_lines.2)
        .bind(return_lines.3)
        .bind(return_lines.4)
        .bind(return_lines.5)
        .bind(return_lines.6)
        .bind(return_lines.7)
        .execute(&mut *connection)
        .await?;
    }
    if !new_sizes.0.is_empty() {
        // No ON CONFLICT: a size another sidecar created since this one read fails the transaction, which runs
        // again and finds it.
        sqlx::query(
            "INSERT INTO sizes (product, size, stock, low_stock_threshold, updated_at) \
             SELECT product, size, 0, threshold, $4 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[]) \
               AS planned (product, size, threshold)",
        )
        .bind(new_sizes.0)
        .bind(new_sizes.1)
        .bind(new_sizes.2)
        .bind(now.unix_millis())
        .execute(&mut *connection)
        .await?;
    }
    if !conflicts.0.is_empty() {
        sqlx::query(
            "INSERT INTO conflicts (kind, reference, event_id, details, created_at) \
             SELECT kind, reference, event_id, details, $5 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) \
               AS planned (kind, reference, event_id, details)",
        )
        .bind(conflicts.0)
        .bind(conflicts.1)
        .bind(conflicts.2)
        .bind(conflicts.3)
        .bind(now.unix_millis())
        .execute(&mut *connection)
        .await?;
    }
    if movements.is_empty() {
        return Ok(Vec::new());
    }
    let ids = insert_movements(connection, &movements).await?;
    let grace = outbox.payload_save_grace_millis;
    let mut recorded = Vec::with_capacity(movements.len());
    for (id, planned) in ids.into_iter().zip(movements) {
        for queued in plan::movement_entries(id, &planned.product, planned.origin, grace) {
            outbox.queue(&queued, planned.movement.details.date);
        }
        recorded.push(planned.recorded(id));
    }
    Ok(recorded)
}

/// Loads what a batch reads (see [`plan::Reads`]) into a snapshot, locking in one order whatever the batch: the
/// Stripe events' records (no lock: a unique id guards them), the payments they read (locked, in PaymentIntent
/// order), the reservations (locked, in reference order, when the
/// decisions move them, but not those named only by events applied before; a reservation batch only reads its
/// references, before any size is locked, so the hot sizes' locks are held one round trip less), then every size
/// the batch may change ([`plan::sizes_read`], in product and size order, so two sidecars never wait on each other
/// in a cycle), then, under those locks, the movement keys and the figures (at `now`); an import's size is read
/// without a lock. A key another sidecar takes meanwhile (a reference, a movement key, a new size) fails the batch's
/// write on it, and the decisions run again one by one, on what the other one wrote.
async fn load(connection: &mut PgConnection, reads: &Reads, now: Timestamp) -> Result<Snapshot, StoreError> {
    let mut snapshot = Snapshot::default();
    let mut applied: Vec<String> = Vec::new();
    if !reads.events.is_empty() {
        let ids: Vec<&str> = reads.events.iter().map(|(id, _)| id.as_str()).collect();
        applied = sqlx::query_scalar(
            "SELECT e.id FROM UNNEST($1::TEXT[]) AS asked (id) JOIN stripe_events e ON e.id = asked.id",
        )
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await?;
        for id in ids {
            snapshot.add_event(id, applied.iter().any(|known| known == id));
        }
    }
    let payments = plan::payments_read(reads, &applied);
    if !payments.is_empty() {
        // Each PaymentIntent is locked, in PaymentIntent order and before any reservation, whether or not its row
        // exists yet: a row lock alone would let a success read "no payment" while a refund of the same
        // PaymentIntent is being recorded, and sell late a payment that refund has just released. The lock is an
        // advisory one on the PaymentIntent's name (a collision of two names' hashes only serializes them).
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('payment:' || payment_intent, 0)) FROM UNNEST($1::TEXT[]) AS locked (payment_intent)")
            .bind(&payments)
            .execute(&mut *connection)
            .await?;
        let rows: Vec<PaymentColumns> = sqlx::query_as(
            "SELECT payment_intent, reference, amount, refunded, dispute FROM payments \
             WHERE payment_intent = ANY($1) ORDER BY payment_intent FOR UPDATE",
        )
        .bind(&payments)
        .fetch_all(&mut *connection)
        .await?;
        let mut records = rows.into_iter().map(payment_from_columns).collect::<Result<Vec<_>, _>>()?;
        for payment_intent in &payments {
            let position = records.iter().position(|record| &record.payment_intent == payment_intent);
            snapshot.add_payment(payment_intent, position.map(|position| records.swap_remove(position)));
        }
    }
    let references = plan::references_read(reads, &applied, &snapshot);
    let records = match references.is_empty() {
        true => BTreeMap::new(),
        false => {
            let references: Vec<&str> = references.iter().map(String::as_str).collect();
            load_reservations(connection, &references, reads.changes_reservations).await?
        }
    };
    let sizes = plan::sizes_read(reads, records.values());
    let asked: Vec<SizeKey<'_>> = sizes.iter().map(|(product, size)| (product.as_str(), size.as_str())).collect();
    let locked = if asked.is_empty() { Vec::new() } else { lock_sizes(connection, &asked).await? };
    let (returns, movements) = plan::after_sale_reads(reads, records.values());
    if !returns.is_empty() {
        let rows: Vec<(String, ReturnLineColumns)> = sqlx::query_as::<_, ReturnLineRow>(
            "SELECT reference, return_id, line, product, size, quantity, reason, created_at FROM return_lines \
             WHERE reference = ANY($1) ORDER BY reference, return_id, line",
        )
        .bind(&returns)
        .fetch_all(&mut *connection)
        .await?
        .into_iter()
        .map(|(reference, return_id, line, product, size, quantity, reason, created_at)| {
            (reference, (return_id, line, product, size, quantity, reason, created_at))
        })
        .collect();
        for reference in &returns {
            let lines: Vec<ReturnLineColumns> =
                rows.iter().filter(|(owner, _)| owner == reference).map(|(_, line)| line.clone()).collect();
            snapshot.add_returns(reference, returns_from_rows(reference, lines)?);
        }
    }
    for key in &movements {
        snapshot.add_movement(key, load_movement(connection, key).await?);
    }
    if !reads.products.is_empty() {
        let products: Vec<&str> = reads.products.iter().map(String::as_str).collect();
        load_products(connection, &mut snapshot, &products, (&asked, &locked), now).await?;
    }
    let outside_products = |(product, _): &&SizeKey<'_>| !reads.products.iter().any(|read| read == product);
    let rest: Vec<SizeKey<'_>> = asked.iter().filter(outside_products).copied().collect();
    if !rest.is_empty() {
        load_sizes(connection, &mut snapshot, &rest, Some(&locked), now).await?;
    }
    let unlocked: Vec<SizeKey<'_>> =
        reads.unlocked_sizes.iter().map(|(product, size)| (product.as_str(), size.as_str())).collect();
    if !unlocked.is_empty() {
        load_sizes(connection, &mut snapshot, &unlocked, None, now).await?;
    }
    for reference in &references {
        snapshot.add_reservation(reference, records.get(reference).cloned());
    }
    Ok(snapshot)
}

/// Takes every decision of `batch`, in order, in the transaction `connection` is in: loads what they read
/// ([`load`]), plans them against it (`store/plan.rs`), and writes every plan set-based: a statement per kind of
/// row, whatever the number of decisions.
pub(super) async fn decide_all(
    connection: &mut PgConnection,
    mut pending: Pending,
    batch: &[Request],
) -> Result<Vec<Outcome>, StoreError> {
    let Some(now) = plan::read_instant(batch) else {
        return Ok(Vec::new());
    };
    let mut snapshot = load(connection, &plan::reads(batch), now).await?;
    let plan = plan::plan_batch(&mut snapshot, batch)?;
    let recorded = apply(connection, &mut pending, &plan.writes, now).await?;
    pending.write(connection).await?;
    plan.answer(recorded)
}

/// Whether a decision failed because another sidecar took one of the unique keys it planned on meanwhile (a
/// reservation's reference, a Stripe event's id, a movement's idempotency key, a size): planned again, it answers
/// what the other one wrote.
pub(super) fn is_key_taken(error: &StoreError) -> bool {
    super::sqlstate(error).as_deref() == Some("23505")
}

/// Expires every active reservation due at `now` that no other transaction holds (see
/// [`crate::ledger::Ledger::release_expired`]); returns their references, sorted. Several sidecars running
/// cleanup at once each take the reservations the others have not locked (`SKIP LOCKED`), so each reservation
/// is released once.
pub(super) async fn release_expired(
    connection: &mut PgConnection,
    mut outbox: Pending,
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
