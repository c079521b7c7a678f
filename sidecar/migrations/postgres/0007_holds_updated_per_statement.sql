-- The units reservation items stop or start holding are moved on their sizes once per statement, as 0006 does for
-- new items. A batch of Stripe events (the sidecar applies many in one transaction and sets their items' holds in
-- one UPDATE) made the row-level trigger of 0001 update a hot size's row once per item: as many row versions of that
-- one row per batch. Now one UPDATE per size and statement, from the statement's transition tables (a trigger with
-- transition tables cannot name columns, so the deltas themselves say whether anything moved); deletes of items
-- keep the row-level trigger of 0001.
CREATE FUNCTION reservation_items_hold_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sizes s SET held_units = s.held_units + changed.units
    FROM (SELECT product, size, SUM(units) AS units
          FROM (SELECT product, size, -quantity AS units FROM old_items WHERE holds_until > 0
                UNION ALL
                SELECT product, size, quantity AS units FROM new_items WHERE holds_until > 0) deltas
          GROUP BY product, size HAVING SUM(units) <> 0) changed
    WHERE s.product = changed.product AND s.size = changed.size;
    RETURN NULL;
END;
$$;

DROP TRIGGER reservation_items_held_on_update ON reservation_items;

CREATE TRIGGER reservation_items_held_on_update AFTER UPDATE ON reservation_items
REFERENCING OLD TABLE AS old_items NEW TABLE AS new_items
FOR EACH STATEMENT EXECUTE FUNCTION reservation_items_hold_updated();
