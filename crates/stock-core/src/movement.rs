//! Stock movements, the ledger of every change to units on hand: sales, restocks, returns and adjustments,
//! each with the stock before and after, so the ledger alone can rebuild a size's stock.

use crate::ErrorCode;
use crate::quantity::{MAX_UNITS, Quantity, QuantityError};
use crate::stock_level::{StockLevel, StockLevelError};
use crate::time::Timestamp;
use std::fmt;

/// What kind of change a movement is; each kind has a sign rule for its quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MovementType {
    /// Units leave with a customer: quantity negative.
    Sale,
    /// Units arrive from a supplier: quantity positive.
    Restock,
    /// Units come back from a customer: quantity positive.
    Return,
    /// A correction after a count, damage or loss: quantity of either sign, never zero.
    Adjustment,
}

impl MovementType {
    /// The type as stored and sent over the wire: `sale`, `restock`, `return`, `adjustment`.
    pub fn as_str(self) -> &'static str {
        match self {
            MovementType::Sale => "sale",
            MovementType::Restock => "restock",
            MovementType::Return => "return",
            MovementType::Adjustment => "adjustment",
        }
    }

    /// The type written as [`Self::as_str`] writes it.
    pub fn parse(text: &str) -> Result<Self, MovementError> {
        match text {
            "sale" => Ok(MovementType::Sale),
            "restock" => Ok(MovementType::Restock),
            "return" => Ok(MovementType::Return),
            "adjustment" => Ok(MovementType::Adjustment),
            _ => Err(MovementError::UnknownType { text: text.chars().take(32).collect() }),
        }
    }

    fn allows(self, quantity: SignedQuantity) -> bool {
        match self {
            MovementType::Sale => quantity.0 < 0,
            MovementType::Restock | MovementType::Return => quantity.0 > 0,
            MovementType::Adjustment => true,
        }
    }

    fn sign_rule(self) -> &'static str {
        match self {
            MovementType::Sale => "a sale takes units away: its quantity must be negative",
            MovementType::Restock => "a restock adds units: its quantity must be positive",
            MovementType::Return => "a return adds units: its quantity must be positive",
            MovementType::Adjustment => "an adjustment may add or remove units",
        }
    }
}

impl fmt::Display for MovementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change in units on hand: a whole number, not zero, at most [`MAX_UNITS`] either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedQuantity(i64);

impl SignedQuantity {
    /// A change of `units` (negative: units leave).
    pub fn new(units: i64) -> Result<Self, MovementError> {
        if units == 0 {
            return Err(MovementError::ZeroQuantity);
        }
        if units.unsigned_abs() > u64::from(MAX_UNITS) {
            // Exact enough for a message: the value is refused either way.
            return Err(MovementError::InvalidQuantity { source: QuantityError::TooLarge { value: units as f64 } });
        }
        Ok(SignedQuantity(units))
    }

    /// A change from a number as JSON and JavaScript carry it.
    pub fn from_number(value: f64) -> Result<Self, MovementError> {
        let magnitude = Quantity::from_number(value.abs())
            .map_err(|source| MovementError::InvalidQuantity { source: with_sign(source, value) })?;
        let units = i64::from(magnitude.get());
        SignedQuantity::new(if value < 0.0 { -units } else { units })
    }

    /// The change in units.
    pub fn get(self) -> i64 {
        self.0
    }
}

/// Quantity errors quote the value as it was given, sign included.
fn with_sign(error: QuantityError, value: f64) -> QuantityError {
    match error {
        QuantityError::NotFinite { .. } => QuantityError::NotFinite { value },
        QuantityError::Negative { .. } => QuantityError::Negative { value },
        QuantityError::Fractional { .. } => QuantityError::Fractional { value },
        QuantityError::TooLarge { .. } => QuantityError::TooLarge { value },
    }
}

impl fmt::Display for SignedQuantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who and what a movement is about: free text for people, references for machines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementDetails {
    /// Why the stock changed, for people reading the ledger ("Order ORD-2024-001", "Inventory count").
    pub reason: String,
    /// What caused it, such as a PaymentIntent or reservation id.
    pub reference: Option<String>,
    /// The shop's order number, when there is one.
    pub order_reference: Option<String>,
    /// When the change happened.
    pub date: Timestamp,
}

/// One line of the stock ledger, as the seed's StockMovement collection stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockMovement {
    pub kind: MovementType,
    /// Signed: negative for units leaving.
    pub quantity: SignedQuantity,
    pub stock_before: Quantity,
    pub stock_after: Quantity,
    pub details: MovementDetails,
}

/// A movement together with the size's stock level after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMovement {
    pub movement: StockMovement,
    pub level: StockLevel,
}

/// Applies a movement of `kind` and `quantity` to a size: checks the sign rule of the kind, and refuses to take
/// units on hand below zero or below what active reservations hold (those units are promised). A sale made
/// here sells unreserved units; a sale of reserved units is [`commit_reserved_sale`].
pub fn apply_movement(
    level: &StockLevel,
    kind: MovementType,
    quantity: SignedQuantity,
    details: MovementDetails,
) -> Result<AppliedMovement, MovementError> {
    if !kind.allows(quantity) {
        return Err(MovementError::WrongSign { kind, quantity });
    }
    let before = level.stock();
    let after = i64::from(before) + quantity.get();
    if after < 0 {
        return Err(MovementError::InsufficientStock { stock: before, requested: quantity.get().unsigned_abs() });
    }
    let after = u32::try_from(after)
        .ok()
        .and_then(|after| Quantity::new(after).ok())
        .ok_or(MovementError::StockAboveMaximum { stock_after: after })?;
    if after < level.reserved() {
        return Err(MovementError::BelowReserved { stock_after: after, reserved: level.reserved() });
    }
    let next = level.with_stock(after).map_err(MovementError::Level)?;
    Ok(AppliedMovement {
        movement: StockMovement { kind, quantity, stock_before: before, stock_after: after, details },
        level: next,
    })
}

/// Sells `quantity` units that a reservation held: units on hand and reserved units go down together, and the
/// movement is a `sale` of `-quantity`. Refused when fewer units are reserved, or for zero units.
pub fn commit_reserved_sale(
    level: &StockLevel,
    quantity: Quantity,
    details: MovementDetails,
) -> Result<AppliedMovement, MovementError> {
    let signed = SignedQuantity::new(-i64::from(quantity))?;
    let next = level.commit_reserved(quantity).map_err(MovementError::Level)?;
    Ok(AppliedMovement {
        movement: StockMovement {
            kind: MovementType::Sale,
            quantity: signed,
            stock_before: level.stock(),
            stock_after: next.stock(),
            details,
        },
        level: next,
    })
}

/// Replays a size's whole ledger from zero units and returns the stock it arrives at, checking that each
/// movement starts where the previous one ended and that its figures add up.
pub fn replay_movements(movements: &[StockMovement]) -> Result<Quantity, MovementError> {
    let mut stock = Quantity::ZERO;
    for (index, movement) in movements.iter().enumerate() {
        let adds_up = i64::from(movement.stock_before) + movement.quantity.get() == i64::from(movement.stock_after);
        if movement.stock_before != stock || !adds_up {
            return Err(MovementError::BrokenLedger { index, expected_stock_before: stock });
        }
        stock = movement.stock_after;
    }
    Ok(stock)
}

/// What can go wrong with a stock movement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MovementError {
    #[error("{text:?} is not a movement type (sale, restock, return, adjustment)")]
    UnknownType { text: String },
    #[error("quantity: {source}")]
    InvalidQuantity { source: QuantityError },
    #[error("quantity: a movement must change stock by at least 1 unit")]
    ZeroQuantity,
    #[error("quantity {quantity} does not fit a {kind}: {}", kind.sign_rule())]
    WrongSign { kind: MovementType, quantity: SignedQuantity },
    #[error("insufficient stock: cannot remove {requested} units, only {stock} on hand")]
    InsufficientStock { stock: Quantity, requested: u64 },
    #[error("stock would fall to {stock_after}, below the {reserved} units held by active reservations")]
    BelowReserved { stock_after: Quantity, reserved: Quantity },
    #[error("stock would rise to {stock_after}, above the maximum of {MAX_UNITS} units")]
    StockAboveMaximum { stock_after: i64 },
    #[error("movement {index} does not follow the ledger: expected stock before of {expected_stock_before}")]
    BrokenLedger { index: usize, expected_stock_before: Quantity },
    #[error(transparent)]
    Level(StockLevelError),
}

impl ErrorCode for MovementError {
    fn code(&self) -> &'static str {
        match self {
            MovementError::UnknownType { .. } => "invalid_movement_type",
            MovementError::InvalidQuantity { .. } | MovementError::ZeroQuantity => "invalid_quantity",
            MovementError::StockAboveMaximum { .. } => "invalid_quantity",
            MovementError::WrongSign { .. } => "invalid_movement_sign",
            MovementError::InsufficientStock { .. } => "insufficient_stock",
            MovementError::BelowReserved { .. } => "stock_below_reserved",
            MovementError::BrokenLedger { .. } => "inconsistent_ledger",
            MovementError::Level(error) => error.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn level(stock: u32, reserved: u32) -> StockLevel {
        StockLevel::from_numbers(f64::from(stock), f64::from(reserved), 2.0).expect("consistent")
    }

    fn details() -> MovementDetails {
        MovementDetails {
            reason: "test".into(),
            reference: Some("pi_3Test".into()),
            order_reference: None,
            date: Timestamp::from_unix_millis(0).expect("epoch"),
        }
    }

    fn change(units: i64) -> SignedQuantity {
        SignedQuantity::new(units).expect("non-zero test quantity")
    }

    fn apply(level: &StockLevel, kind: MovementType, units: i64) -> Result<AppliedMovement, MovementError> {
        apply_movement(level, kind, change(units), details())
    }

    #[test]
    fn a_restock_adds_units_and_records_the_stock_before_and_after() {
        let applied = apply(&level(5, 1), MovementType::Restock, 10).expect("restock");
        assert_eq!((applied.movement.stock_before.get(), applied.movement.stock_after.get()), (5, 15));
        assert_eq!(applied.level.stock().get(), 15);
        assert_eq!(applied.level.reserved().get(), 1);
    }

    #[test]
    fn each_type_checks_the_sign_of_its_quantity() {
        let error = apply(&level(5, 0), MovementType::Sale, 1).expect_err("sale must be negative");
        assert_eq!(error.code(), "invalid_movement_sign");
        assert_eq!(
            error.to_string(),
            "quantity 1 does not fit a sale: a sale takes units away: its quantity must be negative"
        );
        assert_eq!(apply(&level(5, 0), MovementType::Restock, -1).map_err(|e| e.code()), Err("invalid_movement_sign"));
        assert_eq!(apply(&level(5, 0), MovementType::Return, -1).map_err(|e| e.code()), Err("invalid_movement_sign"));
        assert!(apply(&level(5, 0), MovementType::Adjustment, -1).is_ok());
        assert!(apply(&level(5, 0), MovementType::Adjustment, 1).is_ok());
    }

    #[test]
    fn a_movement_cannot_take_stock_below_zero() {
        let error = apply(&level(2, 0), MovementType::Adjustment, -3).expect_err("only 2");
        assert_eq!(error.code(), "insufficient_stock");
        assert_eq!(error.to_string(), "insufficient stock: cannot remove 3 units, only 2 on hand");
    }

    #[test]
    fn a_movement_cannot_take_stock_below_what_is_reserved() {
        let error = apply(&level(5, 4), MovementType::Sale, -2).expect_err("4 of 5 reserved");
        assert_eq!(error.code(), "stock_below_reserved");
        assert!(apply(&level(5, 4), MovementType::Sale, -1).is_ok());
    }

    #[test]
    fn a_reserved_sale_lowers_stock_and_reserved_together() {
        let units = Quantity::new(3).expect("valid");
        let applied = commit_reserved_sale(&level(5, 4), units, details()).expect("3 of 4 reserved");
        assert_eq!(applied.movement.kind, MovementType::Sale);
        assert_eq!(applied.movement.quantity.get(), -3);
        assert_eq!((applied.level.stock().get(), applied.level.reserved().get()), (2, 1));
        let error = commit_reserved_sale(&level(5, 1), units, details()).expect_err("1 reserved");
        assert_eq!(error.code(), "commit_exceeds_reserved");
    }

    #[test]
    fn zero_fractional_and_huge_movement_quantities_are_refused() {
        assert_eq!(SignedQuantity::from_number(0.0), Err(MovementError::ZeroQuantity));
        assert_eq!(
            SignedQuantity::from_number(-1.5).map_err(|e| e.to_string()),
            Err("quantity: -1.5 is not a whole number of units".into())
        );
        assert_eq!(SignedQuantity::from_number(-2e9).map_err(|e| e.code()), Err("invalid_quantity"));
        assert_eq!(SignedQuantity::from_number(f64::NAN).map_err(|e| e.code()), Err("invalid_quantity"));
        assert_eq!(SignedQuantity::from_number(-7.0).map(SignedQuantity::get), Ok(-7));
    }

    #[test]
    fn a_restock_above_the_maximum_is_refused() {
        let full = StockLevel::from_numbers(f64::from(MAX_UNITS), 0.0, 0.0).expect("consistent");
        assert_eq!(apply(&full, MovementType::Restock, 1).map_err(|e| e.code()), Err("invalid_quantity"));
    }

    #[test]
    fn types_round_trip_through_their_text_and_unknown_ones_are_refused() {
        for kind in [MovementType::Sale, MovementType::Restock, MovementType::Return, MovementType::Adjustment] {
            assert_eq!(MovementType::parse(kind.as_str()), Ok(kind));
        }
        assert_eq!(MovementType::parse("theft").map_err(|e| e.code()), Err("invalid_movement_type"));
    }

    #[test]
    fn a_ledger_with_a_gap_is_reported() {
        let first = apply(&level(0, 0), MovementType::Restock, 5).expect("restock").movement;
        let gap = apply(&level(7, 0), MovementType::Adjustment, -1).expect("adjust").movement;
        let error = replay_movements(&[first, gap]).expect_err("starts at 7, not 5");
        assert_eq!(
            error,
            MovementError::BrokenLedger { index: 1, expected_stock_before: Quantity::new(5).expect("5") }
        );
        assert_eq!(error.code(), "inconsistent_ledger");
    }

    #[derive(Debug, Clone)]
    enum Operation {
        Restock(i64),
        Return(i64),
        Adjust(i64),
        Sell(i64),
        Reserve(u32),
        Release(u32),
        CommitReserved(u32),
    }

    fn operation() -> impl Strategy<Value = Operation> {
        prop_oneof![
            (1_i64..30).prop_map(Operation::Restock),
            (1_i64..5).prop_map(Operation::Return),
            (-20_i64..20).prop_filter("non-zero", |q| *q != 0).prop_map(Operation::Adjust),
            (1_i64..10).prop_map(Operation::Sell),
            (0_u32..10).prop_map(Operation::Reserve),
            (0_u32..10).prop_map(Operation::Release),
            (1_u32..10).prop_map(Operation::CommitReserved),
        ]
    }

    proptest! {
        #[test]
        fn movements_replayed_from_zero_reproduce_the_stock(operations in proptest::collection::vec(operation(), 0..80)) {
            let mut current = level(0, 0);
            let mut ledger = Vec::new();
            for operation in operations {
                let units = |n: u32| Quantity::new(n).expect("small");
                let applied = match operation {
                    Operation::Restock(n) => apply(&current, MovementType::Restock, n),
                    Operation::Return(n) => apply(&current, MovementType::Return, n),
                    Operation::Adjust(n) => apply(&current, MovementType::Adjustment, n),
                    Operation::Sell(n) => apply(&current, MovementType::Sale, -n),
                    Operation::CommitReserved(n) => commit_reserved_sale(&current, units(n), details()),
                    Operation::Reserve(n) => {
                        current = current.reserve(units(n)).unwrap_or(current);
                        continue;
                    }
                    Operation::Release(n) => {
                        current = current.release(units(n)).unwrap_or(current);
                        continue;
                    }
                };
                if let Ok(applied) = applied {
                    prop_assert!(applied.level.reserved() <= applied.level.stock());
                    current = applied.level;
                    ledger.push(applied.movement);
                }
            }
            prop_assert_eq!(replay_movements(&ledger), Ok(current.stock()));
        }
    }
}
