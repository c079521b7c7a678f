//! The rules of stock for payload-stock, written once: stock levels, reservations, cart validation and
//! stock movements.
//!
//! This crate is pure. It does no I/O and never reads a clock: every function that depends on time takes
//! `now` as an argument, so the sidecar, the WebAssembly package and the tests all run the same rules on the
//! same inputs and get the same answers.
//!
//! Every error type implements [`ErrorCode`]: a stable machine code (`insufficient_stock`, `invalid_quantity`,
//! ...) that callers can match on, next to a human message from `Display`.

mod cart;
mod labels;
mod movement;
mod quantity;
mod reservation;
mod returns;
mod stock_level;
mod time;

pub use cart::{
    CartError, CartLine, CartValidation, LineQuantityProblem, MAX_CART_LINES, MAX_LINE_QUANTITY, ProductSnapshot,
    RequestedItem, Shortage, SizeStock, validate_cart,
};
pub use labels::{
    LabelError, MAX_PRODUCT_ID_BYTES, MAX_REASON_CHARS, MAX_SIZE_LABEL_CHARS, NO_VARIANT, check_product_id,
    check_reason, check_size_label, variant_key, variant_of_key,
};
pub use movement::{
    AppliedMovement, MovementDetails, MovementError, MovementType, SignedQuantity, StockMovement, apply_movement,
    commit_reserved_sale, replay_movements,
};
pub use quantity::{MAX_UNITS, Quantity, QuantityError};
pub use reservation::{
    Reservation, ReservationError, ReservationStatus, ReservationTtl, StatusChange, reservation_expires_at,
    reservation_is_expired,
};
pub use returns::{
    DisputeState, PaymentMoney, PlannedReturnLine, ReturnError, ReturnLine, ReturnReason, SoldSize, plan_return,
};
pub use stock_level::{StockLevel, StockLevelError, StockState, available_stock, is_low_stock};
pub use time::{Timestamp, TimestampError};

/// A stable, machine-readable code for an error, such as `insufficient_stock`.
///
/// Codes are part of the public contract (the JavaScript package and the sidecar's HTTP API expose them):
/// they never change once released, while `Display` messages may be reworded.
pub trait ErrorCode {
    /// The stable code of this error, in `snake_case`.
    fn code(&self) -> &'static str;
}
