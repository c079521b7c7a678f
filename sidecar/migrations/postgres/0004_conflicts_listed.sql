-- Conflicts an operator lists and resolves: a third kind, unreadable_event (a correctly signed Stripe event that
-- cannot be read, recorded instead of refused so that a paid order is never lost silently), and the operator's
-- note when resolving one.
ALTER TABLE conflicts DROP CONSTRAINT conflicts_kind_check;
ALTER TABLE conflicts ADD CONSTRAINT conflicts_kind_check
    CHECK (kind IN ('oversold', 'unknown_reference', 'unreadable_event'));
ALTER TABLE conflicts ADD COLUMN resolution TEXT;
