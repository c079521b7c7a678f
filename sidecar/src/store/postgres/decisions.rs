//! Every decision that changes the PostgreSQL ledger, as an async function on a connection inside a transaction
//! (`in_transaction!`, or a batch's). Each one locks the rows it decides on before it reads their figures
//! (reservations first, in reference order, then their sizes in product and size order), reads the figures its
//! plan needs in a statement of its own after the locks are held (so it sees what the previous holder committed;
//! a reservation batch reads its references before, see [`reserve_all`]), plans with `store/plan.rs`
//! and executes the plan set-based (`apply`): a statement per kind of row, whatever the number of decisions, and
//! the status changes, event records and outbox rows in one last statement.
use sqlx::postgres::PgConnection;
use stock_core::{CartLine, Quantity, ReservationStatus, ReservationTtl, Timestamp};

use super::{SIZE_PAIRS_QUERY, load_reservation, load_reservations, sizes_of};
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
use crate::store::columns::{MovementColumns, holds_until, movement_from_columns, reads};
use crate::store::plan::{self, NewMovement, Queued, Snapshot, Write};
use crate::store::{
    EventOutcome, ImportOutcome, MovementOutcome, MovementRecord, MovementRequest, ReleaseOutcome, ReserveOutcome,
    ReservedItem, StoreError, StripeAction, StripeEventRecord,
};

/// What a transaction writes in its last statement: the outbox rows its decisions queued (if this store queues
/// changes for Payload), the reservations' new statuses, and the Stripe events they applied. One statement instead of
/// one per row saves round trips while the transaction holds its locks.
#[derive(Debug, Clone)]
pub(super) struct Outbox {
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
}

/// The columns of queued outbox rows: topics, subjects, lanes, created_at, next_attempt_at.
type OutboxColumns = (Vec<&'static str>, Vec<String>, Vec<String>, Vec<i64>, Vec<i64>);

impl Outbox {
    pub(super) fn new(enabled: bool, payload_save_grace_millis: i64) -> Self {
        Outbox { enabled, payload_save_grace_millis, rows: Vec::new(), statuses: Vec::new(), events: Vec::new() }
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

    fn set_status(&mut self, (reference, status, finished_at, holds): (String, &'static str, Option<i64>, i64)) {
        self.statuses.retain(|planned| planned.0 != reference);
        self.statuses.push((reference, status, finished_at, holds));
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

    /// Writes what is pending in one statement: the status changes, the events' records, and the queued outbox
    /// rows (a row already queued for the same subject has its revision bumped instead: the changes coalesce). An
    /// event another sidecar recorded since this one read it fails the statement on its unique id.
    async fn write(mut self, connection: &mut PgConnection) -> Result<(), StoreError> {
        if self.rows.is_empty() && self.statuses.is_empty() && self.events.is_empty() {
            return Ok(());
        }
        let queued = self.take_rows();
        // The events' records in id order: two sidecars inserting the same ids in opposite orders would deadlock.
        self.events.sort_by(|a, b| a.0.cmp(&b.0));
        let (statuses, events) = (&self.statuses, &self.events);
        sqlx::query(concat!(
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
        .bind(events.iter().map(|event| event.3).collect::<Vec<_>>())
        .bind(queued.0)
        .bind(queued.1)
        .bind(queued.2)
        .bind(queued.3)
        .bind(queued.4)
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
        sqlx::query_as(reads::MOVEMENT_BY_KEY).bind(key).fetch_optional(&mut *connection).await?;
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

/// Executes the writes of a transaction's plans, in few statements: new sizes in one, movements in two (their ids,
/// then the rows and their sizes' figures), conflicts in one; status changes (their sizes locked now, after the
/// reservations' rows, unless `sizes_locked`), the events' records and the outbox rows are gathered for
/// `Outbox::write`, which writes them in one statement at the transaction's end. A reservation's insert is written
/// by [`reserve_all`] itself. The movements recorded, with their ids, in plan order.
async fn apply(
    connection: &mut PgConnection,
    outbox: &mut Outbox,
    writes: &[Write],
    (now, sizes_locked): (Timestamp, bool),
) -> Result<Vec<MovementRecord>, StoreError> {
    let mut new_sizes: (Vec<&str>, Vec<&str>, Vec<i64>) = Default::default();
    let mut movements: Vec<&NewMovement> = Vec::new();
    let mut conflicts: (Vec<&str>, Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
    for write in writes {
        match write {
            Write::SetStatus { record, finished_at } => {
                if !sizes_locked {
                    lock_sizes(connection, &item_sizes(&record.items)).await?;
                }
                outbox.set_status((
                    record.reference.clone(),
                    record.status.as_str(),
                    finished_at.map(Timestamp::unix_millis),
                    holds_until(record.status, record.expires_at),
                ));
            }
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
            Write::InsertReservation(record) => {
                return Err(StoreError::Inconsistent(format!(
                    "reservation {} was planned outside a reservation batch",
                    record.reference
                )));
            }
        }
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

/// A reservation request as a batch carries it.
#[derive(Debug, Clone)]
pub(super) struct ReserveRequest {
    pub(super) reference: String,
    pub(super) lines: Vec<CartLine>,
    pub(super) ttl: ReservationTtl,
    pub(super) now: Timestamp,
}

/// Reserves the carts of `requests` in one transaction, in their order (see [`plan::reserve`]): reads the
/// reservations under their references, locks every size they ask for in one statement (in product and size order,
/// as every decision locks sizes, so two sidecars never wait on each other in a cycle), reads the sizes' figures
/// once the locks are held, plans each
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
    // The references first, before any size is locked, so the hot sizes' locks are held for one round trip less.
    // A reservation found keeps its items (only its status can move meanwhile, and a reservation found is answered
    // as it was read, touching no figure); one another sidecar takes meanwhile fails this batch's insert on its key,
    // and the batch's requests run again alone (rare: two retries of one checkout at once on two sidecars).
    let mut references: Vec<&str> = requests.iter().map(|request| request.reference.as_str()).collect();
    references.sort_unstable();
    references.dedup();
    let existing = load_reservations(connection, &references, false).await?;
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
    load_products(connection, &mut snapshot, &products, (&asked, &locked), now).await?;
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
    // The outbox rows in lock order (see `Outbox::take_rows`), whatever the order of the requests.
    let (topics, subjects, lanes, created, due) = outbox.take_rows();
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
/// [`crate::ledger::Ledger::release_expired`]); returns their references, sorted. Several sidecars running
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
    let asked = [(request.product.as_str(), request.size.as_str())];
    let locked = lock_sizes(connection, &asked).await?;
    if let Some(key) = plan::movement_reads(request) {
        snapshot.add_movement(&key, load_movement(connection, &key).await?);
    }
    load_sizes(connection, &mut snapshot, &asked, Some(&locked), now).await?;
    let plan = plan::record_movement(&mut snapshot, request, now)?;
    let recorded = apply(connection, &mut outbox, &plan.writes, (now, true)).await?;
    outbox.write(connection).await?;
    plan.outcome.answer(recorded)
}

/// A verified Stripe event as a batch carries it.
#[derive(Debug, Clone)]
pub(super) struct EventRequest {
    pub(super) event: StripeEventRecord,
    pub(super) action: StripeAction,
    pub(super) now: Timestamp,
}

/// Applies Stripe events once each, in one transaction, in their order (see [`plan::apply_stripe_event`]). Events
/// already applied are answered without a lock; the reservations the others name are locked in one statement (in
/// reference order), then every size those reservations hold (in product and size order: a sale or a status change
/// moves their figures), then read. The events are recorded in the transaction's last statement: an event another
/// sidecar applied meanwhile fails it on its unique id ([`is_key_taken`]), and the events run again and find it.
pub(super) async fn apply_events(
    connection: &mut PgConnection,
    mut outbox: Outbox,
    requests: &[EventRequest],
) -> Result<Vec<EventOutcome>, StoreError> {
    // One instant for the whole batch, its latest: the figures are read and every event planned at it, so a hold
    // that ends between two events' instants counts the same for both (read at the earliest and judged at its own,
    // a payment just past its reservation's expiry found its own units still held, and no units to take again).
    let Some(now) = requests.iter().map(|request| request.now).max() else {
        return Ok(Vec::new());
    };
    let ids: Vec<&str> = requests.iter().map(|request| request.event.id.as_str()).collect();
    let applied: Vec<String> =
        sqlx::query_scalar("SELECT e.id FROM UNNEST($1::TEXT[]) AS asked (id) JOIN stripe_events e ON e.id = asked.id")
            .bind(&ids)
            .fetch_all(&mut *connection)
            .await?;
    let mut snapshot = Snapshot::default();
    for id in &ids {
        snapshot.add_event(id, applied.iter().any(|known| known == id));
    }
    let unapplied = requests.iter().filter(|request| !applied.contains(&request.event.id));
    let mut references: Vec<&str> = unapplied.filter_map(|request| plan::event_reads(&request.action)).collect();
    references.sort_unstable();
    references.dedup();
    let mut sizes_locked = true;
    if !references.is_empty() {
        let records = load_reservations(connection, &references, true).await?;
        // A paid reservation is final: no event changes it or reads its sizes' figures, so a late or repeated event
        // about it takes no lock on them (a hot size stays free for the reservations and sales that need it).
        let changeable = records.values().filter(|record| record.status != ReservationStatus::Committed);
        let mut asked: Vec<SizeKey<'_>> = changeable.flat_map(|record| item_sizes(&record.items)).collect();
        asked.sort_unstable();
        asked.dedup();
        let locked = lock_sizes(connection, &asked).await?;
        load_sizes(connection, &mut snapshot, &asked, Some(&locked), now).await?;
        for reference in references {
            snapshot.add_reservation(reference, records.get(reference).cloned());
        }
        sizes_locked = locked.len() == asked.len();
    }
    let mut writes = Vec::new();
    let mut outcomes = Vec::with_capacity(requests.len());
    for request in requests {
        let plan = plan::apply_stripe_event(&mut snapshot, &request.event, &request.action, now)?;
        writes.extend(plan.writes);
        outcomes.push(plan.outcome);
    }
    apply(connection, &mut outbox, &writes, (now, sizes_locked)).await?;
    outbox.write(connection).await?;
    Ok(outcomes)
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
    load_sizes(connection, &mut snapshot, &[(product, size)], None, now).await?;
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
