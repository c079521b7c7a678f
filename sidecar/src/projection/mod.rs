//! The projection: Payload shows what the ledger holds. Every ledger change queues, in its own transaction, what
//! Payload must show (the outbox, see the store); the worker here delivers it through Payload's REST API: a
//! product's sizes (read, merged row by row, written back whole), one stock-movements document per ledger
//! movement, one stock-reservations document per reservation. Deliveries are idempotent, so a crash between a
//! write and its acknowledgement only repeats the write; failures retry with exponential backoff and jitter,
//! forever, lane by lane, so one failing product holds up nothing else.

pub mod payload;
pub mod sync;

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use stock_core::Timestamp;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::config::{PayloadConfig, ShopKind};
use crate::ledger::Ledger;
use crate::store::{LaneClaim, OutboxEntry, OutboxTopic, PaymentRecord, SizeRecord, StoreError};
use payload::{Created, PayloadClient, PayloadError};

/// Lanes delivered at the same time.
const PARALLEL_LANES: usize = 4;
/// Rows of one lane taken per pass.
const LANE_BATCH: u32 = 32;
/// The first retry waits about this long; each next one twice as long, up to the configured maximum.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// With nothing to deliver, the worker looks again after this long even if no change woke it (changes made by
/// another process, such as `stock-sidecar import`, or rows whose retry time came).
const IDLE_POLL: Duration = Duration::from_millis(500);

/// Why one delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Payload(#[from] PayloadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    NotInPayload(String),
}

/// Writes ledger figures into Payload.
#[derive(Clone)]
pub struct Projector {
    pub client: PayloadClient,
    pub config: PayloadConfig,
    pub ledger: Arc<Ledger>,
    pub clock: Arc<dyn Clock>,
    /// Names this process in its claims on outbox lanes: several sidecars on one ledger each deliver only the lanes
    /// they claimed.
    pub owner: Arc<str>,
}

/// A name for this process's claims, unique among the sidecars sharing a ledger: host, process id and the instant
/// the projector started.
fn claim_owner() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("{host}:{}:{started}", std::process::id())
}

impl std::fmt::Debug for Projector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projector").field("payload", &self.config.url).finish_non_exhaustive()
    }
}

/// The `payment` group of a stock-reservations document: what came back of the payment after the sale.
fn payment_document(payment: &PaymentRecord) -> Value {
    json!({
        "paymentIntent": payment.payment_intent,
        "amount": payment.money.amount,
        "refunded": payment.money.refunded,
        "dispute": payment.money.dispute.map(|state| state.as_str()),
    })
}

/// Whether a stock-reservations document shows `payment` already (a document without one shows no payment).
fn same_payment(document: &Value, payment: Option<&Value>) -> bool {
    let Some(payment) = payment else {
        return true;
    };
    let shown = document.get("payment");
    ["paymentIntent", "amount", "refunded", "dispute"].iter().all(|field| {
        let shown = shown.and_then(|shown| shown.get(*field)).unwrap_or(&Value::Null);
        let wanted = &payment[*field];
        shown == wanted || shown.as_f64().is_some_and(|number| Some(number) == wanted.as_f64())
    })
}

/// A ledger product id as Payload's relationship fields want it: a number for Payload's numeric ids (SQLite,
/// PostgreSQL serial), the text itself otherwise (MongoDB ObjectIds, UUIDs).
pub fn product_id_value(product: &str) -> Value {
    match product.parse::<i64>() {
        Ok(number) if number.to_string() == product => json!(number),
        _ => json!(product),
    }
}

/// Payload's sizes array with the ledger's figures written into it: every row keeps its id and every field the
/// plugin does not own; rows of sizes the ledger does not know stay as they are; ledger sizes Payload lacks are
/// appended. Returns the new array and whether anything changed.
pub fn merge_sizes(rows: &[Value], ledger: &[SizeRecord]) -> (Vec<Value>, bool) {
    let mut merged = Vec::with_capacity(rows.len().max(ledger.len()));
    let mut changed = false;
    let mut seen = vec![false; ledger.len()];
    for row in rows {
        let label = row.get("size").and_then(Value::as_str);
        let found = label.and_then(|label| ledger.iter().position(|record| record.size == label));
        let (Some(index), Some(mut fields)) = (found, row.as_object().cloned()) else {
            merged.push(row.clone());
            continue;
        };
        if seen[index] {
            // A second row with the same label: left alone (reconcile reports it).
            merged.push(row.clone());
            continue;
        }
        seen[index] = true;
        for (name, value) in figures(&ledger[index]) {
            if fields.get(name) != Some(&value) {
                changed = true;
                fields.insert(name.to_owned(), value);
            }
        }
        merged.push(Value::Object(fields));
    }
    for (record, _) in ledger.iter().zip(&seen).filter(|(_, seen)| !**seen) {
        let mut fields = Map::new();
        fields.insert("size".to_owned(), json!(record.size));
        fields.extend(figures(record).into_iter().map(|(name, value)| (name.to_owned(), value)));
        merged.push(Value::Object(fields));
        changed = true;
    }
    (merged, changed)
}

/// The fields of a stock-movements document that say what the movement was; a document under a movement's key
/// whose fields differ from the ledger's was not written from it.
const MOVEMENT_FIELDS: [&str; 6] = ["product", "size", "type", "quantity", "stockBefore", "stockAfter"];

/// Whether a stock-movements document says what the ledger's document of the same key says. Relationship ids
/// compare as text (Payload gives numbers or strings), numbers as numbers.
pub fn same_movement(document: &Value, ledger: &Value) -> bool {
    fn text(value: Option<&Value>) -> Option<String> {
        match value {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Number(number)) => number.as_f64().map(|number| number.to_string()),
            // A populated relationship: its id.
            Some(Value::Object(related)) => text(related.get("id")),
            _ => None,
        }
    }
    MOVEMENT_FIELDS.iter().all(|field| {
        let (shown, wanted) = (document.get(*field), ledger.get(*field));
        text(shown).is_some() && text(shown) == text(wanted)
    })
}

/// A Payload document's id as text.
fn existing_id(document: &Value) -> Option<String> {
    match document.get("id")? {
        Value::String(id) => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// The figures of one size as the plugin's fields name them.
pub fn figures(record: &SizeRecord) -> [(&'static str, Value); 5] {
    let level = &record.level;
    [
        ("stock", json!(level.stock().get())),
        ("reservedStock", json!(level.reserved().get())),
        ("lowStockThreshold", json!(level.low_stock_threshold().get())),
        ("availableStock", json!(level.available().get())),
        ("isLowStock", json!(level.is_low())),
    ]
}

impl Projector {
    pub fn new(config: PayloadConfig, ledger: Arc<Ledger>, clock: Arc<dyn Clock>) -> Result<Self, String> {
        Ok(Projector { client: PayloadClient::new(&config)?, config, ledger, clock, owner: claim_owner().into() })
    }

    /// Delivers one outbox row.
    pub async fn deliver(&self, entry: &OutboxEntry) -> Result<(), DeliveryError> {
        match entry.topic {
            OutboxTopic::Product => self.project_product(&entry.subject).await.map(|_| ()),
            OutboxTopic::Movement => match entry.subject.parse() {
                Ok(id) => self.project_movement(id).await.map(|_| ()),
                Err(_) => Err(StoreError::Inconsistent(format!("outbox movement id {:?}", entry.subject)).into()),
            },
            OutboxTopic::Reservation => self.project_reservation(&entry.subject).await,
        }
    }

    /// Writes the ledger's figures into the product's sizes; whether Payload needed the write.
    pub async fn project_product(&self, product: &str) -> Result<bool, DeliveryError> {
        let collection = &self.config.products_slug;
        let ledger = self.ledger.product_stock(product, self.clock.now()).await?;
        if self.config.shop == ShopKind::Ecommerce {
            return self.project_variants(product, &ledger).await;
        }
        let Some(document) = self.client.document(collection, product).await? else {
            return Err(DeliveryError::NotInPayload(format!(
                "product {product:?} is in the ledger but not in Payload's {collection:?} collection"
            )));
        };
        let rows = document.get("sizes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let (sizes, changed) = merge_sizes(rows, &ledger);
        if changed {
            self.client.update(collection, product, &json!({ "sizes": sizes })).await?;
        }
        Ok(changed)
    }

    /// Writes the ledger's figures into a shop on Payload's ecommerce plugin, through the payloadStock plugin's
    /// endpoint: each variant's (the size key is its id) and a product's own (the key `(no variant)`), `inventory`
    /// among them. Whether anything was written.
    async fn project_variants(&self, product: &str, ledger: &[SizeRecord]) -> Result<bool, DeliveryError> {
        let sizes: Vec<Value> = ledger
            .iter()
            .map(|record| {
                let mut size =
                    serde_json::Map::from_iter(figures(record).map(|(name, value)| (name.to_owned(), value)));
                size.insert("size".to_owned(), json!(record.size));
                Value::Object(size)
            })
            .collect();
        let answer =
            self.client.write_figures(&json!({ "product": product_id_value(product), "sizes": sizes })).await?;
        if !answer.missing.is_empty() {
            tracing::warn!(product = %product, missing = ?answer.missing,
                "the ledger has stock of variants (or of the product itself) that Payload has no document for: \
                 deleted in Payload? Their figures are not shown");
        }
        Ok(!answer.written.is_empty())
    }

    /// Makes Payload's stock-movements document of a ledger movement say what the ledger says: created when there is
    /// none, left alone when it matches (the plugin's hook saved it), rewritten when a document under the
    /// movement's key says something else. Whether Payload needed a write.
    pub async fn project_movement(&self, id: i64) -> Result<bool, DeliveryError> {
        let document = self.movement_document(id).await?;
        let collection = &self.config.movements_slug;
        // Looked up first, so that a document the plugin saved is never created again (Payload logs every refused
        // duplicate as an error).
        match self.client.find_one(collection, "idempotencyKey", &id.to_string()).await? {
            Some(existing) if same_movement(&existing, &document) => Ok(false),
            Some(existing) => {
                let Some(document_id) = existing_id(&existing) else {
                    return Err(PayloadError::Unexpected {
                        call: format!("GET /api/{collection}"),
                        problem: "a document without an id".to_owned(),
                    }
                    .into());
                };
                tracing::warn!(movement = id, document = %document_id,
                    "the stock-movements document under this movement's key does not say what the ledger says; \
                     rewriting it from the ledger");
                self.client.update(collection, &document_id, &document).await?;
                Ok(true)
            }
            None => Ok(self.client.create(collection, &document).await? == Created::Created),
        }
    }

    /// The stock-movements document of a ledger movement (the fields the payloadStock plugin declares), with
    /// Payload's relationship id and the ledger id as idempotencyKey.
    async fn movement_document(&self, id: i64) -> Result<Value, DeliveryError> {
        let Some(record) = self.ledger.movement(id).await? else {
            return Err(StoreError::Inconsistent(format!("movement {id} is queued but not in the ledger")).into());
        };
        let movement = &record.movement;
        Ok(json!({
            "product": product_id_value(&record.product),
            "size": record.size,
            "type": movement.kind.as_str(),
            "quantity": movement.quantity.get(),
            "stockBefore": movement.stock_before.get(),
            "stockAfter": movement.stock_after.get(),
            "reason": movement.details.reason,
            "reference": movement.details.reference,
            "orderReference": movement.details.order_reference,
            "date": movement.details.date.to_rfc3339(),
            "idempotencyKey": id.to_string(),
        }))
    }

    /// Creates or updates the stock-reservations document of a reservation, with what came back of its payment.
    pub async fn project_reservation(&self, reference: &str) -> Result<(), DeliveryError> {
        let Some(record) = self.ledger.reservation(reference).await? else {
            return Err(StoreError::Inconsistent(format!("reservation {reference} is queued but not stored")).into());
        };
        let payment = self.ledger.payment_of(reference).await?.map(|payment| payment_document(&payment));
        let collection = &self.config.reservations_slug;
        let status = record.status.as_str();
        let expires_at = record.expires_at.to_rfc3339();
        match self.client.find_one(collection, "reference", reference).await? {
            Some(document) => {
                let same_status = document.get("status").and_then(Value::as_str) == Some(status);
                let stored_expiry = document
                    .get("expiresAt")
                    .and_then(Value::as_str)
                    .and_then(|text| Timestamp::parse_rfc3339(text).ok());
                if same_status && stored_expiry == Some(record.expires_at) && same_payment(&document, payment.as_ref())
                {
                    return Ok(());
                }
                let id = match document.get("id") {
                    Some(Value::String(id)) => id.clone(),
                    Some(Value::Number(id)) => id.to_string(),
                    _ => {
                        return Err(PayloadError::Unexpected {
                            call: format!("GET /api/{collection}"),
                            problem: "a document without an id".to_owned(),
                        }
                        .into());
                    }
                };
                let mut changes = json!({ "status": status, "expiresAt": expires_at });
                if let Some(payment) = payment {
                    changes["payment"] = payment;
                }
                self.client.update(collection, &id, &changes).await?;
            }
            None => {
                let items: Vec<Value> = record
                    .items
                    .iter()
                    .map(|item| {
                        json!({ "product": product_id_value(&item.product), "size": item.size,
                            "quantity": item.quantity.get() })
                    })
                    .collect();
                let mut document = json!({ "reference": reference, "status": status, "expiresAt": expires_at,
                    "reservedAt": record.created_at.to_rfc3339(), "items": items });
                if let Some(payment) = payment {
                    document["payment"] = payment;
                }
                if let Created::AlreadyExists { .. } = self.client.create(collection, &document).await? {
                    // Created meanwhile by another replica or a restarted worker: the next attempt updates it.
                    return Err(DeliveryError::NotInPayload(format!(
                        "reservation {reference} was created in Payload meanwhile; updating it next"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Delivers one lane's rows in order if this process can claim the lane, stopping at the first failure (the
    /// lane then waits for its retry) or once half the claim's lease has passed (the rest goes in the next pass,
    /// well before another process could take the lane over).
    async fn deliver_lane(&self, lane: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let lease = millis(self.config.delivery_lease);
        let claim = LaneClaim { owner: self.owner.to_string(), until: now.checked_add_millis(lease).unwrap_or(now) };
        if !self.ledger.claim_lane(lane, &claim, now).await? {
            tracing::debug!(lane = %lane, "lane claimed by another sidecar; skipped");
            return Ok(());
        }
        let delivered = self.deliver_claimed_lane(lane, now.checked_add_millis(lease / 2).unwrap_or(now)).await;
        let released = self.ledger.release_lane(lane, &self.owner).await;
        delivered.and(released)
    }

    async fn deliver_claimed_lane(&self, lane: &str, stop_at: Timestamp) -> Result<(), StoreError> {
        for entry in self.ledger.lane_entries(lane, LANE_BATCH).await? {
            if self.clock.now() >= stop_at {
                tracing::info!(lane = %lane, "half the lane's lease has passed; the rest goes in the next pass");
                return Ok(());
            }
            match self.deliver(&entry).await {
                Ok(()) => {
                    if entry.attempts > 0 {
                        tracing::info!(lane = %lane, subject = %entry.subject, attempts = entry.attempts + 1,
                            "delivered to Payload after retries");
                    }
                    self.ledger.outbox_delivered(&entry).await?;
                }
                Err(error) => {
                    let attempts = entry.attempts.saturating_add(1);
                    let wait = retry_delay(attempts, self.config.retry_max, entry.id);
                    let retry_at = self.clock.now().checked_add_millis(millis(wait)).unwrap_or(self.clock.now());
                    tracing::warn!(lane = %lane, subject = %entry.subject, attempts, retry_in_ms = millis(wait),
                        error = %error, "delivery to Payload failed; will retry");
                    self.ledger.outbox_failed(&entry, &error.to_string(), retry_at).await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Delivers every due lane once, a few at a time; how many lanes there were.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        let lanes = self.ledger.due_lanes(self.clock.now(), (PARALLEL_LANES * 8) as u32).await?;
        let count = lanes.len();
        let mut lanes = lanes.into_iter();
        let mut running = tokio::task::JoinSet::new();
        let mut first_error = None;
        loop {
            while running.len() < PARALLEL_LANES
                && let Some(lane) = lanes.next()
            {
                let projector = self.clone();
                running.spawn(async move { projector.deliver_lane(&lane).await });
            }
            match running.join_next().await {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(error))) => first_error = first_error.or(Some(error)),
                Some(Err(panicked)) => {
                    first_error =
                        first_error.or(Some(StoreError::Inconsistent(format!("a delivery task failed: {panicked}"))))
                }
                None => break,
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(count),
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Exponential backoff with jitter: attempt n waits between half and all of min(FIRST_RETRY * 2^(n-1), max), so
/// that deliveries failing together do not retry together.
pub fn retry_delay(attempts: u32, max: Duration, salt: i64) -> Duration {
    let exponent = attempts.saturating_sub(1).min(20);
    let ceiling = FIRST_RETRY.saturating_mul(1 << exponent).min(max);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_i64(salt);
    hasher.write_u32(attempts);
    let fraction = (hasher.finish() % 1000) as f64 / 1000.0;
    ceiling.mul_f64(0.5 + fraction / 2.0)
}

/// Delivers the outbox until `stop` turns true, woken by `wakeup` whenever the store commits a change.
pub async fn run_worker(projector: Projector, wakeup: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    tracing::info!(payload = %projector.config.url, "projecting the ledger into Payload");
    loop {
        let wait = match projector.deliver_due().await {
            Ok(0) => IDLE_POLL,
            Ok(_) => Duration::ZERO,
            Err(error) => {
                tracing::error!(error = %error, "the projection cannot read the outbox; retrying");
                FIRST_RETRY
            }
        };
        if *stop.borrow() {
            return;
        }
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = wakeup.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stock_core::{Quantity, StockLevel};

    fn record(size: &str, stock: u32, reserved: u32, threshold: u32) -> SizeRecord {
        let quantity = |units| Quantity::new(units).expect("quantity");
        SizeRecord {
            size: size.to_owned(),
            level: StockLevel::new(quantity(stock), quantity(reserved), quantity(threshold)).expect("level"),
        }
    }

    #[test]
    fn merging_keeps_row_ids_other_fields_and_unknown_sizes() {
        let rows = vec![
            json!({ "id": "row-a", "size": "42", "color": "red", "stock": 1, "reservedStock": 0 }),
            json!({ "id": "row-b", "size": "43", "stock": 9 }),
        ];
        let (merged, changed) = merge_sizes(&rows, &[record("42", 5, 2, 3), record("44", 1, 0, 0)]);
        assert!(changed);
        assert_eq!(merged.len(), 3);
        assert_eq!(merged[0]["id"], "row-a");
        assert_eq!(merged[0]["color"], "red");
        assert_eq!(merged[0]["stock"], 5);
        assert_eq!(merged[0]["reservedStock"], 2);
        assert_eq!(merged[0]["availableStock"], 3);
        assert_eq!(merged[0]["isLowStock"], true);
        assert_eq!(merged[1], rows[1], "a size the ledger does not know is left alone");
        assert_eq!(merged[2]["size"], "44");
        assert!(merged[2].get("id").is_none(), "a new row gets its id from Payload");
    }

    #[test]
    fn merging_figures_payload_already_shows_changes_nothing() {
        let level = record("42", 5, 2, 1);
        let mut row = Map::new();
        row.insert("id".into(), json!("row-a"));
        row.insert("size".into(), json!("42"));
        row.extend(figures(&level).into_iter().map(|(name, value)| (name.to_owned(), value)));
        let (_, changed) = merge_sizes(&[Value::Object(row)], &[level]);
        assert!(!changed);
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_maximum() {
        let max = Duration::from_secs(60);
        for attempts in 1..30 {
            let delay = retry_delay(attempts, max, 7);
            let ceiling = FIRST_RETRY.saturating_mul(1 << attempts.saturating_sub(1).min(20)).min(max);
            assert!(delay >= ceiling / 2 && delay <= ceiling, "attempt {attempts}: {delay:?} vs {ceiling:?}");
        }
        assert!(retry_delay(30, max, 7) >= Duration::from_secs(30));
    }

    #[test]
    fn a_movement_document_matches_by_content_not_by_key() {
        let ledger = json!({ "product": 12, "size": "42", "type": "restock", "quantity": 5, "stockBefore": 0,
            "stockAfter": 5, "reason": "Delivery", "idempotencyKey": "7" });
        let saved = json!({ "id": 3, "product": 12, "size": "42", "type": "restock", "quantity": 5.0,
            "stockBefore": 0, "stockAfter": 5, "reason": "Delivery (typed in the panel)", "idempotencyKey": "7" });
        assert!(same_movement(&saved, &ledger));
        let mut as_text = saved.clone();
        as_text["product"] = json!("12");
        assert!(same_movement(&as_text, &ledger), "a relationship id as text is the same product");
        as_text["product"] = json!({ "id": "12", "title": "Runner" });
        assert!(same_movement(&as_text, &ledger), "a populated relationship is its id");
        let forged = json!({ "id": 4, "product": 12, "size": "42", "type": "adjustment", "quantity": -5,
            "stockBefore": 5, "stockAfter": 0, "idempotencyKey": "7" });
        assert!(!same_movement(&forged, &ledger));
        assert!(!same_movement(&json!({ "idempotencyKey": "7" }), &ledger), "an empty document is no match");
    }

    #[test]
    fn numeric_ids_become_numbers_for_relationships() {
        assert_eq!(product_id_value("12"), json!(12));
        assert_eq!(product_id_value("012"), json!("012"));
        assert_eq!(product_id_value("65f1c0ffee"), json!("65f1c0ffee"));
    }
}
