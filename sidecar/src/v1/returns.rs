//! POST and GET /v1/reservations/{reference}/returns: units of a paid reservation coming back (returned,
//! returned damaged, cancelled before shipping), recorded once under the caller's return id, never more than the
//! reservation sold across all its returns.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};
use stock_core::{ErrorCode, ReturnError, SoldSize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AdminCaller, ApiCaller};
use crate::error::ApiError;
use crate::http::AppState;
use crate::json::ApiJson;
use crate::openapi::ErrorBody;
use crate::store::{ReturnOutcome, ReturnRecord};

use super::reservations::not_found;
use stock_wire::{ReturnBody, check_reference, return_request};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_returns, record_return))
}

/// A return as recorded.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReturnAnswer {
    pub reference: String,
    pub return_id: String,
    pub created_at: String,
    pub lines: Vec<ReturnLineAnswer>,
}

/// One line of a return.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnLineAnswer {
    pub product: String,
    pub size: String,
    pub quantity: u32,
    /// `returned`, `cancelled` or `damaged`.
    pub reason: &'static str,
    /// Units put back on sale by this line (a `return` movement): its quantity, or 0 for damaged units.
    pub restocked: u32,
}

/// A size the reservation sold, and what may still come back of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SoldSizeAnswer {
    pub product: String,
    pub size: String,
    pub sold: u32,
    /// Units its returns took back so far, damaged ones included.
    pub returned: u32,
    pub returnable: u32,
}

/// What recording a return did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordedReturn {
    /// False when this return was recorded before under its id: nothing changed.
    pub created: bool,
    #[serde(rename = "return")]
    pub recorded: ReturnAnswer,
    /// Each size the reservation sold, with what came back of it now.
    pub sold: Vec<SoldSizeAnswer>,
}

/// A paid reservation's returns and what may still come back.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReturnsAnswer {
    pub reference: String,
    /// The reservation's status: only a `committed` (paid) one sold units that may come back.
    pub status: &'static str,
    pub sold: Vec<SoldSizeAnswer>,
    /// Oldest first.
    pub returns: Vec<ReturnAnswer>,
}

/// A reservation's returns, and the units of each size that may still come back.
#[utoipa::path(get, path = "/v1/reservations/{reference}/returns", tag = "returns", security(("api" = [])),
    params(("reference" = String, Path, description = "The reservation's reference")),
    responses(
        (status = 200, body = ReturnsAnswer),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "reservation_not_found", body = ErrorBody),
        (status = 503, description = "api_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn list_returns(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
) -> Result<Json<ReturnsAnswer>, ApiError> {
    let Some(record) = state.ledger.reservation(&reference).await? else {
        return Err(not_found(&reference));
    };
    let mut returns = state.ledger.returns_of(&reference).await?;
    let sold = if record.status == stock_core::ReservationStatus::Committed {
        crate::store::sold_sizes(&record, &returns)
    } else {
        Vec::new()
    };
    returns.sort_by(|a, b| (a.created_at, &a.return_id).cmp(&(b.created_at, &b.return_id)));
    Ok(Json(ReturnsAnswer {
        reference,
        status: record.status.as_str(),
        sold: sold.iter().map(sold_json).collect(),
        returns: returns.iter().map(return_json).collect(),
    }))
}

/// Records a return (or a cancellation) of units a paid reservation sold: each line `returned` or `cancelled` is
/// put back on sale as a `return` movement (reference: the return id; order reference: the sale's order), each
/// `damaged` line is recorded without a movement. Nothing of a refused return is recorded.
#[utoipa::path(post, path = "/v1/reservations/{reference}/returns", tag = "returns", security(("admin" = [])),
    params(("reference" = String, Path, description = "The paid reservation's reference")),
    request_body = ReturnBody,
    responses(
        (status = 201, description = "Recorded", body = RecordedReturn),
        (status = 200, description = "The same return again under its id: nothing changed", body = RecordedReturn),
        (status = 400, description = "invalid_json", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "reservation_not_found", body = ErrorBody),
        (status = 409, description = "exceeds_returnable (more back than may still come back, with every size \
            concerned), reservation_not_sold (not paid) or return_id_conflict (the id names a return of other \
            lines)", body = ErrorBody),
        (status = 422, description = "invalid_request (with every problem: not_sold, invalid_quantity, \
            empty_return, too_many_lines, invalid_reason)", body = ErrorBody),
        (status = 503, description = "admin_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn record_return(
    State(state): State<AppState>,
    _caller: AdminCaller,
    Path(reference): Path<String>,
    ApiJson(body): ApiJson<ReturnBody>,
) -> Result<(StatusCode, Json<RecordedReturn>), ApiError> {
    check_reference(&reference, "reference")?;
    let request = return_request(body)?;
    match state.ledger.record_return(&reference, request, state.clock.now()).await? {
        ReturnOutcome::Recorded { record, sold } => {
            tracing::info!(reference = %reference, return_id = %record.return_id, lines = record.lines.len(),
                restocked = record.lines.iter().map(|line| line.restocked().get()).sum::<u32>(), "return recorded");
            Ok((StatusCode::CREATED, Json(recorded_json(true, &record, &sold))))
        }
        ReturnOutcome::Replayed { record, sold } => {
            tracing::info!(reference = %reference, return_id = %record.return_id, "return asked again: answered with the first");
            Ok((StatusCode::OK, Json(recorded_json(false, &record, &sold))))
        }
        ReturnOutcome::IdConflict(record) => Err(ApiError::Conflict {
            code: "return_id_conflict",
            message: format!(
                "return {} of reservation {reference} was recorded with other lines; use a new return id",
                record.return_id
            ),
            details: Map::from_iter([("return".to_owned(), json!(return_json(&record)))]),
        }),
        ReturnOutcome::NotFound => Err(not_found(&reference)),
        ReturnOutcome::NotSold(status) => Err(ApiError::Conflict {
            code: "reservation_not_sold",
            message: format!("reservation {reference} is {status}, not paid: it sold nothing that could come back"),
            details: Map::new(),
        }),
        ReturnOutcome::Refused(errors) => Err(refusal(&errors)),
    }
}

/// 409 `exceeds_returnable` when every problem is a size asked back beyond what may still come back (the ledger's
/// state refuses it), else 422 `invalid_request`; both with every problem.
fn refusal(errors: &[ReturnError]) -> ApiError {
    let listed: Vec<Value> = errors
        .iter()
        .map(|error| {
            let mut entry = json!({ "code": error.code(), "message": error.to_string() });
            match error {
                ReturnError::InvalidQuantity { line, .. }
                | ReturnError::ZeroQuantity { line }
                | ReturnError::NotSold { line, .. } => entry["line"] = json!(line),
                ReturnError::ExceedsReturnable { product, size, requested, returnable, sold } => {
                    entry["product"] = json!(product);
                    entry["size"] = json!(size);
                    entry["requested"] = json!(requested);
                    entry["returnable"] = json!(returnable.get());
                    entry["sold"] = json!(sold.get());
                }
                _ => {}
            }
            entry
        })
        .collect();
    let message = errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
    let details = Map::from_iter([("errors".to_owned(), Value::Array(listed))]);
    if errors.iter().all(|error| matches!(error, ReturnError::ExceedsReturnable { .. })) {
        ApiError::Conflict { code: "exceeds_returnable", message, details }
    } else {
        ApiError::InvalidRequest { message, details }
    }
}

fn recorded_json(created: bool, record: &ReturnRecord, sold: &[SoldSize]) -> RecordedReturn {
    RecordedReturn { created, recorded: return_json(record), sold: sold.iter().map(sold_json).collect() }
}

fn return_json(record: &ReturnRecord) -> ReturnAnswer {
    ReturnAnswer {
        reference: record.reference.clone(),
        return_id: record.return_id.clone(),
        created_at: record.created_at.to_rfc3339(),
        lines: record
            .lines
            .iter()
            .map(|line| ReturnLineAnswer {
                product: line.product.clone(),
                size: line.size.clone(),
                quantity: line.quantity.get(),
                reason: line.reason.as_str(),
                restocked: line.restocked().get(),
            })
            .collect(),
    }
}

fn sold_json(size: &SoldSize) -> SoldSizeAnswer {
    SoldSizeAnswer {
        product: size.product.clone(),
        size: size.size.clone(),
        sold: size.sold.get(),
        returned: size.returned.get(),
        returnable: size.returnable().get(),
    }
}
