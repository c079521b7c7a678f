//! POST /v1/movements (ADMIN_API_TOKEN): restocks, returns and adjustments, checked by stock-core, recorded in the
//! ledger with the stock before and after. Sales are not entered here: they come from Stripe.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};
use stock_core::{ErrorCode, MovementError};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AdminCaller;
use crate::error::ApiError;
use crate::http::AppState;
use crate::json::ApiJson;
use crate::openapi::ErrorBody;
use crate::store::{MovementOutcome, MovementRecord};
use stock_wire::{MovementBody, movement_request};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_movement))
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

    match state.ledger.record_movement(request, state.clock.now()).await? {
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

/// The movement as the API answers it.
fn movement_json(record: &MovementRecord) -> Value {
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
