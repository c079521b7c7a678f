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
    })))
}

async fn clean_expired(State(state): State<AppState>, _caller: AdminCaller) -> Result<Json<Value>, ApiError> {
    let references = release_expired_now(&state).await?;
    Ok(Json(json!({ "released": references.len(), "references": references })))
}
