-- Low-stock alerts. alert_state is the stock state (stock-core's StockState: in_stock, low, out_of_stock) that the
-- last alert about the size recorded. The alert check compares it with the size's state now; a crossing is
-- recorded by a compare-and-set on this column, so of several sidecars seeing the same crossing one records it.
-- Existing sizes start as in_stock: a size already low when this runs is alerted about once.
ALTER TABLE sizes ADD COLUMN alert_state TEXT NOT NULL DEFAULT 'in_stock'
    CHECK (alert_state IN ('in_stock', 'low', 'out_of_stock'));

-- One row a crossing, kept as its history; delivered_at is set once LOW_STOCK_WEBHOOK_URL accepted it (at once
-- when no webhook is configured). claimed_until keeps two sidecars from posting the same alert at once.
CREATE TABLE stock_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    previous_state TEXT NOT NULL,
    state TEXT NOT NULL,
    stock INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    low_stock_threshold INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX stock_alerts_undelivered ON stock_alerts (next_attempt_at) WHERE delivered_at IS NULL;
