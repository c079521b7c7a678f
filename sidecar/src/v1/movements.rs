//! POST /v1/movements (ADMIN_API_TOKEN): restocks, returns and adjustments, checked by stock-core, recorded in the
//! ledger with the stock before and after. Sales are not entered here: they come from Stripe.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stock_core::{ErrorCode, MovementError, MovementType, Quantity, SignedQuantity};

use super::{Label, check_reference, number_field};
use crate::AppState;
use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::store::{MovementOrigin, MovementOutcome, MovementRecord, MovementRequest};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/v1/movements", post(create_movement))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MovementBody {
    product: Label,
    size: Label,
    #[serde(rename = "type")]
    kind: String,
    quantity: Value,
    #[serde(default)]
    reason: String,
    reference: Option<String>,
    expected_stock: Option<Value>,
    low_stock_threshold: Option<Value>,
    /// `payload` when Payload's stock-movements hook asks: it saves the Payload document itself.
    origin: Option<String>,
}

fn optional_quantity(value: Option<&Value>, field: &str) -> Result<Option<Quantity>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Quantity::from_number(number_field(value, field)?)
            .map(Some)
            .map_err(|error| ApiError::invalid(format!("{field}: {error}"))),
    }
}

/// Checks a decoded body and turns it into the store's request (stock-core checks the movement itself).
fn movement_request(body: MovementBody) -> Result<MovementRequest, ApiError> {
    let kind = MovementType::parse(&body.kind).map_err(|error| ApiError::invalid(format!("type: {error}")))?;
    if kind == MovementType::Sale {
        return Err(ApiError::invalid(
            "type: sales are recorded from Stripe payments, not entered by hand; use adjustment",
        ));
    }
    let quantity = SignedQuantity::from_number(number_field(&body.quantity, "quantity")?)
        .map_err(|error| ApiError::invalid(error.to_string()))?;
    if let Some(reference) = &body.reference {
        check_reference(reference, "reference")?;
    }
    let origin = match body.origin.as_deref() {
        None | Some("sidecar") => MovementOrigin::Sidecar,
        Some("payload") => MovementOrigin::Payload,
        Some(other) => return Err(ApiError::invalid(format!("origin: {other:?} is not sidecar or payload"))),
    };
    Ok(MovementRequest {
        product: body.product.into_text(),
        size: body.size.into_text(),
        kind,
        quantity,
        reason: body.reason,
        reference: body.reference,
        expected_stock: optional_quantity(body.expected_stock.as_ref(), "expectedStock")?,
        low_stock_threshold: optional_quantity(body.low_stock_threshold.as_ref(), "lowStockThreshold")?,
        origin,
    })
}

/// The whole decoding of a POST /v1/movements body, from bytes (the fuzz target's entry point).
pub fn decode_movement(body: &[u8]) -> Result<MovementRequest, ApiError> {
    let body: MovementBody =
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidJson { message: error.to_string() })?;
    movement_request(body)
}

async fn create_movement(
    State(state): State<AppState>,
    _caller: AdminCaller,
    ApiJson(body): ApiJson<MovementBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let request = movement_request(body)?;
    let (product, size) = (request.product.clone(), request.size.clone());

    match state.store.record_movement(request, state.clock.now()).await? {
        MovementOutcome::Applied(record) => {
            let movement = &record.movement;
            tracing::info!(product = %record.product, size = %record.size, kind = %movement.kind,
                quantity = movement.quantity.get(), stock_after = movement.stock_after.get(), "movement recorded");
            Ok((StatusCode::CREATED, Json(movement_json(&record))))
        }
        MovementOutcome::Replayed(record) => Ok((StatusCode::OK, Json(movement_json(&record)))),
        MovementOutcome::StaleStock { current } => {
            let mut details = Map::new();
            details.insert("currentStock".into(), json!(current.get()));
            Err(ApiError::Conflict {
                code: "stale_stock",
                message: format!("{product} size {size} has {current} units on hand, not the expected stock"),
                details,
            })
        }
        MovementOutcome::UnknownSize => Err(ApiError::NotFound {
            code: "unknown_size",
            message: format!("product {product:?} has no size {size:?}; only a restock creates a size"),
        }),
        // A movement that contradicts its own type is the client's mistake (422); one the stock cannot take
        // right now is a conflict with the ledger (409).
        MovementOutcome::Refused(
            error @ (MovementError::WrongSign { .. }
            | MovementError::ZeroQuantity
            | MovementError::InvalidQuantity { .. }
            | MovementError::StockAboveMaximum { .. }),
        ) => {
            let mut details = Map::new();
            details.insert("reason".into(), json!(error.code()));
            Err(ApiError::InvalidRequest { message: error.to_string(), details })
        }
        MovementOutcome::Refused(error) => {
            Err(ApiError::Conflict { code: error.code(), message: error.to_string(), details: Map::new() })
        }
    }
}

pub(crate) fn movement_json(record: &MovementRecord) -> Value {
    let movement = &record.movement;
    json!({
        "id": record.id,
        "product": record.product,
        "size": record.size,
        "type": movement.kind.as_str(),
        "quantity": movement.quantity.get(),
        "stockBefore": movement.stock_before.get(),
        "stockAfter": movement.stock_after.get(),
        "reason": movement.details.reason,
        "reference": movement.details.reference,
        "orderReference": movement.details.order_reference,
        "date": movement.details.date.to_rfc3339(),
    })
}
