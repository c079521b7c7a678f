-- Stripe events processed, one row per event id: the insert that claims an event commits together with what
-- the event changed, so an event is applied once however often Stripe delivers it.
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE INDEX stripe_events_by_age ON stripe_events (received_at);

-- What the ledger could not do as Stripe asked: a payment for units that are gone (oversold), a payment for a
-- reference nobody reserved. Kept for an operator to resolve.
CREATE TABLE conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('oversold', 'unknown_reference')),
    reference TEXT NOT NULL,
    event_id TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_at INTEGER
);
CREATE INDEX conflicts_open ON conflicts (resolved_at);
