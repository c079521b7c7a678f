-- Conflicts an operator lists and resolves: a third kind, unreadable_event (a correctly signed Stripe event that
-- cannot be read, recorded instead of refused so that a paid order is never lost silently), and the operator's
-- note when resolving one. SQLite cannot change a CHECK constraint in place: the table is rebuilt, ids kept.
CREATE TABLE conflicts_listed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('oversold', 'unknown_reference', 'unreadable_event')),
    reference TEXT NOT NULL,
    event_id TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution TEXT
);
INSERT INTO conflicts_listed (id, kind, reference, event_id, details, created_at, resolved_at)
    SELECT id, kind, reference, event_id, details, created_at, resolved_at FROM conflicts;
DROP TABLE conflicts;
ALTER TABLE conflicts_listed RENAME TO conflicts;
CREATE INDEX conflicts_open ON conflicts (resolved_at);
