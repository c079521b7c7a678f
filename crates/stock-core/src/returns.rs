//! After the sale: what may still come back of a paid reservation, what a return or a cancellation does to stock
//! (a restock per line, or nothing for damaged units), and what Stripe's money events (refunds, disputes) allow.
//! Money and stock are separate facts: a refund or a dispute never restocks by itself; it only stops a payment
//! that arrives after it from taking units.

use crate::ErrorCode;
use crate::cart::MAX_CART_LINES;
use crate::quantity::{Quantity, QuantityError};
use std::fmt;

/// Why units of a paid reservation come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnReason {
    /// Cancelled before it was shipped: the units never left, they go back on sale.
    Cancelled,
    /// Sent back by the customer in a state to sell again.
    Returned,
    /// Sent back damaged: recorded as returned, but not put back on sale.
    Damaged,
}

impl ReturnReason {
    /// The reason as stored and sent over the wire: `cancelled`, `returned`, `damaged`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReturnReason::Cancelled => "cancelled",
            ReturnReason::Returned => "returned",
            ReturnReason::Damaged => "damaged",
        }
    }

    pub fn parse(text: &str) -> Result<Self, ReturnError> {
        match text {
            "cancelled" => Ok(ReturnReason::Cancelled),
            "returned" => Ok(ReturnReason::Returned),
            "damaged" => Ok(ReturnReason::Damaged),
            other => Err(ReturnError::UnknownReason { reason: other.chars().take(40).collect() }),
        }
    }

    /// Whether the units go back on sale (a `return` movement): all but damaged ones.
    pub fn restocks(self) -> bool {
        !matches!(self, ReturnReason::Damaged)
    }
}

impl fmt::Display for ReturnReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A size a reservation sold, and how much of it earlier returns took back already (damaged units included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoldSize {
    pub product: String,
    pub size: String,
    pub sold: Quantity,
    pub returned: Quantity,
}

impl SoldSize {
    /// Units of this size that may still come back.
    pub fn returnable(&self) -> Quantity {
        self.sold.checked_sub(self.returned).unwrap_or(Quantity::ZERO)
    }
}

/// A line of a return as the caller sent it, before it is checked: the quantity is the raw number.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnLine {
    pub product: String,
    pub size: String,
    pub quantity: f64,
    pub reason: ReturnReason,
}

/// A checked line of a return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReturnLine {
    pub product: String,
    pub size: String,
    pub quantity: Quantity,
    pub reason: ReturnReason,
}

impl PlannedReturnLine {
    /// Units put back on sale by this line (a `return` movement), none for damaged units.
    pub fn restocked(&self) -> Quantity {
        if self.reason.restocks() { self.quantity } else { Quantity::ZERO }
    }
}

/// Why a return is refused. Every problem of a return is reported at once; nothing of a refused return is recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReturnError {
    #[error("a return needs at least one line")]
    EmptyReturn,
    #[error("a return has {count} lines; at most {MAX_CART_LINES} are accepted")]
    TooManyLines { count: usize },
    #[error("line {line}: {source}")]
    InvalidQuantity {
        line: usize,
        #[source]
        source: QuantityError,
    },
    #[error("line {line}: a return line needs at least one unit")]
    ZeroQuantity { line: usize },
    #[error("line {line}: product {product} size {size} was not sold by this reservation")]
    NotSold { line: usize, product: String, size: String },
    #[error(
        "product {product} size {size}: {requested} unit(s) asked back, but only {returnable} of the {sold} sold may still come back"
    )]
    ExceedsReturnable { product: String, size: String, requested: u64, returnable: Quantity, sold: Quantity },
    #[error("reason {reason:?} is not cancelled, returned or damaged")]
    UnknownReason { reason: String },
}

impl ErrorCode for ReturnError {
    fn code(&self) -> &'static str {
        match self {
            ReturnError::EmptyReturn => "empty_return",
            ReturnError::TooManyLines { .. } => "too_many_lines",
            ReturnError::InvalidQuantity { .. } | ReturnError::ZeroQuantity { .. } => "invalid_quantity",
            ReturnError::NotSold { .. } => "not_sold",
            ReturnError::ExceedsReturnable { .. } => "exceeds_returnable",
            ReturnError::UnknownReason { .. } => "invalid_reason",
        }
    }
}

/// Checks a return against what the reservation sold and earlier returns took back: every line names a size it
/// sold, with a whole number of units; the lines of one size, whatever their reasons, never bring back more than
/// may still come back (so no series of returns brings back more than was sold). Every problem is reported.
pub fn plan_return(sold: &[SoldSize], lines: &[ReturnLine]) -> Result<Vec<PlannedReturnLine>, Vec<ReturnError>> {
    if lines.is_empty() {
        return Err(vec![ReturnError::EmptyReturn]);
    }
    if lines.len() > MAX_CART_LINES {
        return Err(vec![ReturnError::TooManyLines { count: lines.len() }]);
    }
    let mut errors = Vec::new();
    let mut planned = Vec::with_capacity(lines.len());
    // Units asked back per sold size (in `sold`'s order), summed across lines and reasons.
    let mut asked = vec![0_u64; sold.len()];
    for (line, asked_line) in lines.iter().enumerate() {
        let quantity = match Quantity::from_number(asked_line.quantity) {
            Ok(quantity) if quantity.is_zero() => {
                errors.push(ReturnError::ZeroQuantity { line });
                continue;
            }
            Ok(quantity) => quantity,
            Err(source) => {
                errors.push(ReturnError::InvalidQuantity { line, source });
                continue;
            }
        };
        let Some(known) =
            sold.iter().position(|size| size.product == asked_line.product && size.size == asked_line.size)
        else {
            errors.push(ReturnError::NotSold {
                line,
                product: asked_line.product.clone(),
                size: asked_line.size.clone(),
            });
            continue;
        };
        asked[known] += u64::from(quantity.get());
        planned.push(PlannedReturnLine {
            product: asked_line.product.clone(),
            size: asked_line.size.clone(),
            quantity,
            reason: asked_line.reason,
        });
    }
    for (sold_size, requested) in sold.iter().zip(asked) {
        let returnable = sold_size.returnable();
        if requested > u64::from(returnable.get()) {
            errors.push(ReturnError::ExceedsReturnable {
                product: sold_size.product.clone(),
                size: sold_size.size.clone(),
                requested,
                returnable,
                sold: sold_size.sold,
            });
        }
    }
    if errors.is_empty() { Ok(planned) } else { Err(errors) }
}

/// Where a payment's dispute stands, as Stripe's `charge.dispute.*` events tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisputeState {
    /// Opened and not yet decided (Stripe's `warning_*`, `needs_response`, `under_review`).
    Open,
    /// Decided for the shop: the money stays.
    Won,
    /// Decided for the customer: the money went back.
    Lost,
}

impl DisputeState {
    /// The state as stored and sent over the wire: `open`, `won`, `lost`.
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeState::Open => "open",
            DisputeState::Won => "won",
            DisputeState::Lost => "lost",
        }
    }

    /// A state as [`DisputeState::as_str`] writes it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "open" => Some(DisputeState::Open),
            "won" => Some(DisputeState::Won),
            "lost" => Some(DisputeState::Lost),
            _ => None,
        }
    }

    /// A dispute's state from Stripe's dispute `status`; `None` for a status Stripe may add later, which then
    /// counts as still open.
    pub fn from_stripe_status(status: &str) -> Option<Self> {
        match status {
            // An inquiry closed without becoming a dispute, or a dispute the card network prevented: the money
            // stays, as when a dispute is won.
            "won" | "warning_closed" | "prevented" => Some(DisputeState::Won),
            "lost" => Some(DisputeState::Lost),
            "warning_needs_response" | "warning_under_review" | "needs_response" | "under_review" => {
                Some(DisputeState::Open)
            }
            _ => None,
        }
    }
}

/// What happened to a payment's money after it was taken, in the currency's smallest unit (cents).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaymentMoney {
    /// The amount charged; 0 while unknown (no money event yet).
    pub amount: u64,
    /// The amount refunded so far (Stripe's `amount_refunded`, which only grows).
    pub refunded: u64,
    pub dispute: Option<DisputeState>,
}

impl PaymentMoney {
    /// Whether everything charged has been refunded.
    pub fn is_fully_refunded(&self) -> bool {
        self.amount > 0 && self.refunded >= self.amount
    }

    /// Whether a payment success arriving now may still take units (the late-payment rule: reserve again and sell).
    /// Not once the payment was fully refunded or disputed: the merchant has, or may lose, the money back, and
    /// taking stock again for it would sell units nobody paid for. A partial refund changes nothing.
    pub fn allows_sale(&self) -> bool {
        !self.is_fully_refunded() && self.dispute.is_none()
    }

    /// The record after a refund event: Stripe's cumulative refunded amount, kept at its highest (events come out
    /// of order, and a smaller figure is an older one).
    pub fn with_refunded(self, amount: u64, refunded: u64) -> Self {
        PaymentMoney { amount: self.amount.max(amount), refunded: self.refunded.max(refunded), dispute: self.dispute }
    }

    /// The record after a dispute event. A decided dispute stays decided: an older `open` never reopens it.
    pub fn with_dispute(self, state: DisputeState) -> Self {
        let dispute = match (self.dispute, state) {
            (Some(decided @ (DisputeState::Won | DisputeState::Lost)), DisputeState::Open) => decided,
            _ => state,
        };
        PaymentMoney { dispute: Some(dispute), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sold(product: &str, size: &str, sold: u32, returned: u32) -> SoldSize {
        SoldSize {
            product: product.into(),
            size: size.into(),
            sold: Quantity::new(sold).expect("units"),
            returned: Quantity::new(returned).expect("units"),
        }
    }

    fn line(size: &str, quantity: f64, reason: ReturnReason) -> ReturnLine {
        ReturnLine { product: "runner".into(), size: size.into(), quantity, reason }
    }

    #[test]
    fn a_return_restocks_returned_and_cancelled_units_and_records_damaged_ones_without_restock() {
        let order = [sold("runner", "42", 3, 0), sold("runner", "43", 1, 0)];
        let planned = plan_return(
            &order,
            &[
                line("42", 1.0, ReturnReason::Returned),
                line("42", 1.0, ReturnReason::Damaged),
                line("43", 1.0, ReturnReason::Cancelled),
            ],
        )
        .expect("within what was sold");
        let restocked: Vec<u32> = planned.iter().map(|line| line.restocked().get()).collect();
        assert_eq!(restocked, [1, 0, 1]);
    }

    #[test]
    fn never_more_back_than_was_sold_across_lines_and_earlier_returns() {
        let order = [sold("runner", "42", 3, 2)];
        let errors =
            plan_return(&order, &[line("42", 1.0, ReturnReason::Returned), line("42", 1.0, ReturnReason::Damaged)])
                .expect_err("two asked, one left");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code(), "exceeds_returnable");
        assert!(errors[0].to_string().contains("only 1 of the 3 sold"), "{}", errors[0]);
        assert!(plan_return(&order, &[line("42", 1.0, ReturnReason::Returned)]).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let order = [sold("runner", "42", 1, 0)];
        let errors = plan_return(
            &order,
            &[
                line("44", 1.0, ReturnReason::Returned),
                line("42", 0.0, ReturnReason::Returned),
                line("42", 1.5, ReturnReason::Returned),
            ],
        )
        .expect_err("three bad lines");
        let codes: Vec<&str> = errors.iter().map(ErrorCode::code).collect();
        assert_eq!(codes, ["not_sold", "invalid_quantity", "invalid_quantity"]);
        assert_eq!(plan_return(&order, &[]).expect_err("empty")[0].code(), "empty_return");
        assert_eq!(ReturnReason::parse("lost in the post").expect_err("unknown").code(), "invalid_reason");
    }

    #[test]
    fn a_fully_refunded_or_disputed_payment_takes_no_stock_and_a_partial_refund_changes_nothing() {
        let paid = PaymentMoney::default();
        assert!(paid.allows_sale());
        assert!(paid.with_refunded(4990, 1000).allows_sale(), "a partial refund");
        assert!(!paid.with_refunded(4990, 4990).allows_sale(), "a full refund");
        assert!(!paid.with_dispute(DisputeState::Open).allows_sale());
        assert!(!paid.with_dispute(DisputeState::Won).allows_sale(), "a disputed payment stays out of the late rule");
        // Out of order: an older, smaller refund or an older open dispute never undoes a newer fact.
        let refunded = paid.with_refunded(4990, 4990).with_refunded(4990, 1000);
        assert_eq!(refunded.refunded, 4990);
        assert_eq!(
            paid.with_dispute(DisputeState::Lost).with_dispute(DisputeState::Open).dispute,
            Some(DisputeState::Lost)
        );
        assert_eq!(DisputeState::from_stripe_status("needs_response"), Some(DisputeState::Open));
        assert_eq!(DisputeState::from_stripe_status("lost"), Some(DisputeState::Lost));
        assert_eq!(DisputeState::from_stripe_status("warning_closed"), Some(DisputeState::Won), "the money stayed");
    }

    proptest! {
        /// Whatever series of returns is asked, the units that come back (restocked or damaged) never exceed what
        /// was sold, and every accepted return fits what was still returnable.
        #[test]
        fn returns_never_bring_back_more_than_was_sold(sold_units in 0u32..20, asks in proptest::collection::vec((0u32..8, 0u8..3), 0..12)) {
            let mut returned = 0u32;
            for (quantity, reason) in asks {
                let reason = [ReturnReason::Cancelled, ReturnReason::Returned, ReturnReason::Damaged][usize::from(reason)];
                let order = [sold("runner", "42", sold_units, returned)];
                if let Ok(planned) = plan_return(&order, &[line("42", f64::from(quantity), reason)]) {
                    returned += planned.iter().map(|line| line.quantity.get()).sum::<u32>();
                }
                prop_assert!(returned <= sold_units);
            }
        }
    }
}
