-- The stock ledger. Instants are milliseconds since the Unix epoch (UTC); quantities are whole units.

-- One row per size of a product: units on hand and the low-stock threshold. Reserved units are not stored:
-- they are the sum of the reservation items that still hold their units (see reservation_items.holds_until), so
-- a reservation stops counting at its expiry instant even if cleanup runs late.
CREATE TABLE sizes (
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    stock INTEGER NOT NULL CHECK (stock >= 0),
    low_stock_threshold INTEGER NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (product, size)
);

CREATE TABLE reservations (
    -- The PaymentIntent or Checkout Session id the checkout uses.
    reference TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('active', 'processing', 'committed', 'released', 'expired')),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX reservations_by_status_and_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_items (
    reference TEXT NOT NULL REFERENCES reservations (reference),
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    -- Until when the item holds its units: the reservation's expires_at while it is active, the largest
    -- integer while its payment is processing, 0 once it is committed, released or expired. A size's reserved
    -- units are the items with holds_until > now, found through the index below without reading the items of
    -- finished reservations, however many accumulate.
    holds_until INTEGER NOT NULL,
    PRIMARY KEY (reference, product, size)
);
CREATE INDEX reservation_items_holding ON reservation_items (product, size, holds_until, quantity);

-- Every change to units on hand, as the seed's StockMovement collection records it.
CREATE TABLE movements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- Unique when given: the same request twice records one movement.
    idempotency_key TEXT UNIQUE,
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('sale', 'restock', 'return', 'adjustment')),
    quantity INTEGER NOT NULL CHECK (quantity <> 0),
    stock_before INTEGER NOT NULL CHECK (stock_before >= 0),
    stock_after INTEGER NOT NULL CHECK (stock_after >= 0),
    reason TEXT NOT NULL,
    reference TEXT,
    order_reference TEXT,
    date INTEGER NOT NULL
);
CREATE INDEX movements_by_size ON movements (product, size, id);
