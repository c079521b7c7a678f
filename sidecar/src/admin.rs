//! The seed's cron route, /api/admin/clean-expired-reservations (ADMIN_API_TOKEN): GET shows what an operator
//! watches (reservations, the oldest of them, conflicts, each product's movements over a window, the projection),
//! POST releases every expired reservation now. `stock-sidecar stats` prints the same figures. The open conflicts
//! are listed at /api/admin/conflicts, and an operator resolves one with a note of what they did about it.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stock_core::Timestamp;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::AdminCaller;
use crate::cleanup::release_expired_now;
use crate::error::ApiError;
use crate::http::AppState;
use crate::json::ApiJson;
use crate::ledger::Ledger;
use crate::openapi::ErrorBody;
use crate::store::{
    CONFLICTS_LISTED, ConflictRecord, Monitoring, MovementTotal, OutboxStatus, ResolveOutcome, StoreError,
};

/// The window the movements are summed over when the request names none: the last 24 hours.
pub const DEFAULT_WINDOW_SECONDS: u32 = 86_400;
/// The longest window: 90 days.
pub const MAX_WINDOW_SECONDS: u32 = 90 * 86_400;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(show_monitoring, clean_expired))
        .routes(routes!(list_conflicts))
        .routes(routes!(resolve_conflict))
}

/// A conflict as the admin API shows it: what happened, when, to which reference, and what the ledger did.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictAnswer {
    pub id: i64,
    /// `oversold` (paid, but the units were gone: nothing sold), `unknown_reference` (a payment of the shop's
    /// checkout that nobody reserved: nothing sold) or `unreadable_event` (a signed event that could not be read:
    /// nothing applied).
    pub kind: String,
    /// The PaymentIntent or Checkout Session (`-` when the event could not say).
    pub reference: String,
    /// The Stripe event that caused it.
    pub event_id: String,
    pub created_at: String,
    /// What the ledger did and the figures behind it (an oversold payment's shortages).
    #[schema(value_type = ConflictDetails)]
    pub details: Value,
    pub resolved_at: Option<String>,
    /// The operator's note when resolving it.
    pub resolution: Option<String>,
}

impl From<&ConflictRecord> for ConflictAnswer {
    fn from(record: &ConflictRecord) -> Self {
        ConflictAnswer {
            id: record.id,
            kind: record.kind.clone(),
            reference: record.reference.clone(),
            event_id: record.event_id.clone(),
            created_at: record.created_at.to_rfc3339(),
            details: serde_json::from_str(&record.details).unwrap_or_else(|_| Value::String(record.details.clone())),
            resolved_at: record.resolved_at.map(Timestamp::to_rfc3339),
            resolution: record.resolution.clone(),
        }
    }
}

/// What the ledger did about a conflict, and the figures behind it. Only documents the shape: the answer is the
/// JSON the ledger recorded.
#[allow(dead_code)]
#[derive(Debug, ToSchema)]
#[schema(rename_all = "camelCase")]
pub struct ConflictDetails {
    /// What happened and what the ledger did, for a person.
    pub message: String,
    /// With unreadable_event: what could not be read.
    pub problem: Option<String>,
    /// With oversold: the status the reservation had when the payment came (expired, released).
    pub reservation_status: Option<String>,
    /// With oversold: every size that was short, with what the payment asked and what was available.
    #[schema(value_type = Option<Vec<crate::openapi::Shortage>>)]
    pub shortages: Option<Value>,
}

/// The open conflicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictList {
    /// Oldest first, 50 at most (resolve them to see the next).
    pub conflicts: Vec<ConflictAnswer>,
}

/// What resolving a conflict did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedConflict {
    /// It was resolved before: the first resolution stands.
    pub already_resolved: bool,
    pub conflict: ConflictAnswer,
}

/// An operator's resolution of a conflict.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolutionBody {
    /// What was done about it ("refunded the customer", "restocked 1 and shipped"): 1 to 500 characters.
    pub resolution: String,
}

/// What the admin GET answers (and `stats --json` prints).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringAnswer {
    pub now: String,
    /// Reservations holding units now (active and not past their expiry, or processing).
    pub active_reservations: u64,
    pub reserved_units: u64,
    /// The first of `oldestActiveReservations`.
    pub oldest_active_reservation: Option<OldestReservation>,
    /// The reservations holding units the longest, oldest first (10 at most).
    pub oldest_active_reservations: Vec<OldestReservation>,
    /// Past their expiry (they hold nothing) but not yet marked expired by cleanup.
    pub expired_not_released: u64,
    /// Conflicts from Stripe events (oversold, unknown_reference, unreadable_event, refunded_before_sale,
    /// sale_after_refund) not yet resolved.
    pub open_conflicts: u64,
    /// The oldest of them (50 at most), as /api/admin/conflicts lists them.
    pub conflicts: Vec<ConflictAnswer>,
    pub movements: MovementWindow,
    pub payload_projection: ProjectionStatus,
    pub stock_alerts: StockAlertsStatus,
    pub ledger_writes: LedgerWrites,
    pub payments: PaymentsAfterSale,
}

/// What came back of the shop's payments after the sale, all time, from Stripe's refund and dispute events (money
/// only: stock comes back through returns).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentsAfterSale {
    pub fully_refunded: u64,
    pub partially_refunded: u64,
    /// Disputes not yet decided.
    pub open_disputes: u64,
    pub lost_disputes: u64,
    pub won_disputes: u64,
}

/// How far the alert webhook (LOW_STOCK_WEBHOOK_URL) is behind.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StockAlertsStatus {
    /// Alerts the webhook has not accepted yet (0 without a webhook: alerts are then only logged).
    pub undelivered: u64,
    /// The error of the most recent failed post still pending.
    pub last_error: Option<String>,
}

/// A reservation holding units, in the monitoring list.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OldestReservation {
    pub reference: String,
    /// `active` or `processing` (a payment under way: held past the expiry).
    pub status: &'static str,
    /// Units held, all sizes together.
    pub units: u64,
    pub created_at: String,
    pub expires_at: String,
    pub age_seconds: i64,
}

/// Each product's movements over the window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MovementWindow {
    pub window_seconds: u32,
    /// The window's start.
    pub since: Option<String>,
    pub products: Vec<ProductMovements>,
}

/// One product's movements over the window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductMovements {
    pub product: String,
    pub movements: u64,
    /// The change of its stock over the window, all sizes together.
    pub net_units: i64,
    /// By movement type (sale, restock, return, adjustment); types without movements are left out.
    pub by_type: BTreeMap<String, TypeTotal>,
}

/// The movements of one type.
#[derive(Debug, Serialize, ToSchema)]
pub struct TypeTotal {
    pub movements: u64,
    /// The sum of their signed quantities (negative for sales).
    pub units: i64,
}

/// How far Payload is behind the ledger.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionStatus {
    /// Whether this sidecar projects into Payload (PAYLOAD_URL).
    pub enabled: bool,
    /// Changes not yet delivered (after coalescing).
    pub backlog: u64,
    /// Movements whose Payload document the stock-movements hook saves itself (not a backlog).
    pub awaiting_payload_save: u64,
    pub oldest_undelivered_change_at: Option<String>,
    pub oldest_undelivered_age_seconds: Option<f64>,
    /// Undelivered changes whose delivery failed at least once.
    pub failing: u64,
    pub last_error: Option<String>,
}

impl ProjectionStatus {
    pub fn new(enabled: bool, outbox: &OutboxStatus, now: Timestamp) -> Self {
        ProjectionStatus {
            enabled,
            backlog: outbox.backlog,
            awaiting_payload_save: outbox.awaiting_payload_save,
            oldest_undelivered_change_at: outbox.oldest_change_at.map(Timestamp::to_rfc3339),
            oldest_undelivered_age_seconds: outbox
                .oldest_change_at
                .map(|oldest| (now.unix_millis() - oldest.unix_millis()).max(0) as f64 / 1000.0),
            failing: outbox.failing,
            last_error: outbox.last_error.clone(),
        }
    }
}

/// Ledger writes and commits since this process opened the store.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerWrites {
    pub writes: u64,
    /// writes / commits is the group commit's batch size.
    pub commits: u64,
}

/// What the cleanup POST released.
#[derive(Debug, Serialize, ToSchema)]
pub struct CleanupAnswer {
    pub released: usize,
    pub references: Vec<String>,
}

/// Everything the admin GET and `stats` show, read at one instant.
#[derive(Debug, Clone)]
pub struct MonitoringReport {
    pub now: Timestamp,
    pub figures: Monitoring,
    /// The window `movements` covers, in seconds back from `now`.
    pub window_seconds: u32,
    pub movements: Vec<MovementTotal>,
    /// The oldest open conflicts.
    pub conflicts: Vec<ConflictRecord>,
    /// Whether this sidecar projects into Payload (PAYLOAD_URL).
    pub payload_enabled: bool,
}

impl MonitoringReport {
    /// Reads the figures and the movements of the last `window_seconds` from `ledger`.
    pub async fn read(
        ledger: &Ledger,
        now: Timestamp,
        window_seconds: u32,
        payload_enabled: bool,
    ) -> Result<Self, StoreError> {
        let figures = ledger.monitoring(now).await?;
        let since = Timestamp::from_unix_millis(now.unix_millis() - i64::from(window_seconds) * 1000)
            .map_err(|error| StoreError::Inconsistent(format!("the window's start: {error}")))?;
        let movements = ledger.movement_totals(since).await?;
        let conflicts = ledger.open_conflicts(CONFLICTS_LISTED).await?;
        Ok(MonitoringReport { now, figures, window_seconds, movements, conflicts, payload_enabled })
    }

    /// The report as the admin GET answers it (and `stats --json` prints it).
    pub fn answer(&self) -> MonitoringAnswer {
        let (now, figures) = (self.now, &self.figures);
        let oldest: Vec<OldestReservation> = figures
            .oldest_active
            .iter()
            .map(|oldest| OldestReservation {
                reference: oldest.reference.clone(),
                status: oldest.status.as_str(),
                units: oldest.units,
                created_at: oldest.created_at.to_rfc3339(),
                expires_at: oldest.expires_at.to_rfc3339(),
                age_seconds: (now.unix_millis() - oldest.created_at.unix_millis()) / 1000,
            })
            .collect();
        let since = now.unix_millis() - i64::from(self.window_seconds) * 1000;
        MonitoringAnswer {
            now: now.to_rfc3339(),
            active_reservations: figures.active_reservations,
            reserved_units: figures.reserved_units,
            oldest_active_reservation: oldest.first().cloned(),
            oldest_active_reservations: oldest,
            expired_not_released: figures.expired_not_released,
            open_conflicts: figures.open_conflicts,
            conflicts: self.conflicts.iter().map(ConflictAnswer::from).collect(),
            movements: MovementWindow {
                window_seconds: self.window_seconds,
                since: Timestamp::from_unix_millis(since).map(Timestamp::to_rfc3339).ok(),
                products: products_of(&self.movements),
            },
            payload_projection: ProjectionStatus::new(self.payload_enabled, &figures.outbox, now),
            stock_alerts: StockAlertsStatus {
                undelivered: figures.alerts.undelivered,
                last_error: figures.alerts.last_error.clone(),
            },
            ledger_writes: LedgerWrites {
                writes: figures.ledger_writes.writes,
                commits: figures.ledger_writes.commits,
            },
            payments: PaymentsAfterSale {
                fully_refunded: figures.payments.fully_refunded,
                partially_refunded: figures.payments.partially_refunded,
                open_disputes: figures.payments.open_disputes,
                lost_disputes: figures.payments.lost_disputes,
                won_disputes: figures.payments.won_disputes,
            },
        }
    }

    /// [`MonitoringReport::answer`] as JSON.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.answer()).unwrap_or(Value::Null)
    }
}

/// Each product with its movements by type and the net change of its stock.
fn products_of(totals: &[MovementTotal]) -> Vec<ProductMovements> {
    let mut products: BTreeMap<&str, Vec<&MovementTotal>> = BTreeMap::new();
    for total in totals {
        products.entry(&total.product).or_default().push(total);
    }
    products
        .into_iter()
        .map(|(product, totals)| ProductMovements {
            product: product.to_owned(),
            movements: totals.iter().map(|total| total.movements).sum(),
            net_units: totals.iter().map(|total| total.units).sum(),
            by_type: totals
                .iter()
                .map(|total| {
                    (total.kind.as_str().to_owned(), TypeTotal { movements: total.movements, units: total.units })
                })
                .collect(),
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

/// Monitoring: reservations and the oldest of them, conflicts, each product's movements over a window, how far
/// Payload is behind.
#[utoipa::path(get, path = "/api/admin/clean-expired-reservations", tag = "operations",
    security(("admin" = [])),
    params(("windowSeconds" = Option<u32>, Query,
        description = "The window of `movements`, in seconds back from now: 60 to 7776000 (90 days); default 86400")),
    responses(
        (status = 200, body = MonitoringAnswer),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 422, description = "invalid_request: a bad windowSeconds or an unknown parameter", body = ErrorBody),
        (status = 503, description = "admin_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn show_monitoring(
    State(state): State<AppState>,
    _caller: AdminCaller,
    RawQuery(query): RawQuery,
) -> Result<Json<MonitoringAnswer>, ApiError> {
    let window = window_from_query(query.as_deref())?;
    let report =
        MonitoringReport::read(&state.ledger, state.clock.now(), window, state.config.payload.is_some()).await?;
    Ok(Json(report.answer()))
}

/// Releases every expired reservation now (the cron route).
#[utoipa::path(post, path = "/api/admin/clean-expired-reservations", tag = "operations",
    security(("admin" = [])),
    responses(
        (status = 200, body = CleanupAnswer),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 503, description = "admin_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn clean_expired(State(state): State<AppState>, _caller: AdminCaller) -> Result<Json<CleanupAnswer>, ApiError> {
    let references = release_expired_now(&state.ledger, state.clock.now(), state.checkouts.as_deref()).await?;
    Ok(Json(CleanupAnswer { released: references.len(), references }))
}

/// The open conflicts, oldest first: what happened, when, to which reference, and what the ledger did.
#[utoipa::path(get, path = "/api/admin/conflicts", tag = "operations",
    security(("admin" = [])),
    responses(
        (status = 200, body = ConflictList),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 503, description = "admin_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn list_conflicts(State(state): State<AppState>, _caller: AdminCaller) -> Result<Json<ConflictList>, ApiError> {
    let conflicts = state.ledger.open_conflicts(CONFLICTS_LISTED).await?;
    Ok(Json(ConflictList { conflicts: conflicts.iter().map(ConflictAnswer::from).collect() }))
}

/// Marks a conflict resolved with a note of what was done about it. Resolving it again changes nothing and
/// answers the first resolution.
#[utoipa::path(post, path = "/api/admin/conflicts/{id}/resolve", tag = "operations",
    security(("admin" = [])),
    params(("id" = i64, Path, description = "The conflict's id")),
    request_body = ResolutionBody,
    responses(
        (status = 200, body = ResolvedConflict),
        (status = 400, description = "invalid_json", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "conflict_not_found", body = ErrorBody),
        (status = 422, description = "invalid_request: an empty or too long resolution", body = ErrorBody),
        (status = 503, description = "admin_disabled, overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn resolve_conflict(
    State(state): State<AppState>,
    _caller: AdminCaller,
    axum::extract::Path(id): axum::extract::Path<String>,
    ApiJson(body): ApiJson<ResolutionBody>,
) -> Result<Json<ResolvedConflict>, ApiError> {
    let not_found =
        || ApiError::NotFound { code: "conflict_not_found", message: format!("there is no conflict {id:?}") };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let resolution = body.resolution.trim();
    if resolution.is_empty() {
        return Err(ApiError::invalid("resolution: say what was done about the conflict (1 to 500 characters)"));
    }
    stock_core::check_reason(resolution).map_err(|error| ApiError::invalid(format!("resolution: {error}")))?;
    match state.ledger.resolve_conflict(id, resolution, state.clock.now()).await? {
        ResolveOutcome::Resolved(record) => {
            tracing::info!(conflict = id, kind = %record.kind, reference = %record.reference, "conflict resolved");
            Ok(Json(ResolvedConflict { already_resolved: false, conflict: (&record).into() }))
        }
        ResolveOutcome::AlreadyResolved(record) => {
            Ok(Json(ResolvedConflict { already_resolved: true, conflict: (&record).into() }))
        }
        ResolveOutcome::NotFound => Err(not_found()),
    }
}
