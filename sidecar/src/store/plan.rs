//! The ledger's decisions, planned once in pure code. A decision takes what it reads, a [`Snapshot`] of the rows
//! it names as its transaction sees them, and returns a [`Plan`]: the rows to write, with the outbox entries that
//! tell Payload, and the outcome its caller gets. The snapshot is brought up to date with the plan as it is made,
//! so the next decision of the same transaction plans against what this one wrote. A backend only loads snapshots
//! and executes plans; the rules themselves stay in stock-core.

use std::collections::BTreeMap;

use stock_core::{
    CartLine, ProductSnapshot, ReservationError, ReservationStatus, ReservationTtl, SizeStock, Timestamp,
    reservation_expires_at, validate_cart,
};

use super::columns::{holds_until, product_lane, reservation_lane, same_items};
use super::decide;
use super::{
    EventOutcome, OutboxTopic, ReleaseOutcome, ReservationRecord, ReserveOutcome, ReservedItem, SizeRecord, StoreError,
};

/// What a transaction has read of the ledger: the sizes of some products with their figures, and some
/// reservations by reference. A decision may only plan on what it was loaded with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Every size of each loaded product, in the order they were added (a product the ledger lacks has none).
    products: BTreeMap<String, Vec<SizeRecord>>,
    /// Each loaded reference's reservation, `None` when there is none.
    reservations: BTreeMap<String, Option<ReservationRecord>>,
}

impl Snapshot {
    /// Records what the transaction read of `product`: all its sizes, with their figures now.
    pub(crate) fn add_product(&mut self, product: &str, sizes: Vec<SizeRecord>) {
        self.products.insert(product.to_owned(), sizes);
    }

    /// Records what the transaction read under `reference`.
    pub(crate) fn add_reservation(&mut self, reference: &str, record: Option<ReservationRecord>) {
        self.reservations.insert(reference.to_owned(), record);
    }

    fn reservation(&self, reference: &str) -> Result<Option<&ReservationRecord>, StoreError> {
        match self.reservations.get(reference) {
            Some(record) => Ok(record.as_ref()),
            None => Err(not_loaded(format!("reservation {reference}"))),
        }
    }

    /// The products a cart names, as stock-core validates it against them.
    fn catalogue(&self, lines: &[CartLine]) -> Result<Vec<ProductSnapshot>, StoreError> {
        let mut products: Vec<&str> = lines.iter().map(|line| line.product.as_str()).collect();
        products.sort_unstable();
        products.dedup();
        let mut catalogue = Vec::with_capacity(products.len());
        for product in products {
            let sizes = self.products.get(product).ok_or_else(|| not_loaded(format!("product {product}")))?;
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

/// What the keys of a reservation request ask a backend to load: the products the cart names (every size of
/// each, so that stock-core tells an unknown size from an unknown product) and the reference.
pub(crate) fn reserve_reads(lines: &[CartLine]) -> Vec<&str> {
    let mut products: Vec<&str> = lines.iter().map(|line| line.product.as_str()).collect();
    products.sort_unstable();
    products.dedup();
    products
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
    fn product(product: &str) -> Self {
        Queued {
            topic: OutboxTopic::Product,
            subject: product.to_owned(),
            lane: product_lane(product),
            delay_millis: 0,
        }
    }

    /// A reservation's document.
    fn reservation(reference: &str) -> Self {
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
    let mut products: Vec<&str> = items.iter().map(|item| item.product.as_str()).collect();
    products.sort_unstable();
    products.dedup();
    writes.extend(products.into_iter().map(|product| Write::Queue(Queued::product(product))));
    writes.push(Write::Queue(Queued::reservation(reference)));
}

/// What a decision writes, and what its caller is answered once that is committed.
#[derive(Debug)]
pub(crate) struct Plan<Outcome> {
    pub(crate) writes: Vec<Write>,
    pub(crate) outcome: Outcome,
}

impl<Outcome> Plan<Outcome> {
    /// A decision that writes nothing.
    fn answer(outcome: Outcome) -> Self {
        Plan { writes: Vec::new(), outcome }
    }
}

/// Reserves every line of a cart for `ttl`, or nothing. The same request again under its reference answers the
/// reservation it made (even once it took the last units); other lines under a taken reference are a conflict.
pub(crate) fn reserve(
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

/// Moves a reservation to `status`: the write, the outbox entries, and the snapshot brought up to date.
fn change_status(
    snapshot: &mut Snapshot,
    record: &ReservationRecord,
    status: ReservationStatus,
    now: Timestamp,
) -> (ReservationRecord, Vec<Write>) {
    snapshot.change_status(record, status, now);
    let changed = ReservationRecord { status, ..record.clone() };
    let finished_at = status.is_terminal().then_some(now);
    let mut writes = vec![Write::SetStatus { record: changed.clone(), finished_at }];
    queue_reservation(&mut writes, &changed.reference, &changed.items);
    (changed, writes)
}

/// Releases a reservation: its units are available again, unless it was paid. The one release decision that the
/// `/v1` route and Stripe's cancellation events share.
pub(crate) fn release(
    snapshot: &mut Snapshot,
    reference: &str,
    now: Timestamp,
) -> Result<Plan<ReleaseOutcome>, StoreError> {
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return Ok(Plan::answer(ReleaseOutcome::NotFound));
    };
    Ok(match decide::release(&record)? {
        decide::Release::To(status) => {
            let (released, writes) = change_status(snapshot, &record, status, now);
            Plan { writes, outcome: ReleaseOutcome::Released(released) }
        }
        decide::Release::Unchanged => Plan::answer(ReleaseOutcome::Unchanged(record)),
        decide::Release::AlreadyCommitted => Plan::answer(ReleaseOutcome::AlreadyCommitted(record)),
    })
}

/// An asynchronous payment is under way: the reservation holds its units past its expiry until the payment
/// succeeds or fails.
pub(crate) fn start_processing(
    snapshot: &mut Snapshot,
    reference: &str,
    now: Timestamp,
) -> Result<Plan<EventOutcome>, StoreError> {
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return Ok(Plan::answer(decide::NO_RESERVATION));
    };
    Ok(match decide::start_processing(&record, now)? {
        Ok(status) => {
            Plan { writes: change_status(snapshot, &record, status, now).1, outcome: EventOutcome::Processing }
        }
        Err(answer) => Plan::answer(answer),
    })
}

/// Marks a reservation expired if it is active and past its expiry (cleanup, after Stripe said the checkout is
/// over or without asking); whether it changed.
pub(crate) fn expire(snapshot: &mut Snapshot, reference: &str, now: Timestamp) -> Result<Plan<bool>, StoreError> {
    let Some(record) = snapshot.reservation(reference)?.cloned() else {
        return Ok(Plan::answer(false));
    };
    Ok(match decide::expire(&record, now)? {
        Some(status) => Plan { writes: change_status(snapshot, &record, status, now).1, outcome: true },
        None => Plan::answer(false),
    })
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
}
