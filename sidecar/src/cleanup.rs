//! Releasing expired reservations: on a schedule beside the server, on demand through the admin route, and once
//! from the `cleanup` command. Availability never waits for it (an expired reservation stops counting at its
//! expiry instant); cleanup records the final `expired` state and keeps monitoring honest.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use stock_core::Timestamp;

use crate::clock::Clock;
use crate::ledger::Ledger;
use crate::store::StoreError;
use crate::stripe_api::{CheckoutCanceller, CheckoutEnd};

/// How many expired reservations one pass asks Stripe about (one call or two each).
const STRIPE_BATCH: u32 = 100;

/// After a failed pass, wait this long before the next one instead of the full interval.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// Processed Stripe event ids are forgotten after this long. Stripe retries a delivery for up to 3 days, so a
/// redelivery always finds its id.
const STRIPE_EVENT_RETENTION_MILLIS: i64 = 30 * 24 * 60 * 60 * 1000;

/// Marks every reservation past its expiry as expired, logs each, forgets Stripe event ids older than 30 days,
/// and returns the references released.
/// `checkouts`: what ends abandoned checkouts at Stripe first (none without STRIPE_SECRET_KEY).
pub async fn release_expired_now(
    ledger: &Ledger,
    now: Timestamp,
    checkouts: Option<&dyn CheckoutCanceller>,
) -> Result<Vec<String>, StoreError> {
    let references = match checkouts {
        None => ledger.release_expired(now).await?,
        Some(checkouts) => release_after_ending_checkouts(ledger, checkouts, now).await?,
    };
    for reference in &references {
        tracing::info!(reference = %reference, "reservation expired and released");
    }
    if let Some(cutoff) = now.checked_add_millis(-STRIPE_EVENT_RETENTION_MILLIS) {
        let pruned = ledger.prune_stripe_events(cutoff).await?;
        if pruned > 0 {
            tracing::info!(pruned, "forgot Stripe event ids older than 30 days");
        }
    }
    Ok(references)
}

/// Asks Stripe to end each expired checkout first, then releases the reservations Stripe confirms are over.
async fn release_after_ending_checkouts(
    ledger: &Ledger,
    checkouts: &dyn CheckoutCanceller,
    now: Timestamp,
) -> Result<Vec<String>, StoreError> {
    let mut released = Vec::new();
    for reference in ledger.expired_candidates(now, STRIPE_BATCH).await? {
        match checkouts.end_checkout(&reference).await {
            Ok(CheckoutEnd::Ended | CheckoutEnd::NotStripe) => {
                if ledger.expire_one(&reference, now).await? {
                    released.push(reference);
                }
            }
            Ok(CheckoutEnd::PaymentUnderWay { status }) => {
                tracing::info!(reference = %reference, stripe_status = %status,
                "expired reservation kept: its payment is under way at Stripe, the webhook will settle it")
            }
            Err(error) => tracing::warn!(error = %error, "expired reservation kept until the next cleanup pass"),
        }
    }
    Ok(released)
}

/// Runs [`release_expired_now`] every `interval` until `stop` turns true.
pub async fn run_schedule(
    (ledger, clock): (Arc<Ledger>, Arc<dyn Clock>),
    checkouts: Option<Arc<dyn CheckoutCanceller>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let wait = match release_expired_now(&ledger, clock.now(), checkouts.as_deref()).await {
            Ok(_) => interval,
            Err(error) => {
                tracing::error!(error = %error, "scheduled cleanup failed; retrying soon");
                RETRY_AFTER_ERROR.min(interval)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
