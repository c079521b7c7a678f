-- What happened to each checkout's money after it was taken, one row per PaymentIntent: the refunds and disputes
-- Stripe reported (charge.refunded, refund.*, charge.dispute.*), tied to the reservation they concern. A Checkout
-- Session's reservation is keyed by its cs_ id while money events name its PaymentIntent: the session's events
-- record the PaymentIntent here, so later money events find the session. Amounts are in the currency's smallest
-- unit; a refunded amount only grows (events come out of order, and a smaller figure is an older one).
CREATE TABLE payments (
    payment_intent TEXT PRIMARY KEY,
    -- The reservation the payment is for (the PaymentIntent itself, or a Checkout Session); NULL while no
    -- reservation is known to be (a refund that arrived before its session completed, someone else's payment).
    reference TEXT,
    -- The amount charged, 0 while unknown.
    amount INTEGER NOT NULL DEFAULT 0 CHECK (amount >= 0),
    refunded INTEGER NOT NULL DEFAULT 0 CHECK (refunded >= 0),
    dispute TEXT CHECK (dispute IN ('open', 'won', 'lost')),
    updated_at INTEGER NOT NULL
);
CREATE INDEX payments_by_reference ON payments (reference);

-- Two kinds of conflicts for payments whose money came back before their success was applied (Stripe delivers out
-- of order): refunded_before_sale (a full refund or a dispute released a reservation still holding its units) and
-- sale_after_refund (the success of a payment already fully refunded or disputed took no units). SQLite cannot
-- change a CHECK constraint in place: the table is rebuilt, ids kept.
CREATE TABLE conflicts_with_money (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('oversold', 'unknown_reference', 'unreadable_event', 'refunded_before_sale',
        'sale_after_refund')),
    reference TEXT NOT NULL,
    event_id TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution TEXT
);
INSERT INTO conflicts_with_money (id, kind, reference, event_id, details, created_at, resolved_at, resolution)
    SELECT id, kind, reference, event_id, details, created_at, resolved_at, resolution FROM conflicts;
DROP TABLE conflicts;
ALTER TABLE conflicts_with_money RENAME TO conflicts;
CREATE INDEX conflicts_open ON conflicts (resolved_at);
