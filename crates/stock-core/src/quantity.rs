//! Whole, non-negative numbers of units, and the one place where numbers from JSON or JavaScript become them.

use crate::ErrorCode;
use std::fmt;

/// The largest count of units of one size the engine accepts (one billion).
///
/// Far above any real shop, and far enough below `u32::MAX` that adding two counts can never overflow.
pub const MAX_UNITS: u32 = 1_000_000_000;

/// A whole number of units, from 0 to [`MAX_UNITS`]. A `Quantity` that exists is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity(u32);

impl Quantity {
    /// No units.
    pub const ZERO: Quantity = Quantity(0);

    /// A quantity of `units`, refused above [`MAX_UNITS`].
    pub fn new(units: u32) -> Result<Self, QuantityError> {
        if units > MAX_UNITS {
            return Err(QuantityError::TooLarge { value: f64::from(units) });
        }
        Ok(Quantity(units))
    }

    /// A quantity from a number as JSON and JavaScript carry it: refuses NaN, infinities, negative and
    /// fractional numbers, and numbers above [`MAX_UNITS`]. `-0` is accepted as zero.
    #[inline]
    pub fn from_number(value: f64) -> Result<Self, QuantityError> {
        // One test on the path every valid quantity takes; the reason for a refusal is worked out apart.
        // (NaN fails the comparisons, infinities fail the bound, -0.0 passes `>= 0.0` and casts to 0.)
        if value >= 0.0 && value <= f64::from(MAX_UNITS) && value.fract() == 0.0 {
            // In range and whole: the cast is exact.
            return Ok(Quantity(value as u32));
        }
        Err(QuantityError::classify(value))
    }

    /// The number of units.
    pub fn get(self) -> u32 {
        self.0
    }

    /// The sum, or `None` above [`MAX_UNITS`].
    pub fn checked_add(self, other: Quantity) -> Option<Quantity> {
        let sum = self.0 + other.0; // both <= MAX_UNITS: cannot overflow u32
        (sum <= MAX_UNITS).then_some(Quantity(sum))
    }

    /// The difference, or `None` below zero.
    pub fn checked_sub(self, other: Quantity) -> Option<Quantity> {
        self.0.checked_sub(other.0).map(Quantity)
    }

    /// Zero units?
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> u32 {
        quantity.0
    }
}

impl From<Quantity> for i64 {
    fn from(quantity: Quantity) -> i64 {
        i64::from(quantity.0)
    }
}

impl From<Quantity> for f64 {
    fn from(quantity: Quantity) -> f64 {
        f64::from(quantity.0)
    }
}

/// Why a number is not a [`Quantity`]. Code: `invalid_quantity`.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum QuantityError {
    /// NaN or an infinity, which is also what a non-numeric value becomes in JavaScript arithmetic.
    #[error("{value} is not a number of units")]
    NotFinite { value: f64 },
    #[error("{value} is negative; a quantity is a count of units")]
    Negative { value: f64 },
    #[error("{value} is not a whole number of units")]
    Fractional { value: f64 },
    #[error("{value} is above the maximum of {MAX_UNITS} units")]
    TooLarge { value: f64 },
}

impl QuantityError {
    /// Why `value`, which is not a valid quantity, is refused.
    #[cold]
    fn classify(value: f64) -> QuantityError {
        if !value.is_finite() {
            QuantityError::NotFinite { value }
        } else if value < 0.0 {
            QuantityError::Negative { value }
        } else if value.fract() != 0.0 {
            QuantityError::Fractional { value }
        } else {
            QuantityError::TooLarge { value }
        }
    }
}

impl ErrorCode for QuantityError {
    fn code(&self) -> &'static str {
        "invalid_quantity"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_non_negative_numbers_are_quantities() {
        assert_eq!(Quantity::from_number(0.0).map(Quantity::get), Ok(0));
        assert_eq!(Quantity::from_number(-0.0).map(Quantity::get), Ok(0));
        assert_eq!(Quantity::from_number(42.0).map(Quantity::get), Ok(42));
        assert_eq!(Quantity::from_number(f64::from(MAX_UNITS)).map(Quantity::get), Ok(MAX_UNITS));
    }

    #[test]
    fn negative_fractional_huge_and_non_finite_numbers_are_refused() {
        assert!(matches!(Quantity::from_number(-1.0), Err(QuantityError::Negative { .. })));
        assert!(matches!(Quantity::from_number(1.5), Err(QuantityError::Fractional { .. })));
        assert!(matches!(Quantity::from_number(1e10), Err(QuantityError::TooLarge { .. })));
        assert!(matches!(Quantity::from_number(f64::NAN), Err(QuantityError::NotFinite { .. })));
        assert!(matches!(Quantity::from_number(f64::INFINITY), Err(QuantityError::NotFinite { .. })));
        assert!(matches!(Quantity::new(MAX_UNITS + 1), Err(QuantityError::TooLarge { .. })));
    }

    #[test]
    fn every_quantity_error_has_the_invalid_quantity_code() {
        assert_eq!(QuantityError::Negative { value: -1.0 }.code(), "invalid_quantity");
        assert_eq!(QuantityError::NotFinite { value: f64::NAN }.to_string(), "NaN is not a number of units");
    }

    #[test]
    fn sums_above_the_maximum_are_refused_and_differences_below_zero_too() {
        let max = Quantity::new(MAX_UNITS).expect("max is valid");
        let one = Quantity::new(1).expect("1 is valid");
        assert_eq!(max.checked_add(one), None);
        assert_eq!(Quantity::ZERO.checked_sub(one), None);
        assert_eq!(one.checked_sub(one), Some(Quantity::ZERO));
    }
}
