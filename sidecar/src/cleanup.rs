//! Releasing expired reservations: on a schedule beside the server, on demand through the admin route, and once
//! from the `cleanup` command. Availability never waits for it (an expired reservation stops counting at its
//! expiry instant); cleanup records the final `expired` state and keeps monitoring honest.

use std::time::Duration;

use tokio::sync::watch;

use crate::AppState;
use crate::store::StoreError;

/// After a failed pass, wait this long before the next one instead of the full interval.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(5);

/// Marks every reservation past its expiry as expired, logs each, and returns their references.
pub async fn release_expired_now(state: &AppState) -> Result<Vec<String>, StoreError> {
    let references = state.store.release_expired(state.clock.now()).await?;
    for reference in &references {
        tracing::info!(reference = %reference, "reservation expired and released");
    }
    Ok(references)
}

/// Runs [`release_expired_now`] every `interval` until `stop` turns true.
pub async fn run_schedule(state: AppState, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        let wait = match release_expired_now(&state).await {
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
