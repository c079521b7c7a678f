//! The seed's cron route, /api/admin/clean-expired-reservations (ADMIN_API_TOKEN): GET shows what an operator
//! watches, POST releases every expired reservation now.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::AdminCaller;
use crate::cleanup::release_expired_now;
use crate::error::ApiError;
use crate::store::OutboxStatus;
use stock_core::Timestamp;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/admin/clean-expired-reservations", get(monitoring).post(clean_expired))
}

async fn monitoring(State(state): State<AppState>, _caller: AdminCaller) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now();
    let figures = state.store.monitoring(now).await?;
    let oldest = figures.oldest_active.map(|oldest| {
        json!({
            "reference": oldest.reference,
            "createdAt": oldest.created_at.to_rfc3339(),
            "expiresAt": oldest.expires_at.to_rfc3339(),
            "ageSeconds": (now.unix_millis() - oldest.created_at.unix_millis()) / 1000,
        })
    });
    Ok(Json(json!({
        "now": now.to_rfc3339(),
        "activeReservations": figures.active_reservations,
        "reservedUnits": figures.reserved_units,
        "oldestActiveReservation": oldest,
        "expiredNotReleased": figures.expired_not_released,
        "openConflicts": figures.open_conflicts,
        "payloadProjection": projection_json(&state, &figures.outbox, now),
        "ledgerWrites": {
            "writes": figures.ledger_writes.writes,
            "commits": figures.ledger_writes.commits,
        },
    })))
}

/// How far Payload is behind the ledger, for the admin GET and /readyz.
pub(crate) fn projection_json(state: &AppState, outbox: &OutboxStatus, now: Timestamp) -> Value {
    json!({
        "enabled": state.config.payload.is_some(),
        "backlog": outbox.backlog,
        "awaitingPayloadSave": outbox.awaiting_payload_save,
        "oldestUndeliveredChangeAt": outbox.oldest_change_at.map(Timestamp::to_rfc3339),
        "oldestUndeliveredAgeSeconds":
            outbox.oldest_change_at.map(|oldest| (now.unix_millis() - oldest.unix_millis()).max(0) as f64 / 1000.0),
        "failing": outbox.failing,
        "lastError": outbox.last_error,
    })
}

async fn clean_expired(State(state): State<AppState>, _caller: AdminCaller) -> Result<Json<Value>, ApiError> {
    let references = release_expired_now(&state).await?;
    Ok(Json(json!({ "released": references.len(), "references": references })))
}
