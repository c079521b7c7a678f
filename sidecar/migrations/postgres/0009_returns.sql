-- Units of a paid reservation that came back, one row per line of a return: returned (back on sale), cancelled
-- before shipping (back on sale) or damaged (recorded, not back on sale). A return is keyed by the caller's id
-- within its reservation: the same return again finds its lines and records nothing new. What may still come back
-- of a size is what the reservation sold less the sum of its lines here, whatever their reason.
CREATE TABLE return_lines (
    reference TEXT NOT NULL,
    return_id TEXT NOT NULL,
    line BIGINT NOT NULL CHECK (line >= 0),
    product TEXT NOT NULL,
    size TEXT NOT NULL,
    quantity BIGINT NOT NULL CHECK (quantity > 0),
    reason TEXT NOT NULL CHECK (reason IN ('returned', 'cancelled', 'damaged')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (reference, return_id, line)
);
