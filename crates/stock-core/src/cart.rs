//! Cart validation: the lines a customer asks for, checked against product snapshots, with every problem and
//! every shortage reported at once.

use crate::ErrorCode;
use crate::quantity::{Quantity, QuantityError};
use crate::stock_level::StockLevel;

/// The most units of one size a single cart may ask for. Above this a request is a mistake or an attack,
/// not a purchase.
pub const MAX_LINE_QUANTITY: u32 = 1_000;

/// The most lines a cart may have.
pub const MAX_CART_LINES: usize = 200;

/// One size of a product as the shop knows it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeStock {
    /// The size's label, such as `42` or `M`, unique within its product.
    pub size: String,
    pub level: StockLevel,
}

/// A product's sizes as the shop knows them now. Ids are compared as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductSnapshot {
    pub id: String,
    /// Looked up by label; if two sizes share a label, the first one counts.
    pub sizes: Vec<SizeStock>,
}

/// A cart line as it arrived, before validation: the quantity is the raw number the client sent.
#[derive(Debug, Clone, PartialEq)]
pub struct CartLine {
    pub product: String,
    pub size: String,
    pub quantity: f64,
}

/// A size the cart asks for, with its lines summed, that exists and has a valid quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedItem {
    pub product: String,
    pub size: String,
    pub quantity: Quantity,
    /// Units available for that size in the snapshot.
    pub available: Quantity,
}

/// A size the cart asks more of than is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub product: String,
    pub size: String,
    pub requested: Quantity,
    pub available: Quantity,
}

/// The outcome of [`validate_cart`]: nothing is left out, so a shop can show every problem at once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CartValidation {
    /// The valid sizes asked for, in the order they first appear, duplicate lines summed.
    pub items: Vec<RequestedItem>,
    /// Every size short of stock.
    pub shortages: Vec<Shortage>,
    /// Every line that cannot be ordered at all, and problems with the cart as a whole.
    pub errors: Vec<CartError>,
}

impl CartValidation {
    /// No error and no shortage: the cart can be reserved as it is.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty() && self.shortages.is_empty()
    }
}

/// Checks `lines` against `products`: each quantity must be a whole number from 1 to [`MAX_LINE_QUANTITY`],
/// each product and size must exist, lines for the same size are summed (the sum is held to the same maximum),
/// and each size asked for beyond its available units yields a [`Shortage`].
pub fn validate_cart(products: &[ProductSnapshot], lines: &[CartLine]) -> CartValidation {
    let mut validation = CartValidation::default();
    if lines.is_empty() {
        validation.errors.push(CartError::EmptyCart);
        return validation;
    }
    if lines.len() > MAX_CART_LINES {
        validation.errors.push(CartError::TooManyLines { count: lines.len() });
        return validation;
    }

    // Summed per size, with the line each size first appeared on; u64 so a sum cannot overflow.
    let mut totals: Vec<(usize, &CartLine, StockLevel, u64)> = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let line_error = |problem| CartError::InvalidQuantity {
            line: index,
            product: line.product.clone(),
            size: line.size.clone(),
            problem,
        };
        let quantity = match Quantity::from_number(line.quantity) {
            Err(source) => {
                validation.errors.push(line_error(LineQuantityProblem::NotAQuantity(source)));
                continue;
            }
            Ok(quantity) if quantity.is_zero() => {
                validation.errors.push(line_error(LineQuantityProblem::Zero));
                continue;
            }
            Ok(quantity) if quantity.get() > MAX_LINE_QUANTITY => {
                let problem = LineQuantityProblem::AboveMaximum { quantity: u64::from(quantity.get()) };
                validation.errors.push(line_error(problem));
                continue;
            }
            Ok(quantity) => quantity,
        };
        let Some(product) = products.iter().find(|product| product.id == line.product) else {
            validation.errors.push(CartError::UnknownProduct { line: index, product: line.product.clone() });
            continue;
        };
        let Some(size) = product.sizes.iter().find(|size| size.size == line.size) else {
            let error = CartError::UnknownSize { line: index, product: line.product.clone(), size: line.size.clone() };
            validation.errors.push(error);
            continue;
        };
        let same_size = |(_, seen, _, _): &&mut (usize, &CartLine, StockLevel, u64)| {
            seen.product == line.product && seen.size == line.size
        };
        match totals.iter_mut().find(same_size) {
            Some((_, _, _, total)) => *total += u64::from(quantity.get()),
            None => totals.push((index, line, size.level, u64::from(quantity.get()))),
        }
    }

    for (first_line, line, level, total) in totals {
        let product = line.product.clone();
        let size = line.size.clone();
        let Some(quantity) = u32::try_from(total).ok().filter(|&total| total <= MAX_LINE_QUANTITY) else {
            let problem = LineQuantityProblem::AboveMaximum { quantity: total };
            validation.errors.push(CartError::InvalidQuantity { line: first_line, product, size, problem });
            continue;
        };
        // At most MAX_LINE_QUANTITY, so a valid Quantity.
        let requested = Quantity::new(quantity).unwrap_or(Quantity::ZERO);
        let available = level.available();
        if requested > available {
            let shortage = Shortage { product: product.clone(), size: size.clone(), requested, available };
            validation.shortages.push(shortage);
        }
        validation.items.push(RequestedItem { product, size, quantity: requested, available });
    }
    validation
}

/// Why a line's quantity cannot be ordered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LineQuantityProblem {
    #[error(transparent)]
    NotAQuantity(QuantityError),
    #[error("a line must ask for at least 1 unit")]
    Zero,
    #[error("{quantity} units of one size is above the maximum of {MAX_LINE_QUANTITY} per cart")]
    AboveMaximum { quantity: u64 },
}

/// A problem that makes a cart line, or the whole cart, impossible to order. Line numbers are indexes into
/// the lines given, from 0.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CartError {
    #[error("the cart is empty")]
    EmptyCart,
    #[error("the cart has {count} lines; at most {MAX_CART_LINES} are accepted")]
    TooManyLines { count: usize },
    #[error("items[{line}] (product {product:?}, size {size:?}): {problem}")]
    InvalidQuantity { line: usize, product: String, size: String, problem: LineQuantityProblem },
    #[error("items[{line}]: unknown product {product:?}")]
    UnknownProduct { line: usize, product: String },
    #[error("items[{line}]: product {product:?} has no size {size:?}")]
    UnknownSize { line: usize, product: String, size: String },
}

impl CartError {
    /// The index of the offending line, for errors about one line.
    pub fn line(&self) -> Option<usize> {
        match self {
            CartError::EmptyCart | CartError::TooManyLines { .. } => None,
            CartError::InvalidQuantity { line, .. }
            | CartError::UnknownProduct { line, .. }
            | CartError::UnknownSize { line, .. } => Some(*line),
        }
    }

    /// The product the error is about, if any.
    pub fn product(&self) -> Option<&str> {
        match self {
            CartError::EmptyCart | CartError::TooManyLines { .. } => None,
            CartError::InvalidQuantity { product, .. }
            | CartError::UnknownProduct { product, .. }
            | CartError::UnknownSize { product, .. } => Some(product),
        }
    }

    /// The size the error is about, if any.
    pub fn size(&self) -> Option<&str> {
        match self {
            CartError::InvalidQuantity { size, .. } | CartError::UnknownSize { size, .. } => Some(size),
            _ => None,
        }
    }
}

impl ErrorCode for CartError {
    fn code(&self) -> &'static str {
        match self {
            CartError::EmptyCart => "empty_cart",
            CartError::TooManyLines { .. } => "too_many_lines",
            CartError::InvalidQuantity { .. } => "invalid_quantity",
            CartError::UnknownProduct { .. } => "unknown_product",
            CartError::UnknownSize { .. } => "unknown_size",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn size(label: &str, stock: u32, reserved: u32) -> SizeStock {
        let level = StockLevel::from_numbers(f64::from(stock), f64::from(reserved), 1.0).expect("consistent");
        SizeStock { size: label.to_owned(), level }
    }

    fn catalogue() -> Vec<ProductSnapshot> {
        vec![
            ProductSnapshot { id: "runner".into(), sizes: vec![size("42", 3, 1), size("43", 0, 0)] },
            ProductSnapshot { id: "boot".into(), sizes: vec![size("40", 10, 0)] },
        ]
    }

    fn line(product: &str, size: &str, quantity: f64) -> CartLine {
        CartLine { product: product.into(), size: size.into(), quantity }
    }

    fn codes(validation: &CartValidation) -> Vec<&'static str> {
        validation.errors.iter().map(ErrorCode::code).collect()
    }

    #[test]
    fn a_cart_within_available_stock_is_ok() {
        let validation = validate_cart(&catalogue(), &[line("runner", "42", 2.0), line("boot", "40", 1.0)]);
        assert!(validation.is_ok(), "{validation:?}");
        assert_eq!(validation.items.len(), 2);
        assert_eq!(validation.items[0].quantity.get(), 2);
        assert_eq!(validation.items[0].available.get(), 2);
    }

    #[test]
    fn every_shortage_is_reported_not_only_the_first() {
        let validation = validate_cart(&catalogue(), &[line("runner", "42", 3.0), line("runner", "43", 1.0)]);
        assert!(!validation.is_ok());
        let shortages: Vec<_> =
            validation.shortages.iter().map(|s| (s.size.as_str(), s.requested.get(), s.available.get())).collect();
        assert_eq!(shortages, [("42", 3, 2), ("43", 1, 0)]);
        assert!(validation.errors.is_empty());
    }

    #[test]
    fn duplicate_lines_for_one_size_are_summed_before_checking_stock() {
        let validation = validate_cart(&catalogue(), &[line("runner", "42", 1.0), line("runner", "42", 2.0)]);
        assert_eq!(validation.items.len(), 1);
        assert_eq!(validation.items[0].quantity.get(), 3);
        assert_eq!(validation.shortages.len(), 1);
        assert_eq!(validation.shortages[0].requested.get(), 3);
    }

    #[test]
    fn zero_negative_fractional_and_huge_quantities_are_errors_that_name_their_line() {
        let lines = [
            line("boot", "40", 0.0),
            line("boot", "40", -1.0),
            line("boot", "40", 1.5),
            line("boot", "40", 1_001.0),
            line("boot", "40", f64::NAN),
        ];
        let validation = validate_cart(&catalogue(), &lines);
        assert_eq!(codes(&validation), ["invalid_quantity"; 5]);
        let lines_reported: Vec<_> = validation.errors.iter().filter_map(CartError::line).collect();
        assert_eq!(lines_reported, [0, 1, 2, 3, 4]);
        assert_eq!(
            validation.errors[0].to_string(),
            "items[0] (product \"boot\", size \"40\"): a line must ask for at least 1 unit"
        );
        assert!(validation.items.is_empty());
    }

    #[test]
    fn summed_lines_are_held_to_the_same_maximum() {
        let validation = validate_cart(&catalogue(), &[line("boot", "40", 600.0), line("boot", "40", 600.0)]);
        assert_eq!(codes(&validation), ["invalid_quantity"]);
        assert_eq!(validation.errors[0].line(), Some(0));
        assert!(validation.items.is_empty());
    }

    #[test]
    fn unknown_products_and_sizes_are_errors_and_the_rest_is_still_checked() {
        let lines = [line("sandal", "42", 1.0), line("runner", "44", 1.0), line("runner", "43", 1.0)];
        let validation = validate_cart(&catalogue(), &lines);
        assert_eq!(codes(&validation), ["unknown_product", "unknown_size"]);
        assert_eq!(validation.errors[1].to_string(), "items[1]: product \"runner\" has no size \"44\"");
        assert_eq!(validation.shortages.len(), 1);
    }

    #[test]
    fn empty_carts_and_carts_with_too_many_lines_are_refused_whole() {
        assert_eq!(codes(&validate_cart(&catalogue(), &[])), ["empty_cart"]);
        let many = vec![line("boot", "40", 1.0); MAX_CART_LINES + 1];
        assert_eq!(codes(&validate_cart(&catalogue(), &many)), ["too_many_lines"]);
    }

    proptest! {
        #[test]
        fn a_cart_is_ok_exactly_when_every_summed_size_fits_in_its_available_units(
            quantities in proptest::collection::vec((0_usize..3, 1_u32..6), 1..8),
        ) {
            let labels = ["42", "43", "44"];
            let product = ProductSnapshot {
                id: "p".into(),
                sizes: vec![size("42", 5, 0), size("43", 4, 2), size("44", 9, 9)],
            };
            let lines: Vec<_> = quantities.iter().map(|&(i, q)| line("p", labels[i], f64::from(q))).collect();
            let validation = validate_cart(std::slice::from_ref(&product), &lines);
            let mut wanted = [0_u32; 3];
            for &(i, q) in &quantities {
                wanted[i] += q;
            }
            let fits = wanted.iter().zip(&product.sizes).all(|(w, s)| *w <= s.level.available().get());
            prop_assert_eq!(validation.is_ok(), fits);
            let short = wanted.iter().zip(&product.sizes).filter(|(w, s)| **w > s.level.available().get()).count();
            prop_assert_eq!(validation.shortages.len(), short);
        }
    }
}
