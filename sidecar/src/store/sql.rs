//! Statements written once for both stores. The ledger's operations that are a statement or two (its reads, the
//! bookkeeping of the outbox, of alerts and of conflicts) are written once in [`crate::ledger::Ledger`] on three
//! primitives every store has (`rows`, `execute`, `write`); this module is what those primitives take: the SQL in
//! each dialect, typed parameters, and rows read as tuples by either driver. Only the decisions, which hold locks
//! and batch, stay in the stores.

use std::borrow::Cow;

use sqlx::postgres::PgRow;
use stock_core::Timestamp;

/// A statement's text in each dialect. Most are the same (see [`Sql::same`]); parameters are numbered `$1`,
/// `$2`, ... in both, in any order ([`sqlite_text`] numbers them for SQLite). The SQLite texts the writer runs
/// itself, on its hot path, are written with `?N` already.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sql {
    pub(crate) sqlite: &'static str,
    pub(crate) postgres: &'static str,
}

impl Sql {
    /// A statement both dialects read alike.
    pub(crate) const fn same(text: &'static str) -> Sql {
        Sql { sqlite: text, postgres: text }
    }
}

/// One parameter, typed as the column it is compared with or stored in (a NULL keeps its type for PostgreSQL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Integer(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Param::Integer(Some(value))
    }
}

impl From<u32> for Param {
    fn from(value: u32) -> Self {
        Param::Integer(Some(i64::from(value)))
    }
}

impl From<Timestamp> for Param {
    fn from(value: Timestamp) -> Self {
        Param::Integer(Some(value.unix_millis()))
    }
}

impl From<Option<Timestamp>> for Param {
    fn from(value: Option<Timestamp>) -> Self {
        Param::Integer(value.map(Timestamp::unix_millis))
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Param::Text(Some(value.to_owned()))
    }
}

impl From<&String> for Param {
    fn from(value: &String) -> Self {
        Param::Text(Some(value.clone()))
    }
}

/// The parameters of a statement, each turned into a [`Param`].
macro_rules! params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::sql::Param::from($value)),*]
    };
}
pub(crate) use params;

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Integer(value) => value.to_sql(),
            Param::Text(value) => value.to_sql(),
        }
    }
}

/// A row as a tuple of its columns, which either driver can read (sqlx's and rusqlite's own tuple conversions).
pub(crate) trait Columns:
    for<'r> sqlx::FromRow<'r, PgRow>
    + for<'a> TryFrom<&'a rusqlite::Row<'a>, Error = rusqlite::Error>
    + Send
    + Unpin
    + 'static
{
}

impl<T> Columns for T where
    T: for<'r> sqlx::FromRow<'r, PgRow>
        + for<'a> TryFrom<&'a rusqlite::Row<'a>, Error = rusqlite::Error>
        + Send
        + Unpin
        + 'static
{
}

/// The SQLite form of a statement: `$N` becomes `?N`. SQLite reads `$1` as a named parameter and numbers such
/// names by first appearance, so a text naming `$2` before `$1` would bind them swapped; `?N` is numbered as
/// written.
pub(crate) fn sqlite_text(sql: &str) -> Cow<'_, str> {
    if sql.contains('$') { Cow::Owned(sql.replace('$', "?")) } else { Cow::Borrowed(sql) }
}

/// Units held by the reservations of the size `s` at the parameter `$now` (`"$2"`, or `"?2"` for SQLite's
/// writer): `held_units` (kept by triggers equal to the items with `holds_until > 0`, see the migrations) less the
/// items of active reservations already past their expiry but not yet marked expired. `holds_until` is the SQL form
/// of stock-core's `Reservation::holds_units` (see `columns::holds_until`); the lapsed items are read through a
/// covering index and are few (cleanup marks them).
macro_rules! reserved_units {
    ($now:literal) => {
        concat!(
            "CAST(s.held_units - COALESCE((SELECT SUM(ri.quantity) FROM reservation_items ri \
             WHERE ri.product = s.product AND ri.size = s.size AND ri.holds_until > 0 AND ri.holds_until <= ",
            $now,
            "), 0) AS BIGINT)"
        )
    };
}
pub(crate) use reserved_units;

/// The columns `SELECT`ed for a whole movement, in `columns::MovementColumns`' order.
macro_rules! movement_columns {
    () => {
        "id, product, size, type, quantity, stock_before, stock_after, reason, reference, order_reference, date"
    };
}

/// The columns of `conflicts` in `columns::ConflictColumns`' order.
macro_rules! conflict_columns {
    () => {
        "id, kind, reference, event_id, details, created_at, resolved_at, resolution"
    };
}

/// The columns of a stock alert, for `SELECT` and `RETURNING`, in `columns::AlertColumns`' order.
macro_rules! alert_columns {
    () => {
        "id, product, size, previous_state, stock, reserved, low_stock_threshold, created_at, attempts"
    };
}

/// Outbox rows of movements whose Payload document the stock-movements hook is saving itself, still in their grace
/// period (never attempted, not yet due): expected to be there, not a backlog. `$1` is now.
macro_rules! awaiting_payload_save {
    () => {
        "(lane LIKE 'movement:%' AND attempts = 0 AND next_attempt_at > $1)"
    };
}

/// The statements of the operations written once in [`crate::ledger::Ledger`], with the parameters each takes.
pub(crate) mod statements {
    use super::Sql;

    /// Whether the database answers.
    pub(crate) const PING: Sql = Sql::same("SELECT CAST(1 AS BIGINT)");
    /// A reservation (`$1`) joined with its items, in item order, as `columns::reservation_from_rows` reads them.
    pub(crate) const RESERVATION: Sql = Sql {
        sqlite: "SELECT r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
            FROM reservations r JOIN reservation_items ri ON ri.reference = r.reference \
            WHERE r.reference = ?1 ORDER BY ri.rowid",
        postgres: "SELECT r.status, r.created_at, r.expires_at, ri.product, ri.size, ri.quantity \
            FROM reservations r JOIN reservation_items ri ON ri.reference = r.reference \
            WHERE r.reference = $1 ORDER BY ri.seq",
    };
    /// The lines of reservation `$1`'s returns, by return id and line (`columns::ReturnLineColumns`).
    pub(crate) const RETURNS_OF_RESERVATION: Sql = Sql::same(
        "SELECT return_id, line, product, size, quantity, reason, created_at FROM return_lines \
         WHERE reference = $1 ORDER BY return_id, line",
    );
    /// The payment of reservation `$1` (`columns::PaymentColumns`): the one recorded for it, else the
    /// PaymentIntent of that id.
    pub(crate) const PAYMENT_OF_RESERVATION: Sql = Sql::same(
        "SELECT payment_intent, reference, amount, refunded, dispute FROM payments \
         WHERE reference = $1 OR payment_intent = $1 \
         ORDER BY CASE WHEN reference = $1 THEN 0 ELSE 1 END, payment_intent LIMIT 1",
    );
    /// The sizes of product `$1` with their figures at `$2`, in the order they were added (`SizeColumns`).
    pub(crate) const PRODUCT_STOCK: Sql = Sql {
        sqlite: concat!(
            "SELECT s.product, s.size, s.stock, s.low_stock_threshold, ",
            reserved_units!("$2"),
            " FROM sizes s WHERE s.product = $1 ORDER BY s.rowid"
        ),
        postgres: concat!(
            "SELECT s.product, s.size, s.stock, s.low_stock_threshold, ",
            reserved_units!("$2"),
            " FROM sizes s WHERE s.product = $1 ORDER BY s.seq"
        ),
    };
    /// Every size with its figures at `$1` and its last alerted state, products in id order (`LedgerSizeColumns`).
    pub(crate) const EVERY_SIZE: Sql = Sql {
        sqlite: concat!(
            "SELECT s.product, s.size, s.stock, s.low_stock_threshold, ",
            reserved_units!("$1"),
            ", s.alert_state FROM sizes s ORDER BY s.product, s.rowid"
        ),
        postgres: concat!(
            "SELECT s.product, s.size, s.stock, s.low_stock_threshold, ",
            reserved_units!("$1"),
            ", s.alert_state FROM sizes s ORDER BY s.product, s.seq"
        ),
    };
    /// Active reservations past their expiry at `$1`, `$2` at most, oldest expiry first.
    pub(crate) const EXPIRED_CANDIDATES: Sql = Sql::same(
        "SELECT reference FROM reservations \
         WHERE status = 'active' AND expires_at <= $1 ORDER BY expires_at, reference LIMIT $2",
    );
    /// Each product's movements dated at or after `$1`, by type (`TotalColumns`).
    pub(crate) const MOVEMENT_TOTALS: Sql = Sql::same(
        "SELECT product, type, COUNT(*), CAST(SUM(quantity) AS BIGINT) \
         FROM movements WHERE date >= $1 GROUP BY product, type ORDER BY product, type",
    );
    /// One whole movement by its id, `$1`.
    pub(crate) const MOVEMENT: Sql =
        Sql::same(concat!("SELECT ", movement_columns!(), " FROM movements WHERE id = $1"));
    /// One whole movement by its idempotency key, `$1` (read by the stores' decisions).
    pub(crate) const MOVEMENT_BY_KEY: Sql = Sql {
        sqlite: concat!("SELECT ", movement_columns!(), " FROM movements WHERE idempotency_key = ?1"),
        postgres: concat!("SELECT ", movement_columns!(), " FROM movements WHERE idempotency_key = $1"),
    };
    /// Up to `$2` movement ids above `$1`.
    pub(crate) const MOVEMENT_IDS: Sql = Sql::same("SELECT id FROM movements WHERE id > $1 ORDER BY id LIMIT $2");
    pub(crate) const LEDGER_PRODUCTS: Sql = Sql::same("SELECT DISTINCT product FROM sizes ORDER BY product");
    /// Forgets the Stripe events received before `$1`.
    pub(crate) const PRUNE_STRIPE_EVENTS: Sql = Sql::same("DELETE FROM stripe_events WHERE received_at < $1");

    /// The counts of the monitoring report at `$1`, as `columns::MonitoringCounts`.
    pub(crate) const MONITORING_COUNTS: Sql = Sql::same(concat!(
        "SELECT \
           (SELECT COUNT(*) FROM reservations WHERE (status = 'active' AND expires_at > $1) OR status = 'processing'), \
           (SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM reservation_items WHERE holds_until > $1), \
           (SELECT COUNT(*) FROM reservations WHERE status = 'active' AND expires_at <= $1), \
           (SELECT COUNT(*) FROM conflicts WHERE resolved_at IS NULL), \
           (SELECT COUNT(*) FROM outbox WHERE NOT ",
        awaiting_payload_save!(),
        "), (SELECT MIN(created_at) FROM outbox WHERE NOT ",
        awaiting_payload_save!(),
        "), (SELECT COUNT(*) FROM outbox WHERE ",
        awaiting_payload_save!(),
        "), (SELECT COUNT(*) FROM outbox WHERE attempts > 0), \
           (SELECT last_error FROM outbox WHERE last_error IS NOT NULL ORDER BY next_attempt_at DESC LIMIT 1), \
           (SELECT COUNT(*) FROM stock_alerts WHERE delivered_at IS NULL), \
           (SELECT last_error FROM stock_alerts WHERE delivered_at IS NULL AND last_error IS NOT NULL \
             ORDER BY id DESC LIMIT 1)",
    ));
    /// The shop's payments (those tied to a reservation: not someone else's on the same Stripe account) by what came
    /// back of them (`PaymentCounts`' fields in order); "fully refunded" is `PaymentMoney::is_fully_refunded` (an
    /// amount known, and all of it refunded).
    pub(crate) const PAYMENT_COUNTS: Sql = Sql::same(
        "SELECT \
           (SELECT COUNT(*) FROM payments WHERE reference IS NOT NULL AND amount > 0 AND refunded >= amount), \
           (SELECT COUNT(*) FROM payments WHERE reference IS NOT NULL AND refunded > 0 \
              AND NOT (amount > 0 AND refunded >= amount)), \
           (SELECT COUNT(*) FROM payments WHERE reference IS NOT NULL AND dispute = 'open'), \
           (SELECT COUNT(*) FROM payments WHERE reference IS NOT NULL AND dispute = 'lost'), \
           (SELECT COUNT(*) FROM payments WHERE reference IS NOT NULL AND dispute = 'won')",
    );
    /// The `$2` reservations holding units at `$1` the longest, as `columns::SummaryColumns`.
    pub(crate) const OLDEST_ACTIVE: Sql = Sql::same(
        "SELECT r.reference, r.status, r.created_at, r.expires_at, \
           (SELECT CAST(COALESCE(SUM(ri.quantity), 0) AS BIGINT) FROM reservation_items ri \
             WHERE ri.reference = r.reference) \
         FROM reservations r WHERE (r.status = 'active' AND r.expires_at > $1) OR r.status = 'processing' \
         ORDER BY r.created_at, r.reference LIMIT $2",
    );

    /// The open conflicts, oldest first, `$1` at most.
    pub(crate) const OPEN_CONFLICTS: Sql = Sql::same(concat!(
        "SELECT ",
        conflict_columns!(),
        " FROM conflicts WHERE resolved_at IS NULL ORDER BY created_at, id LIMIT $1"
    ));
    /// One conflict by its id, `$1`.
    pub(crate) const CONFLICT: Sql =
        Sql::same(concat!("SELECT ", conflict_columns!(), " FROM conflicts WHERE id = $1"));
    /// Resolves conflict `$1` at `$2` with the note `$3`, if it is open: the statement decides which resolution
    /// stands, whichever sidecar runs it first.
    pub(crate) const RESOLVE_CONFLICT: Sql =
        Sql::same("UPDATE conflicts SET resolved_at = $2, resolution = $3 WHERE id = $1 AND resolved_at IS NULL");

    /// Up to `$2` lanes whose rows are all due at `$1` and that nobody claims past `$1`, the oldest row's first.
    pub(crate) const DUE_LANES: Sql = Sql::same(
        "SELECT lane FROM outbox o GROUP BY lane HAVING MAX(next_attempt_at) <= $1 \
         AND NOT EXISTS (SELECT 1 FROM outbox_claims c WHERE c.lane = o.lane AND c.claimed_until > $1) \
         ORDER BY MIN(id) LIMIT $2",
    );
    /// Up to `$2` rows of the lane `$1`, in delivery order, as `columns::OutboxColumns`.
    pub(crate) const LANE_ENTRIES: Sql = Sql::same(
        "SELECT id, topic, subject, lane, revision, attempts, created_at FROM outbox WHERE lane = $1 ORDER BY id LIMIT $2",
    );
    /// Removes delivered row `$1` unless a change coalesced into it since it was read (its revision moved from `$2`).
    pub(crate) const OUTBOX_DELIVERED: Sql = Sql::same("DELETE FROM outbox WHERE id = $1 AND revision = $2");
    /// Records the failed delivery of row `$1` (error `$2`) and holds its whole lane `$3` back until `$4`.
    pub(crate) const OUTBOX_FAILED: Sql = Sql::same(
        "UPDATE outbox SET attempts = attempts + CASE WHEN id = $1 THEN 1 ELSE 0 END, \
           last_error = CASE WHEN id = $1 THEN $2 ELSE last_error END, \
           next_attempt_at = CASE WHEN next_attempt_at < $4 THEN $4 ELSE next_attempt_at END \
         WHERE lane = $3",
    );
    /// Claims lane `$1` for owner `$2` until `$4` unless another owner's claim runs past `$3`: a conditional
    /// upsert, so a second sidecar claiming the same lane at the same moment finds the first one's claim running
    /// and changes nothing.
    pub(crate) const CLAIM_LANE: Sql = Sql::same(
        "INSERT INTO outbox_claims (lane, owner, claimed_until) VALUES ($1, $2, $4) \
         ON CONFLICT (lane) DO UPDATE SET owner = excluded.owner, claimed_until = excluded.claimed_until \
         WHERE outbox_claims.claimed_until <= $3 OR outbox_claims.owner = excluded.owner",
    );
    /// Gives up owner `$2`'s claim on lane `$1`.
    pub(crate) const RELEASE_LANE: Sql = Sql::same("DELETE FROM outbox_claims WHERE lane = $1 AND owner = $2");

    /// Records the crossing of size (`$1`, `$2`) from its alerted state `$4` into `$3`, with its figures (`$5`
    /// stock, `$6` reserved, `$7` threshold) at `$8`, delivered at `$9` (NULL: to deliver), if the size is still
    /// in `$4`; [`MARK_ALERTED`] follows in the same transaction. PostgreSQL locks the size first: of two sidecars
    /// recording the same crossing, the second finds it recorded (READ COMMITTED reads the row again once locked).
    pub(crate) const RECORD_ALERT: Sql = Sql {
        sqlite: concat!(
            "INSERT INTO stock_alerts (product, size, previous_state, state, stock, reserved, low_stock_threshold, \
               created_at, delivered_at, next_attempt_at) \
             SELECT product, size, $4, $3, $5, $6, $7, $8, $9, $8 FROM sizes \
             WHERE product = $1 AND size = $2 AND alert_state = $4 RETURNING ",
            alert_columns!()
        ),
        postgres: concat!(
            "INSERT INTO stock_alerts (product, size, previous_state, state, stock, reserved, low_stock_threshold, \
               created_at, delivered_at, next_attempt_at) \
             SELECT product, size, $4, $3, $5, $6, $7, $8, $9, $8 FROM sizes \
             WHERE product = $1 AND size = $2 AND alert_state = $4 FOR UPDATE RETURNING ",
            alert_columns!()
        ),
    };
    /// Moves size (`$1`, `$2`) from alerted state `$4` to `$3` (the parameters of [`RECORD_ALERT`]).
    pub(crate) const MARK_ALERTED: Sql =
        Sql::same("UPDATE sizes SET alert_state = $3 WHERE product = $1 AND size = $2 AND alert_state = $4");
    /// Claims until `$2` up to `$3` undelivered alerts due at `$1` that nobody claims past `$1`, oldest first;
    /// PostgreSQL skips the ones another sidecar is claiming at the same moment.
    pub(crate) const CLAIM_STOCK_ALERTS: Sql = Sql {
        sqlite: concat!(
            "UPDATE stock_alerts SET claimed_until = $2 WHERE id IN (SELECT id FROM stock_alerts \
               WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND claimed_until <= $1 ORDER BY id LIMIT $3) \
             RETURNING ",
            alert_columns!()
        ),
        postgres: concat!(
            "UPDATE stock_alerts SET claimed_until = $2 WHERE id IN (SELECT id FROM stock_alerts \
               WHERE delivered_at IS NULL AND next_attempt_at <= $1 AND claimed_until <= $1 ORDER BY id LIMIT $3 \
               FOR UPDATE SKIP LOCKED) RETURNING ",
            alert_columns!()
        ),
    };
    /// Marks alert `$1` delivered at `$2`.
    pub(crate) const STOCK_ALERT_DELIVERED: Sql =
        Sql::same("UPDATE stock_alerts SET delivered_at = $2, claimed_until = 0, last_error = NULL WHERE id = $1");
    /// Records a failed delivery of alert `$1` (error `$2`); it is due again at `$3`.
    pub(crate) const STOCK_ALERT_FAILED: Sql = Sql::same(
        "UPDATE stock_alerts SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3, claimed_until = 0 \
         WHERE id = $1",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_binds_parameters_by_their_number_whatever_the_order_they_appear_in() {
        let connection = rusqlite::Connection::open_in_memory().expect("an in-memory database");
        let sql = sqlite_text("SELECT $2 - $1");
        let params: Vec<Param> = params![10_i64, 3_i64];
        let difference: i64 = connection
            .query_row(&sql, rusqlite::params_from_iter(params.iter()), |row| row.get(0))
            .expect("the statement runs");
        assert_eq!(difference, -7);
        assert_eq!(sqlite_text("SELECT 1"), "SELECT 1");
    }
}
