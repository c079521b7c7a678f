//! What both stores share: stored columns turned into stock-core values (a bad value is an inconsistent ledger,
//! never a panic), the SQL form of stock-core's holding rule, and the names of outbox lanes and idempotency keys.

use std::collections::BTreeMap;

use stock_core::{
    CartLine, DisputeState, MovementDetails, MovementType, PaymentMoney, PlannedReturnLine, Quantity, Reservation,
    ReservationStatus, ReturnReason, SignedQuantity, StockLevel, StockMovement, StockState, Timestamp,
};

use super::{
    AlertStatus, ConflictRecord, LedgerSize, Monitoring, MovementRecord, MovementTotal, OutboxEntry, OutboxStatus,
    OutboxTopic, PaymentCounts, PaymentRecord, ReservationRecord, ReservationSummary, ReservedItem, ReturnRecord,
    SizeRecord, StockAlert, StoreError, WriterCounts,
};

/// Until when a reservation in `status`, expiring at `expires_at`, holds its units: what
/// `Reservation::holds_units` says, as a column the availability query can compare with now.
pub(crate) fn holds_until(status: ReservationStatus, expires_at: Timestamp) -> i64 {
    match status {
        ReservationStatus::Active => expires_at.unix_millis(),
        ReservationStatus::Processing => i64::MAX,
        _ => 0,
    }
}

/// The lane of a product's changes: its sizes and its movements reach Payload in the order they were made.
pub(crate) fn product_lane(product: &str) -> String {
    format!("product:{product}")
}

/// The lane of a reservation's document.
pub(crate) fn reservation_lane(reference: &str) -> String {
    format!("reservation:{reference}")
}

/// The lane of a movement whose Payload document Payload's own hook saves: a lane of its own, so that its grace
/// period holds up nothing else.
pub(crate) fn movement_lane(id: i64) -> String {
    format!("movement:{id}")
}

/// The idempotency key of a movement requested with a reference. One part after its prefix: unambiguous as it is.
pub(crate) fn movement_key(reference: &str) -> String {
    format!("movement:{reference}")
}

/// One part of an idempotency key of several parts, with `\` and `:` escaped (`\\`, `\:`), so that no two lists of
/// parts make the same key: unescaped, reference `a:b` with size `c` and reference `a` with size `b:c` collided,
/// and the second sale then failed forever. Migrations 0009 (SQLite) and 0005 (PostgreSQL) rewrote the keys
/// stored before in this form, with the same escaping in SQL.
fn key_part(part: &str) -> std::borrow::Cow<'_, str> {
    if part.contains(['\\', ':']) { part.replace('\\', "\\\\").replace(':', "\\:").into() } else { part.into() }
}

/// The idempotency key of the sale of one size of a reservation.
pub(crate) fn sale_key(reference: &str, product: &str, size: &str) -> String {
    format!("sale:{}:{}:{}", key_part(reference), key_part(product), key_part(size))
}

/// The idempotency key of the movement that imported a size from Payload.
pub(crate) fn import_key(product: &str, size: &str) -> String {
    format!("import:{}:{}", key_part(product), key_part(size))
}

pub(crate) fn quantity(value: i64, what: &str) -> Result<Quantity, StoreError> {
    u32::try_from(value)
        .ok()
        .and_then(|units| Quantity::new(units).ok())
        .ok_or_else(|| StoreError::Inconsistent(format!("{what} holds {value}, not a quantity")))
}

pub(crate) fn timestamp(value: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(value).map_err(|_| StoreError::Inconsistent(format!("{value} is not an instant")))
}

/// A reservation in a monitoring list: reference, status, created_at, expires_at, units held.
pub(crate) type SummaryColumns = (String, String, i64, i64, i64);

pub(crate) fn summaries_from_rows(rows: Vec<SummaryColumns>) -> Result<Vec<ReservationSummary>, StoreError> {
    rows.into_iter()
        .map(|(reference, state, created_at, expires_at, units)| {
            Ok(ReservationSummary {
                reference,
                status: status(&state)?,
                created_at: timestamp(created_at)?,
                expires_at: timestamp(expires_at)?,
                units: u64::try_from(units).map_err(|_| StoreError::Inconsistent("negative units held".into()))?,
            })
        })
        .collect()
}

/// One product's movements of one type: product, type, count, sum of quantities.
pub(crate) type TotalColumns = (String, String, i64, i64);

pub(crate) fn totals_from_rows(rows: Vec<TotalColumns>) -> Result<Vec<MovementTotal>, StoreError> {
    rows.into_iter()
        .map(|(product, kind, movements, units)| {
            Ok(MovementTotal {
                product,
                kind: MovementType::parse(&kind).map_err(|error| StoreError::Inconsistent(error.to_string()))?,
                movements: u64::try_from(movements).map_err(|_| StoreError::Inconsistent("negative count".into()))?,
                units,
            })
        })
        .collect()
}

/// A size with its product and last alerted state: product, size, stock, threshold, reserved, alert_state.
pub(crate) type LedgerSizeColumns = (String, String, i64, i64, i64, String);

pub(crate) fn ledger_sizes_from_rows(rows: Vec<LedgerSizeColumns>) -> Result<Vec<LedgerSize>, StoreError> {
    rows.into_iter()
        .map(|(product, size, stock, threshold, reserved, alerted)| {
            Ok(LedgerSize {
                product,
                size: SizeRecord { size, level: level(stock, reserved, threshold)? },
                alerted_state: stock_state(&alerted)?,
            })
        })
        .collect()
}

fn stock_state(text: &str) -> Result<StockState, StoreError> {
    StockState::parse(text).ok_or_else(|| StoreError::Inconsistent(format!("unknown stock state {text:?}")))
}

/// The columns of a stock alert: id, product, size, previous_state, stock, reserved, low_stock_threshold,
/// created_at, attempts.
pub(crate) type AlertColumns = (i64, String, String, String, i64, i64, i64, i64, i64);

/// Alerts from their rows, oldest first.
pub(crate) fn alerts_from_rows(mut rows: Vec<AlertColumns>) -> Result<Vec<StockAlert>, StoreError> {
    rows.sort_by_key(|row| row.0);
    rows.into_iter()
        .map(|(id, product, size, previous, stock, reserved, threshold, created_at, attempts)| {
            Ok(StockAlert {
                id,
                product,
                size,
                previous: stock_state(&previous)?,
                level: level(stock, reserved, threshold)?,
                created_at: timestamp(created_at)?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

/// A size's columns with its product: product, size, stock, low-stock threshold, reserved units.
pub(crate) type SizeColumns = (String, String, i64, i64, i64);

/// Sizes with their products, from [`SizeColumns`] rows.
pub(crate) fn sizes_from_rows(rows: Vec<SizeColumns>) -> Result<Vec<(String, SizeRecord)>, StoreError> {
    rows.into_iter()
        .map(|(product, size, stock, threshold, reserved)| {
            Ok((product, SizeRecord { size, level: level(stock, reserved, threshold)? }))
        })
        .collect()
}

pub(crate) fn level(stock: i64, reserved: i64, threshold: i64) -> Result<StockLevel, StoreError> {
    StockLevel::new(quantity(stock, "stock")?, quantity(reserved, "reserved units")?, quantity(threshold, "threshold")?)
        .map_err(|error| StoreError::Inconsistent(error.to_string()))
}

pub(crate) fn status(text: &str) -> Result<ReservationStatus, StoreError> {
    ReservationStatus::parse(text).map_err(|error| StoreError::Inconsistent(error.to_string()))
}

/// Whether a new request for an existing reference asks for exactly the same units (lines summed per size).
pub(crate) fn same_items(existing: &[ReservedItem], lines: &[CartLine]) -> bool {
    let mut requested: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    for line in lines {
        *requested.entry((line.product.as_str(), line.size.as_str())).or_default() += line.quantity;
    }
    let reserved: BTreeMap<(&str, &str), f64> =
        existing.iter().map(|item| ((item.product.as_str(), item.size.as_str()), f64::from(item.quantity))).collect();
    requested == reserved
}

/// The stock-core lifecycle of a stored reservation, which decides every change of status.
pub(crate) fn lifecycle_of(record: &ReservationRecord) -> Result<Reservation, StoreError> {
    Reservation::restore(record.created_at, record.expires_at, record.status)
        .map_err(|error| StoreError::Inconsistent(error.to_string()))
}

/// A movement row's columns, in [`movement_columns!`]' order.
pub(crate) type MovementColumns =
    (i64, String, String, String, i64, i64, i64, String, Option<String>, Option<String>, i64);

pub(crate) fn movement_from_columns(columns: MovementColumns) -> Result<MovementRecord, StoreError> {
    let (id, product, size, kind, units, before, after, reason, reference, order_reference, date) = columns;
    let inconsistent = |error: stock_core::MovementError| StoreError::Inconsistent(error.to_string());
    Ok(MovementRecord {
        id,
        product,
        size,
        movement: StockMovement {
            kind: MovementType::parse(&kind).map_err(inconsistent)?,
            quantity: SignedQuantity::new(units).map_err(inconsistent)?,
            stock_before: quantity(before, "stock before")?,
            stock_after: quantity(after, "stock after")?,
            details: MovementDetails { reason, reference, order_reference, date: timestamp(date)? },
        },
    })
}

/// The rows of a reservation joined with its items (status, created_at, expires_at, product, size, quantity),
/// in item order, as one record; `None` without rows.
pub(crate) fn reservation_from_rows(
    reference: &str,
    rows: impl IntoIterator<Item = (String, i64, i64, String, String, i64)>,
) -> Result<Option<ReservationRecord>, StoreError> {
    let mut record: Option<ReservationRecord> = None;
    for (status_text, created_at, expires_at, product, size, units) in rows {
        let item = ReservedItem { product, size, quantity: quantity(units, "a reservation item")? };
        match &mut record {
            Some(record) => record.items.push(item),
            None => {
                record = Some(ReservationRecord {
                    reference: reference.to_owned(),
                    status: status(&status_text)?,
                    created_at: timestamp(created_at)?,
                    expires_at: timestamp(expires_at)?,
                    items: vec![item],
                });
            }
        }
    }
    Ok(record)
}

/// The idempotency key of the `return` movement of line `line` of a reservation's return.
pub(crate) fn return_key(reference: &str, return_id: &str, line: usize) -> String {
    format!("return:{}:{}:{line}", key_part(reference), key_part(return_id))
}

/// A return line's columns: return_id, line, product, size, quantity, reason, created_at.
pub(crate) type ReturnLineColumns = (String, i64, String, String, i64, String, i64);

/// The returns of `reference` from its lines' rows, ordered by return id and line.
pub(crate) fn returns_from_rows(
    reference: &str,
    rows: Vec<ReturnLineColumns>,
) -> Result<Vec<ReturnRecord>, StoreError> {
    let mut returns: Vec<ReturnRecord> = Vec::new();
    for (return_id, _, product, size, units, reason, created_at) in rows {
        let reason = ReturnReason::parse(&reason).map_err(|error| StoreError::Inconsistent(error.to_string()))?;
        let line = PlannedReturnLine { product, size, quantity: quantity(units, "a return line")?, reason };
        match returns.last_mut() {
            Some(last) if last.return_id == return_id => last.lines.push(line),
            _ => returns.push(ReturnRecord {
                reference: reference.to_owned(),
                return_id,
                lines: vec![line],
                created_at: timestamp(created_at)?,
            }),
        }
    }
    Ok(returns)
}

/// A payment's columns: payment_intent, reference, amount, refunded, dispute.
pub(crate) type PaymentColumns = (String, Option<String>, i64, i64, Option<String>);

pub(crate) fn payment_from_columns(
    (payment_intent, reference, amount, refunded, dispute): PaymentColumns,
) -> Result<PaymentRecord, StoreError> {
    let cents = |value: i64, what: &str| {
        u64::try_from(value).map_err(|_| StoreError::Inconsistent(format!("payment {payment_intent}: {what} {value}")))
    };
    let dispute = match dispute.as_deref() {
        None => None,
        Some(text) => Some(DisputeState::parse(text).ok_or_else(|| {
            StoreError::Inconsistent(format!("payment {payment_intent}: unknown dispute state {text}"))
        })?),
    };
    let money = PaymentMoney { amount: cents(amount, "amount")?, refunded: cents(refunded, "refunded")?, dispute };
    Ok(PaymentRecord { payment_intent, reference, money })
}

/// A payment's columns as written: payment_intent, reference, amount, refunded, dispute (amounts beyond what a
/// BIGINT holds, which no currency reaches, are kept at its largest value).
pub(crate) fn payment_columns(record: &PaymentRecord) -> PaymentColumns {
    let cents = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    (
        record.payment_intent.clone(),
        record.reference.clone(),
        cents(record.money.amount),
        cents(record.money.refunded),
        record.money.dispute.map(|state| state.as_str().to_owned()),
    )
}

/// A conflict's columns: id, kind, reference, event_id, details, created_at, resolved_at, resolution.
pub(crate) type ConflictColumns = (i64, String, String, String, String, i64, Option<i64>, Option<String>);

pub(crate) fn conflict_from_columns(
    (id, kind, reference, event_id, details, created_at, resolved_at, resolution): ConflictColumns,
) -> Result<ConflictRecord, StoreError> {
    Ok(ConflictRecord {
        id,
        kind,
        reference,
        event_id,
        details,
        created_at: timestamp(created_at)?,
        resolved_at: resolved_at.map(timestamp).transpose()?,
        resolution,
    })
}

/// The counts of `statements::MONITORING_COUNTS`: active reservations, reserved units, expired not released, open
/// conflicts, outbox backlog, its oldest change, rows awaiting Payload's save, failing rows, the outbox's last
/// error, undelivered alerts, the alert webhook's last error.
pub(crate) type MonitoringCounts =
    (i64, i64, i64, i64, i64, Option<i64>, i64, i64, Option<String>, i64, Option<String>);

/// The monitoring report from what its reads gave.
pub(crate) fn monitoring_from_rows(
    counts: MonitoringCounts,
    oldest: Vec<SummaryColumns>,
    (ledger_writes, payments): (WriterCounts, PaymentCountColumns),
) -> Result<Monitoring, StoreError> {
    let (
        active,
        reserved,
        expired,
        conflicts,
        backlog,
        oldest_change,
        awaiting,
        failing,
        last_error,
        alerts,
        alert_error,
    ) = counts;
    let count = |value: i64, what: &str| -> Result<u64, StoreError> {
        u64::try_from(value).map_err(|_| StoreError::Inconsistent(format!("{what} is negative")))
    };
    Ok(Monitoring {
        active_reservations: count(active, "active reservations")?,
        reserved_units: count(reserved, "reserved units")?,
        oldest_active: summaries_from_rows(oldest)?,
        expired_not_released: count(expired, "expired reservations")?,
        open_conflicts: count(conflicts, "open conflicts")?,
        outbox: OutboxStatus {
            backlog: count(backlog, "outbox backlog")?,
            awaiting_payload_save: count(awaiting, "outbox rows awaiting Payload's save")?,
            oldest_change_at: oldest_change.map(timestamp).transpose()?,
            failing: count(failing, "failing outbox rows")?,
            last_error,
        },
        alerts: AlertStatus { undelivered: count(alerts, "undelivered alerts")?, last_error: alert_error },
        ledger_writes,
        payments: PaymentCounts {
            fully_refunded: count(payments.0, "fully refunded payments")?,
            partially_refunded: count(payments.1, "partially refunded payments")?,
            open_disputes: count(payments.2, "open disputes")?,
            lost_disputes: count(payments.3, "lost disputes")?,
            won_disputes: count(payments.4, "won disputes")?,
        },
    })
}

/// The counts of `statements::PAYMENT_COUNTS`.
pub(crate) type PaymentCountColumns = (i64, i64, i64, i64, i64);

/// The columns of an outbox row: id, topic, subject, lane, revision, attempts, created_at.
pub(crate) type OutboxColumns = (i64, String, String, String, i64, i64, i64);

pub(crate) fn outbox_entries_from_rows(rows: Vec<OutboxColumns>) -> Result<Vec<OutboxEntry>, StoreError> {
    rows.into_iter()
        .map(|(id, topic, subject, lane, revision, attempts, created_at)| {
            Ok(OutboxEntry {
                id,
                topic: OutboxTopic::parse(&topic)
                    .ok_or_else(|| StoreError::Inconsistent(format!("outbox topic {topic:?}")))?,
                subject,
                lane,
                revision,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                created_at: timestamp(created_at)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_parts_never_collide() {
        assert_ne!(sale_key("pi_a:b", "c", "d"), sale_key("pi_a", "b:c", "d"));
        assert_ne!(sale_key("pi_a", "b", "c:d"), sale_key("pi_a:b", "c", "d"));
        assert_ne!(import_key("a", "b:c"), import_key("a:b", "c"));
        assert_ne!(sale_key("pi\\", "x", "y"), sale_key("pi", "\\x", "y"));
        assert_eq!(sale_key("pi_a", "runner", "42"), "sale:pi_a:runner:42", "keys without : or \\ keep their old form");
        assert_eq!(sale_key("pi_a:b", "c", "d\\e"), "sale:pi_a\\:b:c:d\\\\e");
    }
}
