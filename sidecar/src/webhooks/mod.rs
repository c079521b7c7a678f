//! Stripe webhooks: `POST /api/checkout/webhook` (the seed's path) and `POST /webhooks/stripe`. The signature is
//! verified on the raw body, the event is turned into one ledger action, and the event id and the action commit
//! together, so a redelivered event changes nothing. A store failure answers 500 so that Stripe retries.

pub use stock_wire::{CHECKOUT_MARKER, EventPolicy, VerifiedEvent, VerifyError, action_for, verify};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use stock_core::Timestamp;
use tracing::Instrument;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::http::AppState;
use crate::openapi::ErrorBody;
use crate::store::{EventOutcome, StripeAction, StripeEventRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(receive_stripe_event)).routes(routes!(receive_stripe_event_at_seed_path))
}

/// What a Stripe delivery did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// Always true.
    pub received: bool,
    pub event_id: String,
    /// The event was processed before: nothing changed.
    pub duplicate: bool,
    /// committed, committed_late, released, processing, unchanged, recorded (a refund or a dispute, on its
    /// payment), ignored, conflict or duplicate.
    pub outcome: &'static str,
    /// The PaymentIntent or Checkout Session the event is about (a money event's PaymentIntent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Why an ignored event was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// With outcome conflict: oversold, unknown_reference, unreadable_event, refunded_before_sale or
    /// sale_after_refund.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<&'static str>,
}

/// The seed's path for the same webhook (`POST /api/checkout/webhook`).
#[utoipa::path(post, path = "/api/checkout/webhook", tag = "stripe",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature of the raw body")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event, as Stripe sends it"),
    responses(
        (status = 200, body = WebhookAnswer),
        (status = 400, description = "invalid_signature: nothing was stored", body = ErrorBody),
        (status = 500, description = "internal_error: nothing was applied; Stripe retries", body = ErrorBody),
        (status = 503, description = "webhooks_disabled, overloaded or ledger_busy: Stripe retries", body = ErrorBody),
    ))]
async fn receive_stripe_event_at_seed_path(state: State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    receive_stripe_event(state, headers, body).await
}

/// A Stripe event: verified on the raw body against every STRIPE_WEBHOOK_SECRET, applied once by its id.
#[utoipa::path(post, path = "/webhooks/stripe", tag = "stripe",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature of the raw body")),
    request_body(content = Object, content_type = "application/json", description = "A Stripe event, as Stripe sends it"),
    responses(
        (status = 200, body = WebhookAnswer),
        (status = 400, description = "invalid_signature: nothing was stored", body = ErrorBody),
        (status = 500, description = "internal_error: nothing was applied; Stripe retries", body = ErrorBody),
        (status = 503, description = "webhooks_disabled, overloaded or ledger_busy: Stripe retries", body = ErrorBody),
    ))]
async fn receive_stripe_event(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if state.config.stripe_webhook_secrets.is_empty() {
        return ApiError::Disabled { code: "webhooks_disabled", setting: "STRIPE_WEBHOOK_SECRET" }.into_response();
    }
    let signature = headers.get("stripe-signature").and_then(|value| value.to_str().ok());
    let now = state.clock.now();
    let secrets: Vec<&str> = state.config.stripe_webhook_secrets.iter().map(|secret| secret.expose()).collect();
    let event = match verify(&body, signature, &secrets, now) {
        Ok(event) => event,
        Err(error) => {
            tracing::warn!(error = %error, "Stripe webhook refused");
            state.metrics.webhook_delivery("unverified", "rejected");
            return ApiError::BadRequest { code: "invalid_signature", message: error.to_string() }.into_response();
        }
    };
    let record = StripeEventRecord { id: event.id().to_owned(), kind: event.kind().to_owned() };
    let policy = EventPolicy {
        release_on_payment_failed: state.config.release_on_payment_failed,
        restock_on_full_refund: state.config.restock_on_full_refund,
    };
    let action = action_for(&event, policy);
    // Every line about the event, a store failure's included, names it and its reference.
    let span = tracing::info_span!("stripe_event", event_id = %record.id, event_type = %record.kind,
        reference = %action.reference().unwrap_or("-"));
    async move {
        match apply_event(&state, &record, &action, now).await {
            Ok(answer) => answer.into_response(),
            Err(error) => {
                state.metrics.webhook_delivery(&record.kind, "failed");
                error.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

/// Applies a verified event to the ledger, logs and counts what it did, and says it in the answer.
async fn apply_event(
    state: &AppState,
    record: &StripeEventRecord,
    action: &StripeAction,
    now: Timestamp,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let outcome = state.ledger.apply_stripe_event(record, action, now).await?;
    let counted = match &outcome {
        EventOutcome::Conflict { kind } => {
            match action {
                StripeAction::Unreadable { problem, .. } => tracing::error!(conflict = %kind, problem = %problem,
                    "a correctly signed Stripe event cannot be read: recorded as a conflict for an operator"),
                _ => tracing::error!(conflict = %kind, "Stripe event could not be applied as asked: conflict recorded"),
            }
            "conflict"
        }
        EventOutcome::Duplicate => {
            tracing::info!("Stripe event already processed: redelivery ignored");
            "duplicate"
        }
        EventOutcome::Ignored { reason } if *reason == crate::store::FOREIGN_PAYMENT => {
            tracing::debug!(reason = %reason, "Stripe event ignored");
            "ignored"
        }
        EventOutcome::Ignored { reason } => {
            tracing::info!(reason = %reason, "Stripe event ignored");
            "ignored"
        }
        EventOutcome::Recorded => {
            tracing::info!(
                payment_intent = action.reference().unwrap_or("-"),
                "refund or dispute recorded on its payment; stock unchanged"
            );
            "recorded"
        }
        other => {
            tracing::info!(outcome = %other.as_str(), "Stripe event applied");
            "applied"
        }
    };
    state.metrics.webhook_delivery(&record.kind, counted);

    Ok(Json(WebhookAnswer {
        received: true,
        event_id: record.id.clone(),
        duplicate: outcome == EventOutcome::Duplicate,
        outcome: outcome.as_str(),
        reference: action.reference().map(str::to_owned),
        reason: match outcome {
            EventOutcome::Ignored { reason } => Some(reason),
            _ => None,
        },
        conflict: match outcome {
            EventOutcome::Conflict { kind } => Some(kind),
            _ => None,
        },
    }))
}
