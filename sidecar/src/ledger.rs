//! The ledger as handlers, workers and commands use it: one concrete type in front of whichever store holds it
//! (embedded SQLite or PostgreSQL). Each operation is written here once: it runs on the store, is timed into
//! `store_operation_duration_seconds` under its own name, counts what the decision did for `/metrics`, and wakes
//! the projection when the decision queued changes for Payload. The stores decide nothing of that; they make each
//! decision atomic.

use std::sync::Arc;
use std::time::Instant;

use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::store::{
    AlertCrossing, ConflictRecord, EventOutcome, ImportOutcome, LaneClaim, LedgerSize, Monitoring, MovementOutcome,
    MovementRecord, MovementRequest, MovementTotal, OutboxEntry, PostgresStore, ReleaseOutcome, ReservationRecord,
    ReserveOutcome, ResolveOutcome, SizeRecord, SqliteStore, StockAlert, StoreError, StripeAction, StripeEventRecord,
};

/// The store a ledger is kept in.
#[derive(Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Self {
        Store::Sqlite(store)
    }
}

impl From<PostgresStore> for Store {
    fn from(store: PostgresStore) -> Self {
        Store::Postgres(store)
    }
}

/// Runs `ledger.operation(arguments)` on the ledger's store, timed under the operation's name.
macro_rules! on_store {
    ($ledger:ident . $operation:ident ( $($argument:expr),* )) => {{
        let started = Instant::now();
        let result = match &$ledger.store {
            Store::Sqlite(store) => store.$operation($($argument),*).await,
            Store::Postgres(store) => store.$operation($($argument),*).await,
        };
        $ledger.metrics.store_operation(stringify!($operation), result.is_ok(), started.elapsed());
        result
    }};
}

/// The ledger. Every decision is atomic: it is applied whole or not at all.
#[derive(Debug)]
pub struct Ledger {
    store: Store,
    metrics: Arc<Metrics>,
    /// Woken whenever a decision that queued changes for Payload commits (see [`Ledger::projection_wakeup`]).
    wakeup: Arc<Notify>,
}

impl Ledger {
    /// The ledger in `store`, measured into `metrics`.
    pub fn new(store: impl Into<Store>, metrics: Arc<Metrics>) -> Self {
        Ledger { store: store.into(), metrics, wakeup: Arc::new(Notify::new()) }
    }

    /// What the projection worker waits on: notified after each decision that queued changes for Payload (a store
    /// opened without its projection settings queues none, and the notification wakes nobody).
    pub fn projection_wakeup(&self) -> Arc<Notify> {
        self.wakeup.clone()
    }

    fn queued_changes(&self, queued: bool) {
        if queued {
            self.wakeup.notify_one();
        }
    }

    /// Finishes what is queued and closes every connection.
    pub async fn close(&self) {
        match &self.store {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_store!(self.ping())
    }
}

/// Reservations.
impl Ledger {
    /// Reserves every line of the cart for `ttl`, or nothing.
    pub async fn reserve(
        &self,
        reference: &str,
        lines: &[CartLine],
        ttl: ReservationTtl,
        now: Timestamp,
    ) -> Result<ReserveOutcome, StoreError> {
        let outcome = on_store!(self.reserve(reference, lines, ttl, now))?;
        self.metrics.reserved(&outcome);
        self.queued_changes(matches!(outcome, ReserveOutcome::Created(_)));
        Ok(outcome)
    }

    pub async fn reservation(&self, reference: &str) -> Result<Option<ReservationRecord>, StoreError> {
        on_store!(self.reservation(reference))
    }

    /// Releases an active reservation; idempotent.
    pub async fn release(&self, reference: &str, now: Timestamp) -> Result<ReleaseOutcome, StoreError> {
        let outcome = on_store!(self.release(reference, now))?;
        self.metrics.released(&outcome);
        self.queued_changes(matches!(outcome, ReleaseOutcome::Released(_)));
        Ok(outcome)
    }

    /// Marks every active reservation past its expiry as expired; returns their references.
    pub async fn release_expired(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let references = on_store!(self.release_expired(now))?;
        self.metrics.expired(references.len());
        self.queued_changes(!references.is_empty());
        Ok(references)
    }

    /// Up to `limit` active reservations past their expiry, oldest expiry first (for cleanup that asks Stripe
    /// about each before releasing it).
    pub async fn expired_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        on_store!(self.expired_candidates(now, limit))
    }

    /// Marks one reservation expired if it is active and past its expiry; whether it changed.
    pub async fn expire_one(&self, reference: &str, now: Timestamp) -> Result<bool, StoreError> {
        let expired = on_store!(self.expire_one(reference, now))?;
        self.metrics.expired(usize::from(expired));
        self.queued_changes(expired);
        Ok(expired)
    }

    /// Applies a verified Stripe event once: the event id is claimed in the same transaction as the change.
    pub async fn apply_stripe_event(
        &self,
        event: &StripeEventRecord,
        action: &StripeAction,
        now: Timestamp,
    ) -> Result<EventOutcome, StoreError> {
        let outcome = on_store!(self.apply_stripe_event(event, action, now))?;
        self.metrics.stripe_event_applied(&outcome);
        self.queued_changes(!matches!(outcome, EventOutcome::Duplicate));
        Ok(outcome)
    }

    /// Forgets processed Stripe event ids received before `before` (Stripe retries for 3 days; they are kept 30).
    pub async fn prune_stripe_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        on_store!(self.prune_stripe_events(before))
    }

    /// The open conflicts, oldest first, at most `limit`.
    pub async fn open_conflicts(&self, limit: u32) -> Result<Vec<ConflictRecord>, StoreError> {
        on_store!(self.open_conflicts(limit))
    }

    /// Marks a conflict resolved with the operator's note (what they did about it); resolving it again changes
    /// nothing and answers the first resolution.
    pub async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
        now: Timestamp,
    ) -> Result<ResolveOutcome, StoreError> {
        on_store!(self.resolve_conflict(id, resolution, now))
    }
}

/// Stock: sizes, movements, imports.
impl Ledger {
    /// The sizes of a product as they stand at `now`; empty if the product has none.
    pub async fn product_stock(&self, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
        on_store!(self.product_stock(product, now))
    }

    /// Every size of every product as it stands at `now` (for the low- and out-of-stock figures and the alert
    /// check), products in id order.
    pub async fn every_size(&self, now: Timestamp) -> Result<Vec<LedgerSize>, StoreError> {
        on_store!(self.every_size(now))
    }

    pub async fn record_movement(
        &self,
        request: MovementRequest,
        now: Timestamp,
    ) -> Result<MovementOutcome, StoreError> {
        let outcome = on_store!(self.record_movement(request, now))?;
        self.metrics.movement(&outcome);
        self.queued_changes(matches!(outcome, MovementOutcome::Applied(_)));
        Ok(outcome)
    }

    /// One movement by its ledger id.
    pub async fn movement(&self, id: i64) -> Result<Option<MovementRecord>, StoreError> {
        on_store!(self.movement(id))
    }

    /// Up to `limit` ledger movement ids above `after`, in order (for reconciling with Payload page by page).
    pub async fn movement_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        on_store!(self.movement_ids(after, limit))
    }

    /// Each product's movements dated at or after `since`, by type, products in id order.
    pub async fn movement_totals(&self, since: Timestamp) -> Result<Vec<MovementTotal>, StoreError> {
        on_store!(self.movement_totals(since))
    }

    /// Every product the ledger has sizes of.
    pub async fn ledger_products(&self) -> Result<Vec<String>, StoreError> {
        on_store!(self.ledger_products())
    }

    /// Adds a size the ledger does not have yet with `stock` units on hand, recorded as an `adjustment` movement
    /// with `reason`; a size the ledger has is left alone. Idempotent.
    pub async fn import_size(
        &self,
        key: (&str, &str),
        stock: Quantity,
        low_stock_threshold: Quantity,
        reason: &str,
        now: Timestamp,
    ) -> Result<ImportOutcome, StoreError> {
        let outcome = on_store!(self.import_size(key, stock, low_stock_threshold, reason, now))?;
        self.queued_changes(matches!(outcome, ImportOutcome::Imported(_)));
        Ok(outcome)
    }

    /// The figures an operator watches.
    pub async fn monitoring(&self, now: Timestamp) -> Result<Monitoring, StoreError> {
        on_store!(self.monitoring(now))
    }
}

/// Low-stock alerts.
impl Ledger {
    /// Records each crossing whose size's last recorded state is still its `previous` (compare-and-set: of
    /// several sidecars that see the same crossing, one records it); the alerts this call recorded.
    pub async fn record_stock_alerts(
        &self,
        crossings: Vec<AlertCrossing>,
        now: Timestamp,
    ) -> Result<Vec<StockAlert>, StoreError> {
        let alerts = on_store!(self.record_stock_alerts(crossings, now))?;
        for alert in &alerts {
            self.metrics.stock_alert(alert.state());
        }
        Ok(alerts)
    }

    /// Claims until `until` up to `limit` undelivered alerts due at `now` that nobody else has claimed past
    /// `now`, oldest first.
    pub async fn claim_stock_alerts(
        &self,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<StockAlert>, StoreError> {
        on_store!(self.claim_stock_alerts(now, until, limit))
    }

    /// Marks an alert delivered (the webhook accepted it).
    pub async fn stock_alert_delivered(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        on_store!(self.stock_alert_delivered(id, now))
    }

    /// Records a failed delivery; the alert is due again at `retry_at`.
    pub async fn stock_alert_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        on_store!(self.stock_alert_failed(id, error, retry_at))
    }
}

/// The outbox the projection delivers to Payload, lane by lane.
impl Ledger {
    /// Up to `limit` lanes whose rows are all due at `now` and that nobody has claimed past `now`, the lane with
    /// the oldest row first.
    pub async fn due_lanes(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        on_store!(self.due_lanes(now, limit))
    }

    /// Up to `limit` rows of a lane, in delivery order.
    pub async fn lane_entries(&self, lane: &str, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        on_store!(self.lane_entries(lane, limit))
    }

    /// Removes a delivered row, unless a change coalesced into it meanwhile (then it stays for another delivery).
    pub async fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<bool, StoreError> {
        on_store!(self.outbox_delivered(entry))
    }

    /// Records a failed delivery; the entry's whole lane waits until `retry_at`.
    pub async fn outbox_failed(&self, entry: &OutboxEntry, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        on_store!(self.outbox_failed(entry, error, retry_at))
    }

    /// Claims `lane` for `claim.owner` until `claim.until`, unless another owner's claim runs past `now`;
    /// whether the owner holds the lane now. Each lane is delivered by one process at a time, however many
    /// sidecars share the ledger; a claim that lapses (its process died) is taken over.
    pub async fn claim_lane(&self, lane: &str, claim: &LaneClaim, now: Timestamp) -> Result<bool, StoreError> {
        on_store!(self.claim_lane(lane, claim, now))
    }

    /// Gives up `owner`'s claim on `lane`.
    pub async fn release_lane(&self, lane: &str, owner: &str) -> Result<(), StoreError> {
        on_store!(self.release_lane(lane, owner))
    }
}
