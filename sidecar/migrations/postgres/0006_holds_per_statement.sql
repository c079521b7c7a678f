-- The units new reservation items hold are added to their sizes once per statement, not once per row. A batch of
-- reservations (the sidecar decides many in one transaction and writes their items in one INSERT) made the
-- row-level trigger of 0001 update a hot size's row once per item: as many row versions of that one row per batch,
-- which the next batch's lock and read had to step over. Now one UPDATE per size and statement, from the
-- statement's transition table; updates and deletes of items keep the row-level triggers of 0001.
CREATE FUNCTION reservation_items_hold_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE sizes s SET held_units = s.held_units + inserted.units
    FROM (SELECT product, size, SUM(quantity) AS units FROM inserted_items WHERE holds_until > 0
          GROUP BY product, size) inserted
    WHERE s.product = inserted.product AND s.size = inserted.size;
    RETURN NULL;
END;
$$;

DROP TRIGGER reservation_items_held_on_insert ON reservation_items;

CREATE TRIGGER reservation_items_held_on_insert AFTER INSERT ON reservation_items
REFERENCING NEW TABLE AS inserted_items FOR EACH STATEMENT EXECUTE FUNCTION reservation_items_hold_inserted();
