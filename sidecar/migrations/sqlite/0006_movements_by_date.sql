-- The admin GET and `stock-sidecar stats` sum each product's movements over a recent window (24 hours by default):
-- an index on the movement's date keeps that a range scan however long the ledger grows.
CREATE INDEX movements_by_date ON movements (date);
