//! A store that measures the store it wraps: every operation's latency (`store_operation_duration_seconds`) and
//! what the decisions did (reservations created, committed, released and expired; conflicts), for `/metrics`.
//! It decides nothing itself: every call goes through unchanged.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};

use super::{
    AlertCrossing, ConflictRecord, EventOutcome, ImportOutcome, LaneClaim, LedgerSize, Monitoring, MovementOutcome,
    MovementRecord, MovementRequest, MovementTotal, OutboxEntry, ReleaseOutcome, ReservationRecord, ReserveOutcome,
    ResolveOutcome, SizeRecord, StockAlert, Store, StoreError, StripeAction, StripeEventRecord,
};
use crate::metrics::Metrics;

/// `inner`, measured into `metrics`.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Self {
        MeteredStore { inner, metrics }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.metrics.store_operation(operation, result.is_ok(), started.elapsed());
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn reserve(
        &self,
        reference: &str,
        lines: &[CartLine],
        ttl: ReservationTtl,
        now: Timestamp,
    ) -> Result<ReserveOutcome, StoreError> {
        let outcome = self.timed("reserve", self.inner.reserve(reference, lines, ttl, now)).await?;
        self.metrics.reserved(&outcome);
        Ok(outcome)
    }

    async fn reservation(&self, reference: &str) -> Result<Option<ReservationRecord>, StoreError> {
        self.timed("reservation", self.inner.reservation(reference)).await
    }

    async fn release(&self, reference: &str, now: Timestamp) -> Result<ReleaseOutcome, StoreError> {
        let outcome = self.timed("release", self.inner.release(reference, now)).await?;
        self.metrics.released(&outcome);
        Ok(outcome)
    }

    async fn release_expired(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let references = self.timed("release_expired", self.inner.release_expired(now)).await?;
        self.metrics.expired(references.len());
        Ok(references)
    }

    async fn expired_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.timed("expired_candidates", self.inner.expired_candidates(now, limit)).await
    }

    async fn expire_one(&self, reference: &str, now: Timestamp) -> Result<bool, StoreError> {
        let expired = self.timed("expire_one", self.inner.expire_one(reference, now)).await?;
        self.metrics.expired(usize::from(expired));
        Ok(expired)
    }

    async fn product_stock(&self, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
        self.timed("product_stock", self.inner.product_stock(product, now)).await
    }

    async fn every_size(&self, now: Timestamp) -> Result<Vec<LedgerSize>, StoreError> {
        self.timed("every_size", self.inner.every_size(now)).await
    }

    async fn record_stock_alerts(
        &self,
        crossings: Vec<AlertCrossing>,
        now: Timestamp,
    ) -> Result<Vec<StockAlert>, StoreError> {
        let alerts = self.timed("record_stock_alerts", self.inner.record_stock_alerts(crossings, now)).await?;
        for alert in &alerts {
            self.metrics.stock_alert(alert.state());
        }
        Ok(alerts)
    }

    async fn claim_stock_alerts(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<StockAlert>, StoreError> {
        self.timed("claim_stock_alerts", self.inner.claim_stock_alerts(now, until, limit)).await
    }

    async fn stock_alert_delivered(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.timed("stock_alert_delivered", self.inner.stock_alert_delivered(id, now)).await
    }

    async fn stock_alert_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        self.timed("stock_alert_failed", self.inner.stock_alert_failed(id, error, retry_at)).await
    }

    async fn record_movement(&self, request: MovementRequest, now: Timestamp) -> Result<MovementOutcome, StoreError> {
        let outcome = self.timed("record_movement", self.inner.record_movement(request, now)).await?;
        self.metrics.movement(&outcome);
        Ok(outcome)
    }

    async fn monitoring(&self, now: Timestamp) -> Result<Monitoring, StoreError> {
        self.timed("monitoring", self.inner.monitoring(now)).await
    }

    async fn movement_totals(&self, since: Timestamp) -> Result<Vec<MovementTotal>, StoreError> {
        self.timed("movement_totals", self.inner.movement_totals(since)).await
    }

    async fn apply_stripe_event(
        &self,
        event: &StripeEventRecord,
        action: &StripeAction,
        now: Timestamp,
    ) -> Result<EventOutcome, StoreError> {
        let outcome = self.timed("apply_stripe_event", self.inner.apply_stripe_event(event, action, now)).await?;
        self.metrics.stripe_event_applied(&outcome);
        Ok(outcome)
    }

    async fn open_conflicts(&self, limit: u32) -> Result<Vec<ConflictRecord>, StoreError> {
        self.timed("open_conflicts", self.inner.open_conflicts(limit)).await
    }

    async fn resolve_conflict(&self, id: i64, resolution: &str, now: Timestamp) -> Result<ResolveOutcome, StoreError> {
        self.timed("resolve_conflict", self.inner.resolve_conflict(id, resolution, now)).await
    }

    async fn prune_stripe_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.timed("prune_stripe_events", self.inner.prune_stripe_events(before)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed("ping", self.inner.ping()).await
    }

    async fn movement(&self, id: i64) -> Result<Option<MovementRecord>, StoreError> {
        self.timed("movement", self.inner.movement(id)).await
    }

    async fn movement_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        self.timed("movement_ids", self.inner.movement_ids(after, limit)).await
    }

    async fn ledger_products(&self) -> Result<Vec<String>, StoreError> {
        self.timed("ledger_products", self.inner.ledger_products()).await
    }

    async fn import_size(
        &self,
        key: (&str, &str),
        stock: Quantity,
        low_stock_threshold: Quantity,
        reason: &str,
        now: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        self.timed("import_size", self.inner.import_size(key, stock, low_stock_threshold, reason, now)).await
    }

    async fn due_lanes(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.timed("due_lanes", self.inner.due_lanes(now, limit)).await
    }

    async fn lane_entries(&self, lane: &str, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        self.timed("lane_entries", self.inner.lane_entries(lane, limit)).await
    }

    async fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<bool, StoreError> {
        self.timed("outbox_delivered", self.inner.outbox_delivered(entry)).await
    }

    async fn outbox_failed(&self, entry: &OutboxEntry, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        self.timed("outbox_failed", self.inner.outbox_failed(entry, error, retry_at)).await
    }

    async fn claim_lane(&self, lane: &str, claim: &LaneClaim, now: Timestamp) -> Result<bool, StoreError> {
        self.timed("claim_lane", self.inner.claim_lane(lane, claim, now)).await
    }

    async fn release_lane(&self, lane: &str, owner: &str) -> Result<(), StoreError> {
        self.timed("release_lane", self.inner.release_lane(lane, owner)).await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
