//! The seed's cron route, /api/admin/clean-expired-reservations (ADMIN_API_TOKEN): GET shows what an operator
//! watches (reservations, the oldest of them, conflicts, each product's movements over a window, the projection),
//! POST releases every expired reservation now. `stock-sidecar stats` prints the same figures.

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use stock_core::Timestamp;

use crate::AppState;
use crate::auth::AdminCaller;
use crate::cleanup::release_expired_now;
use crate::error::ApiError;
use crate::store::{Monitoring, MovementTotal, OutboxStatus, Store, StoreError};

/// The window the movements are summed over when the request names none: the last 24 hours.
pub const DEFAULT_WINDOW_SECONDS: u32 = 86_400;
/// The longest window: 90 days.
pub const MAX_WINDOW_SECONDS: u32 = 90 * 86_400;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/admin/clean-expired-reservations", get(show_monitoring).post(clean_expired))
}

/// Everything the admin GET and `stats` show, read at one instant.
#[derive(Debug, Clone)]
pub struct MonitoringReport {
    pub now: Timestamp,
    pub figures: Monitoring,
    /// The window `movements` covers, in seconds back from `now`.
    pub window_seconds: u32,
    pub movements: Vec<MovementTotal>,
    /// Whether this sidecar projects into Payload (PAYLOAD_URL).
    pub payload_enabled: bool,
}

impl MonitoringReport {
    /// Reads the figures and the movements of the last `window_seconds` from `store`.
    pub async fn read(
        store: &dyn Store,
        now: Timestamp,
        window_seconds: u32,
        payload_enabled: bool,
    ) -> Result<Self, StoreError> {
        let figures = store.monitoring(now).await?;
        let since = Timestamp::from_unix_millis(now.unix_millis() - i64::from(window_seconds) * 1000)
            .map_err(|error| StoreError::Inconsistent(format!("the window's start: {error}")))?;
        let movements = store.movement_totals(since).await?;
        Ok(MonitoringReport { now, figures, window_seconds, movements, payload_enabled })
    }

    /// The report as the admin GET answers it (and `stats --json` prints it).
    pub fn to_json(&self) -> Value {
        let (now, figures) = (self.now, &self.figures);
        let oldest: Vec<Value> = figures
            .oldest_active
            .iter()
            .map(|oldest| {
                json!({
                    "reference": oldest.reference,
                    "status": oldest.status.as_str(),
                    "units": oldest.units,
                    "createdAt": oldest.created_at.to_rfc3339(),
                    "expiresAt": oldest.expires_at.to_rfc3339(),
                    "ageSeconds": (now.unix_millis() - oldest.created_at.unix_millis()) / 1000,
                })
            })
            .collect();
        let since = now.unix_millis() - i64::from(self.window_seconds) * 1000;
        json!({
            "now": now.to_rfc3339(),
            "activeReservations": figures.active_reservations,
            "reservedUnits": figures.reserved_units,
            "oldestActiveReservation": oldest.first(),
            "oldestActiveReservations": oldest,
            "expiredNotReleased": figures.expired_not_released,
            "openConflicts": figures.open_conflicts,
            "movements": {
                "windowSeconds": self.window_seconds,
                "since": Timestamp::from_unix_millis(since).map(Timestamp::to_rfc3339).ok(),
                "products": products_json(&self.movements),
            },
            "payloadProjection": projection_json(self.payload_enabled, &figures.outbox, now),
            "ledgerWrites": {
                "writes": figures.ledger_writes.writes,
                "commits": figures.ledger_writes.commits,
            },
        })
    }
}

/// Each product with its movements by type and the net change of its stock.
fn products_json(totals: &[MovementTotal]) -> Vec<Value> {
    let mut products: BTreeMap<&str, Vec<&MovementTotal>> = BTreeMap::new();
    for total in totals {
        products.entry(&total.product).or_default().push(total);
    }
    products
        .into_iter()
        .map(|(product, totals)| {
            let by_type: serde_json::Map<String, Value> = totals
                .iter()
                .map(|total| {
                    (total.kind.as_str().to_owned(), json!({ "movements": total.movements, "units": total.units }))
                })
                .collect();
            json!({
                "product": product,
                "movements": totals.iter().map(|total| total.movements).sum::<u64>(),
                "netUnits": totals.iter().map(|total| total.units).sum::<i64>(),
                "byType": by_type,
            })
        })
        .collect()
}

/// The window of a request's `windowSeconds` parameter, or the default.
fn window_from_query(query: Option<&str>) -> Result<u32, ApiError> {
    let mut window = DEFAULT_WINDOW_SECONDS;
    for (key, value) in query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
    {
        match key {
            "windowSeconds" => {
                window = value.parse().ok().filter(|seconds| (60..=MAX_WINDOW_SECONDS).contains(seconds)).ok_or_else(
                    || {
                        ApiError::invalid(format!(
                            "windowSeconds: {value:?} is not a whole number from 60 to {MAX_WINDOW_SECONDS}"
                        ))
                    },
                )?;
            }
            other => return Err(ApiError::invalid(format!("unknown query parameter {other:?} (only windowSeconds)"))),
        }
    }
    Ok(window)
}

async fn show_monitoring(
    State(state): State<AppState>,
    _caller: AdminCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let window = window_from_query(query.as_deref())?;
    let report =
        MonitoringReport::read(&*state.store, state.clock.now(), window, state.config.payload.is_some()).await?;
    Ok(Json(report.to_json()))
}

/// How far Payload is behind the ledger, for the admin GET and /readyz.
pub(crate) fn projection_json(enabled: bool, outbox: &OutboxStatus, now: Timestamp) -> Value {
    json!({
        "enabled": enabled,
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
