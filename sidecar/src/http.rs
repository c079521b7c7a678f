//! The HTTP surface: the state every handler reaches, the whole router with its layers (body limit, request
//! pools, request metrics), and the operations routes that belong to no resource: the probes, the OpenAPI
//! document and `/metrics`. The resources' routes live in `v1`, `admin` and `webhooks`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use tower_http::limit::RequestBodyLimitLayer;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Realm, authorize};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::ledger::Ledger;
use crate::limits::{self, Limits};
use crate::metrics::{self, Metrics};
use crate::openapi::{ApiDoc, ErrorBody};
use crate::stripe_api::CheckoutCanceller;
use crate::{admin, requests, v1, webhooks};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub ledger: Arc<Ledger>,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    /// Ends abandoned checkouts at Stripe before cleanup releases them; `None` without STRIPE_SECRET_KEY.
    pub checkouts: Option<Arc<dyn CheckoutCanceller>>,
    /// This process's counters and histograms, served at /metrics.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Every route with its documentation (see [`openapi`]).
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(serve_openapi))
        .merge(v1::router())
        .merge(admin::router())
        .merge(webhooks::router())
        .routes(routes!(scrape_metrics))
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let routes: Router<AppState> = api_routes().into();
    routes
        .layer(RequestBodyLimitLayer::new(limits::BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn_with_state(Limits::new(&state.config), limits::within_limits))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), requests::observe_request))
        .with_state(state)
}

/// The answer of `/healthz`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
}

/// The answer of `/readyz`. It needs no token, so it carries counts only: the last delivery error (with Payload's
/// URLs and document ids) is in the admin report.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `ready`
    pub status: &'static str,
    pub payload_projection: ProjectionReadiness,
}

/// How far behind Payload is, in counts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectionReadiness {
    /// Whether this sidecar projects into Payload (PAYLOAD_URL).
    pub enabled: bool,
    /// Changes not yet delivered (after coalescing).
    pub backlog: u64,
    /// Movements whose Payload document the stock-movements hook saves itself (not a backlog).
    pub awaiting_payload_save: u64,
    /// Undelivered changes whose delivery failed at least once.
    pub failing: u64,
    pub oldest_undelivered_age_seconds: Option<f64>,
}

impl From<admin::ProjectionStatus> for ProjectionReadiness {
    fn from(status: admin::ProjectionStatus) -> Self {
        ProjectionReadiness {
            enabled: status.enabled,
            backlog: status.backlog,
            awaiting_payload_save: status.awaiting_payload_save,
            failing: status.failing,
            oldest_undelivered_age_seconds: status.oldest_undelivered_age_seconds,
        }
    }
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Ready when the ledger answers; says in counts how far behind Payload is (a backlog does not make the sidecar
/// unready: reservations and webhooks work without Payload). Why a delivery fails is in the admin report.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, body = Readiness),
    (status = 500, description = "The ledger does not answer", body = ErrorBody),
    (status = 503, description = "ledger_busy", body = ErrorBody),
))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Readiness>, ApiError> {
    let now = state.clock.now();
    let figures = state.ledger.monitoring(now).await?;
    let payload_projection = admin::ProjectionStatus::new(state.config.payload.is_some(), &figures.outbox, now).into();
    Ok(Json(Readiness { status: "ready", payload_projection }))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses(
    (status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json", body = Object),
))]
async fn serve_openapi() -> axum::response::Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| document().to_pretty_json().unwrap_or_default());
    ([(axum::http::header::CONTENT_TYPE, "application/json")], text.as_str()).into_response()
}

/// The OpenAPI document of every route, as `/openapi.json` serves it.
pub fn document() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

/// `GET /metrics`: a bearer token, as Prometheus's `authorization` scrape setting sends it: METRICS_TOKEN, or
/// ADMIN_API_TOKEN while METRICS_TOKEN is unset. Never open: the counts tell a shop's sales volume.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(("metrics" = []), ("admin" = [])),
    responses(
        (status = 200, description = "Prometheus's text format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
        (status = 401, description = "unauthorized: the bearer token is not METRICS_TOKEN (or ADMIN_API_TOKEN while METRICS_TOKEN is unset)", body = ErrorBody),
        (status = 503, description = "metrics_disabled (neither token is set), overloaded or ledger_busy", body = ErrorBody),
    ))]
async fn scrape_metrics(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = state.config.metrics_token.as_ref().or(state.config.admin_token.as_ref());
    authorize(&headers, token, Realm::Metrics)?;
    let now = state.clock.now();
    let monitoring = state.ledger.monitoring(now).await?;
    let sizes = state.ledger.every_size(now).await?;
    let text = state
        .metrics
        .render(&metrics::LedgerFigures { now, monitoring: &monitoring, sizes: &sizes })
        .map_err(|error| ApiError::Internal(format!("cannot encode the metrics: {error}")))?;
    let mut response = text.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(metrics::CONTENT_TYPE));
    Ok(response)
}
