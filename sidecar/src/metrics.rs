//! Prometheus metrics, rendered in the Prometheus text format (0.0.4) for `GET /metrics` (served in `http`). This
//! registry knows nothing of HTTP. Two kinds:
//! - this process's counters and histograms (reservations created, committed, released and expired; conflicts by
//!   kind; Stripe events by type and outcome; HTTP latency by route; store latency by operation), which a
//!   Prometheus sums over the replicas;
//! - the ledger's figures, read from the store at each scrape (active reservations, reserved units, outbox backlog
//!   and its oldest undelivered age, sizes low and out of stock), which are the same from every replica of one
//!   ledger (take their `max`, not their `sum`).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use stock_core::{StockState, Timestamp};

use crate::store::{EventOutcome, LedgerSize, Monitoring, MovementOutcome, ReleaseOutcome, ReserveOutcome};

/// The prefix of every metric name.
const PREFIX: &str = "payload_stock";

/// The kinds of `conflicts_total`.
const CONFLICT_KINDS: [&str; 8] = [
    "insufficient_stock",
    "reference_conflict",
    "stale_stock",
    "reservation_already_committed",
    "oversold",
    "unknown_reference",
    "refunded_before_sale",
    "sale_after_refund",
];

/// The media type of what [`Metrics::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReservationLabels {
    /// `created`, `committed`, `released` or `expired`.
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConflictLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    /// The Stripe event type; `unverified` for a request refused before its signature was checked good (its
    /// content is never read).
    r#type: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// One of [`KNOWN_METHODS`], or `other`: a made-up method must not create a series of its own.
    method: &'static str,
    /// The route's template (`/v1/reservations/{reference}`), never the path itself, so that references and
    /// product ids do not become label values; `unmatched` for paths no route serves.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: &'static str,
    /// `ok`, or `error` for a failure of the store itself (a refused request is `ok`).
    result: &'static str,
}

type HistogramFamily<Labels> = Family<Labels, Histogram, fn() -> Histogram>;

/// This process's metrics. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reservations: Family<ReservationLabels, Counter>,
    conflicts: Family<ConflictLabels, Counter>,
    webhook_events: Family<WebhookLabels, Counter>,
    http_requests: HistogramFamily<HttpLabels>,
    store_operations: HistogramFamily<StoreLabels>,
    stock_alerts: Family<StockAlertLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StockAlertLabels {
    /// The state crossed into: `low`, `out_of_stock` or `in_stock`.
    state: &'static str,
}

fn http_histogram() -> Histogram {
    // 0.5 ms to about 30 s.
    Histogram::new(exponential_buckets(0.0005, 2.5, 13))
}

fn store_histogram() -> Histogram {
    // 50 us to about 3 s.
    Histogram::new(exponential_buckets(0.00005, 2.5, 13))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let reservations = Family::<ReservationLabels, Counter>::default();
        registry.register(
            "reservations",
            "Reservations by what happened to them in this process: created, committed (sold), released, expired",
            reservations.clone(),
        );
        let conflicts = Family::<ConflictLabels, Counter>::default();
        registry.register(
            "conflicts",
            "Requests and Stripe events the ledger could not apply as asked, by kind (insufficient_stock, \
             reference_conflict, stale_stock, reservation_already_committed, oversold, unknown_reference, \
             refunded_before_sale, sale_after_refund)",
            conflicts.clone(),
        );
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhook_events",
            "Stripe webhook deliveries by event type and outcome (applied, recorded: a refund or dispute, duplicate, \
             ignored, conflict, rejected, failed)",
            webhook_events.clone(),
        );
        let http_requests: HistogramFamily<HttpLabels> = Family::new_with_constructor(http_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its answer, by method, route and status",
            Unit::Seconds,
            http_requests.clone(),
        );
        let store_operations: HistogramFamily<StoreLabels> = Family::new_with_constructor(store_histogram);
        registry.register_with_unit(
            "store_operation_duration",
            "Time the ledger took for each operation (a decision includes its durable commit)",
            Unit::Seconds,
            store_operations.clone(),
        );
        let stock_alerts = Family::<StockAlertLabels, Counter>::default();
        registry.register(
            "stock_alerts",
            "Crossings of a size's stock state recorded by this process, by the state crossed into (low, \
             out_of_stock, in_stock)",
            stock_alerts.clone(),
        );
        let build_info = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        build_info.get_or_create(&[("version", env!("CARGO_PKG_VERSION"))]).set(1);
        registry.register("build_info", "The running stock-sidecar's version (always 1)", build_info);
        // Every series of a bounded label starts at 0, so that rate() and alert rules see it before its first event.
        for event in ["created", "committed", "released", "expired"] {
            reservations.get_or_create(&ReservationLabels { event }).inc_by(0);
        }
        for kind in CONFLICT_KINDS {
            conflicts.get_or_create(&ConflictLabels { kind }).inc_by(0);
        }
        for state in [StockState::Low, StockState::OutOfStock, StockState::InStock] {
            stock_alerts.get_or_create(&StockAlertLabels { state: state.as_str() }).inc_by(0);
        }
        Metrics { registry, reservations, conflicts, webhook_events, http_requests, store_operations, stock_alerts }
    }

    fn reservation(&self, event: &'static str, count: u64) {
        if count > 0 {
            self.reservations.get_or_create(&ReservationLabels { event }).inc_by(count);
        }
    }

    fn conflict(&self, kind: &'static str) {
        self.conflicts.get_or_create(&ConflictLabels { kind }).inc();
    }

    /// Counts what a reservation request did.
    pub fn reserved(&self, outcome: &ReserveOutcome) {
        match outcome {
            ReserveOutcome::Created(_) => self.reservation("created", 1),
            ReserveOutcome::ReferenceConflict(_) => self.conflict("reference_conflict"),
            ReserveOutcome::Rejected(validation) if !validation.shortages.is_empty() => {
                self.conflict("insufficient_stock")
            }
            ReserveOutcome::Existing(_) | ReserveOutcome::Rejected(_) => {}
        }
    }

    /// Counts what a release request did.
    pub fn released(&self, outcome: &ReleaseOutcome) {
        match outcome {
            ReleaseOutcome::Released(_) => self.reservation("released", 1),
            ReleaseOutcome::AlreadyCommitted(_) => self.conflict("reservation_already_committed"),
            ReleaseOutcome::Unchanged(_) | ReleaseOutcome::NotFound => {}
        }
    }

    /// Counts reservations that cleanup marked expired.
    pub fn expired(&self, count: usize) {
        self.reservation("expired", count as u64);
    }

    /// Counts what a movement request did.
    pub fn movement(&self, outcome: &MovementOutcome) {
        match outcome {
            MovementOutcome::StaleStock { .. } => self.conflict("stale_stock"),
            MovementOutcome::ReferenceConflict(_) => self.conflict("reference_conflict"),
            _ => {}
        }
    }

    /// Counts what applying a Stripe event did to the ledger.
    pub fn stripe_event_applied(&self, outcome: &EventOutcome) {
        match outcome {
            EventOutcome::Committed { .. } => self.reservation("committed", 1),
            EventOutcome::Released => self.reservation("released", 1),
            EventOutcome::Conflict { kind } => self.conflict(kind),
            EventOutcome::Duplicate
            | EventOutcome::Processing
            | EventOutcome::Unchanged { .. }
            | EventOutcome::Recorded
            | EventOutcome::Ignored { .. } => {}
        }
    }

    /// Counts one webhook delivery. `outcome` is `applied`, `duplicate`, `ignored`, `conflict`, `rejected` (bad
    /// signature or unreadable event) or `failed` (the store failed; Stripe retries).
    pub fn webhook_delivery(&self, event_type: &str, outcome: &'static str) {
        self.webhook_events.get_or_create(&WebhookLabels { r#type: event_type.to_owned(), outcome }).inc();
    }

    /// Counts one recorded stock alert.
    pub fn stock_alert(&self, state: StockState) {
        self.stock_alerts.get_or_create(&StockAlertLabels { state: state.as_str() }).inc();
    }

    /// Records one answered HTTP request.
    pub fn http_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = HttpLabels { method: method_label(method), route: route.to_owned(), status };
        self.http_requests.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Records one store operation.
    pub fn store_operation(&self, operation: &'static str, succeeded: bool, elapsed: Duration) {
        let labels = StoreLabels { operation, result: if succeeded { "ok" } else { "error" } };
        self.store_operations.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// The whole exposition: this process's metrics, then the ledger's figures as read at `now`.
    pub fn render(&self, ledger: &LedgerFigures<'_>) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        prometheus_client::encoding::prometheus_text::encode(&mut text, &ledger.registry())?;
        Ok(text)
    }
}

/// What the ledger shows at one scrape.
#[derive(Debug)]
pub struct LedgerFigures<'a> {
    pub now: Timestamp,
    pub monitoring: &'a Monitoring,
    /// Every size of every product, as it stands at `now`.
    pub sizes: &'a [LedgerSize],
}

impl LedgerFigures<'_> {
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix(PREFIX);
        let figures = self.monitoring;
        let gauge = |value: u64| ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
        registry.register(
            "active_reservations",
            "Reservations holding units now (active and not past their expiry, or processing), in the ledger",
            gauge(figures.active_reservations),
        );
        registry.register("reserved_units", "Units held by those reservations", gauge(figures.reserved_units));
        registry.register(
            "expired_unreleased_reservations",
            "Reservations past their expiry that cleanup has not marked expired yet (they hold no units)",
            gauge(figures.expired_not_released),
        );
        registry.register(
            "open_conflicts",
            "Conflicts from Stripe events (oversold, unknown_reference) not yet resolved",
            gauge(figures.open_conflicts),
        );
        let oldest_age = figures.oldest_active.first().map_or(0.0, |oldest| age_seconds(self.now, oldest.created_at));
        registry.register_with_unit(
            "oldest_active_reservation_age",
            "Age of the oldest reservation holding units (0 when there is none)",
            Unit::Seconds,
            ConstGauge::new(oldest_age),
        );
        let outbox = &figures.outbox;
        registry.register(
            "outbox_backlog",
            "Ledger changes not yet delivered to Payload (after coalescing)",
            gauge(outbox.backlog),
        );
        registry.register(
            "outbox_failing",
            "Undelivered changes whose delivery to Payload failed at least once",
            gauge(outbox.failing),
        );
        let undelivered_age = outbox.oldest_change_at.map_or(0.0, |oldest| age_seconds(self.now, oldest));
        registry.register_with_unit(
            "outbox_oldest_undelivered_age",
            "Age of the oldest change not yet delivered to Payload (0 when Payload shows the ledger)",
            Unit::Seconds,
            ConstGauge::new(undelivered_age),
        );
        registry.register(
            "stock_alerts_undelivered",
            "Stock alerts LOW_STOCK_WEBHOOK_URL has not accepted yet",
            gauge(figures.alerts.undelivered),
        );
        let (mut low, mut out) = (0_i64, 0_i64);
        for ledger_size in self.sizes {
            match ledger_size.size.level.state() {
                StockState::OutOfStock => out += 1,
                StockState::Low => low += 1,
                StockState::InStock => {}
            }
        }
        let sizes = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        sizes.get_or_create(&[("state", "in_stock")]).set(self.sizes.len() as i64 - low - out);
        sizes.get_or_create(&[("state", "low")]).set(low);
        sizes.get_or_create(&[("state", "out_of_stock")]).set(out);
        registry.register(
            "sizes",
            "Sizes in the ledger by stock state: in_stock, low (isLowStock with units available) or out_of_stock \
             (none available)",
            sizes,
        );
        registry.register(
            "ledger_writes",
            "Ledger writes since this process opened the store",
            ConstCounter::new(figures.ledger_writes.writes),
        );
        registry.register(
            "ledger_commits",
            "Ledger commits since this process opened the store (writes / commits is the group commit's batch)",
            ConstCounter::new(figures.ledger_writes.commits),
        );
        registry
    }
}

/// The HTTP methods that get a label of their own; anything else a client sends is counted as `other`.
pub const KNOWN_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The label of a request's method: one of a fixed few, so that the number of series stays bounded whatever
/// clients send.
fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.into_iter().find(|known| *known == method).unwrap_or("other")
}

fn age_seconds(now: Timestamp, then: Timestamp) -> f64 {
    (now.unix_millis() - then.unix_millis()).max(0) as f64 / 1000.0
}
