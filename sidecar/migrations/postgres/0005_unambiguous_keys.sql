-- Idempotency keys of several parts escape each part (\ as \\, : as \:) since this migration: unescaped, the sale
-- key of reference 'a:b', size 'c' was the sale key of reference 'a', size 'b:c', and the second sale failed
-- forever. The keys stored before are rewritten from their own columns in the new form, so that an event or an
-- import retried across the upgrade still finds its first movement. Only keys with a : or a \ in a part change;
-- a row whose key is not the one its columns give (none is expected) is left alone.
UPDATE movements
SET idempotency_key = 'sale:'
    || replace(replace(reference, '\', '\\'), ':', '\:') || ':'
    || replace(replace(product, '\', '\\'), ':', '\:') || ':'
    || replace(replace(size, '\', '\\'), ':', '\:')
WHERE type = 'sale'
  AND reference IS NOT NULL
  AND idempotency_key = 'sale:' || reference || ':' || product || ':' || size
  AND strpos(reference || product || size, ':') + strpos(reference || product || size, '\') > 0;

UPDATE movements
SET idempotency_key = 'import:'
    || replace(replace(product, '\', '\\'), ':', '\:') || ':'
    || replace(replace(size, '\', '\\'), ':', '\:')
WHERE idempotency_key = 'import:' || product || ':' || size
  AND strpos(product || size, ':') + strpos(product || size, '\') > 0;
