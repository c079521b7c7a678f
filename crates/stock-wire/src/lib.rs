//! What reaches the payload-stock sidecar, read and checked before the ledger sees it: Stripe's webhook events
//! (signature verified on the raw bytes, then read loosely, then turned into one ledger action) and the bodies of
//! the /v1 requests (decoded, every field checked with stock-core's rules). Pure functions of their input: no I/O,
//! no clock, no HTTP types, so the fuzz targets build this crate without the sidecar's server, databases and TLS.

mod requests;
mod stripe;

#[cfg(feature = "openapi")]
pub use requests::MovementKind;
#[cfg(feature = "openapi")]
pub use requests::ReturnReasonKind;
pub use requests::{
    FULL_REFUND_RETURN, Label, MovementBody, MovementOrigin, MovementRequest, RequestError, ReservationBody,
    ReservationItemBody, ReservationRequest, ReturnBody, ReturnLineBody, ReturnRequest, check_labels, check_reference,
    decode_movement, decode_reservation, decode_return, movement_request, reservation_request, return_request,
};
pub use stripe::{
    CHECKOUT_MARKER, EventPolicy, MoneyChange, StripeAction, VerifiedEvent, VerifyError, action_for, verify,
};
