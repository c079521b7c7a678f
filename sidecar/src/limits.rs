//! Back-pressure at the HTTP boundary. Requests are served from three pools, so that one kind of traffic cannot
//! starve another: Stripe's webhook routes (public, since Stripe signs instead of sending a token), requests whose
//! bearer token is the shop's or the admin's (read from the headers, before any body), and the rest (readiness,
//! metrics, the OpenAPI document, and whatever an anonymous client sends, which is refused before its body is
//! read). `/healthz` takes no slot at all: a liveness probe answers whatever the pools hold. Beyond a pool's bound
//! the answer is 503 `overloaded` with Retry-After at once, instead of an unbounded queue.
//!
//! A body is read whole, within a short deadline (`BODY_READ_TIMEOUT_SECONDS`), before the request takes its place
//! in a pool: a client that sends headers and then nothing holds a connection (bounded by the listener) but no
//! request slot, and is answered 408 when its deadline passes. Each request then runs within
//! `REQUEST_TIMEOUT_SECONDS` (408 `request_timeout`: a stalled store cannot hold a slot forever). Bodies over the
//! limit are refused with 413 in the API's error shape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::config::{Config, Secret};
use crate::error::ApiError;

/// Request bodies above this are refused with 413: a cart or a Stripe event is a few kilobytes.
pub const BODY_LIMIT_BYTES: usize = 256 * 1024;

/// The routes Stripe posts to: a pool of their own.
const STRIPE_ROUTES: [&str; 2] = ["/webhooks/stripe", "/api/checkout/webhook"];
/// Liveness: no slot, no body, no store; it must answer while every pool is full.
const LIVENESS_ROUTE: &str = "/healthz";
/// The smallest Stripe and anonymous pools, whatever MAX_CONCURRENT_REQUESTS says.
const MIN_SIDE_POOL: usize = 16;

/// Which pool a request is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    /// The Stripe webhook routes.
    Stripe,
    /// A bearer token that is SIDECAR_API_TOKEN or ADMIN_API_TOKEN (METRICS_TOKEN is not: Prometheus shares the
    /// pool of the rest).
    Authenticated,
    /// Everything else.
    Anonymous,
}

/// The bounds every request runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    stripe: Arc<Semaphore>,
    authenticated: Arc<Semaphore>,
    anonymous: Arc<Semaphore>,
    /// The tokens that let a request into the authenticated pool (SIDECAR_API_TOKEN, ADMIN_API_TOKEN).
    tokens: Arc<[Secret]>,
    body_read_timeout: Duration,
    request_timeout: Duration,
}

impl Limits {
    /// The pools: MAX_CONCURRENT_REQUESTS for requests with a valid token, a quarter of it (16 at least) each for
    /// Stripe's routes and for anonymous requests.
    pub fn new(config: &Config) -> Self {
        let side = (config.max_concurrent_requests / 4).max(MIN_SIDE_POOL);
        let tokens: Vec<Secret> = [&config.api_token, &config.admin_token].into_iter().flatten().cloned().collect();
        Limits {
            stripe: Arc::new(Semaphore::new(side)),
            authenticated: Arc::new(Semaphore::new(config.max_concurrent_requests)),
            anonymous: Arc::new(Semaphore::new(side)),
            tokens: tokens.into(),
            body_read_timeout: config.body_read_timeout.min(config.request_timeout),
            request_timeout: config.request_timeout,
        }
    }

    /// The pool of a request, from its path and headers only.
    pub fn pool_of(&self, request: &Request) -> Pool {
        if STRIPE_ROUTES.contains(&request.uri().path()) {
            return Pool::Stripe;
        }
        let presented = request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        match presented {
            Some(token) if self.tokens.iter().any(|secret| secret.matches(token)) => Pool::Authenticated,
            _ => Pool::Anonymous,
        }
    }

    fn permits(&self, pool: Pool) -> &Arc<Semaphore> {
        match pool {
            Pool::Stripe => &self.stripe,
            Pool::Authenticated => &self.authenticated,
            Pool::Anonymous => &self.anonymous,
        }
    }
}

/// Runs a request within the limits. A request dropped at its deadline rolls back whatever transaction it had
/// open; one that committed just before answers 408 all the same, and its retry finds the first result (every
/// write is idempotent).
pub async fn within_limits(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    if request.uri().path() == LIVENESS_ROUTE {
        return next.run(request).await;
    }
    let started = Instant::now();
    let pool = limits.pool_of(&request);
    let path = request.uri().path().to_owned();
    // An anonymous request is refused before its body is read (every route that takes a body checks its token
    // or signature first), so its body is left unread; the others' bodies are read before they take a slot.
    let request = if pool == Pool::Anonymous {
        request
    } else {
        let (parts, body) = request.into_parts();
        let read = axum::body::to_bytes(body, BODY_LIMIT_BYTES);
        match tokio::time::timeout(limits.body_read_timeout, read).await {
            Ok(Ok(bytes)) => Request::from_parts(parts, Body::from(bytes)),
            Ok(Err(error)) if is_over_limit(&error) => {
                return ApiError::BodyTooLarge { limit_bytes: BODY_LIMIT_BYTES }.into_response();
            }
            Ok(Err(error)) => {
                tracing::debug!(path = %path, error = %error, "the client's body broke off");
                return ApiError::BadRequest { code: "invalid_body", message: "the request body broke off".to_owned() }
                    .into_response();
            }
            Err(_) => {
                tracing::warn!(path = %path, timeout_seconds = limits.body_read_timeout.as_secs_f64(),
                    "the request body did not arrive in time");
                return ApiError::RequestTimeout { seconds: limits.body_read_timeout.as_secs() }.into_response();
            }
        }
    };
    let Ok(_permit) = limits.permits(pool).clone().try_acquire_owned() else {
        tracing::warn!(pool = ?pool, "too many requests in progress: answered 503 overloaded");
        return ApiError::Overloaded.into_response();
    };
    let remaining = limits.request_timeout.saturating_sub(started.elapsed());
    let response = match tokio::time::timeout(remaining, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(path = %path, timeout_seconds = limits.request_timeout.as_secs(), "request timed out");
            return ApiError::RequestTimeout { seconds: limits.request_timeout.as_secs() }.into_response();
        }
    };
    // tower-http's body limit (which an anonymous request meets, its body being unread here) answers 413 in plain
    // text; say it in the API's shape.
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::BodyTooLarge { limit_bytes: BODY_LIMIT_BYTES }.into_response();
    }
    response
}

/// Whether reading a body failed because it is over the limit.
fn is_over_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}
