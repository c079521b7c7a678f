//! The one error type of the HTTP boundary: each variant has a status and a stable code, and answers with
//! `{ "error": code, "message": ..., ...details }`. Store failures are logged in full and answered with a bare
//! 500, so that nothing internal leaks to a client.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::store::StoreError;

/// An answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong bearer token")]
    Unauthorized,
    #[error("{setting} is not set: this API is disabled")]
    Disabled { code: &'static str, setting: &'static str },
    #[error("{message}")]
    InvalidJson { message: String },
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    InvalidRequest { message: String, details: Map<String, Value> },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String, details: Map<String, Value> },
    #[error("the sidecar is at its limit of requests in progress; retry in a second")]
    Overloaded,
    #[error("the request did not complete within {seconds} s")]
    RequestTimeout { seconds: u64 },
    #[error("the request body is over the limit of {limit_bytes} bytes")]
    BodyTooLarge { limit_bytes: usize },
    #[error("store failure: {0}")]
    Store(#[from] StoreError),
    /// A failure of the sidecar itself (not of the store): logged, answered 500 without details.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// 422 `invalid_request` with a message and no details.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError::InvalidRequest { message: message.into(), details: Map::new() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Disabled { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            ApiError::InvalidJson { .. } => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::InvalidRequest { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ApiError::NotFound { code, .. } => (StatusCode::NOT_FOUND, code),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ApiError::RequestTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::BodyTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::Store(StoreError::Busy(_)) => (StatusCode::SERVICE_UNAVAILABLE, "ledger_busy"),
            ApiError::Store(_) | ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Store(error @ StoreError::Busy(_)) => {
                tracing::warn!(error = %error, "the ledger stayed locked by another process; answered 503");
                "the ledger is busy; retry in a second (nothing was applied)".to_owned()
            }
            ApiError::Store(error) => {
                tracing::error!(error = %error, "store failure");
                "something went wrong on our side; the request was not applied".to_owned()
            }
            ApiError::Internal(error) => {
                tracing::error!(error = %error, "internal failure");
                "something went wrong on our side; the request was not applied".to_owned()
            }
            ApiError::Disabled { setting, .. } => {
                format!("{setting} is not configured on the sidecar, so this API is disabled")
            }
            other => other.to_string(),
        };
        let mut body = Map::new();
        body.insert("error".into(), json!(code));
        body.insert("message".into(), json!(message));
        let overloaded = matches!(self, ApiError::Overloaded | ApiError::Store(StoreError::Busy(_)));
        if let ApiError::InvalidRequest { details, .. } | ApiError::Conflict { details, .. } = self {
            body.extend(details);
        }
        let mut response = (status, Json(Value::Object(body))).into_response();
        if overloaded {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(error) => ApiError::invalid(error.body_text()),
            other => ApiError::InvalidJson { message: other.body_text() },
        }
    }
}

impl From<stock_wire::RequestError> for ApiError {
    fn from(error: stock_wire::RequestError) -> Self {
        match error {
            stock_wire::RequestError::InvalidJson(message) => ApiError::InvalidJson { message },
            stock_wire::RequestError::Invalid { message, reason } => {
                let mut details = Map::new();
                if let Some(reason) = reason {
                    details.insert("reason".into(), reason.into());
                }
                ApiError::InvalidRequest { message, details }
            }
        }
    }
}
