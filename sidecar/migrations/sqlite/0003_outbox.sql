-- What Payload must be shown (the outbox). Every ledger change writes its rows in the same transaction as the
-- change itself, so a change cannot be committed without them; the projection worker delivers each row to Payload's
-- REST API and deletes it. A row names what changed, not how: delivery reads the ledger as it stands then, so
-- several changes to one product coalesce into one row (its revision counts them) and one write.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL CHECK (topic IN ('product', 'movement', 'reservation')),
    -- The product id, the movement id or the reservation reference.
    subject TEXT NOT NULL,
    -- Rows of one lane are delivered one at a time in id order (a product's sizes and its movements share the
    -- product's lane); lanes are independent, so one failing product does not hold up the others.
    lane TEXT NOT NULL,
    -- Bumped by each later change that coalesces into this row: a delivery removes the row only if no change came
    -- in while it was under way.
    revision INTEGER NOT NULL DEFAULT 1,
    -- When the oldest change this row stands for was made.
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    UNIQUE (topic, subject)
);
CREATE INDEX outbox_by_lane ON outbox (lane, id);

-- Movements recorded for Payload's stock-movements hook: the hook saves the Payload document itself, so the
-- outbox creates it only after a grace period, and only if it is still missing.
ALTER TABLE movements ADD COLUMN origin TEXT NOT NULL DEFAULT 'sidecar' CHECK (origin IN ('sidecar', 'payload'));
