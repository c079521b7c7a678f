//! Ending abandoned checkouts at Stripe before their reservations are released: a PaymentIntent is canceled
//! (reason `abandoned`), a Checkout Session is expired. If Stripe says the payment already succeeded or is
//! processing, the reservation is left for the webhook instead of being released.

use std::time::Duration;

use async_trait::async_trait;
use stripe::{Client, ClientBuilder};
use stripe_checkout::checkout_session::{ExpireCheckoutSession, RetrieveCheckoutSession};
use stripe_core::payment_intent::{CancelPaymentIntent, CancelPaymentIntentCancellationReason, RetrievePaymentIntent};
use stripe_shared::{CheckoutSessionStatus, PaymentIntentStatus};

use crate::config::Secret;

/// Each call to Stripe gives up after this long; the reservation is then tried again at the next cleanup pass.
const STRIPE_TIMEOUT: Duration = Duration::from_secs(10);

/// What Stripe said about an abandoned checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutEnd {
    /// Canceled or expired at Stripe (now or before): the reservation can be released.
    Ended,
    /// The payment succeeded or is processing: keep the reservation for the webhook.
    PaymentUnderWay { status: String },
    /// The reference is not a Stripe object id (`pi_...`, `cs_...`): nothing to do at Stripe.
    NotStripe,
}

/// Why Stripe could not be asked; the reservation stays until the next pass.
#[derive(Debug, thiserror::Error)]
#[error("Stripe could not end checkout {reference}: {message}")]
pub struct CheckoutEndError {
    pub reference: String,
    pub message: String,
}

/// Ends abandoned checkouts at the payment provider.
#[async_trait]
pub trait CheckoutCanceller: Send + Sync + 'static {
    async fn end_checkout(&self, reference: &str) -> Result<CheckoutEnd, CheckoutEndError>;
}

/// The real Stripe API through async-stripe.
pub struct StripeCanceller {
    client: Client,
}

impl std::fmt::Debug for StripeCanceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeCanceller").finish_non_exhaustive()
    }
}

impl StripeCanceller {
    /// A client for `secret_key`, at Stripe's own URL or at `api_base` (a local fake in tests).
    pub fn new(secret_key: &Secret, api_base: Option<&str>) -> Result<Self, String> {
        let mut builder = ClientBuilder::new(secret_key.expose()).timeout(STRIPE_TIMEOUT);
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        let client = builder.build().map_err(|error| format!("cannot build the Stripe client: {error}"))?;
        Ok(StripeCanceller { client })
    }

    async fn cancel_payment_intent(&self, reference: &str) -> Result<CheckoutEnd, CheckoutEndError> {
        let failure = |message: String| CheckoutEndError { reference: reference.to_owned(), message };
        let cancel =
            CancelPaymentIntent::new(reference).cancellation_reason(CancelPaymentIntentCancellationReason::Abandoned);
        let cancel_error = match cancel.send(&self.client).await {
            Ok(_) => return Ok(CheckoutEnd::Ended),
            Err(error) => error.to_string(),
        };
        // A cancel refused for the PaymentIntent's state: ask what that state is.
        let intent = RetrievePaymentIntent::new(reference)
            .send(&self.client)
            .await
            .map_err(|error| failure(format!("cancel failed ({cancel_error}), then retrieve failed ({error})")))?;
        match intent.status {
            PaymentIntentStatus::Canceled => Ok(CheckoutEnd::Ended),
            PaymentIntentStatus::Succeeded | PaymentIntentStatus::Processing | PaymentIntentStatus::RequiresCapture => {
                Ok(CheckoutEnd::PaymentUnderWay { status: intent.status.as_str().to_owned() })
            }
            other => Err(failure(format!("cancel failed ({cancel_error}) with the PaymentIntent {}", other.as_str()))),
        }
    }

    async fn expire_checkout_session(&self, reference: &str) -> Result<CheckoutEnd, CheckoutEndError> {
        let failure = |message: String| CheckoutEndError { reference: reference.to_owned(), message };
        let expire_error = match ExpireCheckoutSession::new(reference).send(&self.client).await {
            Ok(_) => return Ok(CheckoutEnd::Ended),
            Err(error) => error.to_string(),
        };
        let session = RetrieveCheckoutSession::new(reference)
            .send(&self.client)
            .await
            .map_err(|error| failure(format!("expire failed ({expire_error}), then retrieve failed ({error})")))?;
        match session.status {
            Some(CheckoutSessionStatus::Expired) => Ok(CheckoutEnd::Ended),
            Some(CheckoutSessionStatus::Complete) => Ok(CheckoutEnd::PaymentUnderWay { status: "complete".to_owned() }),
            other => Err(failure(format!("expire failed ({expire_error}) with the session {other:?}"))),
        }
    }
}

#[async_trait]
impl CheckoutCanceller for StripeCanceller {
    async fn end_checkout(&self, reference: &str) -> Result<CheckoutEnd, CheckoutEndError> {
        if reference.starts_with("pi_") {
            self.cancel_payment_intent(reference).await
        } else if reference.starts_with("cs_") {
            self.expire_checkout_session(reference).await
        } else {
            Ok(CheckoutEnd::NotStripe)
        }
    }
}
