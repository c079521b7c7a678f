//! POST /v1/reservations, GET and DELETE /v1/reservations/{reference}: all items of a checkout or none, held until
//! they are paid, released or expire.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use stock_core::{CartLine, CartValidation, ErrorCode, ReservationTtl};

use super::{Label, check_reference, number_field};
use crate::AppState;
use crate::auth::ApiCaller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::store::{ReleaseOutcome, ReservationRecord, ReserveOutcome};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/reservations", post(create_reservation))
        .route("/v1/reservations/{reference}", get(get_reservation).delete(release_reservation))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReservationBody {
    reference: String,
    items: Vec<ItemBody>,
    ttl_seconds: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemBody {
    product: Label,
    size: Label,
    quantity: Value,
}

/// A reservation request as the store takes it: checked reference, TTL and lines.
#[derive(Debug, Clone, PartialEq)]
pub struct ReservationRequest {
    pub reference: String,
    pub lines: Vec<CartLine>,
    pub ttl: ReservationTtl,
}

/// Checks a decoded body and turns it into a request; the cart itself is checked by stock-core in the store.
fn reservation_request(body: ReservationBody, default_ttl: ReservationTtl) -> Result<ReservationRequest, ApiError> {
    check_reference(&body.reference, "reference")?;
    let ttl = match &body.ttl_seconds {
        None | Some(Value::Null) => default_ttl,
        Some(value) => ReservationTtl::from_number(number_field(value, "ttlSeconds")?)
            .map_err(|error| ApiError::invalid(format!("ttlSeconds: {error}")))?,
    };
    let lines = body
        .items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            Ok(CartLine {
                product: item.product.into_text(),
                size: item.size.into_text(),
                quantity: number_field(&item.quantity, &format!("items[{index}].quantity"))?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(ReservationRequest { reference: body.reference, lines, ttl })
}

/// The whole decoding of a POST /v1/reservations body, from bytes (what the route does after reading the body; the
/// fuzz target's entry point).
pub fn decode_reservation(body: &[u8], default_ttl: ReservationTtl) -> Result<ReservationRequest, ApiError> {
    let body: ReservationBody =
        serde_json::from_slice(body).map_err(|error| ApiError::InvalidJson { message: error.to_string() })?;
    reservation_request(body, default_ttl)
}

async fn create_reservation(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiJson(body): ApiJson<ReservationBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ReservationRequest { reference, lines, ttl } = reservation_request(body, state.config.default_ttl)?;
    let outcome = state.store.reserve(&reference, &lines, ttl, state.clock.now()).await?;
    match outcome {
        ReserveOutcome::Created(record) => {
            tracing::info!(reference = %record.reference, items = record.items.len(), expires_at = %record.expires_at, "reserved");
            Ok((StatusCode::CREATED, Json(reservation_json(&record))))
        }
        ReserveOutcome::Existing(record) => {
            tracing::info!(reference = %record.reference, "reservation requested again: answered with the existing one");
            Ok((StatusCode::OK, Json(reservation_json(&record))))
        }
        ReserveOutcome::ReferenceConflict(record) => Err(ApiError::Conflict {
            code: "reference_conflict",
            message: format!("reference {} is already used by a reservation of other items", record.reference),
            details: Map::new(),
        }),
        ReserveOutcome::Rejected(validation) => Err(rejection(&validation)),
    }
}

/// 422 with every error when the cart cannot be ordered as written; 409 with every shortage otherwise.
fn rejection(validation: &CartValidation) -> ApiError {
    if !validation.errors.is_empty() {
        let errors: Vec<Value> = validation
            .errors
            .iter()
            .map(|error| {
                json!({ "code": error.code(), "message": error.to_string(), "line": error.line(),
                        "product": error.product(), "size": error.size() })
            })
            .collect();
        let message = validation.errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
        let mut details = Map::new();
        details.insert("errors".into(), Value::Array(errors));
        return ApiError::InvalidRequest { message, details };
    }
    let shortages: Vec<Value> = validation
        .shortages
        .iter()
        .map(|shortage| {
            json!({ "product": shortage.product, "size": shortage.size,
                    "requested": shortage.requested.get(), "available": shortage.available.get() })
        })
        .collect();
    let mut details = Map::new();
    details.insert("shortages".into(), Value::Array(shortages));
    ApiError::Conflict {
        code: "insufficient_stock",
        message: format!("{} size(s) do not have enough stock; nothing was reserved", validation.shortages.len()),
        details,
    }
}

async fn get_reservation(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.store.reservation(&reference).await? {
        Some(record) => Ok(Json(reservation_json(&record))),
        None => Err(not_found(&reference)),
    }
}

async fn release_reservation(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match state.store.release(&reference, state.clock.now()).await? {
        ReleaseOutcome::Released(record) => {
            tracing::info!(reference = %record.reference, "reservation released");
            Ok(Json(reservation_json(&record)))
        }
        ReleaseOutcome::Unchanged(record) => Ok(Json(reservation_json(&record))),
        ReleaseOutcome::AlreadyCommitted(record) => Err(ApiError::Conflict {
            code: "reservation_already_committed",
            message: format!("reservation {} was paid; its units stay sold", record.reference),
            details: Map::new(),
        }),
        ReleaseOutcome::NotFound => Err(not_found(&reference)),
    }
}

fn not_found(reference: &str) -> ApiError {
    ApiError::NotFound { code: "reservation_not_found", message: format!("no reservation has reference {reference:?}") }
}

fn reservation_json(record: &ReservationRecord) -> Value {
    let items: Vec<Value> = record
        .items
        .iter()
        .map(|item| json!({ "product": item.product, "size": item.size, "quantity": item.quantity.get() }))
        .collect();
    json!({
        "reference": record.reference,
        "status": record.status.as_str(),
        "createdAt": record.created_at.to_rfc3339(),
        "expiresAt": record.expires_at.to_rfc3339(),
        "items": items,
    })
}
