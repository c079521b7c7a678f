//! POST /v1/reservations, GET and DELETE /v1/reservations/{reference}: all items of a checkout or none, held until
//! they are paid, released or expire.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};
use stock_core::{CartValidation, ErrorCode};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{AdminCaller, ApiCaller};
use crate::error::ApiError;
use crate::http::AppState;
use crate::json::ApiJson;
use crate::openapi::ErrorBody;
use crate::store::{EventOutcome, PaymentRecord, ReleaseOutcome, ReservationRecord, ReserveOutcome};
use serde::Deserialize;
use stock_wire::{ReservationBody, ReservationRequest, check_reference, reservation_request};

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_reservation))
        .routes(routes!(get_reservation, release_reservation))
        .routes(routes!(commit_reservation))
}

/// A reservation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationAnswer {
    pub reference: String,
    /// `active`, `processing`, `committed`, `released` or `expired`.
    pub status: &'static str,
    pub created_at: String,
    pub expires_at: String,
    pub items: Vec<ReservedItemAnswer>,
    /// What came back of its payment after it was taken (refunds, a dispute), from Stripe's money events; `null`
    /// until one arrives (or, for a Checkout Session, until it completes). Money only: stock comes back through
    /// returns.
    pub payment: Option<PaymentAnswer>,
}

/// A payment's money after the sale, in the currency's smallest unit (cents).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentAnswer {
    pub payment_intent: String,
    /// The amount charged; 0 while no charge event told it.
    pub amount: u64,
    /// Refunded so far.
    pub refunded: u64,
    pub fully_refunded: bool,
    /// `open`, `won` or `lost`; `null` without a dispute.
    pub dispute: Option<&'static str>,
}

/// One size a reservation holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReservedItemAnswer {
    pub product: String,
    pub size: String,
    pub quantity: u32,
}

/// Reserves every line of a cart, or nothing.
#[utoipa::path(post, path = "/v1/reservations", tag = "reservations", security(("api" = [])),
    request_body = ReservationBody,
    responses(
        (status = 201, description = "Reserved", body = ReservationAnswer),
        (status = 200, description = "The same request again: the same reservation", body = ReservationAnswer),
        (status = 400, description = "invalid_json", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 409, description = "insufficient_stock (with every shortage) or reference_conflict", body = ErrorBody),
        (status = 413, description = "body_too_large", body = ErrorBody),
        (status = 422, description = "invalid_request (with every cart error)", body = ErrorBody),
        (status = 503, description = "api_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn create_reservation(
    State(state): State<AppState>,
    _caller: ApiCaller,
    ApiJson(body): ApiJson<ReservationBody>,
) -> Result<(StatusCode, Json<ReservationAnswer>), ApiError> {
    let ReservationRequest { reference, lines, ttl } = reservation_request(body, state.config.default_ttl)?;
    let outcome = state.ledger.reserve(&reference, &lines, ttl, state.clock.now()).await?;
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

/// A reservation and where it stands.
#[utoipa::path(get, path = "/v1/reservations/{reference}", tag = "reservations", security(("api" = [])),
    params(("reference" = String, Path, description = "The reservation's reference")),
    responses(
        (status = 200, body = ReservationAnswer),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "reservation_not_found", body = ErrorBody),
        (status = 503, description = "api_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn get_reservation(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
) -> Result<Json<ReservationAnswer>, ApiError> {
    let Some(record) = state.ledger.reservation(&reference).await? else {
        return Err(not_found(&reference));
    };
    let payment = state.ledger.payment_of(&reference).await?;
    Ok(Json(ReservationAnswer { payment: payment.as_ref().map(payment_json), ..reservation_json(&record) }))
}

/// Releases a reservation (idempotent: a released or expired one is answered as it is).
#[utoipa::path(delete, path = "/v1/reservations/{reference}", tag = "reservations", security(("api" = [])),
    params(("reference" = String, Path, description = "The reservation's reference")),
    responses(
        (status = 200, body = ReservationAnswer),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "reservation_not_found", body = ErrorBody),
        (status = 409, description = "reservation_already_committed: it was paid", body = ErrorBody),
        (status = 503, description = "api_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn release_reservation(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
) -> Result<Json<ReservationAnswer>, ApiError> {
    match state.ledger.release(&reference, state.clock.now()).await? {
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

/// A payment the shop saw succeed at Stripe.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct CommitBody {
    /// The order the sale belongs to (the sale movements' reason is `Order <orderReference>`): 1 to 255 visible
    /// ASCII characters.
    order_reference: Option<String>,
}

/// What the ledger did with a confirmed payment.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CommitAnswer {
    pub reference: String,
    /// `committed`, `committed_late` (it had expired or been released and was reserved again), `unchanged` (already
    /// sold, by the Stripe event or an earlier confirmation), `duplicate` (this confirmation was recorded before) or
    /// `conflict`.
    pub outcome: &'static str,
    /// `oversold` (paid, but the units were gone: an operator must act) or `unknown_reference` (nothing was
    /// reserved under it), when `outcome` is `conflict`.
    pub conflict: Option<&'static str>,
    /// The reservation as it stands now, when there is one.
    pub reservation: Option<ReservationAnswer>,
}

/// Sells a reservation whose payment the shop has seen succeed at Stripe (Payload's ecommerce plugin confirming an
/// order), as `payment_intent.succeeded` would: whichever comes first sells, exactly once.
#[utoipa::path(post, path = "/v1/reservations/{reference}/commit", tag = "reservations", security(("admin" = [])),
    params(("reference" = String, Path, description = "The reservation's reference: the PaymentIntent's id")),
    request_body = CommitBody,
    responses(
        (status = 200, body = CommitAnswer),
        (status = 400, description = "invalid_json", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "invalid_request", body = ErrorBody),
        (status = 503, description = "admin_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn commit_reservation(
    State(state): State<AppState>,
    _caller: AdminCaller,
    Path(reference): Path<String>,
    ApiJson(body): ApiJson<CommitBody>,
) -> Result<Json<CommitAnswer>, ApiError> {
    check_reference(&reference, "reference")?;
    if let Some(order) = &body.order_reference {
        check_reference(order, "orderReference")?;
    }
    let outcome = state.ledger.commit_confirmed_payment(&reference, body.order_reference, state.clock.now()).await?;
    match outcome {
        EventOutcome::Conflict { kind } => {
            tracing::error!(reference = %reference, conflict = %kind, "confirmed payment could not be sold as asked: conflict recorded");
        }
        ref other => tracing::info!(reference = %reference, outcome = %other.as_str(), "confirmed payment applied"),
    }
    let reservation = match state.ledger.reservation(&reference).await? {
        Some(record) => {
            let payment = state.ledger.payment_of(&reference).await?;
            Some(ReservationAnswer { payment: payment.as_ref().map(payment_json), ..reservation_json(&record) })
        }
        None => None,
    };
    Ok(Json(CommitAnswer {
        outcome: outcome.as_str(),
        conflict: match outcome {
            EventOutcome::Conflict { kind } => Some(kind),
            _ => None,
        },
        reference,
        reservation,
    }))
}

/// 404 `reservation_not_found`.
pub(super) fn not_found(reference: &str) -> ApiError {
    ApiError::NotFound { code: "reservation_not_found", message: format!("no reservation has reference {reference:?}") }
}

fn payment_json(record: &PaymentRecord) -> PaymentAnswer {
    PaymentAnswer {
        payment_intent: record.payment_intent.clone(),
        amount: record.money.amount,
        refunded: record.money.refunded,
        fully_refunded: record.money.is_fully_refunded(),
        dispute: record.money.dispute.map(|state| state.as_str()),
    }
}

/// A reservation as answered, without its payment (see [`payment_json`]).
fn reservation_json(record: &ReservationRecord) -> ReservationAnswer {
    ReservationAnswer {
        reference: record.reference.clone(),
        status: record.status.as_str(),
        created_at: record.created_at.to_rfc3339(),
        expires_at: record.expires_at.to_rfc3339(),
        items: record
            .items
            .iter()
            .map(|item| ReservedItemAnswer {
                product: item.product.clone(),
                size: item.size.clone(),
                quantity: item.quantity.get(),
            })
            .collect(),
        payment: None,
    }
}
