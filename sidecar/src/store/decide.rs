//! The rules of each decision on the records it read: pure functions from stored records and stock levels (and
//! `now`) to what changes, with stock-core's rules. `plan.rs` calls them on its snapshot and turns what they return
//! into rows to write; none of them touches a database.

use stock_core::{
    MovementDetails, MovementType, PaymentMoney, PlannedReturnLine, Quantity, ReservationError, ReservationStatus,
    ReturnLine, ReturnReason, SignedQuantity, SoldSize, StatusChange, StockLevel, StockMovement, Timestamp,
    apply_movement, commit_reserved_sale,
};
use stock_wire::MoneyChange;

use super::columns::{level, lifecycle_of};
use super::{
    ConflictRecord, EventOutcome, MovementOutcome, MovementRecord, MovementRequest, ReleaseOutcome, ReservationRecord,
    ReservedItem, ResolveOutcome, ReturnRecord, StoreError,
};

fn inconsistent(error: impl std::fmt::Display) -> StoreError {
    StoreError::Inconsistent(error.to_string())
}

/// What a payment's success does to a stored reservation.
#[derive(Debug)]
pub(crate) enum Commit {
    /// Already where the payment would take it (committed before): nothing to do.
    Unchanged(ReservationStatus),
    /// Sell its units; `late` when it no longer holds them (expired or released) and must reserve them again.
    Sell { late: bool },
}

pub(crate) fn commit(record: &ReservationRecord, now: Timestamp) -> Result<Commit, StoreError> {
    match lifecycle_of(record)?.commit(now) {
        Ok(StatusChange::Unchanged(status)) => Ok(Commit::Unchanged(status)),
        Ok(StatusChange::Changed(_)) => Ok(Commit::Sell { late: false }),
        Err(ReservationError::PastExpiry { .. } | ReservationError::NotActive { .. }) => {
            // stock-core allows the late commit of exactly these; asking it keeps the rule in one place.
            lifecycle_of(record)?.commit_late().map_err(inconsistent)?;
            Ok(Commit::Sell { late: true })
        }
        Err(error) => Err(inconsistent(error)),
    }
}

/// What a payment whose reference was never reserved becomes: an `unknown_reference` conflict (its details) when
/// it carries the shop's checkout marker, else nothing (someone else's payment on the same Stripe account).
pub(crate) fn unknown_payment(marked: bool) -> Option<serde_json::Value> {
    marked.then(|| {
        serde_json::json!({ "message": "a payment of the shop's checkout succeeded for a reference that was never reserved" })
    })
}

/// The details of the conflict recorded for a signed event that cannot be read.
pub(crate) fn unreadable_event_details(problem: &str) -> serde_json::Value {
    serde_json::json!({ "message": "a correctly signed Stripe event could not be read; nothing was applied", "problem": problem })
}

/// A payment's money once a money event is merged into it (stock-core's rules: refunded amounts only grow, a
/// decided dispute stays decided).
pub(crate) fn money_after(before: PaymentMoney, change: MoneyChange) -> PaymentMoney {
    match change {
        MoneyChange::Refunded { amount, refunded } => before.with_refunded(amount, refunded),
        MoneyChange::Refund { amount } => before.with_refunded(0, amount),
        MoneyChange::Dispute(state) => before.with_dispute(state),
    }
}

/// The figures of a payment's money in a conflict's details.
fn money_details(money: &PaymentMoney) -> serde_json::Value {
    serde_json::json!({
        "amount": money.amount,
        "refunded": money.refunded,
        "dispute": money.dispute.map(|state| state.as_str()),
    })
}

/// The details of the conflict recorded when a full refund or a dispute arrives while the payment's reservation
/// still holds its units (before its success): the ledger released them.
pub(crate) fn refunded_before_sale_details(record: &ReservationRecord, money: &PaymentMoney) -> serde_json::Value {
    serde_json::json!({
        "message": "the payment was fully refunded or disputed before its success was applied: the reservation's \
                    units were released, and its success will take none",
        "reservationStatus": record.status.as_str(),
        "payment": money_details(money),
    })
}

/// The details of the conflict recorded when the success of a payment already fully refunded or disputed
/// arrives: nothing was sold, and the reservation, if it still held its units, was released (`released`).
pub(crate) fn sale_after_refund_details(
    record: &ReservationRecord,
    money: &PaymentMoney,
    released: bool,
) -> serde_json::Value {
    let message = if released {
        "a payment succeeded after it was fully refunded or disputed: no units were taken, and the reservation's \
         units were released"
    } else {
        "a payment succeeded after it was fully refunded or disputed: no units were taken again"
    };
    serde_json::json!({
        "message": message,
        "reservationStatus": record.status.as_str(),
        "payment": money_details(money),
    })
}

/// Each size a paid reservation sold, with what its `returns` have taken back so far (damaged units included).
pub(crate) fn sold_sizes(record: &ReservationRecord, returns: &[ReturnRecord]) -> Vec<SoldSize> {
    record
        .items
        .iter()
        .map(|item| {
            let back = returns
                .iter()
                .flat_map(|recorded| &recorded.lines)
                .filter(|line| line.product == item.product && line.size == item.size)
                .map(|line| line.quantity.get())
                .sum::<u32>();
            SoldSize {
                product: item.product.clone(),
                size: item.size.clone(),
                sold: item.quantity,
                returned: Quantity::new(back).unwrap_or(item.quantity),
            }
        })
        .collect()
}

/// Whether a return asked again is the one recorded under its id: the same lines, in the same order.
pub(crate) fn same_return(recorded: &ReturnRecord, lines: &[ReturnLine]) -> bool {
    recorded.lines.len() == lines.len()
        && recorded.lines.iter().zip(lines).all(|(recorded, asked)| {
            recorded.product == asked.product
                && recorded.size == asked.size
                && recorded.reason == asked.reason
                && f64::from(recorded.quantity.get()) == asked.quantity
        })
}

/// The lines of the return RESTOCK_ON_FULL_REFUND makes of a fully refunded payment: every unit that may still
/// come back, as cancelled (back on sale); none when everything came back already.
pub(crate) fn full_refund_lines(sold: &[SoldSize]) -> Vec<ReturnLine> {
    sold.iter()
        .filter(|size| !size.returnable().is_zero())
        .map(|size| ReturnLine {
            product: size.product.clone(),
            size: size.size.clone(),
            quantity: f64::from(size.returnable().get()),
            reason: ReturnReason::Cancelled,
        })
        .collect()
}

/// The `return` movement that puts a return line's units back on sale, on a size standing at `level`: its reason
/// names the return, its reference is the return's id and its order reference the order the sale belonged to.
pub(crate) fn return_movement(
    level: &StockLevel,
    line: &PlannedReturnLine,
    (return_id, order_reference): (&str, &str),
    now: Timestamp,
) -> Result<StockMovement, StoreError> {
    let details = MovementDetails {
        reason: format!("Return {return_id}: {}", line.reason),
        reference: Some(return_id.to_owned()),
        order_reference: Some(order_reference.to_owned()),
        date: now,
    };
    let units = SignedQuantity::new(i64::from(line.restocked().get())).map_err(inconsistent)?;
    Ok(apply_movement(level, MovementType::Return, units, details).map_err(inconsistent)?.movement)
}

/// The sale of each item (its item and its movement), or the details of the `oversold` conflict to record.
pub(crate) type Sales<'a> = Result<Vec<(&'a ReservedItem, StockMovement)>, serde_json::Value>;

/// The sale movement of each item of `record`, given the stock level of each item's size (in item order), or
/// the `oversold` conflict's details when a late payment finds a size short. Every size is worked out before
/// anything is written, so a shortage on the last one changes nothing on the first.
pub(crate) fn sales<'a>(
    record: &'a ReservationRecord,
    levels: Vec<StockLevel>,
    (late, order_reference): (bool, Option<&str>),
    now: Timestamp,
) -> Result<Sales<'a>, StoreError> {
    let reference = record.reference.as_str();
    let order = order_reference.unwrap_or(reference);
    let details = || MovementDetails {
        reason: format!("Order {order}"),
        reference: Some(reference.to_owned()),
        order_reference: order_reference.map(str::to_owned),
        date: now,
    };
    let mut sales = Vec::with_capacity(record.items.len());
    let mut shortages = Vec::new();
    for (item, level) in record.items.iter().zip(levels) {
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
        let applied = commit_reserved_sale(&held, item.quantity, details()).map_err(inconsistent)?;
        sales.push((item, applied.movement));
    }
    if shortages.is_empty() {
        return Ok(Ok(sales));
    }
    Ok(Err(serde_json::json!({
        "message": "a payment succeeded after its reservation ended, and the units are no longer available",
        "reservationStatus": record.status.as_str(),
        "shortages": shortages,
    })))
}

/// What releasing a stored reservation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Move it to this status: its units are available again.
    To(ReservationStatus),
    /// Already released or expired.
    Unchanged,
    /// Paid: its units stay sold.
    AlreadyCommitted,
}

pub(crate) fn release(record: &ReservationRecord) -> Result<Release, StoreError> {
    match lifecycle_of(record)?.release() {
        Ok(StatusChange::Changed(status)) => Ok(Release::To(status)),
        Ok(StatusChange::Unchanged(_)) => Ok(Release::Unchanged),
        Err(ReservationError::AlreadyCommitted { .. }) => Ok(Release::AlreadyCommitted),
        Err(error) => Err(inconsistent(error)),
    }
}

/// What a cancellation event answers, from what releasing did.
pub(crate) fn release_event_outcome(outcome: &ReleaseOutcome) -> EventOutcome {
    match outcome {
        ReleaseOutcome::Released(_) => EventOutcome::Released,
        ReleaseOutcome::Unchanged(record) => EventOutcome::Unchanged { status: record.status },
        ReleaseOutcome::AlreadyCommitted(_) => {
            EventOutcome::Ignored { reason: "the reservation was already paid; its units stay sold" }
        }
        ReleaseOutcome::NotFound => NO_RESERVATION,
    }
}

/// The answer to an event about a reference nobody reserved.
pub(crate) const NO_RESERVATION: EventOutcome = EventOutcome::Ignored { reason: "no reservation has this reference" };

/// What an asynchronous payment under way does to a stored reservation: move it to a status, or answer this.
pub(crate) fn start_processing(
    record: &ReservationRecord,
    now: Timestamp,
) -> Result<Result<ReservationStatus, EventOutcome>, StoreError> {
    Ok(match lifecycle_of(record)?.start_processing(now) {
        Ok(StatusChange::Changed(status)) => Ok(status),
        Ok(StatusChange::Unchanged(status)) => Err(EventOutcome::Unchanged { status }),
        Err(_) => Err(EventOutcome::Ignored {
            reason: "the reservation no longer holds its units; the payment's success will reserve them again",
        }),
    })
}

/// The status a stored reservation moves to when cleanup expires it at `now`, if it is active and due (finished,
/// not yet due, or processing: nothing).
pub(crate) fn expire(record: &ReservationRecord, now: Timestamp) -> Result<Option<ReservationStatus>, StoreError> {
    Ok(match lifecycle_of(record)?.expire(now) {
        Ok(StatusChange::Changed(status)) => Some(status),
        Ok(StatusChange::Unchanged(_)) | Err(_) => None,
    })
}

/// The movement a request makes of a size standing at `current`, or the answer refusing it (stale
/// `expected_stock`, or stock-core's refusal).
pub(crate) fn movement(
    current: &StockLevel,
    request: &MovementRequest,
    now: Timestamp,
) -> Result<StockMovement, Box<MovementOutcome>> {
    if let Some(expected) = request.expected_stock
        && expected != current.stock()
    {
        return Err(Box::new(MovementOutcome::StaleStock { current: current.stock() }));
    }
    let details = MovementDetails {
        reason: request.reason.clone(),
        reference: request.reference.clone(),
        order_reference: None,
        date: now,
    };
    match apply_movement(current, request.kind, request.quantity, details) {
        Ok(applied) => Ok(applied.movement),
        Err(error) => Err(Box::new(MovementOutcome::Refused(error))),
    }
}

/// The `adjustment` that brings `stock` units of a size imported from Payload into the ledger (none for 0).
pub(crate) fn import(
    stock: Quantity,
    low_stock_threshold: Quantity,
    reason: &str,
    now: Timestamp,
) -> Result<Option<StockMovement>, StoreError> {
    if stock == Quantity::ZERO {
        return Ok(None);
    }
    let empty = level(0, 0, i64::from(low_stock_threshold))?;
    let quantity = SignedQuantity::new(i64::from(stock)).map_err(inconsistent)?;
    let details = MovementDetails { reason: reason.to_owned(), reference: None, order_reference: None, date: now };
    let applied = apply_movement(&empty, MovementType::Adjustment, quantity, details).map_err(inconsistent)?;
    Ok(Some(applied.movement))
}

/// What resolving a conflict did, given whether the conditional update changed its row and the row as it is now.
pub(crate) fn resolution(updated: bool, record: Option<ConflictRecord>) -> ResolveOutcome {
    match (updated, record) {
        (_, None) => ResolveOutcome::NotFound,
        (true, Some(record)) => ResolveOutcome::Resolved(record),
        (false, Some(record)) => ResolveOutcome::AlreadyResolved(record),
    }
}

/// What a movement request whose reference is already recorded gets: the first movement when it asked for the
/// same thing (a retry), a conflict when it asked for something else under the same reference.
pub(crate) fn repeated_movement(previous: MovementRecord, request: &MovementRequest) -> MovementOutcome {
    let movement = &previous.movement;
    let same = previous.product == request.product
        && previous.size == request.size
        && movement.kind == request.kind
        && movement.quantity == request.quantity;
    if same { MovementOutcome::Replayed(previous) } else { MovementOutcome::ReferenceConflict(previous) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MovementOrigin;

    fn request(product: &str, size: &str, kind: MovementType, units: i64) -> MovementRequest {
        MovementRequest {
            product: product.into(),
            size: size.into(),
            kind,
            quantity: SignedQuantity::new(units).expect("units"),
            reason: "Delivery note 7".into(),
            reference: Some("DN-7".into()),
            expected_stock: None,
            low_stock_threshold: None,
            origin: MovementOrigin::Sidecar,
        }
    }

    fn recorded() -> MovementRecord {
        let quantity = |units| Quantity::new(units).expect("units");
        MovementRecord {
            id: 1,
            product: "runner".into(),
            size: "42".into(),
            movement: StockMovement {
                kind: MovementType::Restock,
                quantity: SignedQuantity::new(5).expect("units"),
                stock_before: quantity(0),
                stock_after: quantity(5),
                details: MovementDetails {
                    reason: "Delivery note 7".into(),
                    reference: Some("DN-7".into()),
                    order_reference: None,
                    date: Timestamp::from_unix_millis(0).expect("instant"),
                },
            },
        }
    }

    #[test]
    fn the_same_movement_again_is_a_replay_whatever_its_reason() {
        let mut again = request("runner", "42", MovementType::Restock, 5);
        again.reason = "typed differently".into();
        assert!(matches!(repeated_movement(recorded(), &again), MovementOutcome::Replayed(_)));
    }

    #[test]
    fn another_movement_under_the_same_reference_is_a_conflict() {
        for other in [
            request("trail", "42", MovementType::Restock, 5),
            request("runner", "43", MovementType::Restock, 5),
            request("runner", "42", MovementType::Return, 5),
            request("runner", "42", MovementType::Restock, 6),
        ] {
            assert!(
                matches!(repeated_movement(recorded(), &other), MovementOutcome::ReferenceConflict(_)),
                "{other:?}"
            );
        }
    }
}
