//! The /v1 API: reservations and stock for the shop's server (SIDECAR_API_TOKEN), movements for admins
//! (ADMIN_API_TOKEN).

mod movements;
mod products;
mod reservations;

use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::error::ApiError;

pub(crate) use movements::movement_json;
pub use movements::{MovementAnswer, MovementKind, decode_movement};
pub use products::{ProductStockAnswer, SizeStockAnswer};
pub use reservations::{ReservationAnswer, ReservedItemAnswer};
pub use reservations::{ReservationRequest, decode_reservation};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().merge(reservations::router()).merge(products::router()).merge(movements::router())
}

/// A product id or size label as JSON carries it: a string, or a number (Payload's SQL adapters use numeric ids).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Label {
    Text(String),
    Number(serde_json::Number),
}

impl Label {
    pub(crate) fn into_text(self) -> String {
        match self {
            Label::Text(text) => text,
            Label::Number(number) => number.to_string(),
        }
    }
}

/// A JSON number that stock-core will check (whole, in range); anything else is a 422 naming the field.
pub(crate) fn number_field(value: &Value, field: &str) -> Result<f64, ApiError> {
    value.as_f64().ok_or_else(|| ApiError::invalid(format!("{field}: expected a number, got {}", kind_of(value))))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks a product id and a size label with stock-core's rules; `field` names where they came from.
pub(crate) fn check_labels(product: &str, size: &str, field: &str) -> Result<(), ApiError> {
    stock_core::check_product_id(product)
        .and_then(|()| stock_core::check_size_label(size))
        .map_err(|error| label_refusal(error, field))
}

/// A refused label as a 422 `invalid_request` whose `reason` is stock-core's code.
pub(crate) fn label_refusal(error: stock_core::LabelError, field: &str) -> ApiError {
    use stock_core::ErrorCode;
    let mut details = serde_json::Map::new();
    details.insert("reason".into(), error.code().into());
    let prefix = if field.is_empty() { String::new() } else { format!("{field}: ") };
    ApiError::InvalidRequest { message: format!("{prefix}{error}"), details }
}

/// A reference (PaymentIntent or Checkout Session id, or the shop's own): 1 to 255 visible ASCII characters.
pub(crate) fn check_reference(reference: &str, field: &str) -> Result<(), ApiError> {
    let valid =
        !reference.is_empty() && reference.len() <= 255 && reference.bytes().all(|byte| byte.is_ascii_graphic());
    if valid {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("{field}: expected 1 to 255 visible ASCII characters, such as pi_3Abc")))
    }
}
