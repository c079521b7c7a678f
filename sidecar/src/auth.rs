//! Bearer-token checks for the /v1 API and the admin routes, as extractors that run before the body is read. Tokens are compared in constant time; a route whose
//! token is not configured answers 503 instead of being open.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::config::Secret;
use crate::error::ApiError;
use crate::http::AppState;

/// Which token a route requires.
#[derive(Debug, Clone, Copy)]
pub enum Realm {
    /// `SIDECAR_API_TOKEN`: the shop's server reserving and reading stock.
    Api,
    /// `ADMIN_API_TOKEN`: movements, cleanup and monitoring.
    Admin,
    /// `METRICS_TOKEN` (or `ADMIN_API_TOKEN` while it is unset): Prometheus's scrape of /metrics.
    Metrics,
}

/// Checks the `Authorization: Bearer <token>` header against the realm's configured token.
pub fn authorize(headers: &HeaderMap, configured: Option<&Secret>, realm: Realm) -> Result<(), ApiError> {
    let Some(secret) = configured else {
        return Err(match realm {
            Realm::Api => ApiError::Disabled { code: "api_disabled", setting: "SIDECAR_API_TOKEN" },
            Realm::Admin => ApiError::Disabled { code: "admin_disabled", setting: "ADMIN_API_TOKEN" },
            Realm::Metrics => ApiError::Disabled { code: "metrics_disabled", setting: "METRICS_TOKEN" },
        });
    };
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(token) if secret.matches(token) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Extracting this checks SIDECAR_API_TOKEN before anything else of the request is read.
#[derive(Debug, Clone, Copy)]
pub struct ApiCaller;

/// Extracting this checks ADMIN_API_TOKEN before anything else of the request is read.
#[derive(Debug, Clone, Copy)]
pub struct AdminCaller;

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authorize(&parts.headers, state.config.api_token.as_ref(), Realm::Api).map(|()| ApiCaller)
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authorize(&parts.headers, state.config.admin_token.as_ref(), Realm::Admin).map(|()| AdminCaller)
    }
}
