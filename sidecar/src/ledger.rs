//! The ledger as handlers, workers and commands use it: one concrete type in front of whichever store holds it
//! (embedded SQLite or PostgreSQL). Each operation is written here once: it runs on the store, is timed into
//! `store_operation_duration_seconds` under its own name, counts what the decision did for `/metrics`, and wakes
//! the projection when the decision queued changes for Payload. The decisions (reserving, releasing, expiring,
//! selling, recording a movement, importing) are the stores' to make atomic; every other operation is a statement
//! or two, written here once on the stores' three primitives (`rows`, `execute`, `write`) with the SQL of
//! `store/sql.rs`.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures_util::{StreamExt, stream};
use stock_core::{CartLine, Quantity, ReservationTtl, Timestamp};
use stock_wire::ReturnRequest;
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::store::columns::{
    AlertColumns, ConflictColumns, LedgerSizeColumns, MonitoringCounts, MovementColumns, OutboxColumns, PaymentColumns,
    PaymentCountColumns, SizeColumns, SummaryColumns, TotalColumns, alerts_from_rows, conflict_from_columns,
    ledger_sizes_from_rows, monitoring_from_rows, movement_from_columns, outbox_entries_from_rows,
    payment_from_columns, reservation_from_rows, returns_from_rows, sizes_from_rows, totals_from_rows,
};
use crate::store::plan::{Decision, Outcome, Request};
use crate::store::sql::{Columns, Param, Sql, params, statements};
use crate::store::{
    AlertCrossing, ConflictRecord, EventOutcome, ImportOutcome, LaneClaim, LedgerSize, Monitoring, MovementOutcome,
    MovementRecord, MovementRequest, MovementTotal, OLDEST_LISTED, OutboxEntry, PaymentRecord, PostgresStore,
    ReleaseOutcome, ReservationRecord, ReserveOutcome, ResolveOutcome, ReturnOutcome, ReturnRecord, SizeRecord,
    SqliteStore, StockAlert, StoreError, StripeAction, StripeEventRecord, resolution as resolved,
};

/// The kind under which a payment confirmed by the shop (not by a Stripe event) is recorded among the events.
pub const CONFIRMED_PAYMENT: &str = "payment.confirmed_by_shop";

/// How many of a check's alert crossings are recorded at once.
const ALERTS_RECORDED_AT_ONCE: usize = 4;

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
        self.timed("ping", self.rows::<(i64,)>(statements::PING, vec![])).await.map(drop)
    }

    /// Runs `operation`, timed under `name`.
    async fn timed<T>(
        &self,
        name: &'static str,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = operation.await;
        self.metrics.store_operation(name, result.is_ok(), started.elapsed());
        result
    }

    /// Takes a decision atomically (see `store/plan.rs`), timed under `name`.
    async fn decide<Answer>(&self, name: &'static str, decision: Decision, now: Timestamp) -> Result<Answer, StoreError>
    where
        Answer: TryFrom<Outcome, Error = StoreError>,
    {
        let request = Request { decision, now };
        let outcome = match &self.store {
            Store::Sqlite(store) => self.timed(name, store.decide(request)).await?,
            Store::Postgres(store) => self.timed(name, store.decide(request)).await?,
        };
        Answer::try_from(outcome)
    }

    /// The rows a read gives.
    async fn rows<Row: Columns>(&self, sql: Sql, params: Vec<Param>) -> Result<Vec<Row>, StoreError> {
        match &self.store {
            Store::Sqlite(store) => store.rows(sql.sqlite, params).await,
            Store::Postgres(store) => store.rows(sql.postgres, params).await,
        }
    }

    /// The first column of the rows a read gives.
    async fn column<Value>(&self, sql: Sql, params: Vec<Param>) -> Result<Vec<Value>, StoreError>
    where
        (Value,): Columns,
    {
        Ok(self.rows::<(Value,)>(sql, params).await?.into_iter().map(|(value,)| value).collect())
    }

    /// Runs one statement, committed on its own; how many rows it changed.
    async fn execute(&self, sql: Sql, params: Vec<Param>) -> Result<u64, StoreError> {
        match &self.store {
            Store::Sqlite(store) => store.execute(sql.sqlite, params).await,
            Store::Postgres(store) => store.execute(sql.postgres, params).await,
        }
    }

    /// Runs statements in order in one transaction, all or none; the rows they returned.
    async fn write<Row: Columns>(&self, steps: Vec<(Sql, Vec<Param>)>) -> Result<Vec<Row>, StoreError> {
        match &self.store {
            Store::Sqlite(store) => {
                store.write(steps.into_iter().map(|(sql, params)| (sql.sqlite, params)).collect()).await
            }
            Store::Postgres(store) => {
                store.write(steps.into_iter().map(|(sql, params)| (sql.postgres, params)).collect()).await
            }
        }
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
        let decision = Decision::Reserve { reference: reference.to_owned(), lines: lines.to_vec(), ttl };
        let outcome: ReserveOutcome = self.decide("reserve", decision, now).await?;
        self.metrics.reserved(&outcome);
        self.queued_changes(matches!(outcome, ReserveOutcome::Created(_)));
        Ok(outcome)
    }

    pub async fn reservation(&self, reference: &str) -> Result<Option<ReservationRecord>, StoreError> {
        self.timed("reservation", async {
            reservation_from_rows(reference, self.rows(statements::RESERVATION, params![reference]).await?)
        })
        .await
    }

    /// What came back of the payment of reservation `reference` (refunds, a dispute), if Stripe reported any or
    /// the reservation is a Checkout Session whose PaymentIntent is known.
    pub async fn payment_of(&self, reference: &str) -> Result<Option<PaymentRecord>, StoreError> {
        self.timed("payment", async {
            let row: Option<PaymentColumns> =
                self.rows(statements::PAYMENT_OF_RESERVATION, params![reference]).await?.pop();
            row.map(payment_from_columns).transpose()
        })
        .await
    }

    /// The returns recorded of reservation `reference`, by return id.
    pub async fn returns_of(&self, reference: &str) -> Result<Vec<ReturnRecord>, StoreError> {
        self.timed("returns", async {
            returns_from_rows(reference, self.rows(statements::RETURNS_OF_RESERVATION, params![reference]).await?)
        })
        .await
    }

    /// Records a return of units the paid reservation `reference` sold, under the caller's return id: once, never
    /// more back than was sold across its returns; restocked lines are `return` movements, damaged ones change no
    /// stock.
    pub async fn record_return(
        &self,
        reference: &str,
        request: ReturnRequest,
        now: Timestamp,
    ) -> Result<ReturnOutcome, StoreError> {
        let decision = Decision::Return { reference: reference.to_owned(), request };
        let outcome: ReturnOutcome = self.decide("record_return", decision, now).await?;
        self.queued_changes(matches!(outcome, ReturnOutcome::Recorded { .. }));
        Ok(outcome)
    }

    /// Releases an active reservation; idempotent.
    pub async fn release(&self, reference: &str, now: Timestamp) -> Result<ReleaseOutcome, StoreError> {
        let outcome: ReleaseOutcome =
            self.decide("release", Decision::Release { reference: reference.to_owned() }, now).await?;
        self.metrics.released(&outcome);
        self.queued_changes(matches!(outcome, ReleaseOutcome::Released(_)));
        Ok(outcome)
    }

    /// Marks every active reservation past its expiry as expired; returns their references.
    pub async fn release_expired(&self, now: Timestamp) -> Result<Vec<String>, StoreError> {
        let references = match &self.store {
            Store::Sqlite(store) => self.timed("release_expired", store.release_expired(now)).await?,
            Store::Postgres(store) => self.timed("release_expired", store.release_expired(now)).await?,
        };
        self.metrics.expired(references.len());
        self.queued_changes(!references.is_empty());
        Ok(references)
    }

    /// Up to `limit` active reservations past their expiry, oldest expiry first (for cleanup that asks Stripe
    /// about each before releasing it).
    pub async fn expired_candidates(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.timed("expired_candidates", self.column(statements::EXPIRED_CANDIDATES, params![now, limit])).await
    }

    /// Marks one reservation expired if it is active and past its expiry; whether it changed.
    pub async fn expire_one(&self, reference: &str, now: Timestamp) -> Result<bool, StoreError> {
        let expired: bool =
            self.decide("expire_one", Decision::Expire { reference: reference.to_owned() }, now).await?;
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
        let decision = Decision::StripeEvent { event: event.clone(), action: action.clone() };
        let outcome: EventOutcome = self.decide("apply_stripe_event", decision, now).await?;
        self.metrics.stripe_event_applied(&outcome);
        self.queued_changes(!matches!(outcome, EventOutcome::Duplicate));
        Ok(outcome)
    }

    /// Sells a reservation whose payment the shop has seen succeed at Stripe (Payload's ecommerce plugin confirming
    /// the order), by the very decision a `payment_intent.succeeded` event takes, recorded under the id
    /// `confirmed:<reference>`: whichever of the two comes first sells, the other finds it sold (`unchanged`), and
    /// the same confirmation again is a duplicate.
    pub async fn commit_confirmed_payment(
        &self,
        reference: &str,
        order_reference: Option<String>,
        now: Timestamp,
    ) -> Result<EventOutcome, StoreError> {
        let record = StripeEventRecord { id: format!("confirmed:{reference}"), kind: CONFIRMED_PAYMENT.to_owned() };
        let action = StripeAction::Commit {
            reference: reference.to_owned(),
            order_reference,
            marked: true,
            payment_intent: None,
        };
        self.apply_stripe_event(&record, &action, now).await
    }

    /// Forgets processed Stripe event ids received before `before` (Stripe retries for 3 days; they are kept 30).
    pub async fn prune_stripe_events(&self, before: Timestamp) -> Result<u64, StoreError> {
        self.timed("prune_stripe_events", self.execute(statements::PRUNE_STRIPE_EVENTS, params![before])).await
    }

    /// The open conflicts, oldest first, at most `limit`.
    pub async fn open_conflicts(&self, limit: u32) -> Result<Vec<ConflictRecord>, StoreError> {
        self.timed("open_conflicts", async {
            let rows: Vec<ConflictColumns> = self.rows(statements::OPEN_CONFLICTS, params![limit]).await?;
            rows.into_iter().map(conflict_from_columns).collect()
        })
        .await
    }

    /// Marks a conflict resolved with the operator's note (what they did about it); resolving it again changes
    /// nothing and answers the first resolution.
    pub async fn resolve_conflict(
        &self,
        id: i64,
        resolution: &str,
        now: Timestamp,
    ) -> Result<ResolveOutcome, StoreError> {
        self.timed("resolve_conflict", async {
            // The conditional update decides which resolution stands, whichever sidecar runs first; the conflict is
            // read after it.
            let updated = self.execute(statements::RESOLVE_CONFLICT, params![id, now, resolution]).await?;
            let row: Option<ConflictColumns> = self.rows(statements::CONFLICT, params![id]).await?.pop();
            Ok(resolved(updated > 0, row.map(conflict_from_columns).transpose()?))
        })
        .await
    }
}

/// Stock: sizes, movements, imports.
impl Ledger {
    /// The sizes of a product as they stand at `now`; empty if the product has none.
    pub async fn product_stock(&self, product: &str, now: Timestamp) -> Result<Vec<SizeRecord>, StoreError> {
        self.timed("product_stock", async {
            let rows: Vec<SizeColumns> = self.rows(statements::PRODUCT_STOCK, params![product, now]).await?;
            Ok(sizes_from_rows(rows)?.into_iter().map(|(_, record)| record).collect())
        })
        .await
    }

    /// Every size of every product as it stands at `now` (for the low- and out-of-stock figures and the alert
    /// check), products in id order.
    pub async fn every_size(&self, now: Timestamp) -> Result<Vec<LedgerSize>, StoreError> {
        self.timed("every_size", async {
            let rows: Vec<LedgerSizeColumns> = self.rows(statements::EVERY_SIZE, params![now]).await?;
            ledger_sizes_from_rows(rows)
        })
        .await
    }

    pub async fn record_movement(
        &self,
        request: MovementRequest,
        now: Timestamp,
    ) -> Result<MovementOutcome, StoreError> {
        let outcome: MovementOutcome = self.decide("record_movement", Decision::Movement(request), now).await?;
        self.metrics.movement(&outcome);
        self.queued_changes(matches!(outcome, MovementOutcome::Applied(_)));
        Ok(outcome)
    }

    /// One movement by its ledger id.
    pub async fn movement(&self, id: i64) -> Result<Option<MovementRecord>, StoreError> {
        self.timed("movement", async {
            let row: Option<MovementColumns> = self.rows(statements::MOVEMENT, params![id]).await?.pop();
            row.map(movement_from_columns).transpose()
        })
        .await
    }

    /// Up to `limit` ledger movement ids above `after`, in order (for reconciling with Payload page by page).
    pub async fn movement_ids(&self, after: i64, limit: u32) -> Result<Vec<i64>, StoreError> {
        self.timed("movement_ids", self.column(statements::MOVEMENT_IDS, params![after, limit])).await
    }

    /// Each product's movements dated at or after `since`, by type, products in id order.
    pub async fn movement_totals(&self, since: Timestamp) -> Result<Vec<MovementTotal>, StoreError> {
        self.timed("movement_totals", async {
            let rows: Vec<TotalColumns> = self.rows(statements::MOVEMENT_TOTALS, params![since]).await?;
            totals_from_rows(rows)
        })
        .await
    }

    /// Every product the ledger has sizes of.
    pub async fn ledger_products(&self) -> Result<Vec<String>, StoreError> {
        self.timed("ledger_products", self.column(statements::LEDGER_PRODUCTS, vec![])).await
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
        let (product, size) = (key.0.to_owned(), key.1.to_owned());
        let decision =
            Decision::Import { product, size, figures: (stock, low_stock_threshold), reason: reason.to_owned() };
        let outcome: ImportOutcome = self.decide("import_size", decision, now).await?;
        self.queued_changes(matches!(outcome, ImportOutcome::Imported(_)));
        Ok(outcome)
    }

    /// The figures an operator watches.
    pub async fn monitoring(&self, now: Timestamp) -> Result<Monitoring, StoreError> {
        self.timed("monitoring", async {
            let counts: Option<MonitoringCounts> = self.rows(statements::MONITORING_COUNTS, params![now]).await?.pop();
            let counts = counts.ok_or_else(|| StoreError::Inconsistent("the monitoring counts gave no row".into()))?;
            let oldest: Vec<SummaryColumns> = self.rows(statements::OLDEST_ACTIVE, params![now, OLDEST_LISTED]).await?;
            let payments: Option<PaymentCountColumns> = self.rows(statements::PAYMENT_COUNTS, vec![]).await?.pop();
            let payments = payments.ok_or_else(|| StoreError::Inconsistent("the payment counts gave no row".into()))?;
            let ledger_writes = match &self.store {
                Store::Sqlite(store) => store.writer_counts(),
                Store::Postgres(store) => store.writer_counts(),
            };
            monitoring_from_rows(counts, oldest, (ledger_writes, payments))
        })
        .await
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
        // Each crossing in a transaction of its own, so that no transaction holds two sizes' locks: the alert and
        // the size's new alerted state commit together. A few at once (SQLite's writer commits them together),
        // never so many that they take every connection of PostgreSQL's pool from the decisions.
        let record_each = crossings.iter().map(|crossing| {
            let (product, size, state, previous) =
                (&crossing.product, &crossing.size.size, crossing.state().as_str(), crossing.previous.as_str());
            let level = &crossing.size.level;
            let record = params![
                product,
                size,
                state,
                previous,
                level.stock().get(),
                level.reserved().get(),
                level.low_stock_threshold().get(),
                now,
                (!crossing.deliver).then_some(now),
            ];
            let mark = params![product, size, state, previous];
            self.write::<AlertColumns>(vec![(statements::RECORD_ALERT, record), (statements::MARK_ALERTED, mark)])
        });
        // Collected first: a stream of futures that borrow the crossings is not Send to the compiler otherwise.
        let record_each: Vec<_> = record_each.collect();
        let results = self
            .timed("record_stock_alerts", async {
                let results: Vec<_> = stream::iter(record_each).buffered(ALERTS_RECORDED_AT_ONCE).collect().await;
                // The call fails when every crossing did; otherwise the ones recorded are answered (to be logged
                // and counted) and a failed one is seen again by the next check.
                match results.iter().any(Result::is_ok) || results.is_empty() {
                    true => Ok(results),
                    false => Err(results.into_iter().find_map(Result::err).unwrap_or_else(|| {
                        StoreError::Inconsistent("no stock alert was recorded and none failed".to_owned())
                    })),
                }
            })
            .await?;
        let mut rows: Vec<AlertColumns> = Vec::new();
        for (crossing, result) in crossings.iter().zip(results) {
            match result {
                Ok(recorded) => rows.extend(recorded),
                Err(error) => tracing::warn!(error = %error, product = %crossing.product, size = %crossing.size.size,
                    "recording a stock alert failed; the next check tries again"),
            }
        }
        let alerts = alerts_from_rows(rows)?;
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
        self.timed("claim_stock_alerts", async {
            let claim = params![now, until, limit];
            alerts_from_rows(self.write(vec![(statements::CLAIM_STOCK_ALERTS, claim)]).await?)
        })
        .await
    }

    /// Marks an alert delivered (the webhook accepted it).
    pub async fn stock_alert_delivered(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        let delivered = self.execute(statements::STOCK_ALERT_DELIVERED, params![id, now]);
        self.timed("stock_alert_delivered", delivered).await.map(drop)
    }

    /// Records a failed delivery; the alert is due again at `retry_at`.
    pub async fn stock_alert_failed(&self, id: i64, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        let failed = self.execute(statements::STOCK_ALERT_FAILED, params![id, error, retry_at]);
        self.timed("stock_alert_failed", failed).await.map(drop)
    }
}

/// The outbox the projection delivers to Payload, lane by lane.
impl Ledger {
    /// Up to `limit` lanes whose rows are all due at `now` and that nobody has claimed past `now`, the lane with
    /// the oldest row first.
    pub async fn due_lanes(&self, now: Timestamp, limit: u32) -> Result<Vec<String>, StoreError> {
        self.timed("due_lanes", self.column(statements::DUE_LANES, params![now, limit])).await
    }

    /// Up to `limit` rows of a lane, in delivery order.
    pub async fn lane_entries(&self, lane: &str, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        self.timed("lane_entries", async {
            let rows: Vec<OutboxColumns> = self.rows(statements::LANE_ENTRIES, params![lane, limit]).await?;
            outbox_entries_from_rows(rows)
        })
        .await
    }

    /// Removes a delivered row, unless a change coalesced into it meanwhile (then it stays for another delivery).
    pub async fn outbox_delivered(&self, entry: &OutboxEntry) -> Result<bool, StoreError> {
        let deleted = self.execute(statements::OUTBOX_DELIVERED, params![entry.id, entry.revision]);
        Ok(self.timed("outbox_delivered", deleted).await? == 1)
    }

    /// Records a failed delivery; the entry's whole lane waits until `retry_at`.
    pub async fn outbox_failed(&self, entry: &OutboxEntry, error: &str, retry_at: Timestamp) -> Result<(), StoreError> {
        let failed = self.execute(statements::OUTBOX_FAILED, params![entry.id, error, &entry.lane, retry_at]);
        self.timed("outbox_failed", failed).await.map(drop)
    }

    /// Claims `lane` for `claim.owner` until `claim.until`, unless another owner's claim runs past `now`;
    /// whether the owner holds the lane now. Each lane is delivered by one process at a time, however many
    /// sidecars share the ledger; a claim that lapses (its process died) is taken over.
    pub async fn claim_lane(&self, lane: &str, claim: &LaneClaim, now: Timestamp) -> Result<bool, StoreError> {
        let claimed = self.execute(statements::CLAIM_LANE, params![lane, &claim.owner, now, claim.until]);
        Ok(self.timed("claim_lane", claimed).await? == 1)
    }

    /// Gives up `owner`'s claim on `lane`.
    pub async fn release_lane(&self, lane: &str, owner: &str) -> Result<(), StoreError> {
        self.timed("release_lane", self.execute(statements::RELEASE_LANE, params![lane, owner])).await.map(drop)
    }
}
