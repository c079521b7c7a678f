//! Low-stock alerts: every LOW_STOCK_CHECK_INTERVAL_SECONDS the sizes are compared with the stock state their last
//! alert recorded (stock-core's `StockState`: in stock, low, out of stock). Each crossing (down to the threshold,
//! down to zero, back up) is recorded once in the ledger, whatever the number of sidecars (a compare-and-set on the
//! size), logged as a structured event, and, with LOW_STOCK_WEBHOOK_URL set, posted as signed JSON, retried with
//! backoff until the webhook accepts it. Payload's `isLowStock` follows through the projection.
//!
//! A check sees the ledger as it stands, so availability that dips and recovers between two checks is not a
//! crossing; and a reservation that lapses counts at its expiry instant, written or not.

use std::sync::Arc;
use std::time::Duration;

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};
use stock_core::{StockState, Timestamp};
use tokio::sync::watch;

use crate::clock::Clock;
use crate::config::AlertWebhookConfig;
use crate::ledger::Ledger;
use crate::projection::retry_delay;
use crate::store::{StockAlert, StoreError, alert_crossings};

/// The header carrying the signature of an alert POST.
pub const SIGNATURE_HEADER: &str = "x-payload-stock-signature";
/// The header carrying the alert's id: a receiver that sees an id twice (a retry after a lost answer) drops it.
pub const ALERT_ID_HEADER: &str = "x-payload-stock-alert-id";

/// Alerts one delivery pass claims at most.
const DELIVERY_BATCH: u32 = 50;
/// How long a sidecar's claim on the alerts it is posting lasts; another sidecar takes over after that.
const DELIVERY_LEASE_MILLIS: i64 = 60_000;
/// The longest wait between two attempts at a failing alert.
const RETRY_MAX: Duration = Duration::from_secs(300);
/// A webhook that does not answer within this is a failed attempt.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a crossing into `state` is called in logs and in the webhook's `event`.
pub fn event_name(state: StockState) -> &'static str {
    match state {
        StockState::Low => "stock.low",
        StockState::OutOfStock => "stock.out",
        StockState::InStock => "stock.back_in_stock",
    }
}

/// Records and logs every crossing since the last check; returns the alerts this call recorded (a crossing
/// another sidecar recorded first is not among them).
/// `deliver`: whether the alerts wait for the alert webhook (LOW_STOCK_WEBHOOK_URL is set).
pub async fn check_stock_alerts(ledger: &Ledger, now: Timestamp, deliver: bool) -> Result<Vec<StockAlert>, StoreError> {
    let crossings = alert_crossings(ledger.every_size(now).await?, deliver);
    if crossings.is_empty() {
        return Ok(Vec::new());
    }
    let recorded = ledger.record_stock_alerts(crossings, now).await?;
    recorded.iter().for_each(log_alert);
    Ok(recorded)
}

fn log_alert(alert: &StockAlert) {
    let level = &alert.level;
    let (available, threshold) = (level.available().get(), level.low_stock_threshold().get());
    let fields = (alert.id, &alert.product, &alert.size, alert.previous.as_str(), event_name(alert.state()));
    let (id, product, size, previous, event) = fields;
    match alert.state() {
        StockState::InStock => tracing::info!(alert_id = id, %product, %size, event, previous_state = previous,
            available, threshold, "size back in stock"),
        StockState::Low => tracing::warn!(alert_id = id, %product, %size, event, previous_state = previous,
            available, threshold, "size low on stock"),
        StockState::OutOfStock => tracing::warn!(alert_id = id, %product, %size, event, previous_state = previous,
            available, threshold, "size out of stock"),
    }
}

/// The JSON an alert is posted as. `text` is a sentence a Slack incoming webhook shows as it is.
pub fn alert_body(alert: &StockAlert) -> Value {
    let level = &alert.level;
    let (available, threshold) = (level.available().get(), level.low_stock_threshold().get());
    let text = match alert.state() {
        StockState::Low => format!(
            "Low stock: product {} size {} has {available} available (threshold {threshold})",
            alert.product, alert.size
        ),
        StockState::OutOfStock => {
            format!("Out of stock: product {} size {} has none available", alert.product, alert.size)
        }
        StockState::InStock => format!(
            "Back in stock: product {} size {} has {available} available (threshold {threshold})",
            alert.product, alert.size
        ),
    };
    json!({
        "id": alert.id,
        "event": event_name(alert.state()),
        "product": alert.product,
        "size": alert.size,
        "state": alert.state().as_str(),
        "previousState": alert.previous.as_str(),
        "stock": level.stock().get(),
        "reservedStock": level.reserved().get(),
        "availableStock": available,
        "lowStockThreshold": threshold,
        "isLowStock": level.is_low(),
        "at": alert.created_at.to_rfc3339(),
        "text": text,
    })
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>`, as Stripe signs its webhooks.
pub fn signature(secret: &str, unix_seconds: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={unix_seconds},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Posts the alerts that are due to the webhook; returns how many it accepted.
pub async fn deliver_stock_alerts(
    ledger: &Ledger,
    clock: &dyn Clock,
    webhook: &AlertWebhookConfig,
    http: &reqwest::Client,
) -> Result<usize, StoreError> {
    let now = clock.now();
    let until = now.checked_add_millis(DELIVERY_LEASE_MILLIS).unwrap_or(now);
    let mut delivered = 0;
    for alert in ledger.claim_stock_alerts(now, until, DELIVERY_BATCH).await? {
        match post_alert(webhook, http, &alert, now).await {
            Ok(()) => {
                ledger.stock_alert_delivered(alert.id, clock.now()).await?;
                delivered += 1;
            }
            Err(error) => {
                let attempts = alert.attempts + 1;
                let delay = retry_delay(attempts, RETRY_MAX, alert.id);
                let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                let retry_at = clock.now().checked_add_millis(millis).unwrap_or(until);
                tracing::warn!(alert_id = alert.id, attempts, error = %error, retry_in_ms = millis,
                    "posting the stock alert failed; it will be retried");
                ledger.stock_alert_failed(alert.id, &error, retry_at).await?;
            }
        }
    }
    Ok(delivered)
}

async fn post_alert(
    webhook: &AlertWebhookConfig,
    http: &reqwest::Client,
    alert: &StockAlert,
    now: Timestamp,
) -> Result<(), String> {
    let body = serde_json::to_vec(&alert_body(alert)).map_err(|error| error.to_string())?;
    let signed = signature(webhook.secret.expose(), now.unix_millis() / 1000, &body);
    let response = http
        .post(webhook.url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signed)
        .header(ALERT_ID_HEADER, alert.id.to_string())
        .body(body)
        .send()
        .await
        // The URL stays out of the message (a Slack URL is itself a credential): it is logged and shown in the
        // admin report.
        .map_err(|error| format!("cannot reach LOW_STOCK_WEBHOOK_URL: {}", error.without_url()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    Err(format!("LOW_STOCK_WEBHOOK_URL answered {status}: {}", text.chars().take(200).collect::<String>()))
}

/// The HTTP client alert POSTs go through. It follows no redirect: a 3xx is a failed delivery, retried, never a
/// signed alert sent on to wherever the answer points.
pub fn webhook_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(WEBHOOK_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("stock-sidecar/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| format!("cannot build the HTTP client for LOW_STOCK_WEBHOOK_URL: {error}"))
}

/// Checks for crossings and posts the alerts every `interval` until `stop` turns true. A failed pass is logged
/// and the next one runs at the next interval.
pub async fn run_alerts(
    (ledger, clock): (Arc<Ledger>, Arc<dyn Clock>),
    webhook: Option<AlertWebhookConfig>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let deliver = webhook.is_some();
    let delivery = match webhook {
        Some(webhook) => match webhook_client() {
            Ok(http) => Some((webhook, http)),
            Err(error) => {
                tracing::error!(error = %error, "stock alerts are logged but not posted");
                None
            }
        },
        None => None,
    };
    if delivery.is_none() {
        tracing::info!("LOW_STOCK_WEBHOOK_URL is not set: stock alerts are logged (and flagged in Payload) only");
    }
    loop {
        if let Err(error) = check_stock_alerts(&ledger, clock.now(), deliver).await {
            tracing::error!(error = %error, "the stock alert check failed; next try at the next interval");
        }
        if let Some((webhook, http)) = &delivery
            && let Err(error) = deliver_stock_alerts(&ledger, clock.as_ref(), webhook, http).await
        {
            tracing::error!(error = %error, "posting stock alerts failed; next try at the next interval");
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
