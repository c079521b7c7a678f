//! The ledger's decisions, planned once in pure code. A decision takes what it reads, a [`Snapshot`] of the rows
//! it names as its transaction sees them, and returns a [`Plan`]: the rows to write, with the outbox entries that
//! tell Payload, and the outcome its caller gets. The snapshot is brought up to date with the plan as it is made,
//! so the next decision of the same transaction plans against what this one wrote. A backend only loads snapshots
//! and executes plans; the rules themselves stay in stock-core.

use std::collections::{BTreeMap, BTreeSet};

use stock_core::{
    CartLine, MovementType, ProductSnapshot, Quantity, ReservationError, ReservationStatus, ReservationTtl, ReturnLine,
    SizeStock, StockLevel, StockMovement, StockState, Timestamp, plan_return, reservation_expires_at, validate_cart,
};

use super::columns::{
    holds_until, import_key, level, movement_key, movement_lane, product_lane, reservation_lane, return_key, sale_key,
    same_items,
};
use super::decide;
use super::{
    EventOutcome, FOREIGN_PAYMENT, ImportOutcome, LedgerSize, MovementOrigin, MovementOutcome, MovementRecord,
    MovementRequest, OutboxTopic, PaymentRecord, ReleaseOutcome, ReservationRecord, ReserveOutcome, ReservedItem,
    ReturnOutcome, ReturnRecord, SizeRecord, StoreError, StripeAction, StripeEventRecord,
};
use stock_wire::{FULL_REFUND_RETURN, MoneyChange, ReturnRequest};

/// What a transaction has read of the ledger: the sizes of some products with their figures, and some
/// reservations by reference. A decision may only plan on what it was loaded with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The loaded sizes of each product, in the order they were added (a product the ledger lacks has none).
    products: BTreeMap<String, Vec<SizeRecord>>,
    /// Products of which only some sizes were read (a sale, a movement, an import reads the sizes it names), with
    /// the labels read; a product absent here had every size read (a cart's check needs them all).
    partial: BTreeMap<String, BTreeSet<String>>,
    /// Each loaded reference's reservation, `None` when there is none.
    reservations: BTreeMap<String, Option<ReservationRecord>>,
    /// Each loaded Stripe event id: whether the ledger applied it before.
    events: BTreeMap<String, bool>,
    /// Each loaded movement idempotency key's movement, `None` when there is none. A key a plan of the
    /// transaction records is taken out (its id is the database's to give), so asking for it again is an error.
    movements: BTreeMap<String, Option<MovementRecord>>,
    /// Each loaded PaymentIntent's money record, `None` when there is none.
    payments: BTreeMap<String, Option<PaymentRecord>>,
    /// Each loaded reservation's returns, by return id.
    returns: BTreeMap<String, Vec<ReturnRecord>>,
}

impl Snapshot {
    /// Records what the transaction read of `product`: all its sizes, with their figures now.
    pub(crate) fn add_product(&mut self, product: &str, sizes: Vec<SizeRecord>) {
        self.products.insert(product.to_owned(), sizes);
        self.partial.remove(product);
    }

    /// Records what the transaction read of one size of `product`: its figures now, `None` if the ledger lacks it.
    pub(crate) fn add_size(&mut self, product: &str, label: &str, record: Option<SizeRecord>) {
        let complete = self.products.contains_key(product) && !self.partial.contains_key(product);
        let sizes = self.products.entry(product.to_owned()).or_default();
        sizes.retain(|loaded| loaded.size != label);
        sizes.extend(record);
        if !complete {
            self.partial.entry(product.to_owned()).or_default().insert(label.to_owned());
        }
    }

    /// Records what the transaction read under `reference`.
    pub(crate) fn add_reservation(&mut self, reference: &str, record: Option<ReservationRecord>) {
        self.reservations.insert(reference.to_owned(), record);
    }

    /// Records whether the ledger applied the Stripe event `id` before.
    pub(crate) fn add_event(&mut self, id: &str, applied: bool) {
        self.events.insert(id.to_owned(), applied);
    }

    /// Records what the transaction read under a movement's idempotency `key`.
    pub(crate) fn add_movement(&mut self, key: &str, record: Option<MovementRecord>) {
        self.movements.insert(key.to_owned(), record);
    }

    /// Records what the transaction read of PaymentIntent `payment_intent`'s money.
    pub(crate) fn add_payment(&mut self, payment_intent: &str, record: Option<PaymentRecord>) {
        self.payments.insert(payment_intent.to_owned(), record);
    }

    /// Records the returns the transaction read of the reservation `reference` (every one).
    pub(crate) fn add_returns(&mut self, reference: &str, returns: Vec<ReturnRecord>) {
        self.returns.insert(reference.to_owned(), returns);
    }

    fn returns(&self, reference: &str) -> Result<&Vec<ReturnRecord>, StoreError> {
        self.returns.get(reference).ok_or_else(|| not_loaded(format!("the returns of {reference}")))
    }

    /// The order a reservation's sale of a size belonged to: the sale movement's order reference, if it was read
    /// and names one, else the reservation's reference.
    fn order_of_sale(&self, reference: &str, product: &str, size: &str) -> String {
        let sale = self.movements.get(&sale_key(reference, product, size)).and_then(Option::as_ref);
        sale.and_then(|sale| sale.movement.details.order_reference.clone()).unwrap_or_else(|| reference.to_owned())
    }

    fn payment(&self, payment_intent: &str) -> Result<Option<&PaymentRecord>, StoreError> {
        match self.payments.get(payment_intent) {
            Some(record) => Ok(record.as_ref()),
            None => Err(not_loaded(format!("payment {payment_intent}"))),
        }
    }

    /// The reservation a money event about `payment_intent` is for: the one its record names, else the
    /// PaymentIntent's own.
    fn reservation_paid_by(&self, payment_intent: &str) -> String {
        let named = self.payments.get(payment_intent).and_then(|record| record.as_ref()?.reference.clone());
        named.unwrap_or_else(|| payment_intent.to_owned())
    }

    fn reservation(&self, reference: &str) -> Result<Option<&ReservationRecord>, StoreError> {
        match self.reservations.get(reference) {
            Some(record) => Ok(record.as_ref()),
            None => Err(not_loaded(format!("reservation {reference}"))),
        }
    }

    /// Every size of `product`.
    fn sizes(&self, product: &str) -> Result<&Vec<SizeRecord>, StoreError> {
        match self.products.get(product) {
            Some(sizes) if !self.partial.contains_key(product) => Ok(sizes),
            _ => Err(not_loaded(format!("every size of product {product}"))),
        }
    }

    /// One size of `product`, `None` if the ledger lacks it.
    fn size(&self, product: &str, label: &str) -> Result<Option<&SizeRecord>, StoreError> {
        let read = self.partial.get(product).is_none_or(|labels| labels.contains(label));
        match self.products.get(product) {
            Some(sizes) if read => Ok(sizes.iter().find(|record| record.size == label)),
            _ => Err(not_loaded(format!("size {product} {label}"))),
        }
    }

    /// A size the transaction adds, with no units yet.
    fn add_new_size(&mut self, product: &str, record: SizeRecord) {
        if let Some(labels) = self.partial.get_mut(product) {
            labels.insert(record.size.clone());
        }
        self.products.entry(product.to_owned()).or_default().push(record);
    }

    /// The level of a size a reservation holds units of: a loaded product that lacks it is an inconsistent ledger.
    fn reserved_size(&self, product: &str, size: &str) -> Result<StockLevel, StoreError> {
        let found = self.size(product, size)?;
        found
            .map(|record| record.level)
            .ok_or_else(|| StoreError::Inconsistent(format!("reserved size {product} {size} is missing from sizes")))
    }

    /// Brings a size's units on hand (and threshold) to what a planned movement leaves, adding the size if new;
    /// what its reservations hold is left to their status changes.
    fn record_movement(&mut self, movement: &NewMovement) -> Result<(), StoreError> {
        if self.size(&movement.product, &movement.size)?.is_none() {
            self.add_new_size(&movement.product, SizeRecord { size: movement.size.clone(), level: level(0, 0, 0)? });
        }
        let sizes = self.products.entry(movement.product.clone()).or_default();
        let position = sizes
            .iter()
            .position(|record| record.size == movement.size)
            .ok_or_else(|| not_loaded(format!("size {} {}", movement.product, movement.size)))?;
        let record = &mut sizes[position];
        let threshold = movement.low_stock_threshold.unwrap_or(record.level.low_stock_threshold());
        let reserved = i64::from(record.level.reserved());
        record.level = level(i64::from(movement.movement.stock_after), reserved, i64::from(threshold))?;
        if let Some(key) = &movement.key {
            self.movements.remove(key);
        }
        Ok(())
    }

    /// The products a cart names, as stock-core validates it against them.
    fn catalogue(&self, lines: &[CartLine]) -> Result<Vec<ProductSnapshot>, StoreError> {
        let products = distinct(lines.iter().map(|line| line.product.as_str()));
        let mut catalogue = Vec::with_capacity(products.len());
        for product in products {
            let sizes = self.sizes(product)?;
            if !sizes.is_empty() {
                let sizes = sizes.iter().map(|record| SizeStock { size: record.size.clone(), level: record.level });
                catalogue.push(ProductSnapshot { id: product.to_owned(), sizes: sizes.collect() });
            }
        }
        Ok(catalogue)
    }

    /// Counts a new reservation's units as reserved in the loaded figures.
    fn hold(&mut self, items: &[ReservedItem]) -> Result<(), StoreError> {
        for item in items {
            let size = self
                .products
                .get_mut(&item.product)
                .and_then(|sizes| sizes.iter_mut().find(|record| record.size == item.size))
                .ok_or_else(|| not_loaded(format!("size {} {}", item.product, item.size)))?;
            size.level =
                size.level.reserve(item.quantity).map_err(|error| StoreError::Inconsistent(error.to_string()))?;
        }
        Ok(())
    }
}

impl Snapshot {
    /// Moves a loaded reservation to `status` at `now`, giving back the units it stops holding in the loaded
    /// figures (a size the transaction did not load is read by none of its decisions).
    fn change_status(&mut self, record: &ReservationRecord, status: ReservationStatus, now: Timestamp) {
        let held_before = holds_until(record.status, record.expires_at) > now.unix_millis();
        let held_after = holds_until(status, record.expires_at) > now.unix_millis();
        if held_before && !held_after {
            for item in &record.items {
                let size = self
                    .products
                    .get_mut(&item.product)
                    .and_then(|sizes| sizes.iter_mut().find(|loaded| loaded.size == item.size));
                if let Some(size) = size {
                    // A loaded level always holds at least the units of the reservations it counts.
                    size.level = size.level.release(item.quantity).unwrap_or(size.level);
                }
            }
        }
        let changed = ReservationRecord { status, ..record.clone() };
        self.reservations.insert(record.reference.clone(), Some(changed));
    }
}

/// A decision asked for something its snapshot was not loaded with: a bug of the backend, never of the request.
fn not_loaded(what: String) -> StoreError {
    StoreError::Inconsistent(format!("the decision read {what}, which its transaction did not load"))
}

/// The products a reservation holds units of, which selling it reads (every size of each).
fn item_products(items: &[ReservedItem]) -> Vec<&str> {
    distinct(items.iter().map(|item| item.product.as_str()))
}

/// The reservation a Stripe event's action reads by its reference, if any (the event id is read for every action;
/// a money event's reservation is found through its payment, [`payment_reads`]).
fn event_reads(action: &StripeAction) -> Option<&str> {
    match action {
        StripeAction::Commit { reference, .. }
        | StripeAction::Release { reference }
        | StripeAction::StartProcessing { reference, .. } => Some(reference),
        StripeAction::RecordMoney { .. } | StripeAction::Ignore { .. } | StripeAction::Unreadable { .. } => None,
    }
}

/// The payment a Stripe event's action reads, if any, and whether its reservation is found through it (a money
/// event) rather than by the event's own reference. A sale reads its payment's money (a payment refunded or
/// disputed before its success takes no units); a Checkout Session's events read the session's PaymentIntent to
/// record it.
fn payment_reads(action: &StripeAction) -> Option<(&str, bool)> {
    match action {
        StripeAction::Commit { reference, payment_intent, .. } => {
            Some((payment_intent.as_deref().unwrap_or(reference), false))
        }
        StripeAction::StartProcessing { payment_intent: Some(payment_intent), .. } => Some((payment_intent, false)),
        StripeAction::RecordMoney { payment_intent, .. } => Some((payment_intent, true)),
        StripeAction::StartProcessing { payment_intent: None, .. }
        | StripeAction::Release { .. }
        | StripeAction::Ignore { .. }
        | StripeAction::Unreadable { .. } => None,
    }
}

/// The idempotency key a movement request reads, if it has a reference.
fn movement_reads(request: &MovementRequest) -> Option<String> {
    request.reference.as_deref().map(movement_key)
}

/// Sorted, each once.
fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// One row to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Write {
    /// A new active reservation and its items, which hold their units until it expires.
    InsertReservation(ReservationRecord),
    /// A reservation moved to the status of `record` (finished at `finished_at` if that status is final): its items
    /// hold their units as that status says ([`holds_until`]). Its sizes are locked before it is written.
    SetStatus { record: ReservationRecord, finished_at: Option<Timestamp> },
    /// Tells Payload about `subject`: a row already queued for it has its revision bumped instead, so changes
    /// coalesce. Written only by a store that projects into Payload.
    Queue(Queued),
    /// A size new to the ledger, with no units on hand (a movement planned after it brings them). Its key is
    /// unique: a size another process created since it was read fails the write.
    InsertSize { product: String, size: String, low_stock_threshold: Quantity },
    /// A movement, and its size's units on hand set to the movement's `stock_after`; the backend queues its
    /// outbox entries ([`movement_entries`]) once the database has given it an id. Its idempotency key is unique.
    InsertMovement(NewMovement),
    /// A conflict for an operator: what the ledger could not do as a Stripe event asked.
    RecordConflict { kind: &'static str, reference: String, event_id: String, details: String },
    /// A return's lines (the `return` movements of its restocked lines are written as their own writes). The key
    /// (reference, return id, line) is unique: a return another process recorded since it was read fails the write.
    RecordReturn(ReturnRecord),
    /// A payment's money as it stands now: inserted when `existed` is false (its PaymentIntent is unique: a row
    /// another process inserted since it was read fails the write), else updated (the row was read locked).
    RecordPayment { record: PaymentRecord, existed: bool },
    /// A Stripe event applied, with its outcome; its id is unique, so it applies once.
    RecordEvent { id: String, kind: String, outcome: &'static str, received_at: Timestamp },
}

/// A movement to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewMovement {
    /// The idempotency key (a caller's reference, a sale's or an import's key).
    pub(crate) key: Option<String>,
    pub(crate) product: String,
    pub(crate) size: String,
    pub(crate) movement: StockMovement,
    pub(crate) origin: MovementOrigin,
    /// The size's new threshold, when the request set one.
    pub(crate) low_stock_threshold: Option<Quantity>,
}

impl NewMovement {
    /// The movement as recorded under the id the database gave it.
    pub(crate) fn recorded(&self, id: i64) -> MovementRecord {
        MovementRecord { id, product: self.product.clone(), size: self.size.clone(), movement: self.movement.clone() }
    }
}

/// An outbox entry to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Queued {
    pub(crate) topic: OutboxTopic,
    /// The product id, movement id or reservation reference.
    pub(crate) subject: String,
    pub(crate) lane: String,
    /// How long after now it is first due.
    pub(crate) delay_millis: i64,
}

impl Queued {
    /// A product's sizes.
    pub(crate) fn product(product: &str) -> Self {
        Queued {
            topic: OutboxTopic::Product,
            subject: product.to_owned(),
            lane: product_lane(product),
            delay_millis: 0,
        }
    }

    /// A reservation's document.
    pub(crate) fn reservation(reference: &str) -> Self {
        Queued {
            topic: OutboxTopic::Reservation,
            subject: reference.to_owned(),
            lane: reservation_lane(reference),
            delay_millis: 0,
        }
    }
}

/// The sizes of every product a reservation holds units of, then the reservation's document.
fn queue_reservation(writes: &mut Vec<Write>, reference: &str, items: &[ReservedItem]) {
    writes.extend(item_products(items).into_iter().map(|product| Write::Queue(Queued::product(product))));
    writes.push(Write::Queue(Queued::reservation(reference)));
}

/// What Payload must show of a movement the database recorded under `id`: its product's sizes, then its document,
/// in the product's lane (they reach Payload in order). A movement Payload's stock-movements hook asked for waits
/// `payload_save_grace_millis` in a lane of its own: the hook saves that document itself, so the outbox only fills
/// in for a save that failed, and its grace period holds up nothing else.
pub(crate) fn movement_entries(
    id: i64,
    product: &str,
    origin: MovementOrigin,
    payload_save_grace_millis: i64,
) -> [Queued; 2] {
    let (lane, delay_millis) = match origin {
        MovementOrigin::Sidecar => (product_lane(product), 0),
        MovementOrigin::Payload => (movement_lane(id), payload_save_grace_millis),
    };
    [Queued::product(product), Queued { topic: OutboxTopic::Movement, subject: id.to_string(), lane, delay_millis }]
}

/// What a decision writes, and what its caller is answered once that is committed.
#[derive(Debug)]
struct Plan<Outcome> {
    writes: Vec<Write>,
    outcome: Outcome,
}

impl<Outcome> Plan<Outcome> {
    /// A decision that writes nothing.
    fn answer(outcome: Outcome) -> Self {
        Plan { writes: Vec::new(), outcome }
    }
}

/// Reserves every line of a cart for `ttl`, or nothing. The same request again under its reference answers the
/// reservation it made (even once it took the last units); other lines under a taken reference are a conflict.
fn reserve(
    snapshot: &mut Snapshot,
    (reference, lines): (&str, &[CartLine]),
    ttl: ReservationTtl,
    now: Timestamp,
) -> Result<Plan<ReserveOutcome>, StoreError> {
    if let Some(existing) = snapshot.reservation(reference)? {
        let existing = existing.clone();
        return Ok(Plan::answer(if same_items(&existing.items, lines) {
            ReserveOutcome::Existing(existing)
        } else {
            ReserveOutcome::ReferenceConflict(existing)
        }));
    }
    let validation = validate_cart(&snapshot.catalogue(lines)?, lines);
    if !validation.is_ok() {
        return Ok(Plan::answer(ReserveOutcome::Rejected(validation)));
    }
    let expires_at = reservation_expires_at(now, ttl)
        .map_err(|error: ReservationError| StoreError::Inconsistent(error.to_string()))?;
    let items: Vec<ReservedItem> = validation
        .items
        .into_iter()
        .map(|item| ReservedItem { product: item.product, size: item.size, quantity: item.quantity })
        .collect();
    let record = ReservationRecord {
        reference: reference.to_owned(),
        status: ReservationStatus::Active,
        created_at: now,
        expires_at,
        items,
    };
    snapshot.hold(&record.items)?;
    snapshot.add_reservation(reference, Some(record.clone()));
    let mut writes = vec![Write::InsertReservation(record.clone())];
    queue_reservation(&mut writes, reference, &record.items);
    Ok(Plan { writes, outcome: ReserveOutcome::Created(record) })
}

/// Moves a reservation to `status`: the write, the outbox entries, and the snapshot brought up to date. A paid
/// reservation is final (stock-core refuses every move out of it), and a backend may load no size of one: asked to
/// move it anyway, this is an error rather than a change planned on sizes nobody read.
fn change_status(
    snapshot: &mut Snapshot,
    record: &ReservationRecord,
    status: ReservationStatus,
    now: Timestamp,
) -> Result<(ReservationRecord, Vec<Write>), StoreError> {
    if record.status == ReservationStatus::Committed {
        return Err(StoreError::Inconsistent(format!("paid reservation {} was planned to change", record.reference)));
    }
    snapshot.change_status(record, status, now);
    let changed = ReservationRecord { status, ..record.clone() };
    let finished_at = status.is_terminal().then_some(now);
    let mut writes = vec![Write::SetStatus { record: changed.clone(), finished_at }];
    queue_reservation(&mut writes, &changed.reference, &changed.items);
    Ok((changed, writes))
}

/// Releases a reservation: its units are available again, unless it was paid. The one release decision that the
/// `/v1` route and Stripe's cancellation events share.
fn release(snapshot: &mut Snapshot, reference: &str, now: Timestamp) -> Result<Plan<ReleaseOutcome>, StoreError> {
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return Ok(Plan::answer(ReleaseOutcome::NotFound));
    };
    Ok(match decide::release(&record)? {
        decide::Release::To(status) => {
            let (released, writes) = change_status(snapshot, &record, status, now)?;
            Plan { writes, outcome: ReleaseOutcome::Released(released) }
        }
        decide::Release::Unchanged => Plan::answer(ReleaseOutcome::Unchanged(record)),
        decide::Release::AlreadyCommitted => Plan::answer(ReleaseOutcome::AlreadyCommitted(record)),
    })
}

/// An asynchronous payment is under way: the reservation holds its units past its expiry until the payment
/// succeeds or fails.
fn start_processing(
    snapshot: &mut Snapshot,
    reference: &str,
    now: Timestamp,
) -> Result<Plan<EventOutcome>, StoreError> {
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return Ok(Plan::answer(decide::NO_RESERVATION));
    };
    Ok(match decide::start_processing(&record, now)? {
        Ok(status) => {
            Plan { writes: change_status(snapshot, &record, status, now)?.1, outcome: EventOutcome::Processing }
        }
        Err(answer) => Plan::answer(answer),
    })
}

/// Marks a reservation expired if it is active and past its expiry (cleanup, after Stripe said the checkout is
/// over or without asking); whether it changed.
fn expire(snapshot: &mut Snapshot, reference: &str, now: Timestamp) -> Result<Plan<bool>, StoreError> {
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return Ok(Plan::answer(false));
    };
    Ok(match decide::expire(&record, now)? {
        Some(status) => Plan { writes: change_status(snapshot, &record, status, now)?.1, outcome: true },
        None => Plan::answer(false),
    })
}

/// Applies a verified Stripe event once: an event the ledger applied before changes nothing; otherwise its action
/// is decided and the event is recorded with its outcome, in the same transaction.
fn apply_stripe_event(
    snapshot: &mut Snapshot,
    event: &StripeEventRecord,
    action: &StripeAction,
    now: Timestamp,
) -> Result<Plan<EventOutcome>, StoreError> {
    match snapshot.events.get(&event.id) {
        Some(true) => return Ok(Plan::answer(EventOutcome::Duplicate)),
        Some(false) => {}
        None => return Err(not_loaded(format!("Stripe event {}", event.id))),
    }
    let conflict = |kind, reference: &str, details: serde_json::Value| Plan {
        writes: vec![conflict_write(kind, reference, &event.id, &details)],
        outcome: EventOutcome::Conflict { kind },
    };
    let mut plan = match action {
        StripeAction::Commit { reference, order_reference, marked, payment_intent } => {
            let paid_by = payment_intent.as_deref().unwrap_or(reference);
            let mut plan = match sell(snapshot, (reference, order_reference.as_deref()), paid_by, now)? {
                Sale::Planned(plan) => plan,
                Sale::NoReservation => match decide::unknown_payment(*marked) {
                    Some(details) => conflict("unknown_reference", reference, details),
                    None => Plan::answer(EventOutcome::Ignored { reason: FOREIGN_PAYMENT }),
                },
                Sale::Oversold(details) => conflict("oversold", reference, details),
                Sale::AfterRefund { details, mut writes } => {
                    let kind = "sale_after_refund";
                    writes.push(conflict_write(kind, reference, &event.id, &details));
                    Plan { writes, outcome: EventOutcome::Conflict { kind } }
                }
            };
            plan.writes.extend(link_payment(snapshot, payment_intent.as_deref(), reference)?);
            plan
        }
        StripeAction::Release { reference } => {
            let plan = release(snapshot, reference, now)?;
            Plan { outcome: decide::release_event_outcome(&plan.outcome), writes: plan.writes }
        }
        StripeAction::StartProcessing { reference, payment_intent } => {
            let mut plan = start_processing(snapshot, reference, now)?;
            plan.writes.extend(link_payment(snapshot, payment_intent.as_deref(), reference)?);
            plan
        }
        StripeAction::RecordMoney { payment_intent, change, restock_on_full_refund } => {
            record_money(snapshot, (&event.id, payment_intent), (*change, *restock_on_full_refund), now)?
        }
        StripeAction::Ignore { reason } => Plan::answer(EventOutcome::Ignored { reason }),
        StripeAction::Unreadable { reference, problem } => {
            conflict("unreadable_event", reference.as_deref().unwrap_or("-"), decide::unreadable_event_details(problem))
        }
    };
    plan.writes.insert(
        0,
        Write::RecordEvent {
            id: event.id.clone(),
            kind: event.kind.clone(),
            outcome: plan.outcome.as_str(),
            received_at: now,
        },
    );
    snapshot.add_event(&event.id, true);
    Ok(plan)
}

/// The conflict a Stripe event records for an operator.
fn conflict_write(kind: &'static str, reference: &str, event_id: &str, details: &serde_json::Value) -> Write {
    Write::RecordConflict {
        kind,
        reference: reference.to_owned(),
        event_id: event_id.to_owned(),
        details: details.to_string(),
    }
}

/// What a payment's success does to the reservation under its reference.
enum Sale {
    /// Nothing was reserved under it.
    NoReservation,
    /// A late payment found a size short: the `oversold` conflict's details; nothing is sold.
    Oversold(serde_json::Value),
    /// The payment was fully refunded or disputed before its success arrived: nothing is sold, and a reservation
    /// still holding its units releases them (`writes`); the `sale_after_refund` conflict's details.
    AfterRefund {
        details: serde_json::Value,
        writes: Vec<Write>,
    },
    Planned(Plan<EventOutcome>),
}

/// Sells a reservation's units, paid by `payment_intent`. A reservation that still holds them sells them (stock
/// and reserved go down together); one that no longer does (late payment) is reserved again first if every size
/// has the units, and is otherwise an `oversold` conflict, changing nothing else. A payment fully refunded or
/// disputed before its success arrived sells nothing (its units are given back if still held).
fn sell(
    snapshot: &mut Snapshot,
    (reference, order_reference): (&str, Option<&str>),
    payment_intent: &str,
    now: Timestamp,
) -> Result<Sale, StoreError> {
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return Ok(Sale::NoReservation);
    };
    let late = match decide::commit(&record, now)? {
        decide::Commit::Unchanged(status) => {
            return Ok(Sale::Planned(Plan::answer(EventOutcome::Unchanged { status })));
        }
        decide::Commit::Sell { late } => late,
    };
    if let Some(payment) = snapshot.payment(payment_intent)?.cloned()
        && !payment.money.allows_sale()
    {
        let writes = match decide::release(&record)? {
            decide::Release::To(status) => change_status(snapshot, &record, status, now)?.1,
            decide::Release::Unchanged | decide::Release::AlreadyCommitted => Vec::new(),
        };
        let details = decide::sale_after_refund_details(&record, &payment.money, !writes.is_empty());
        return Ok(Sale::AfterRefund { details, writes });
    }
    let levels = record
        .items
        .iter()
        .map(|item| snapshot.reserved_size(&item.product, &item.size))
        .collect::<Result<Vec<_>, _>>()?;
    let sales = match decide::sales(&record, levels, (late, order_reference), now)? {
        Ok(sales) => sales,
        Err(details) => return Ok(Sale::Oversold(details)),
    };
    // The snapshot gives back what the reservation held before it takes the units sold off the stock; the rows are
    // written the other way round, the movements before the status change.
    let (_, status_writes) = change_status(snapshot, &record, ReservationStatus::Committed, now)?;
    let mut writes = Vec::with_capacity(sales.len() + status_writes.len());
    for (item, movement) in sales {
        let sale = NewMovement {
            key: Some(sale_key(reference, &item.product, &item.size)),
            product: item.product.clone(),
            size: item.size.clone(),
            movement,
            origin: MovementOrigin::Sidecar,
            low_stock_threshold: None,
        };
        snapshot.record_movement(&sale)?;
        writes.push(Write::InsertMovement(sale));
    }
    writes.extend(status_writes);
    Ok(Sale::Planned(Plan { writes, outcome: EventOutcome::Committed { late } }))
}

/// Records that Checkout Session `reference` is paid by `payment_intent`, so the money events naming the
/// PaymentIntent find the session's reservation; nothing when there is no such PaymentIntent, when it is the
/// reference itself, or when it is recorded already.
fn link_payment(
    snapshot: &mut Snapshot,
    payment_intent: Option<&str>,
    reference: &str,
) -> Result<Option<Write>, StoreError> {
    let Some(payment_intent) = payment_intent.filter(|payment_intent| *payment_intent != reference) else {
        return Ok(None);
    };
    let known = snapshot.payment(payment_intent)?.cloned();
    if known.as_ref().is_some_and(|record| record.reference.is_some()) {
        return Ok(None);
    }
    let existed = known.is_some();
    let money = known.map(|record| record.money).unwrap_or_default();
    let record =
        PaymentRecord { payment_intent: payment_intent.to_owned(), reference: Some(reference.to_owned()), money };
    snapshot.add_payment(payment_intent, Some(record.clone()));
    Ok(Some(Write::RecordPayment { record, existed }))
}

/// Records a refund or a dispute on its payment (stock-core merges it into what was known). Stock is unchanged,
/// but for a full refund or a dispute of a payment whose reservation still holds its units (Stripe delivered it
/// before the success): the reservation is released, as a `refunded_before_sale` conflict, so that the success
/// that follows takes nothing; and, with `restock_on_full_refund`, for a paid reservation whose payment this event
/// makes fully refunded: every unit that may still come back is returned (cancelled, back on sale) under the
/// return id `full-refund:<PaymentIntent>`.
fn record_money(
    snapshot: &mut Snapshot,
    (event_id, payment_intent): (&str, &str),
    (change, restock_on_full_refund): (MoneyChange, bool),
    now: Timestamp,
) -> Result<Plan<EventOutcome>, StoreError> {
    let known = snapshot.payment(payment_intent)?.cloned();
    let existed = known.is_some();
    let before = known.as_ref().map(|record| record.money).unwrap_or_default();
    let money = decide::money_after(before, change);
    let paid = snapshot.reservation(&snapshot.reservation_paid_by(payment_intent))?.cloned();
    let reference = paid.as_ref().map(|record| record.reference.clone()).or(known.and_then(|record| record.reference));
    let record = PaymentRecord { payment_intent: payment_intent.to_owned(), reference, money };
    snapshot.add_payment(payment_intent, Some(record.clone()));
    let mut writes = vec![Write::RecordPayment { record, existed }];
    let Some(paid) = paid else {
        return Ok(Plan { writes, outcome: EventOutcome::Recorded });
    };
    if !money.allows_sale()
        && let decide::Release::To(status) = decide::release(&paid)?
    {
        writes.extend(change_status(snapshot, &paid, status, now)?.1);
        let kind = "refunded_before_sale";
        let details = decide::refunded_before_sale_details(&paid, &money);
        writes.push(conflict_write(kind, &paid.reference, event_id, &details));
        return Ok(Plan { writes, outcome: EventOutcome::Conflict { kind } });
    }
    if restock_on_full_refund && money.is_fully_refunded() && !before.is_fully_refunded() {
        let return_id = format!("{FULL_REFUND_RETURN}{payment_intent}");
        let returns = snapshot.returns(&paid.reference)?;
        let done = returns.iter().any(|recorded| recorded.return_id == return_id);
        let lines = decide::full_refund_lines(&decide::sold_sizes(&paid, returns));
        if paid.status == ReservationStatus::Committed && !done && !lines.is_empty() {
            match plan_return_writes(snapshot, &paid, (&return_id, &lines), now)? {
                Ok((_, restocked)) => writes.extend(restocked),
                Err(errors) => return Err(StoreError::Inconsistent(format!("{return_id}: {errors:?}"))),
            }
        }
    }
    writes.push(Write::Queue(Queued::reservation(&paid.reference)));
    Ok(Plan { writes, outcome: EventOutcome::Recorded })
}

/// A return planned (its record and its writes), or stock-core's refusal of its lines.
type PlannedReturn = Result<(ReturnRecord, Vec<Write>), Vec<stock_core::ReturnError>>;

/// Plans a return of `lines` of the paid reservation `record` under `return_id`: the return's record and a
/// `return` movement per restocked line (its size brought up to date in the snapshot), or stock-core's refusal
/// (a line not sold, more back than may still come back, a bad quantity).
fn plan_return_writes(
    snapshot: &mut Snapshot,
    record: &ReservationRecord,
    (return_id, lines): (&str, &[ReturnLine]),
    now: Timestamp,
) -> Result<PlannedReturn, StoreError> {
    let sold = decide::sold_sizes(record, snapshot.returns(&record.reference)?);
    let planned = match plan_return(&sold, lines) {
        Ok(planned) => planned,
        Err(errors) => return Ok(Err(errors)),
    };
    let recorded = ReturnRecord {
        reference: record.reference.clone(),
        return_id: return_id.to_owned(),
        lines: planned,
        created_at: now,
    };
    let mut writes = vec![Write::RecordReturn(recorded.clone())];
    for (index, line) in recorded.lines.iter().enumerate() {
        if line.restocked().is_zero() {
            continue;
        }
        let order = snapshot.order_of_sale(&record.reference, &line.product, &line.size);
        let level = snapshot.reserved_size(&line.product, &line.size)?;
        let movement = decide::return_movement(&level, line, (return_id, &order), now)?;
        let restock = NewMovement {
            key: Some(return_key(&record.reference, return_id, index)),
            product: line.product.clone(),
            size: line.size.clone(),
            movement,
            origin: MovementOrigin::Sidecar,
            low_stock_threshold: None,
        };
        snapshot.record_movement(&restock)?;
        writes.push(Write::InsertMovement(restock));
    }
    let mut returns = snapshot.returns(&record.reference)?.clone();
    returns.push(recorded.clone());
    snapshot.add_returns(&record.reference, returns);
    Ok(Ok((recorded, writes)))
}

/// Records a return of units a paid reservation sold, under the caller's id: the same return again answers the
/// first (a retry), other lines under the id are a conflict; stock-core checks the lines against what was sold and
/// what came back already. Restocked lines are `return` movements; damaged ones change no stock.
fn record_return(
    snapshot: &mut Snapshot,
    reference: &str,
    request: &ReturnRequest,
    now: Timestamp,
) -> Result<Plan<ReturnOutcome>, StoreError> {
    let answer = |outcome| Ok(Plan::answer(outcome));
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return answer(ReturnOutcome::NotFound);
    };
    let returns = snapshot.returns(reference)?;
    if let Some(previous) = returns.iter().find(|recorded| recorded.return_id == request.return_id) {
        return answer(if decide::same_return(previous, &request.lines) {
            ReturnOutcome::Replayed { record: previous.clone(), sold: decide::sold_sizes(&record, returns) }
        } else {
            ReturnOutcome::IdConflict(previous.clone())
        });
    }
    if record.status != ReservationStatus::Committed {
        return answer(ReturnOutcome::NotSold(record.status));
    }
    match plan_return_writes(snapshot, &record, (&request.return_id, &request.lines), now)? {
        Err(errors) => answer(ReturnOutcome::Refused(errors)),
        Ok((recorded, writes)) => {
            let sold = decide::sold_sizes(&record, snapshot.returns(reference)?);
            Ok(Plan { writes, outcome: ReturnOutcome::Recorded { record: recorded, sold } })
        }
    }
}

/// What a movement request is answered: decided from what was read, or the movement the plan records, once the
/// database has given it an id.
#[derive(Debug)]
enum MovementPlanned {
    Answer(MovementOutcome),
    Applied,
}

impl MovementPlanned {
    /// The answer, given the movements the plan's execution recorded.
    fn answer(self, mut recorded: Vec<MovementRecord>) -> Result<MovementOutcome, StoreError> {
        match self {
            MovementPlanned::Answer(outcome) => Ok(outcome),
            MovementPlanned::Applied => recorded
                .pop()
                .map(MovementOutcome::Applied)
                .ok_or_else(|| StoreError::Inconsistent("a planned movement was not recorded".to_owned())),
        }
    }
}

/// Applies one stock movement. A reference recorded before answers the first movement (a retry) or a conflict (other
/// content); only a restock creates a size; `expected_stock` and stock-core's rules can refuse it. A refused request
/// writes nothing, not even the size it would have created.
fn record_movement(
    snapshot: &mut Snapshot,
    request: &MovementRequest,
    now: Timestamp,
) -> Result<Plan<MovementPlanned>, StoreError> {
    let key = movement_reads(request);
    if let Some(key) = &key {
        match snapshot.movements.get(key) {
            Some(Some(previous)) => {
                let answer = decide::repeated_movement(previous.clone(), request);
                return Ok(Plan::answer(MovementPlanned::Answer(answer)));
            }
            Some(None) => {}
            None => return Err(not_loaded(format!("movement {key}"))),
        }
    }
    let existing = snapshot.size(&request.product, &request.size)?;
    let mut writes = Vec::with_capacity(2);
    let current = match existing {
        Some(record) => record.level,
        None if request.kind == MovementType::Restock => {
            let threshold = request.low_stock_threshold.unwrap_or(Quantity::ZERO);
            writes.push(Write::InsertSize {
                product: request.product.clone(),
                size: request.size.clone(),
                low_stock_threshold: threshold,
            });
            level(0, 0, i64::from(threshold))?
        }
        None => return Ok(Plan::answer(MovementPlanned::Answer(MovementOutcome::UnknownSize))),
    };
    let movement = match decide::movement(&current, request, now) {
        Ok(movement) => movement,
        Err(refusal) => return Ok(Plan::answer(MovementPlanned::Answer(*refusal))),
    };
    let planned = NewMovement {
        key,
        product: request.product.clone(),
        size: request.size.clone(),
        movement,
        origin: request.origin,
        low_stock_threshold: request.low_stock_threshold,
    };
    snapshot.record_movement(&planned)?;
    writes.push(Write::InsertMovement(planned));
    Ok(Plan { writes, outcome: MovementPlanned::Applied })
}

/// What importing a size is answered: decided from what was read, or the size imported with the movement the plan
/// records (if it brings units).
#[derive(Debug)]
enum ImportPlanned {
    AlreadyInLedger { stock: Quantity },
    Imported,
}

impl ImportPlanned {
    /// The answer, given the movements the plan's execution recorded.
    fn answer(self, mut recorded: Vec<MovementRecord>) -> ImportOutcome {
        match self {
            ImportPlanned::AlreadyInLedger { stock } => ImportOutcome::AlreadyInLedger { stock },
            ImportPlanned::Imported => ImportOutcome::Imported(recorded.pop()),
        }
    }
}

/// Brings a size Payload has into the ledger with `stock` units on hand, as an `adjustment` movement with `reason`
/// (none for 0), unless the ledger has it: then nothing changes.
fn import_size(
    snapshot: &mut Snapshot,
    (product, size): (&str, &str),
    (stock, low_stock_threshold): (Quantity, Quantity),
    reason: &str,
    now: Timestamp,
) -> Result<Plan<ImportPlanned>, StoreError> {
    if let Some(record) = snapshot.size(product, size)? {
        return Ok(Plan::answer(ImportPlanned::AlreadyInLedger { stock: record.level.stock() }));
    }
    let mut writes =
        vec![Write::InsertSize { product: product.to_owned(), size: size.to_owned(), low_stock_threshold }];
    match decide::import(stock, low_stock_threshold, reason, now)? {
        Some(movement) => {
            let adjustment = NewMovement {
                key: Some(import_key(product, size)),
                product: product.to_owned(),
                size: size.to_owned(),
                movement,
                origin: MovementOrigin::Sidecar,
                low_stock_threshold: Some(low_stock_threshold),
            };
            snapshot.record_movement(&adjustment)?;
            writes.push(Write::InsertMovement(adjustment));
        }
        None => {
            snapshot
                .products
                .entry(product.to_owned())
                .or_default()
                .push(SizeRecord { size: size.to_owned(), level: level(0, 0, i64::from(low_stock_threshold))? });
            writes.push(Write::Queue(Queued::product(product)));
        }
    }
    Ok(Plan { writes, outcome: ImportPlanned::Imported })
}

/// A decision as its caller asks for it. A store takes it atomically, alone or in a batch of decisions of its kind:
/// it loads what [`reads`] names, plans the batch with [`plan_batch`], writes the plans and answers each caller
/// ([`BatchPlan::answer`]) once they are committed.
#[derive(Debug, Clone)]
pub(crate) enum Decision {
    Reserve { reference: String, lines: Vec<CartLine>, ttl: ReservationTtl },
    Release { reference: String },
    Expire { reference: String },
    Movement(MovementRequest),
    StripeEvent { event: StripeEventRecord, action: StripeAction },
    Import { product: String, size: String, figures: (Quantity, Quantity), reason: String },
    Return { reference: String, request: ReturnRequest },
}

impl Decision {
    /// What logs call it.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Decision::Reserve { .. } => "reservation",
            Decision::Release { .. } => "release",
            Decision::Expire { .. } => "expiry",
            Decision::Movement(_) => "movement",
            Decision::StripeEvent { .. } => "Stripe event",
            Decision::Import { .. } => "import",
            Decision::Return { .. } => "return",
        }
    }
}

/// A decision with the instant its caller asked for it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) decision: Decision,
    pub(crate) now: Timestamp,
}

/// What a decision is answered.
#[derive(Debug)]
pub(crate) enum Outcome {
    Reserve(ReserveOutcome),
    Release(ReleaseOutcome),
    /// Whether the reservation expired.
    Expire(bool),
    Movement(MovementOutcome),
    StripeEvent(EventOutcome),
    Import(ImportOutcome),
    Return(ReturnOutcome),
}

/// Each answer out of the [`Outcome`] of its decision (another kind of outcome is a bug of the store).
macro_rules! answer_of_outcome {
    ($($variant:ident: $answer:ty),*) => {
        $(impl TryFrom<Outcome> for $answer {
            type Error = StoreError;
            fn try_from(outcome: Outcome) -> Result<Self, StoreError> {
                match outcome {
                    Outcome::$variant(answer) => Ok(answer),
                    other => Err(StoreError::Inconsistent(format!("a decision was answered {other:?}"))),
                }
            }
        })*
    };
}
answer_of_outcome!(Reserve: ReserveOutcome, Release: ReleaseOutcome, Expire: bool, Movement: MovementOutcome,
    StripeEvent: EventOutcome, Import: ImportOutcome, Return: ReturnOutcome);

/// What a batch of decisions reads, each key once and sorted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Reads {
    /// Stripe event ids, each with the reservation its action names (if any): whether the ledger applied each
    /// before is read first, and a reservation named only by events applied before is not read at all (a
    /// redelivery takes no lock).
    pub(crate) events: Vec<(String, Option<String>)>,
    /// The reservations read whatever the events: a reservation request's reference, a release's, an expiry's.
    pub(crate) reservations: Vec<String>,
    /// Whether the decisions may move the reservations they read: PostgreSQL locks them (in reference order), then
    /// the sizes of the ones that may move ([`sizes_read`]).
    pub(crate) changes_reservations: bool,
    /// Whether a payment may sell a released or expired reservation again (a late payment), so its sizes are read.
    pub(crate) late_payments: bool,
    /// Products read whole (a cart is checked against every size of each).
    pub(crate) products: Vec<String>,
    /// Sizes the decisions may change (PostgreSQL locks them).
    pub(crate) sizes: Vec<(String, String)>,
    /// Sizes read only to know whether the ledger has them, without a lock (an import: a size another process
    /// creates meanwhile fails the import's insert on the size's key).
    pub(crate) unlocked_sizes: Vec<(String, String)>,
    /// Movement idempotency keys.
    pub(crate) movements: Vec<String>,
    /// The payments Stripe events read: (event id, PaymentIntent, whether the event's reservation is found through
    /// the payment, [`payment_reads`]); those of events applied before are not read.
    pub(crate) payments: Vec<(String, String, bool)>,
    /// Reservations whose returns are read (a return's).
    pub(crate) returns: Vec<String>,
    /// Whether a money event may restock a paid reservation (RESTOCK_ON_FULL_REFUND): the paid reservations read
    /// then have their returns, sizes and sales read too ([`after_sale_reads`]).
    pub(crate) restocks_on_refund: bool,
}

/// What the decisions of `batch` read.
pub(crate) fn reads(batch: &[Request]) -> Reads {
    let mut reads = Reads::default();
    for request in batch {
        match &request.decision {
            Decision::Reserve { reference, lines, .. } => {
                reads.reservations.push(reference.clone());
                reads.products.extend(lines.iter().map(|line| line.product.clone()));
                reads.sizes.extend(lines.iter().map(|line| (line.product.clone(), line.size.clone())));
            }
            Decision::Release { reference } | Decision::Expire { reference } => {
                reads.reservations.push(reference.clone());
                reads.changes_reservations = true;
            }
            Decision::Movement(movement) => {
                reads.sizes.push((movement.product.clone(), movement.size.clone()));
                reads.movements.extend(movement_reads(movement));
            }
            Decision::StripeEvent { event, action } => {
                reads.events.push((event.id.clone(), event_reads(action).map(str::to_owned)));
                if let Some((payment_intent, through)) = payment_reads(action) {
                    reads.payments.push((event.id.clone(), payment_intent.to_owned(), through));
                }
                reads.changes_reservations = true;
                reads.late_payments |= matches!(action, StripeAction::Commit { .. });
            }
            Decision::Import { product, size, .. } => reads.unlocked_sizes.push((product.clone(), size.clone())),
            Decision::Return { reference, request } => {
                // The reservation is locked (PostgreSQL), so that two returns of it are decided one after the other.
                reads.reservations.push(reference.clone());
                reads.changes_reservations = true;
                reads.returns.push(reference.clone());
                for line in &request.lines {
                    reads.sizes.push((line.product.clone(), line.size.clone()));
                    reads.movements.push(sale_key(reference, &line.product, &line.size));
                }
            }
        }
        if let Decision::StripeEvent {
            action: StripeAction::RecordMoney { restock_on_full_refund: true, .. }, ..
        } = &request.decision
        {
            reads.restocks_on_refund = true;
        }
    }
    for keys in [&mut reads.reservations, &mut reads.products, &mut reads.movements, &mut reads.returns] {
        keys.sort_unstable();
        keys.dedup();
    }
    reads.events.sort_unstable();
    reads.events.dedup();
    reads.payments.sort_unstable();
    reads.payments.dedup();
    for sizes in [&mut reads.sizes, &mut reads.unlocked_sizes] {
        sizes.sort_unstable();
        sizes.dedup();
    }
    reads.unlocked_sizes.retain(|size| reads.sizes.binary_search(size).is_err());
    reads
}

/// The PaymentIntents a batch reads, sorted, each once, once it knows which of its events the ledger applied
/// before (they are read before the reservations: a money event finds its reservation through its payment).
pub(crate) fn payments_read(reads: &Reads, applied: &[String]) -> Vec<String> {
    let unapplied = reads.payments.iter().filter(|(id, ..)| !applied.contains(id));
    let mut payments: Vec<String> = unapplied.map(|(_, payment_intent, _)| payment_intent.clone()).collect();
    payments.sort_unstable();
    payments.dedup();
    payments
}

/// The reservations a batch reads, sorted, each once, once it knows which of its events the ledger applied before
/// and has loaded their payments into `snapshot` ([`payments_read`]).
pub(crate) fn references_read(reads: &Reads, applied: &[String], snapshot: &Snapshot) -> Vec<String> {
    let unapplied = reads.events.iter().filter(|(id, _)| !applied.contains(id));
    let mut references = reads.reservations.clone();
    references.extend(unapplied.filter_map(|(_, reference)| reference.clone()));
    let paid = reads.payments.iter().filter(|(id, _, through)| *through && !applied.contains(id));
    references.extend(paid.map(|(_, payment_intent, _)| snapshot.reservation_paid_by(payment_intent)));
    references.sort_unstable();
    references.dedup();
    references
}

/// The sizes a batch reads and PostgreSQL locks, sorted, each once: the ones [`Reads`] names, and, when the
/// decisions may move the reservations they read, the sizes of those that can still move: an active or
/// processing one, or, when a payment may come late, a released or expired one. A paid reservation is final, and
/// a released or expired one only comes back through a late payment: a decision about one that cannot move reads
/// none of its sizes' figures and takes no lock on a hot size.
pub(crate) fn sizes_read<'a>(
    reads: &Reads,
    reservations: impl Iterator<Item = &'a ReservationRecord>,
) -> Vec<(String, String)> {
    let mut sizes = reads.sizes.clone();
    if reads.changes_reservations {
        let can_move = reservations.filter(|record| match record.status {
            ReservationStatus::Active | ReservationStatus::Processing => true,
            ReservationStatus::Released | ReservationStatus::Expired => reads.late_payments,
            ReservationStatus::Committed => reads.restocks_on_refund,
        });
        sizes.extend(can_move.flat_map(|record| &record.items).map(|item| (item.product.clone(), item.size.clone())));
    }
    sizes.sort_unstable();
    sizes.dedup();
    sizes
}

/// What a batch reads after its reservations, of the paid ones it may take units back from: the reservations whose
/// returns it reads (a return's, and with RESTOCK_ON_FULL_REFUND every one read), and the sale movements' keys (the
/// order each sale belonged to, which its return movements name), each sorted, each once.
pub(crate) fn after_sale_reads<'a>(
    reads: &Reads,
    reservations: impl Iterator<Item = &'a ReservationRecord>,
) -> (Vec<String>, Vec<String>) {
    let mut returns = reads.returns.clone();
    let mut movements = reads.movements.clone();
    if reads.restocks_on_refund {
        // Every reservation read, whatever its status now: a sale planned earlier in the same batch may have paid it.
        for record in reservations {
            returns.push(record.reference.clone());
            movements.extend(record.items.iter().map(|item| sale_key(&record.reference, &item.product, &item.size)));
        }
    }
    for keys in [&mut returns, &mut movements] {
        keys.sort_unstable();
        keys.dedup();
    }
    (returns, movements)
}

/// The instant a batch reads its figures at. A batch of reservations reads them at its earliest instant: a hold that
/// ends between its requests' instants still counts for all of them (refusing too much, never promising a unit
/// that a reservation still holds at a request's own instant). A batch with Stripe events reads and plans them at
/// its latest instant, so that a hold ending between two events' instants counts the same for both (read at the
/// earliest and judged at its own, a payment just past its reservation's expiry found its own units still held,
/// and no units to take again).
pub(crate) fn read_instant(batch: &[Request]) -> Option<Timestamp> {
    let instants = batch.iter().map(|request| request.now);
    if batch.iter().any(|request| matches!(request.decision, Decision::StripeEvent { .. })) {
        instants.max()
    } else {
        instants.min()
    }
}

/// A decision's answer as planned: final, or waiting for the id the database gives the movement it records.
#[derive(Debug)]
enum Planned {
    Answer(Outcome),
    Movement(MovementPlanned),
    Import(ImportPlanned),
}

/// The plans of a batch of decisions: the writes of all of them, in order, and each one's answer with the number of
/// movements its writes record.
#[derive(Debug)]
pub(crate) struct BatchPlan {
    pub(crate) writes: Vec<Write>,
    answers: Vec<(Planned, usize)>,
}

/// Plans every decision of a batch in order against the snapshot (each sees what the ones before it planned).
pub(crate) fn plan_batch(snapshot: &mut Snapshot, batch: &[Request]) -> Result<BatchPlan, StoreError> {
    let Some(latest) = batch.iter().map(|request| request.now).max() else {
        return Ok(BatchPlan { writes: Vec::new(), answers: Vec::new() });
    };
    let mut writes = Vec::new();
    let mut planned = Vec::with_capacity(batch.len());
    for request in batch {
        let now = request.now;
        let (written, answer) = match &request.decision {
            Decision::Reserve { reference, lines, ttl } => {
                let plan = reserve(snapshot, (reference, lines), *ttl, now)?;
                (plan.writes, Planned::Answer(Outcome::Reserve(plan.outcome)))
            }
            Decision::Release { reference } => {
                let plan = release(snapshot, reference, now)?;
                (plan.writes, Planned::Answer(Outcome::Release(plan.outcome)))
            }
            Decision::Expire { reference } => {
                let plan = expire(snapshot, reference, now)?;
                (plan.writes, Planned::Answer(Outcome::Expire(plan.outcome)))
            }
            Decision::Movement(movement) => {
                let plan = record_movement(snapshot, movement, now)?;
                (plan.writes, Planned::Movement(plan.outcome))
            }
            Decision::StripeEvent { event, action } => {
                let plan = apply_stripe_event(snapshot, event, action, latest)?;
                (plan.writes, Planned::Answer(Outcome::StripeEvent(plan.outcome)))
            }
            Decision::Import { product, size, figures, reason } => {
                let plan = import_size(snapshot, (product, size), *figures, reason, now)?;
                (plan.writes, Planned::Import(plan.outcome))
            }
            Decision::Return { reference, request } => {
                let plan = record_return(snapshot, reference, request, now)?;
                (plan.writes, Planned::Answer(Outcome::Return(plan.outcome)))
            }
        };
        let movements = written.iter().filter(|write| matches!(write, Write::InsertMovement(_))).count();
        writes.extend(written);
        planned.push((answer, movements));
    }
    Ok(BatchPlan { writes, answers: planned })
}

impl BatchPlan {
    /// Each decision's answer, given the movements the batch's writes recorded, in plan order.
    pub(crate) fn answer(self, recorded: Vec<MovementRecord>) -> Result<Vec<Outcome>, StoreError> {
        let mut recorded = recorded.into_iter();
        self.answers
            .into_iter()
            .map(|(answer, movements)| {
                let own: Vec<MovementRecord> = recorded.by_ref().take(movements).collect();
                Ok(match answer {
                    Planned::Answer(outcome) => outcome,
                    Planned::Movement(planned) => Outcome::Movement(planned.answer(own)?),
                    Planned::Import(planned) => Outcome::Import(planned.answer(own)),
                })
            })
            .collect()
    }
}

/// A size's crossing from the stock state its last alert recorded into another, to record once: the alert row
/// and the size's new alerted state are written together, on condition that the size's alerted state is still
/// `previous` (of several sidecars that see the same crossing, one records it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCrossing {
    pub product: String,
    /// The size with the figures the crossing is recorded with; its state is the state crossed into.
    pub size: SizeRecord,
    pub previous: StockState,
    /// Whether the alert waits for the alert webhook; without one it is recorded as delivered.
    pub deliver: bool,
}

impl AlertCrossing {
    pub fn state(&self) -> StockState {
        self.size.level.state()
    }
}

/// The sizes whose state differs from the state their last alert recorded: each is one crossing to record.
pub fn alert_crossings(sizes: Vec<LedgerSize>, deliver: bool) -> Vec<AlertCrossing> {
    sizes
        .into_iter()
        .filter(|ledger_size| ledger_size.size.level.state() != ledger_size.alerted_state)
        .map(|ledger_size| AlertCrossing {
            product: ledger_size.product,
            size: ledger_size.size,
            previous: ledger_size.alerted_state,
            deliver,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use stock_core::{CartError, Quantity, StockLevel};

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_millis(seconds * 1000).expect("instant")
    }

    fn size(label: &str, stock: u32, reserved: u32) -> SizeRecord {
        let units = |value| Quantity::new(value).expect("units");
        SizeRecord {
            size: label.to_owned(),
            level: StockLevel::new(units(stock), units(reserved), units(1)).expect("level"),
        }
    }

    fn line(product: &str, size: &str, quantity: f64) -> CartLine {
        CartLine { product: product.to_owned(), size: size.to_owned(), quantity }
    }

    fn rejection(outcome: ReserveOutcome) -> Option<stock_core::CartValidation> {
        match outcome {
            ReserveOutcome::Rejected(validation) => Some(validation),
            _ => None,
        }
    }

    fn shop() -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.add_product("runner", vec![size("42", 3, 1), size("43", 0, 0)]);
        snapshot.add_product("ghost", Vec::new());
        snapshot
    }

    fn ttl() -> ReservationTtl {
        ReservationTtl::from_number(600.0).expect("ttl")
    }

    #[test]
    fn a_cart_that_fits_is_reserved_with_its_outbox_entries_and_the_figures_move() {
        let mut snapshot = shop();
        snapshot.add_reservation("pi_1", None);
        let plan = reserve(&mut snapshot, ("pi_1", &[line("runner", "42", 2.0)]), ttl(), at(100)).expect("planned");
        let record = match &plan.outcome {
            ReserveOutcome::Created(record) => Some(record),
            _ => None,
        }
        .expect("created");
        assert_eq!((record.status, record.expires_at), (ReservationStatus::Active, at(700)));
        assert_eq!(plan.writes[0], Write::InsertReservation(record.clone()));
        let queued: Vec<Option<(OutboxTopic, &str)>> = plan.writes[1..]
            .iter()
            .map(|write| match write {
                Write::Queue(queued) => Some((queued.topic, queued.subject.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(queued, [Some((OutboxTopic::Product, "runner")), Some((OutboxTopic::Reservation, "pi_1"))]);
        // The next decision of the same transaction sees the units held and the reservation there.
        assert_eq!(snapshot.products["runner"][0].level.available().get(), 0);
        let again = reserve(&mut snapshot, ("pi_1", &[line("runner", "42", 2.0)]), ttl(), at(101)).expect("planned");
        assert!(matches!(again.outcome, ReserveOutcome::Existing(_)) && again.writes.is_empty());
        let other = reserve(&mut snapshot, ("pi_1", &[line("runner", "42", 1.0)]), ttl(), at(101)).expect("planned");
        assert!(matches!(other.outcome, ReserveOutcome::ReferenceConflict(_)) && other.writes.is_empty());
        snapshot.add_reservation("pi_2", None);
        let late = reserve(&mut snapshot, ("pi_2", &[line("runner", "42", 1.0)]), ttl(), at(102)).expect("planned");
        let validation = rejection(late.outcome).expect("rejected");
        assert_eq!(validation.shortages.len(), 1);
        assert!(late.writes.is_empty());
    }

    #[test]
    fn unknown_products_and_sizes_are_refused_without_writing() {
        let mut snapshot = shop();
        snapshot.add_reservation("pi_3", None);
        let cart = [line("ghost", "42", 1.0), line("runner", "44", 1.0)];
        let plan = reserve(&mut snapshot, ("pi_3", &cart), ttl(), at(100)).expect("planned");
        let validation = rejection(plan.outcome).expect("rejected");
        assert!(matches!(validation.errors[0], CartError::UnknownProduct { .. }), "{:?}", validation.errors);
        assert!(matches!(validation.errors[1], CartError::UnknownSize { .. }), "{:?}", validation.errors);
        assert!(plan.writes.is_empty());
        assert_eq!(snapshot, {
            let mut expected = shop();
            expected.add_reservation("pi_3", None);
            expected
        });
    }

    #[test]
    fn planning_on_rows_the_transaction_did_not_load_is_an_error_not_a_guess() {
        let mut snapshot = shop();
        let unloaded = reserve(&mut snapshot, ("pi_4", &[line("runner", "42", 1.0)]), ttl(), at(100));
        assert!(matches!(unloaded, Err(StoreError::Inconsistent(_))));
        snapshot.add_reservation("pi_4", None);
        let unloaded = reserve(&mut snapshot, ("pi_4", &[line("boot", "42", 1.0)]), ttl(), at(100));
        assert!(matches!(unloaded, Err(StoreError::Inconsistent(_))));
        // A product of which one size was read (for a sale) cannot be checked as a cart: its other sizes are unknown.
        snapshot.add_size("boot", "42", Some(size("42", 5, 0)));
        let partial = reserve(&mut snapshot, ("pi_4", &[line("boot", "42", 1.0)]), ttl(), at(100));
        assert!(matches!(partial, Err(StoreError::Inconsistent(_))));
        let mut restock = movement_request("43", MovementType::Restock, 1, None);
        restock.product = "boot".into();
        let other_size = record_movement(&mut snapshot, &restock, at(100));
        assert!(matches!(other_size, Err(StoreError::Inconsistent(_))), "size 43 was not read");
    }

    #[test]
    fn a_release_gives_the_units_back_once_and_a_paid_reservation_keeps_them() {
        let mut snapshot = shop();
        snapshot.add_reservation("pi_1", None);
        reserve(&mut snapshot, ("pi_1", &[line("runner", "42", 2.0)]), ttl(), at(100)).expect("planned");
        let plan = release(&mut snapshot, "pi_1", at(200)).expect("planned");
        let released = match &plan.outcome {
            ReleaseOutcome::Released(record) => Some(record.clone()),
            _ => None,
        }
        .expect("released");
        assert_eq!(released.status, ReservationStatus::Released);
        assert_eq!(plan.writes[0], Write::SetStatus { record: released, finished_at: Some(at(200)) });
        assert_eq!(snapshot.products["runner"][0].level.available().get(), 2, "the units are available again");
        let again = release(&mut snapshot, "pi_1", at(201)).expect("planned");
        assert!(matches!(again.outcome, ReleaseOutcome::Unchanged(_)) && again.writes.is_empty());
        snapshot.add_reservation("pi_none", None);
        let missing = release(&mut snapshot, "pi_none", at(201)).expect("planned");
        assert!(matches!(missing.outcome, ReleaseOutcome::NotFound) && missing.writes.is_empty());
    }

    #[test]
    fn a_payment_under_way_keeps_an_active_reservation_past_its_expiry_and_nothing_else() {
        let mut snapshot = shop();
        snapshot.add_reservation("pi_1", None);
        reserve(&mut snapshot, ("pi_1", &[line("runner", "42", 1.0)]), ttl(), at(100)).expect("planned");
        let plan = start_processing(&mut snapshot, "pi_1", at(200)).expect("planned");
        assert_eq!(plan.outcome, EventOutcome::Processing);
        assert!(matches!(&plan.writes[0], Write::SetStatus { record, finished_at: None }
            if record.status == ReservationStatus::Processing));
        assert_eq!(snapshot.products["runner"][0].level.available().get(), 1, "still held");
        let again = start_processing(&mut snapshot, "pi_1", at(201)).expect("planned");
        assert!(matches!(again.outcome, EventOutcome::Unchanged { .. }) && again.writes.is_empty());
        snapshot.add_reservation("pi_late", None);
        reserve(&mut snapshot, ("pi_late", &[line("runner", "42", 1.0)]), ttl(), at(100)).expect("planned");
        let expired = start_processing(&mut snapshot, "pi_late", at(100 + 601)).expect("planned");
        assert!(matches!(expired.outcome, EventOutcome::Ignored { .. }) && expired.writes.is_empty());
        snapshot.add_reservation("pi_none", None);
        let missing = start_processing(&mut snapshot, "pi_none", at(201)).expect("planned");
        assert_eq!(missing.outcome, decide::NO_RESERVATION);
    }

    #[test]
    fn only_an_active_reservation_past_its_expiry_expires() {
        let mut snapshot = shop();
        snapshot.add_reservation("pi_1", None);
        reserve(&mut snapshot, ("pi_1", &[line("runner", "42", 1.0)]), ttl(), at(100)).expect("planned");
        let early = expire(&mut snapshot, "pi_1", at(699)).expect("planned");
        assert!(!early.outcome && early.writes.is_empty());
        let due = expire(&mut snapshot, "pi_1", at(700)).expect("planned");
        assert!(due.outcome);
        assert!(matches!(&due.writes[0], Write::SetStatus { record, finished_at: Some(_) }
            if record.status == ReservationStatus::Expired));
        let again = expire(&mut snapshot, "pi_1", at(800)).expect("planned");
        assert!(!again.outcome && again.writes.is_empty());
        snapshot.add_reservation("pi_none", None);
        assert!(!expire(&mut snapshot, "pi_none", at(800)).expect("planned").outcome);
    }

    fn event(id: &str) -> StripeEventRecord {
        StripeEventRecord { id: id.to_owned(), kind: "payment_intent.succeeded".to_owned() }
    }

    fn commit(reference: &str, marked: bool) -> StripeAction {
        StripeAction::Commit { reference: reference.to_owned(), order_reference: None, marked, payment_intent: None }
    }

    fn recorded_event(writes: &[Write]) -> Option<&'static str> {
        match writes.first() {
            Some(Write::RecordEvent { outcome, .. }) => Some(outcome),
            _ => None,
        }
    }

    fn conflict_kind(writes: &[Write]) -> Option<&'static str> {
        writes.iter().find_map(|write| match write {
            Write::RecordConflict { kind, .. } => Some(*kind),
            _ => None,
        })
    }

    fn movements(writes: &[Write]) -> Vec<&NewMovement> {
        writes
            .iter()
            .filter_map(|write| match write {
                Write::InsertMovement(planned) => Some(planned),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_payment_sells_the_held_units_once_and_records_its_event_with_the_outcome() {
        let mut snapshot = shop();
        snapshot.add_reservation("pi_1", None);
        reserve(&mut snapshot, ("pi_1", &[line("runner", "42", 2.0)]), ttl(), at(100)).expect("planned");
        snapshot.add_event("evt_1", false);
        snapshot.add_payment("pi_1", None);
        let plan = apply_stripe_event(&mut snapshot, &event("evt_1"), &commit("pi_1", true), at(200)).expect("planned");
        assert_eq!(plan.outcome, EventOutcome::Committed { late: false });
        assert_eq!(recorded_event(&plan.writes), Some("committed"));
        let sales = movements(&plan.writes);
        assert_eq!(sales.len(), 1);
        assert_eq!(sales[0].key.as_deref(), Some(sale_key("pi_1", "runner", "42").as_str()));
        assert_eq!((sales[0].movement.kind, sales[0].movement.quantity.get()), (MovementType::Sale, -2));
        assert!(plan.writes.iter().any(|write| matches!(write, Write::SetStatus { record, .. }
            if record.status == ReservationStatus::Committed)));
        let level = snapshot.products["runner"][0].level;
        assert_eq!((level.stock().get(), level.reserved().get()), (1, 1), "sold: stock and reserved down together");

        let again =
            apply_stripe_event(&mut snapshot, &event("evt_1"), &commit("pi_1", true), at(201)).expect("planned");
        assert!(matches!(again.outcome, EventOutcome::Duplicate) && again.writes.is_empty());
        snapshot.add_event("evt_2", false);
        let other =
            apply_stripe_event(&mut snapshot, &event("evt_2"), &commit("pi_1", true), at(202)).expect("planned");
        assert_eq!(other.outcome, EventOutcome::Unchanged { status: ReservationStatus::Committed });
        assert_eq!(other.writes.len(), 1, "only the event is recorded: {:?}", other.writes);
    }

    #[test]
    fn a_late_payment_reserves_again_when_it_can_and_is_an_oversold_conflict_when_it_cannot() {
        // Active but past its expiry: its units no longer count as reserved at 800.
        let mut snapshot = shop();
        let expired = ReservationRecord {
            reference: "pi_late".to_owned(),
            status: ReservationStatus::Active,
            created_at: at(100),
            expires_at: at(700),
            items: vec![ReservedItem {
                product: "runner".to_owned(),
                size: "42".to_owned(),
                quantity: Quantity::new(2).expect("units"),
            }],
        };
        snapshot.add_reservation("pi_late", Some(expired.clone()));
        snapshot.add_event("evt_late", false);
        snapshot.add_payment("pi_late", None);
        let late = apply_stripe_event(&mut snapshot, &event("evt_late"), &commit("pi_late", true), at(800));
        let late = late.expect("planned");
        assert_eq!(late.outcome, EventOutcome::Committed { late: true });
        assert_eq!(snapshot.products["runner"][0].level.stock().get(), 1);

        // Released, and its units sold to someone else meanwhile.
        let mut snapshot = shop();
        let gone = ReservationRecord {
            reference: "pi_gone".to_owned(),
            status: ReservationStatus::Released,
            items: vec![ReservedItem { quantity: Quantity::new(3).expect("units"), ..expired.items[0].clone() }],
            ..expired
        };
        snapshot.add_reservation("pi_gone", Some(gone));
        snapshot.add_event("evt_gone", false);
        snapshot.add_payment("pi_gone", None);
        let before = snapshot.clone();
        let plan = apply_stripe_event(&mut snapshot, &event("evt_gone"), &commit("pi_gone", true), at(800));
        let plan = plan.expect("planned");
        assert_eq!(plan.outcome, EventOutcome::Conflict { kind: "oversold" });
        assert_eq!(conflict_kind(&plan.writes), Some("oversold"));
        assert!(movements(&plan.writes).is_empty(), "nothing sold");
        assert_eq!(snapshot.products, before.products);
    }

    #[test]
    fn a_payment_nobody_reserved_is_a_conflict_when_marked_and_someone_elses_otherwise() {
        let mut snapshot = shop();
        for (id, marked) in [("evt_marked", true), ("evt_foreign", false)] {
            snapshot.add_reservation("pi_none", None);
            snapshot.add_event(id, false);
            let plan = apply_stripe_event(&mut snapshot, &event(id), &commit("pi_none", marked), at(100));
            let plan = plan.expect("planned");
            if marked {
                assert_eq!(plan.outcome, EventOutcome::Conflict { kind: "unknown_reference" });
                assert_eq!(conflict_kind(&plan.writes), Some("unknown_reference"));
            } else {
                assert_eq!(plan.outcome, EventOutcome::Ignored { reason: FOREIGN_PAYMENT });
                assert_eq!(plan.writes.len(), 1, "only the event is recorded");
            }
        }
        snapshot.add_event("evt_unreadable", false);
        let unreadable = StripeAction::Unreadable { reference: None, problem: "no id".to_owned() };
        let plan = apply_stripe_event(&mut snapshot, &event("evt_unreadable"), &unreadable, at(100)).expect("planned");
        assert!(matches!(&plan.writes[1], Write::RecordConflict { kind: "unreadable_event", reference, .. }
            if reference == "-"));
        let unloaded = apply_stripe_event(&mut snapshot, &event("evt_unknown"), &commit("pi_none", true), at(100));
        assert!(matches!(unloaded, Err(StoreError::Inconsistent(_))));
    }

    fn movement_request(size: &str, kind: MovementType, units: i64, reference: Option<&str>) -> MovementRequest {
        MovementRequest {
            product: "runner".into(),
            size: size.into(),
            kind,
            quantity: stock_core::SignedQuantity::new(units).expect("units"),
            reason: "Delivery note 7".into(),
            reference: reference.map(str::to_owned),
            expected_stock: None,
            low_stock_threshold: None,
            origin: MovementOrigin::Sidecar,
        }
    }

    #[test]
    fn a_restock_creates_its_size_and_a_reference_answers_its_first_movement_after() {
        let mut snapshot = shop();
        let request = movement_request("44", MovementType::Restock, 5, Some("DN-7"));
        snapshot.add_movement(&movement_key("DN-7"), None);
        let plan = record_movement(&mut snapshot, &request, at(100)).expect("planned");
        assert!(matches!(&plan.writes[0], Write::InsertSize { size, .. } if size == "44"));
        let planned = movements(&plan.writes)[0].clone();
        assert_eq!(planned.movement.stock_after.get(), 5);
        assert_eq!(snapshot.products["runner"][2].level.stock().get(), 5, "the next decision sees the new size");
        let answer = plan.outcome.answer(vec![planned.recorded(9)]).expect("answered");
        let MovementOutcome::Applied(record) = answer else { unreachable!("applied: {answer:?}") };
        assert_eq!(record.id, 9);

        let mut snapshot = shop();
        snapshot.add_movement(&movement_key("DN-7"), Some(record.clone()));
        let replay = record_movement(&mut snapshot, &request, at(101)).expect("planned");
        assert!(replay.writes.is_empty());
        assert!(matches!(replay.outcome.answer(Vec::new()), Ok(MovementOutcome::Replayed(_))));
        let other = movement_request("44", MovementType::Restock, 6, Some("DN-7"));
        let conflict = record_movement(&mut snapshot, &other, at(101)).expect("planned");
        assert!(matches!(conflict.outcome.answer(Vec::new()), Ok(MovementOutcome::ReferenceConflict(_))));
    }

    #[test]
    fn a_refused_movement_writes_nothing_not_even_the_size_it_would_have_made() {
        let mut snapshot = shop();
        let sale = movement_request("44", MovementType::Sale, -1, None);
        let unknown = record_movement(&mut snapshot, &sale, at(100)).expect("planned");
        assert!(unknown.writes.is_empty());
        assert!(matches!(unknown.outcome.answer(Vec::new()), Ok(MovementOutcome::UnknownSize)));
        let mut stale = movement_request("44", MovementType::Restock, 5, None);
        stale.expected_stock = Some(Quantity::new(3).expect("units"));
        let plan = record_movement(&mut snapshot, &stale, at(100)).expect("planned");
        assert!(plan.writes.is_empty(), "{:?}", plan.writes);
        assert!(matches!(plan.outcome.answer(Vec::new()), Ok(MovementOutcome::StaleStock { .. })));
        let too_many = movement_request("42", MovementType::Sale, -3, None);
        let plan = record_movement(&mut snapshot, &too_many, at(100)).expect("planned");
        assert!(plan.writes.is_empty(), "1 of 3 units is reserved");
        assert!(matches!(plan.outcome.answer(Vec::new()), Ok(MovementOutcome::Refused(_))));
        assert_eq!(snapshot, shop());
    }

    #[test]
    fn an_import_adds_a_new_size_once_with_its_units_as_an_adjustment() {
        let mut snapshot = shop();
        let units = |value| Quantity::new(value).expect("units");
        let plan =
            import_size(&mut snapshot, ("runner", "44"), (units(4), units(2)), "import", at(100)).expect("planned");
        let planned = movements(&plan.writes)[0].clone();
        assert_eq!(planned.key.as_deref(), Some(import_key("runner", "44").as_str()));
        assert_eq!(planned.movement.kind, MovementType::Adjustment);
        assert!(matches!(plan.outcome.answer(vec![planned.recorded(3)]), ImportOutcome::Imported(Some(_))));
        let level = snapshot.products["runner"][2].level;
        assert_eq!((level.stock().get(), level.low_stock_threshold().get()), (4, 2));
        let again =
            import_size(&mut snapshot, ("runner", "44"), (units(9), units(2)), "import", at(101)).expect("planned");
        assert!(again.writes.is_empty());
        assert!(
            matches!(again.outcome.answer(Vec::new()), ImportOutcome::AlreadyInLedger { stock } if stock.get() == 4)
        );
        let empty =
            import_size(&mut snapshot, ("runner", "45"), (units(0), units(2)), "import", at(101)).expect("planned");
        assert!(movements(&empty.writes).is_empty());
        assert!(matches!(empty.writes[1], Write::Queue(Queued { topic: OutboxTopic::Product, .. })));
        assert!(matches!(empty.outcome.answer(Vec::new()), ImportOutcome::Imported(None)));
    }

    #[test]
    fn a_size_whose_state_left_its_last_alerted_state_is_one_crossing_and_others_none() {
        let ledger_size = |label: &str, stock, alerted_state| LedgerSize {
            product: "runner".to_owned(),
            size: size(label, stock, 0),
            alerted_state,
        };
        let sizes = vec![
            ledger_size("40", 5, StockState::InStock),
            ledger_size("41", 1, StockState::InStock),
            ledger_size("42", 0, StockState::Low),
            ledger_size("43", 5, StockState::OutOfStock),
            ledger_size("44", 0, StockState::OutOfStock),
        ];
        let crossings = alert_crossings(sizes, true);
        let seen: Vec<_> = crossings
            .iter()
            .map(|crossing| (crossing.size.size.as_str(), crossing.previous, crossing.state()))
            .collect();
        assert_eq!(
            seen,
            [
                ("41", StockState::InStock, StockState::Low),
                ("42", StockState::Low, StockState::OutOfStock),
                ("43", StockState::OutOfStock, StockState::InStock),
            ]
        );
        assert!(crossings.iter().all(|crossing| crossing.deliver));
        assert!(!alert_crossings(vec![ledger_size("41", 1, StockState::InStock)], false)[0].deliver);
    }

    fn request(decision: Decision, seconds: i64) -> Request {
        Request { decision, now: at(seconds) }
    }

    #[test]
    fn a_batch_reads_each_key_once_sorted_and_locks_the_sizes_of_the_reservations_it_moves_but_a_paid_ones() {
        let reserve_batch = [
            request(
                Decision::Reserve { reference: "pi_b".into(), lines: vec![line("runner", "43", 1.0)], ttl: ttl() },
                1,
            ),
            request(
                Decision::Reserve { reference: "pi_a".into(), lines: vec![line("runner", "42", 1.0)], ttl: ttl() },
                2,
            ),
        ];
        let reads_of = reads(&reserve_batch);
        assert_eq!(reads_of.reservations, ["pi_a", "pi_b"]);
        assert_eq!(reads_of.products, ["runner"]);
        assert_eq!(reads_of.sizes, [("runner".to_owned(), "42".to_owned()), ("runner".to_owned(), "43".to_owned())]);
        assert!(!reads_of.changes_reservations, "a reservation batch reads its references without locking them");

        let event_batch = [
            request(Decision::StripeEvent { event: event("evt_2"), action: commit("pi_paid", true) }, 1),
            request(Decision::StripeEvent { event: event("evt_1"), action: commit("pi_open", true) }, 1),
            request(Decision::StripeEvent { event: event("evt_1"), action: commit("pi_open", true) }, 1),
        ];
        let reads_of = reads(&event_batch);
        let named = |id: &str, reference: &str| (id.to_owned(), Some(reference.to_owned()));
        assert_eq!(reads_of.events, [named("evt_1", "pi_open"), named("evt_2", "pi_paid")]);
        assert!(reads_of.changes_reservations && reads_of.late_payments);
        let nothing = Snapshot::default();
        assert_eq!(references_read(&reads_of, &[], &nothing), ["pi_open", "pi_paid"]);
        assert_eq!(
            references_read(&reads_of, &["evt_2".to_owned()], &nothing),
            ["pi_open"],
            "a redelivery reads nothing"
        );
        assert_eq!(payments_read(&reads_of, &["evt_2".to_owned()]), ["pi_open"], "a sale reads its payment's money");
        let held = |reference: &str, status, size: &str| ReservationRecord {
            reference: reference.to_owned(),
            status,
            created_at: at(0),
            expires_at: at(600),
            items: vec![ReservedItem {
                product: "runner".into(),
                size: size.into(),
                quantity: Quantity::new(1).expect("units"),
            }],
        };
        let loaded = [
            held("pi_paid", ReservationStatus::Committed, "41"),
            held("pi_open", ReservationStatus::Active, "42"),
            held("pi_lapsed", ReservationStatus::Expired, "43"),
        ];
        let pair = |size: &str| ("runner".to_owned(), size.to_owned());
        assert_eq!(sizes_read(&reads_of, loaded.iter()), [pair("42"), pair("43")], "a late payment reads its sizes");
        let releases = reads(&[request(Decision::Release { reference: "pi_lapsed".into() }, 1)]);
        assert_eq!(sizes_read(&releases, loaded.iter()), [pair("42")], "a release of a lapsed one locks nothing");

        let import = Decision::Import {
            product: "runner".into(),
            size: "44".into(),
            figures: (Quantity::ZERO, Quantity::ZERO),
            reason: "import".into(),
        };
        let reads_of = reads(&[request(import, 1)]);
        assert_eq!((reads_of.sizes.len(), reads_of.unlocked_sizes.len()), (0, 1), "an import locks nothing");

        let movement = movement_request("42", MovementType::Restock, 1, Some("dn-7"));
        let reads_of = reads(&[request(Decision::Movement(movement), 1)]);
        assert_eq!((reads_of.movements.as_slice(), reads_of.sizes.len()), (["movement:dn-7".to_owned()].as_slice(), 1));
    }

    #[test]
    fn a_batch_is_planned_in_order_and_each_decision_is_answered_with_its_own_movements() {
        let mut snapshot = shop();
        snapshot.add_movement("movement:dn-1", None);
        snapshot.add_movement("movement:dn-2", None);
        let batch = [
            request(Decision::Movement(movement_request("42", MovementType::Restock, 2, Some("dn-1"))), 1),
            request(Decision::Movement(movement_request("42", MovementType::Restock, 3, Some("dn-2"))), 2),
        ];
        let plan = plan_batch(&mut snapshot, &batch).expect("planned");
        let planned: Vec<i64> = plan
            .writes
            .iter()
            .filter_map(|write| match write {
                Write::InsertMovement(planned) => Some(i64::from(planned.movement.stock_after)),
                _ => None,
            })
            .collect();
        assert_eq!(planned, [5, 8], "the second movement is planned on what the first one left");
        let recorded: Vec<MovementRecord> = plan
            .writes
            .iter()
            .filter_map(|write| match write {
                Write::InsertMovement(planned) => Some(planned),
                _ => None,
            })
            .zip([10, 11])
            .map(|(planned, id)| planned.recorded(id))
            .collect();
        let answers = plan.answer(recorded).expect("answered");
        let ids: Vec<Option<i64>> = answers
            .into_iter()
            .map(|outcome| match MovementOutcome::try_from(outcome) {
                Ok(MovementOutcome::Applied(record)) => Some(record.id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, [Some(10), Some(11)]);
        let wrong_kind = ReserveOutcome::try_from(Outcome::Expire(true));
        assert!(matches!(wrong_kind, Err(StoreError::Inconsistent(_))));
    }

    #[test]
    fn a_batch_of_reservations_reads_at_its_earliest_instant_and_one_with_events_at_its_latest() {
        let reservation = |seconds| {
            let decision =
                Decision::Reserve { reference: "pi".into(), lines: vec![line("runner", "42", 1.0)], ttl: ttl() };
            request(decision, seconds)
        };
        assert_eq!(read_instant(&[reservation(5), reservation(3), reservation(9)]), Some(at(3)));
        let event = request(Decision::StripeEvent { event: event("evt"), action: commit("pi", true) }, 4);
        assert_eq!(read_instant(&[event.clone(), request(event.decision.clone(), 8)]), Some(at(8)));
        assert_eq!(read_instant(&[]), None);
    }

    #[test]
    fn the_events_of_a_batch_are_planned_at_its_latest_instant() {
        // Held until 600: the reservation expired between the two events' instants. Planned at the batch's latest
        // instant, both see it lapsed, so its success is a late payment, whatever the order they came in.
        let mut snapshot = shop();
        snapshot.add_event("evt_late", false);
        snapshot.add_event("evt_other", false);
        let record = ReservationRecord {
            reference: "pi_1".into(),
            status: ReservationStatus::Active,
            created_at: at(0),
            expires_at: at(600),
            items: vec![ReservedItem {
                product: "runner".into(),
                size: "42".into(),
                quantity: Quantity::new(1).expect("units"),
            }],
        };
        snapshot.add_reservation("pi_1", Some(record));
        snapshot.add_payment("pi_1", None);
        let ignored = StripeAction::Ignore { reason: "not a payment" };
        let batch = [
            request(Decision::StripeEvent { event: event("evt_late"), action: commit("pi_1", true) }, 599),
            request(Decision::StripeEvent { event: event("evt_other"), action: ignored }, 601),
        ];
        let plan = plan_batch(&mut snapshot, &batch).expect("planned");
        let outcome = EventOutcome::try_from(plan.answer(Vec::new()).expect("answered").remove(0));
        assert!(matches!(outcome, Ok(EventOutcome::Committed { late: true })), "{outcome:?}");
    }

    #[test]
    fn a_full_refund_releases_a_held_reservation_once_and_the_success_after_it_sells_nothing() {
        let mut snapshot = shop();
        snapshot.add_reservation("pi_r", None);
        reserve(&mut snapshot, ("pi_r", &[line("runner", "42", 2.0)]), ttl(), at(100)).expect("planned");
        let refunded = StripeAction::RecordMoney {
            payment_intent: "pi_r".into(),
            change: MoneyChange::Refunded { amount: 4990, refunded: 4990 },
            restock_on_full_refund: false,
        };
        let reads_of =
            reads(&[request(Decision::StripeEvent { event: event("evt_refund"), action: refunded.clone() }, 1)]);
        assert_eq!(reads_of.payments, [("evt_refund".to_owned(), "pi_r".to_owned(), true)]);
        assert_eq!(references_read(&reads_of, &[], &snapshot), ["pi_r"], "found through its payment, or by its id");

        snapshot.add_event("evt_refund", false);
        snapshot.add_payment("pi_r", None);
        let held = snapshot.products["runner"][0].level.reserved().get();
        let plan = apply_stripe_event(&mut snapshot, &event("evt_refund"), &refunded, at(200)).expect("planned");
        assert_eq!(plan.outcome, EventOutcome::Conflict { kind: "refunded_before_sale" });
        assert!(plan.writes.iter().any(|write| matches!(write, Write::RecordPayment { record, existed: false }
            if record.reference.as_deref() == Some("pi_r") && record.money.is_fully_refunded())));
        assert!(plan.writes.iter().any(|write| matches!(write, Write::SetStatus { record, .. }
            if record.status == ReservationStatus::Released)));
        assert_eq!(snapshot.products["runner"][0].level.reserved().get(), held - 2, "its units are available again");

        snapshot.add_event("evt_paid", false);
        let before = snapshot.products.clone();
        let paid =
            apply_stripe_event(&mut snapshot, &event("evt_paid"), &commit("pi_r", true), at(300)).expect("planned");
        assert_eq!(paid.outcome, EventOutcome::Conflict { kind: "sale_after_refund" });
        assert!(movements(&paid.writes).is_empty(), "nothing sold");
        assert_eq!(snapshot.products, before);

        // A partial refund of another payment records money and changes no reservation.
        snapshot.add_reservation("pi_p", None);
        reserve(&mut snapshot, ("pi_p", &[line("runner", "42", 1.0)]), ttl(), at(100)).expect("planned");
        snapshot.add_event("evt_partial", false);
        snapshot.add_payment("pi_p", None);
        let partial = StripeAction::RecordMoney {
            payment_intent: "pi_p".into(),
            change: MoneyChange::Refund { amount: 10 },
            restock_on_full_refund: false,
        };
        let plan = apply_stripe_event(&mut snapshot, &event("evt_partial"), &partial, at(200)).expect("planned");
        assert_eq!(plan.outcome, EventOutcome::Recorded);
        assert!(!plan.writes.iter().any(|write| matches!(write, Write::SetStatus { .. })));
    }
}
