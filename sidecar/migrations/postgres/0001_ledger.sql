-- The stock ledger in PostgreSQL: the same tables as the SQLite ledger (migrations/sqlite, 0001 to 0005, whose
-- comments explain each column), in PostgreSQL's dialect, for several sidecars sharing one database. Instants are
-- milliseconds since the Unix epoch (UTC); quantities are whole units.
--
-- Concurrency: every decision runs in one READ COMMITTED transaction that first locks the rows it decides on, in
-- one order everywhere: the reservation (SELECT ... FOR UPDATE), then the sizes it touches, sorted by product and
-- size. Two sidecars can therefore never both take the last unit, and no two decisions wait on each other in a
-- cycle (a deadlock PostgreSQL still reports is retried).

-- `seq` keeps the order sizes were added in (SQLite's rowid), which is the order Payload shows them.
CREATE TABLE sizes (
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    stock BIGINT NOT NULL CHECK (stock >= 0),
    low_stock_threshold BIGINT NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
    updated_at BIGINT NOT NULL,
    -- The units the size's reservations hold (items with holds_until > 0), kept by the triggers below.
    held_units BIGINT NOT NULL DEFAULT 0 CHECK (held_units >= 0),
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (product, size)
);

CREATE TABLE reservations (
    reference TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active', 'processing', 'committed', 'released', 'expired')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX reservations_by_status_and_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_items (
    reference TEXT NOT NULL REFERENCES reservations (reference),
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    -- expires_at while active, the largest BIGINT while processing, 0 once finished (see the SQLite migration).
    holds_until BIGINT NOT NULL,
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (reference, product, size)
);
CREATE INDEX reservation_items_holding ON reservation_items (product, size, holds_until, quantity);

CREATE TABLE movements (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key TEXT UNIQUE,
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('sale', 'restock', 'return', 'adjustment')),
    quantity BIGINT NOT NULL CHECK (quantity <> 0),
    stock_before BIGINT NOT NULL CHECK (stock_before >= 0),
    stock_after BIGINT NOT NULL CHECK (stock_after >= 0),
    reason TEXT NOT NULL,
    reference TEXT,
    order_reference TEXT,
    date BIGINT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'sidecar' CHECK (origin IN ('sidecar', 'payload'))
);
CREATE INDEX movements_by_size ON movements (product, size, id);

-- One row per Stripe event id: the insert that claims an event commits with what the event changed. A second
-- sidecar receiving the same event at the same moment waits on the first one's insert, then finds it.
CREATE TABLE stripe_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX stripe_events_by_age ON stripe_events (received_at);

CREATE TABLE conflicts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('oversold', 'unknown_reference')),
    reference TEXT NOT NULL,
    event_id TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX conflicts_open ON conflicts (resolved_at);

CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic TEXT NOT NULL CHECK (topic IN ('product', 'movement', 'reservation')),
    subject TEXT NOT NULL,
    lane TEXT NOT NULL,
    revision BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    UNIQUE (topic, subject)
);
CREATE INDEX outbox_by_lane ON outbox (lane, id);

CREATE TABLE outbox_claims (
    lane TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    claimed_until BIGINT NOT NULL
);

-- held_units follows every insert, update and delete of a reservation item (the SQLite migration 0004 explains
-- why it is kept on the size). The size's row is already locked by the decision that changes the item.
CREATE FUNCTION reservation_items_keep_held_units() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.holds_until > 0 THEN
        UPDATE sizes SET held_units = held_units - OLD.quantity WHERE product = OLD.product AND size = OLD.size;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.holds_until > 0 THEN
        UPDATE sizes SET held_units = held_units + NEW.quantity WHERE product = NEW.product AND size = NEW.size;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER reservation_items_held_on_insert AFTER INSERT ON reservation_items
FOR EACH ROW WHEN (NEW.holds_until > 0) EXECUTE FUNCTION reservation_items_keep_held_units();

CREATE TRIGGER reservation_items_held_on_update AFTER UPDATE OF holds_until, quantity ON reservation_items
FOR EACH ROW WHEN ((OLD.holds_until > 0) <> (NEW.holds_until > 0) OR OLD.quantity <> NEW.quantity)
EXECUTE FUNCTION reservation_items_keep_held_units();

CREATE TRIGGER reservation_items_held_on_delete AFTER DELETE ON reservation_items
FOR EACH ROW WHEN (OLD.holds_until > 0) EXECUTE FUNCTION reservation_items_keep_held_units();
