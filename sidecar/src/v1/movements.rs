//! POST /v1/movements (ADMIN_API_TOKEN): restocks, returns and adjustments, checked by stock-core, recorded in the
//! ledger with the stock before and after. Sales are not entered here: they come from Stripe.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use stock_core::{ErrorCode, MovementError, MovementType, Quantity, SignedQuantity};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{Label, check_labels, check_reference, label_refusal, number_field};
use crate::AppState;
use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::openapi::ErrorBody;
use crate::store::{MovementOrigin, MovementOutcome, MovementRecord, MovementRequest};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_movement))
}

/// A movement an admin records.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct MovementBody {
    /// The product's id: a string or a number.
    #[schema(value_type = String)]
    product: Label,
    /// The size's label: a string or a number. A restock creates an unknown size.
    #[schema(value_type = String)]
    size: Label,
    /// `restock` or `return` (positive), `adjustment` (either sign); sales come from Stripe.
    #[serde(rename = "type")]
    #[schema(value_type = MovementKind)]
    kind: String,
    /// Units, signed: never zero.
    #[schema(value_type = i32)]
    quantity: Value,
    #[serde(default)]
    reason: String,
    /// Makes the request idempotent: the same movement again with this reference answers the first one (200); a
    /// different product, size, type or quantity under it is refused (409 `reference_conflict`).
    reference: Option<String>,
    /// Compare-and-set: applied only if the units on hand are exactly this (else 409 stale_stock).
    #[schema(value_type = Option<u32>)]
    expected_stock: Option<Value>,
    /// Sets the size's low-stock threshold with the movement.
    #[schema(value_type = Option<u32>)]
    low_stock_threshold: Option<Value>,
    /// `payload` when Payload's stock-movements hook asks: it saves the Payload document itself.
    #[schema(value_type = Option<String>)]
    origin: Option<String>,
}

/// The types of movement an admin may enter. Only the document uses it: the body's `type` is parsed by
/// stock-core's `MovementType`, which knows sales too and refuses them here with a message.
#[allow(dead_code)]
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MovementKind {
    Restock,
    Return,
    Adjustment,
}

/// A movement as recorded in the ledger.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MovementAnswer {
    /// The ledger's id of the movement.
    pub id: i64,
    pub product: String,
    pub size: String,
    /// `sale`, `restock`, `return` or `adjustment`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub quantity: i64,
    pub stock_before: u32,
    pub stock_after: u32,
    pub reason: String,
    pub reference: Option<String>,
    /// The order of a sale (the PaymentIntent's `metadata.orderNumber`), when known.
    pub order_reference: Option<String>,
    pub date: String,
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
    let (product, size) = (body.product.into_text(), body.size.into_text());
    check_labels(&product, &size, "")?;
    stock_core::check_reason(&body.reason).map_err(|error| label_refusal(error, "reason"))?;
    let origin = match body.origin.as_deref() {
        None | Some("sidecar") => MovementOrigin::Sidecar,
        Some("payload") => MovementOrigin::Payload,
        Some(other) => return Err(ApiError::invalid(format!("origin: {other:?} is not sidecar or payload"))),
    };
    Ok(MovementRequest {
        product,
        size,
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

/// Records a restock, return or adjustment, checked by stock-core.
#[utoipa::path(post, path = "/v1/movements", tag = "movements", security(("admin" = [])),
    request_body = MovementBody,
    responses(
        (status = 201, description = "Recorded", body = MovementAnswer),
        (status = 200, description = "The same movement again under its reference: the first one", body = MovementAnswer),
        (status = 400, description = "invalid_json", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "unknown_size: only a restock creates a size", body = ErrorBody),
        (status = 409, description = "reference_conflict (with the first movement), stale_stock (with currentStock), or stock-core's refusal (stock_below_zero, below_reserved)", body = ErrorBody),
        (status = 422, description = "invalid_request (with the reason stock-core gave)", body = ErrorBody),
        (status = 503, description = "admin_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
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
        MovementOutcome::ReferenceConflict(first) => {
            let mut details = Map::new();
            details.insert("movement".into(), movement_json(&first));
            Err(ApiError::Conflict {
                code: "reference_conflict",
                message: format!(
                    "reference {:?} already recorded {} {} of {} size {}: a different movement needs its own reference",
                    first.movement.details.reference.as_deref().unwrap_or_default(),
                    first.movement.kind.as_str(),
                    first.movement.quantity,
                    first.product,
                    first.size
                ),
                details,
            })
        }
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

/// The movement as the API answers it (and as its Payload document starts).
pub(crate) fn movement_json(record: &MovementRecord) -> Value {
    let movement = &record.movement;
    let answer = MovementAnswer {
        id: record.id,
        product: record.product.clone(),
        size: record.size.clone(),
        kind: movement.kind.as_str(),
        quantity: movement.quantity.get(),
        stock_before: movement.stock_before.get(),
        stock_after: movement.stock_after.get(),
        reason: movement.details.reason.clone(),
        reference: movement.details.reference.clone(),
        order_reference: movement.details.order_reference.clone(),
        date: movement.details.date.to_rfc3339(),
    };
    serde_json::to_value(answer).unwrap_or(Value::Null)
}
