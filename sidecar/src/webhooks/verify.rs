//! Stripe signature verification on the raw request body. A [`VerifiedEvent`] can only be made here, so an
//! unverified payload cannot reach the ledger.

use stock_core::Timestamp;
use stripe_webhook::{Event, Webhook, WebhookError};

use crate::config::Secret;

/// A Stripe event whose signature matched one of the configured secrets within Stripe's 300 s tolerance.
#[derive(Debug)]
pub struct VerifiedEvent(Event);

impl VerifiedEvent {
    pub fn event(&self) -> &Event {
        &self.0
    }
}

/// Why a webhook request was refused before anything was stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the Stripe-Signature header is missing")]
    MissingSignature,
    #[error("the Stripe-Signature header is malformed")]
    MalformedSignature,
    #[error("no configured webhook secret matches the signature")]
    BadSignature,
    #[error("the signature's timestamp is more than 300 seconds from now (a replayed or delayed request)")]
    OutsideTolerance,
    #[error("the body is not UTF-8 JSON")]
    NotUtf8,
    #[error("the signature is valid but the body is not a Stripe event: {0}")]
    Unreadable(String),
}

/// Verifies `body` against `signature` (the `Stripe-Signature` header) with each secret in turn, at `now`.
pub fn verify(
    body: &[u8],
    signature: Option<&str>,
    secrets: &[Secret],
    now: Timestamp,
) -> Result<VerifiedEvent, VerifyError> {
    let signature = signature.ok_or(VerifyError::MissingSignature)?;
    let payload = std::str::from_utf8(body).map_err(|_| VerifyError::NotUtf8)?;
    let now_seconds = now.unix_millis().div_euclid(1000);
    let mut failure = VerifyError::BadSignature;
    for secret in secrets {
        match Webhook::construct_event_with_timestamp(payload, signature, secret.expose(), now_seconds) {
            Ok(event) => return Ok(VerifiedEvent(event)),
            // The next secret may be the one (rotation).
            Err(WebhookError::BadSignature | WebhookError::BadKey) => {}
            // The signature matched: what follows is final whatever the other secrets say.
            Err(WebhookError::BadTimestamp(_)) => return Err(VerifyError::OutsideTolerance),
            Err(WebhookError::BadParse(message)) => return Err(VerifyError::Unreadable(message)),
            Err(WebhookError::BadHeader(_)) => failure = VerifyError::MalformedSignature,
        }
    }
    Err(failure)
}
