//! Back-pressure at the HTTP boundary: a bound on the requests in progress (beyond it, 503 `overloaded` with
//! Retry-After at once, instead of an unbounded queue), a deadline on each request (408 `request_timeout`: a slow
//! client or a stalled store cannot hold a connection and its work forever), and the body-size limit's refusal in
//! the API's error shape.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The bounds every request runs under.
#[derive(Debug, Clone)]
pub struct Limits {
    permits: Arc<Semaphore>,
    timeout: Duration,
}

impl Limits {
    pub fn new(max_concurrent_requests: usize, timeout: Duration) -> Self {
        Limits { permits: Arc::new(Semaphore::new(max_concurrent_requests)), timeout }
    }
}

/// Runs a request within the limits. A request dropped at its deadline rolls back whatever transaction it had
/// open; one that committed just before answers 408 all the same, and its retry finds the first result (every
/// write is idempotent).
pub async fn within_limits(State(limits): State<Limits>, request: Request, next: Next) -> Response {
    let Ok(_permit) = limits.permits.clone().try_acquire_owned() else {
        tracing::warn!("too many requests in progress: answered 503 overloaded");
        return ApiError::Overloaded.into_response();
    };
    let path = request.uri().path().to_owned();
    let response = match tokio::time::timeout(limits.timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(path = %path, timeout_seconds = limits.timeout.as_secs(), "request timed out");
            return ApiError::RequestTimeout { seconds: limits.timeout.as_secs() }.into_response();
        }
    };
    // tower-http's body limit answers 413 in plain text; say it in the API's shape.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return ApiError::BodyTooLarge { limit_bytes: crate::BODY_LIMIT_BYTES }.into_response();
    }
    response
}
