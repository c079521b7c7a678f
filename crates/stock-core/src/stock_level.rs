//! The stock of one size of a product: units on hand, units held by active reservations, the low-stock
//! threshold, and what follows from them (available units, the low-stock flag).

use crate::ErrorCode;
use crate::quantity::{Quantity, QuantityError};

/// The figures of one size. Reserved units never exceed units on hand: a `StockLevel` that exists is consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StockLevel {
    /// Units on hand, including the reserved ones.
    stock: Quantity,
    /// Units held by active reservations: on hand, but promised to a checkout in progress.
    reserved: Quantity,
    /// The size counts as low on stock when its available units are at or below this.
    low_stock_threshold: Quantity,
}

impl StockLevel {
    /// A stock level, refused when `reserved` exceeds `stock` (an inconsistency to report, never to clamp).
    #[inline]
    pub fn new(stock: Quantity, reserved: Quantity, low_stock_threshold: Quantity) -> Result<Self, StockLevelError> {
        if reserved > stock {
            return Err(StockLevelError::ReservedExceedsStock { stock, reserved });
        }
        Ok(StockLevel { stock, reserved, low_stock_threshold })
    }

    /// A stock level from numbers as JSON and JavaScript carry them; errors name the offending field with its
    /// JavaScript name (`stock`, `reservedStock`, `lowStockThreshold`).
    #[inline]
    pub fn from_numbers(stock: f64, reserved: f64, low_stock_threshold: f64) -> Result<Self, StockLevelError> {
        let field =
            |field: &'static str| move |source: QuantityError| StockLevelError::InvalidQuantity { field, source };
        StockLevel::new(
            Quantity::from_number(stock).map_err(field("stock"))?,
            Quantity::from_number(reserved).map_err(field("reservedStock"))?,
            Quantity::from_number(low_stock_threshold).map_err(field("lowStockThreshold"))?,
        )
    }

    /// Units on hand.
    pub fn stock(&self) -> Quantity {
        self.stock
    }

    /// Units held by active reservations.
    pub fn reserved(&self) -> Quantity {
        self.reserved
    }

    /// The low-stock threshold.
    pub fn low_stock_threshold(&self) -> Quantity {
        self.low_stock_threshold
    }

    /// Units a new reservation can take: on hand minus reserved. Never negative, by construction.
    #[inline]
    pub fn available(&self) -> Quantity {
        self.stock.checked_sub(self.reserved).unwrap_or(Quantity::ZERO)
    }

    /// Available units are at or below the threshold (so a size with nothing available is always low).
    #[inline]
    pub fn is_low(&self) -> bool {
        self.available() <= self.low_stock_threshold
    }

    /// Nothing available.
    pub fn is_out_of_stock(&self) -> bool {
        self.available().is_zero()
    }

    /// Which of the three states an operator is alerted about the size is in.
    pub fn state(&self) -> StockState {
        if self.is_out_of_stock() {
            StockState::OutOfStock
        } else if self.is_low() {
            StockState::Low
        } else {
            StockState::InStock
        }
    }

    /// Holds `quantity` more units for a reservation, refused when fewer are available.
    pub fn reserve(&self, quantity: Quantity) -> Result<StockLevel, StockLevelError> {
        let available = self.available();
        if quantity > available {
            return Err(StockLevelError::InsufficientStock { requested: quantity, available });
        }
        // quantity <= available <= stock - reserved, so reserved + quantity <= stock <= MAX_UNITS.
        let reserved = self.reserved.checked_add(quantity).unwrap_or(self.stock);
        Ok(StockLevel { reserved, ..*self })
    }

    /// Gives `quantity` reserved units back to availability, refused when fewer are reserved.
    pub fn release(&self, quantity: Quantity) -> Result<StockLevel, StockLevelError> {
        let reserved = self
            .reserved
            .checked_sub(quantity)
            .ok_or(StockLevelError::ReleaseExceedsReserved { requested: quantity, reserved: self.reserved })?;
        Ok(StockLevel { reserved, ..*self })
    }

    /// Sells `quantity` reserved units: units on hand and reserved units go down together, availability is
    /// unchanged. Refused when fewer are reserved.
    pub fn commit_reserved(&self, quantity: Quantity) -> Result<StockLevel, StockLevelError> {
        let not_reserved = StockLevelError::CommitExceedsReserved { requested: quantity, reserved: self.reserved };
        let reserved = self.reserved.checked_sub(quantity).ok_or(not_reserved)?;
        // reserved >= quantity and stock >= reserved, so this cannot go below zero.
        let stock = self.stock.checked_sub(quantity).ok_or(not_reserved)?;
        Ok(StockLevel { stock, reserved, ..*self })
    }

    /// The same level with units on hand set to `stock`, refused below the reserved units.
    pub(crate) fn with_stock(&self, stock: Quantity) -> Result<StockLevel, StockLevelError> {
        StockLevel::new(stock, self.reserved, self.low_stock_threshold)
    }
}

/// Units available for new reservations: `stock - reserved`, reporting `reserved > stock` as an
/// inconsistency instead of clamping it to zero.
pub fn available_stock(stock: Quantity, reserved: Quantity) -> Result<Quantity, StockLevelError> {
    Ok(StockLevel::new(stock, reserved, Quantity::ZERO)?.available())
}

/// Whether available units are at or below `low_stock_threshold`; `reserved > stock` is an inconsistency.
pub fn is_low_stock(
    stock: Quantity,
    reserved: Quantity,
    low_stock_threshold: Quantity,
) -> Result<bool, StockLevelError> {
    Ok(StockLevel::new(stock, reserved, low_stock_threshold)?.is_low())
}

/// What can go wrong with the figures of one size.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum StockLevelError {
    #[error("{field}: {source}")]
    InvalidQuantity { field: &'static str, source: QuantityError },
    #[error("inconsistent stock: {reserved} units reserved but only {stock} on hand")]
    ReservedExceedsStock { stock: Quantity, reserved: Quantity },
    #[error("insufficient stock: {requested} requested, {available} available")]
    InsufficientStock { requested: Quantity, available: Quantity },
    #[error("cannot release {requested} units: only {reserved} reserved")]
    ReleaseExceedsReserved { requested: Quantity, reserved: Quantity },
    #[error("cannot sell {requested} reserved units: only {reserved} reserved")]
    CommitExceedsReserved { requested: Quantity, reserved: Quantity },
}

impl ErrorCode for StockLevelError {
    fn code(&self) -> &'static str {
        match self {
            StockLevelError::InvalidQuantity { .. } => "invalid_quantity",
            StockLevelError::ReservedExceedsStock { .. } => "reserved_exceeds_stock",
            StockLevelError::InsufficientStock { .. } => "insufficient_stock",
            StockLevelError::ReleaseExceedsReserved { .. } => "release_exceeds_reserved",
            StockLevelError::CommitExceedsReserved { .. } => "commit_exceeds_reserved",
        }
    }
}

/// A size's stock state, for alerts: a change of state is a crossing an operator hears of once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StockState {
    /// Nothing available.
    OutOfStock,
    /// Some units available, at or below the low-stock threshold.
    Low,
    /// More available than the threshold.
    InStock,
}

impl StockState {
    /// `in_stock`, `low` or `out_of_stock`, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            StockState::OutOfStock => "out_of_stock",
            StockState::Low => "low",
            StockState::InStock => "in_stock",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "out_of_stock" => Some(StockState::OutOfStock),
            "low" => Some(StockState::Low),
            "in_stock" => Some(StockState::InStock),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn units(value: u32) -> Quantity {
        Quantity::new(value).expect("test quantities are valid")
    }

    fn level(stock: u32, reserved: u32, threshold: u32) -> StockLevel {
        StockLevel::new(units(stock), units(reserved), units(threshold)).expect("consistent test level")
    }

    #[test]
    fn a_size_is_out_of_stock_with_nothing_available_low_at_or_below_its_threshold_and_in_stock_above() {
        assert_eq!(level(5, 5, 2).state(), StockState::OutOfStock);
        assert_eq!(level(0, 0, 0).state(), StockState::OutOfStock);
        assert_eq!(level(5, 3, 2).state(), StockState::Low);
        assert_eq!(level(5, 2, 2).state(), StockState::InStock);
        assert_eq!(level(1, 0, 0).state(), StockState::InStock);
        for state in [StockState::OutOfStock, StockState::Low, StockState::InStock] {
            assert_eq!(StockState::parse(state.as_str()), Some(state));
        }
        assert_eq!(StockState::parse("Low"), None);
    }

    #[test]
    fn available_stock_is_stock_minus_reserved() {
        assert_eq!(available_stock(units(10), units(3)), Ok(units(7)));
        assert_eq!(available_stock(units(3), units(3)), Ok(units(0)));
    }

    #[test]
    fn reserved_above_stock_is_reported_not_clamped() {
        let error = available_stock(units(2), units(5)).expect_err("inconsistent");
        assert_eq!(error.code(), "reserved_exceeds_stock");
        assert_eq!(error.to_string(), "inconsistent stock: 5 units reserved but only 2 on hand");
    }

    #[test]
    fn a_size_is_low_when_available_units_are_at_or_below_the_threshold() {
        assert_eq!(is_low_stock(units(10), units(5), units(5)), Ok(true));
        assert_eq!(is_low_stock(units(10), units(4), units(5)), Ok(false));
        assert_eq!(is_low_stock(units(0), units(0), units(0)), Ok(true));
    }

    #[test]
    fn numbers_from_javascript_name_the_field_they_came_from() {
        let error = StockLevel::from_numbers(5.0, -1.0, 0.0).expect_err("negative");
        assert_eq!(error.code(), "invalid_quantity");
        assert_eq!(error.to_string(), "reservedStock: -1 is negative; a quantity is a count of units");
        let error = StockLevel::from_numbers(5.0, 0.0, 0.5).expect_err("fractional");
        assert_eq!(error.to_string(), "lowStockThreshold: 0.5 is not a whole number of units");
    }

    #[test]
    fn reserving_more_than_is_available_is_refused_with_both_figures() {
        let error = level(5, 4, 0).reserve(units(2)).expect_err("only 1 available");
        assert_eq!(error, StockLevelError::InsufficientStock { requested: units(2), available: units(1) });
        assert_eq!(error.code(), "insufficient_stock");
    }

    #[test]
    fn committing_reserved_units_lowers_stock_and_reserved_together() {
        let after = level(5, 3, 0).commit_reserved(units(2)).expect("2 of 3 reserved");
        assert_eq!((after.stock(), after.reserved(), after.available()), (units(3), units(1), units(2)));
        assert_eq!(level(5, 1, 0).commit_reserved(units(2)).map_err(|e| e.code()), Err("commit_exceeds_reserved"));
    }

    #[test]
    fn releasing_more_than_is_reserved_is_refused() {
        assert_eq!(level(5, 1, 0).release(units(2)).map_err(|e| e.code()), Err("release_exceeds_reserved"));
        assert_eq!(level(5, 3, 0).release(units(2)).map(|l| l.reserved()), Ok(units(1)));
    }

    /// One step a shop can take on a size.
    #[derive(Debug, Clone)]
    enum Step {
        Reserve(u32),
        Release(u32),
        Commit(u32),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0_u32..20).prop_map(Step::Reserve),
            (0_u32..20).prop_map(Step::Release),
            (0_u32..20).prop_map(Step::Commit),
        ]
    }

    proptest! {
        #[test]
        fn available_units_never_go_negative_in_any_reachable_state(
            stock in 0_u32..100,
            steps in proptest::collection::vec(step(), 0..60),
        ) {
            let mut current = level(stock, 0, 5);
            for step in steps {
                let next = match step {
                    Step::Reserve(n) => current.reserve(units(n)),
                    Step::Release(n) => current.release(units(n)),
                    Step::Commit(n) => current.commit_reserved(units(n)),
                };
                if let Ok(next) = next {
                    current = next;
                }
                prop_assert!(current.reserved() <= current.stock());
                prop_assert_eq!(
                    u32::from(current.available()) + u32::from(current.reserved()),
                    u32::from(current.stock())
                );
            }
        }

        #[test]
        fn a_refused_reservation_means_fewer_units_were_available(stock in 0_u32..50, reserved in 0_u32..50, wanted in 0_u32..60) {
            prop_assume!(reserved <= stock);
            let current = level(stock, reserved, 0);
            match current.reserve(units(wanted)) {
                Ok(next) => prop_assert_eq!(u32::from(next.reserved()), reserved + wanted),
                Err(_) => prop_assert!(wanted > stock - reserved),
            }
        }
    }
}
