//! The ledger's storage: the two stores (embedded SQLite, PostgreSQL), the decisions they both execute as
//! planned once in `plan.rs`, and the records they return. The rules themselves (availability, cart checks,
//! movement arithmetic, the reservation state machine) come from stock-core. Handlers and workers reach a store
//! through [`crate::ledger::Ledger`], which documents each operation.

pub(crate) mod columns;
mod decide;
pub(crate) mod plan;
mod postgres;
pub(crate) mod sql;
mod sqlite;

pub(crate) use decide::{resolution, sold_sizes};
pub use plan::{AlertCrossing, alert_crossings};
pub use postgres::PostgresStore;
pub use sqlite::{SqliteDurability, SqliteStore, WriterCounts};
pub use stock_wire::{MovementOrigin, MovementRequest, StripeAction};

use std::sync::Arc;
use std::time::Duration;

use stock_core::{
    CartValidation, MovementError, MovementType, PaymentMoney, PlannedReturnLine, Quantity, ReservationStatus,
    ReturnError, SoldSize, StockLevel, StockMovement, StockState, Timestamp,
};

/// How a store queues ledger changes for Payload (the outbox); without them (no PAYLOAD_URL) nothing is queued.
#[derive(Debug, Clone)]
pub struct ProjectionSettings {
    /// How long the outbox waits before creating the Payload document of a movement that Payload's
    /// stock-movements hook asked for: the hook saves that document itself right after the sidecar answers, so
    /// the outbox only fills in for a save that failed, and otherwise finds the document there (unique
    /// idempotencyKey).
    pub payload_save_grace: Duration,
}

/// A claim on a lane of the outbox: who holds it and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneClaim {
    /// Names one process (host, process id, start time): a claim is never shared between processes.
    pub owner: String,
    pub until: Timestamp,
}

/// One size of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedItem {
    pub product: String,
    pub size: String,
    pub quantity: Quantity,
}

/// A reservation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRecord {
    pub reference: String,
    pub status: ReservationStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub items: Vec<ReservedItem>,
}

/// What came back of a payment after it was taken (refunds, a dispute), as recorded from Stripe's money events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentRecord {
    pub payment_intent: String,
    /// The reservation it pays for (the PaymentIntent itself, or a Checkout Session); `None` while none is known.
    pub reference: Option<String>,
    pub money: PaymentMoney,
}

/// A return of units a paid reservation sold, as recorded: its lines, each restocked (a `return` movement) unless
/// damaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnRecord {
    pub reference: String,
    /// The caller's id (or `full-refund:<PaymentIntent>` for RESTOCK_ON_FULL_REFUND's).
    pub return_id: String,
    pub lines: Vec<PlannedReturnLine>,
    pub created_at: Timestamp,
}

/// What asking for a return did.
#[derive(Debug)]
pub enum ReturnOutcome {
    /// Recorded; `sold` is each size the reservation sold with what has come back of it now.
    Recorded {
        record: ReturnRecord,
        sold: Vec<SoldSize>,
    },
    /// The same return was recorded before under its id: nothing changed.
    Replayed {
        record: ReturnRecord,
        sold: Vec<SoldSize>,
    },
    /// The return id is taken by a return of other lines: nothing changed.
    IdConflict(ReturnRecord),
    NotFound,
    /// The reservation is not paid (its status): it sold nothing to return.
    NotSold(ReservationStatus),
    /// stock-core refused the lines (every problem): nothing changed.
    Refused(Vec<ReturnError>),
}

/// What asking for a reservation did.
#[derive(Debug)]
pub enum ReserveOutcome {
    /// Every item was reserved.
    Created(ReservationRecord),
    /// The same reference with the same items was reserved before: nothing changed.
    Existing(ReservationRecord),
    /// The reference is taken by a reservation of other items: nothing changed.
    ReferenceConflict(ReservationRecord),
    /// The cart has errors or shortages: nothing was reserved.
    Rejected(CartValidation),
}

/// What releasing a reservation did.
#[derive(Debug)]
pub enum ReleaseOutcome {
    /// It was active; its units are available again.
    Released(ReservationRecord),
    /// It was already released or expired: nothing changed.
    Unchanged(ReservationRecord),
    /// It was committed (paid): its units stay sold.
    AlreadyCommitted(ReservationRecord),
    NotFound,
}

/// A size's stock level as stored, with its label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeRecord {
    pub size: String,
    pub level: StockLevel,
}

/// A size of a product as the ledger has it, with the stock state the last alert about it recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSize {
    pub product: String,
    pub size: SizeRecord,
    /// The state of the size's last recorded crossing (`in_stock` for a size never alerted about).
    pub alerted_state: StockState,
}

/// A size's crossing from one stock state to another, as recorded once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockAlert {
    /// Unique and increasing: the de-duplication key a receiver of the alert webhook keys on.
    pub id: i64,
    pub product: String,
    pub size: String,
    pub previous: StockState,
    /// The state crossed into (`level.state()` when it was recorded).
    pub level: StockLevel,
    pub created_at: Timestamp,
    /// Failed deliveries so far.
    pub attempts: u32,
}

impl StockAlert {
    pub fn state(&self) -> StockState {
        self.level.state()
    }
}

/// A movement as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementRecord {
    pub id: i64,
    pub product: String,
    pub size: String,
    pub movement: StockMovement,
}

/// What asking for a movement did.
#[derive(Debug)]
pub enum MovementOutcome {
    Applied(MovementRecord),
    /// A movement with this reference was recorded before; this is it, and nothing changed.
    Replayed(MovementRecord),
    /// A movement with this reference was recorded before for another product, size, type or quantity: nothing
    /// changed (two deliveries under one delivery-note number must not vanish into one).
    ReferenceConflict(MovementRecord),
    /// `expected_stock` did not match: nothing changed.
    StaleStock {
        current: Quantity,
    },
    /// Only a restock creates a size.
    UnknownSize,
    /// stock-core refused the movement.
    Refused(MovementError),
}

/// How many of the oldest reservations holding units [`Monitoring`] lists.
pub const OLDEST_LISTED: u32 = 10;

/// The figures an operator watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Monitoring {
    pub active_reservations: u64,
    pub reserved_units: u64,
    /// The reservations holding units the longest, oldest first ([`OLDEST_LISTED`] at most).
    pub oldest_active: Vec<ReservationSummary>,
    /// Past their expiry (so no longer counted) but not yet marked expired by cleanup.
    pub expired_not_released: u64,
    /// Conflicts recorded from Stripe events and not yet resolved.
    pub open_conflicts: u64,
    pub outbox: OutboxStatus,
    pub alerts: AlertStatus,
    /// Writes and commits since the store opened (group commit shares one commit among concurrent writes).
    pub ledger_writes: WriterCounts,
    pub payments: PaymentCounts,
}

/// What came back of the shop's payments after the sale, all time, as Stripe's money events reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaymentCounts {
    pub fully_refunded: u64,
    pub partially_refunded: u64,
    /// Disputes not yet decided.
    pub open_disputes: u64,
    pub lost_disputes: u64,
    pub won_disputes: u64,
}

/// How far Payload is behind the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStatus {
    /// Changes not yet delivered to Payload (after coalescing).
    pub backlog: u64,
    /// Movements whose Payload document the stock-movements hook saves itself, not counted in the backlog: the
    /// outbox checks for each after a grace period.
    pub awaiting_payload_save: u64,
    /// When the oldest undelivered change was made.
    pub oldest_change_at: Option<Timestamp>,
    /// Undelivered changes whose delivery failed at least once.
    pub failing: u64,
    /// The error of the most recent failed delivery still pending.
    pub last_error: Option<String>,
}

/// How far the alert webhook is behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertStatus {
    /// Stock alerts the webhook has not accepted yet.
    pub undelivered: u64,
    /// The error of the most recent failed post still pending.
    pub last_error: Option<String>,
}

/// What an outbox row asks Payload to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxTopic {
    /// A product's sizes.
    Product,
    /// One stock-movements document.
    Movement,
    /// One stock-reservations document.
    Reservation,
}

impl OutboxTopic {
    /// The topic as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxTopic::Product => "product",
            OutboxTopic::Movement => "movement",
            OutboxTopic::Reservation => "reservation",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "product" => Some(OutboxTopic::Product),
            "movement" => Some(OutboxTopic::Movement),
            "reservation" => Some(OutboxTopic::Reservation),
            _ => None,
        }
    }
}

/// One undelivered outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub topic: OutboxTopic,
    /// The product id, movement id or reservation reference.
    pub subject: String,
    pub lane: String,
    /// Changes coalesced into the row so far; delivery removes the row only if this did not move meanwhile.
    pub revision: i64,
    pub attempts: u32,
    pub created_at: Timestamp,
}

/// What importing a size from Payload did.
#[derive(Debug)]
pub enum ImportOutcome {
    /// The size is new to the ledger; the movement is absent when it was imported with no units.
    Imported(Option<MovementRecord>),
    /// The ledger already has this size; nothing changed.
    AlreadyInLedger { stock: Quantity },
}

/// Why a payment that is not one of the shop's checkouts is ignored.
pub const FOREIGN_PAYMENT: &str =
    "not one of the shop's checkouts: no reservation under this id and no payloadStock metadata";

/// A Stripe event as recorded: its id makes it apply once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEventRecord {
    pub id: String,
    pub kind: String,
}

/// What applying a Stripe event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The event id was processed before: nothing changed.
    Duplicate,
    /// Units sold; `late` when the reservation had expired or been released and the units were reserved again.
    Committed {
        late: bool,
    },
    Released,
    Processing,
    /// The reservation was already where the event would take it.
    Unchanged {
        status: ReservationStatus,
    },
    Ignored {
        reason: &'static str,
    },
    /// A refund or a dispute recorded on its payment; stock unchanged.
    Recorded,
    /// Recorded for an operator: `oversold` (paid, but the units are gone), `unknown_reference` (a marked
    /// payment nobody reserved), `unreadable_event`, `refunded_before_sale` (a full refund or a dispute released a
    /// reservation still holding its units) or `sale_after_refund` (a payment already refunded or disputed took no
    /// units).
    Conflict {
        kind: &'static str,
    },
}

impl EventOutcome {
    /// A short word for logs and the webhook's answer.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Committed { late: false } => "committed",
            EventOutcome::Committed { late: true } => "committed_late",
            EventOutcome::Released => "released",
            EventOutcome::Processing => "processing",
            EventOutcome::Unchanged { .. } => "unchanged",
            EventOutcome::Ignored { .. } => "ignored",
            EventOutcome::Recorded => "recorded",
            EventOutcome::Conflict { .. } => "conflict",
        }
    }
}

/// A conflict as an operator sees it: what the ledger could not do as a Stripe event asked, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRecord {
    pub id: i64,
    /// `oversold`, `unknown_reference`, `unreadable_event`, `refunded_before_sale` or `sale_after_refund`.
    pub kind: String,
    /// The PaymentIntent or Checkout Session (`-` when the event could not say).
    pub reference: String,
    pub event_id: String,
    /// JSON: the ledger's message and the figures behind it (the shortages of an oversold payment).
    pub details: String,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// The operator's note when resolving it.
    pub resolution: Option<String>,
}

/// What resolving a conflict did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveOutcome {
    Resolved(ConflictRecord),
    /// Resolved before: the first resolution stands.
    AlreadyResolved(ConflictRecord),
    NotFound,
}

/// How many open conflicts the monitoring report lists.
pub const CONFLICTS_LISTED: u32 = 50;

/// A reservation in a monitoring list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationSummary {
    pub reference: String,
    /// `active` or `processing` (a payment under way: it holds its units past its expiry).
    pub status: ReservationStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The units it holds, all sizes together.
    pub units: u64,
}

/// One product's movements of one type over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovementTotal {
    pub product: String,
    pub kind: MovementType,
    pub movements: u64,
    /// The sum of their signed quantities (negative for sales).
    pub units: i64,
}

/// A failure of the store itself (not a refused request).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (a `stock-sidecar` command, a backup) held the database's write lock for longer than the
    /// sidecar waits for it (SQLite's busy handler retries for 5 s), or PostgreSQL kept aborting the decision as
    /// a deadlock or a serialization failure after its retries. Transient: the request can be retried.
    #[error("the ledger is locked by another process: {0}")]
    Busy(Arc<dyn std::error::Error + Send + Sync>),
    #[error("database error: {0}")]
    Database(Arc<dyn std::error::Error + Send + Sync>),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("the ledger is inconsistent: {0}")]
    Inconsistent(String),
}

/// SQLite's primary result codes SQLITE_BUSY (5) and SQLITE_LOCKED (6), in any extended form.
fn is_busy(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6)
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Database(Arc::new(error))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(error.to_string())
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error() {
            Some(failure) if is_busy(failure.extended_code) => StoreError::Busy(Arc::new(error)),
            _ => StoreError::Database(Arc::new(error)),
        }
    }
}

impl StoreError {
    /// The same failure for another waiter: every write of a group commit that failed gets it.
    pub(crate) fn shared(&self) -> StoreError {
        match self {
            StoreError::Busy(error) => StoreError::Busy(Arc::clone(error)),
            StoreError::Database(error) => StoreError::Database(Arc::clone(error)),
            StoreError::Migration(message) => StoreError::Migration(message.clone()),
            StoreError::Inconsistent(message) => StoreError::Inconsistent(message.clone()),
        }
    }
}
