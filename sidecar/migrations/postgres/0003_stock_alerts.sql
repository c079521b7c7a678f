-- Low-stock alerts (see the SQLite migration 0007 for why each column is there).
ALTER TABLE sizes ADD COLUMN alert_state TEXT NOT NULL DEFAULT 'in_stock'
    CHECK (alert_state IN ('in_stock', 'low', 'out_of_stock'));

CREATE TABLE stock_alerts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    previous_state TEXT NOT NULL,
    state TEXT NOT NULL,
    stock BIGINT NOT NULL,
    reserved BIGINT NOT NULL,
    low_stock_threshold BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX stock_alerts_undelivered ON stock_alerts (next_attempt_at) WHERE delivered_at IS NULL;
