// The payload-stock package as an ES module: every export with normal input and bad input, and the shape of
// the errors (an Error named StockError with a stable `code`), run against the built package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  availableStock,
  isLowStock,
  deriveSizes,
  validateCart,
  reservationExpiresAt,
  isReservationExpired,
  applyMovement,
  planReturn,
} from 'payload-stock';

/** Asserts that `call` throws a StockError with `code`, and returns it for further checks. */
function throwsStockError(call, code) {
  let caught;
  assert.throws(call, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof Error, 'a StockError is an Error');
  assert.equal(caught.name, 'StockError');
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.message.length > 0);
  return caught;
}

test('availableStock is stock minus reserved stock', () => {
  assert.equal(availableStock(10, 3), 7);
  assert.equal(availableStock(3, 3), 0);
  assert.equal(availableStock(0, 0), 0);
});

test('availableStock refuses negative, fractional, huge, missing and non-numeric figures', () => {
  for (const [stock, reserved] of [[-1, 0], [1.5, 0], [1e10, 0], [NaN, 0], [Infinity, 0], [5, null], [5, undefined], ['abc', 0], [{}, 0], [5n, 0], [Symbol('5'), 0]]) {
    throwsStockError(() => availableStock(stock, reserved), 'invalid_quantity');
  }
  const error = throwsStockError(() => availableStock(5, null), 'invalid_quantity');
  assert.match(error.message, /reservedStock/);
});

test('availableStock reports reserved above stock as an inconsistency, never 0', () => {
  const error = throwsStockError(() => availableStock(2, 5), 'reserved_exceeds_stock');
  assert.equal(error.message, 'inconsistent stock: 5 units reserved but only 2 on hand');
});

test('isLowStock is true when available units are at or below the threshold', () => {
  assert.equal(isLowStock(10, 5, 5), true);
  assert.equal(isLowStock(10, 4, 5), false);
  assert.equal(isLowStock(0, 0, 0), true);
  throwsStockError(() => isLowStock(10, 4), 'invalid_quantity');
  throwsStockError(() => isLowStock(10, 4, -1), 'invalid_quantity');
  throwsStockError(() => isLowStock(1, 4, 0), 'reserved_exceeds_stock');
  throwsStockError(() => isLowStock(10, 4, 2n), 'invalid_quantity');
});

test('deriveSizes fills in availableStock and isLowStock in place and keeps every other field', () => {
  const sizes = [
    { id: 'row1', size: '42', stock: 5, reservedStock: 1, lowStockThreshold: 2, color: 'red' },
    { id: 'row2', size: '43', stock: 2, reservedStock: 2, lowStockThreshold: 0 },
  ];
  const derived = deriveSizes(sizes);
  assert.equal(derived, sizes, 'the same array comes back');
  assert.deepEqual(derived[0], {
    id: 'row1', size: '42', stock: 5, reservedStock: 1, lowStockThreshold: 2, color: 'red', availableStock: 4, isLowStock: false,
  });
  assert.equal(derived[1].availableStock, 0);
  assert.equal(derived[1].isLowStock, true);
  assert.deepEqual(deriveSizes([]), []);
});

test('deriveSizes handles products with many sizes', () => {
  const sizes = Array.from({ length: 500 }, (_, i) => ({ size: String(i), stock: i, reservedStock: 0, lowStockThreshold: 3 }));
  deriveSizes(sizes);
  assert.equal(sizes[499].availableStock, 499);
  assert.equal(sizes[3].isLowStock, true);
  assert.equal(sizes[4].isLowStock, false);
});

test('deriveSizes names the bad row and writes nothing when a row is invalid', () => {
  const sizes = [
    { size: '42', stock: 5, reservedStock: 1, lowStockThreshold: 2 },
    { size: '43', stock: 2, reservedStock: 0, lowStockThreshold: -1 },
  ];
  const error = throwsStockError(() => deriveSizes(sizes), 'invalid_quantity');
  assert.match(error.message, /^sizes\[1\]/);
  assert.equal(sizes[0].availableStock, undefined, 'rows before the bad one are untouched');

  const typeError = throwsStockError(
    () => deriveSizes([{ size: '42', stock: '5', reservedStock: 0, lowStockThreshold: 0 }]),
    'invalid_quantity',
  );
  assert.equal(typeError.message, 'sizes[0].stock: expected a finite number, got the string "5"');
  throwsStockError(() => deriveSizes([{ stock: 5, lowStockThreshold: 0 }]), 'invalid_quantity');
  throwsStockError(() => deriveSizes([{ stock: 5, reservedStock: 6, lowStockThreshold: 0 }]), 'reserved_exceeds_stock');
  throwsStockError(() => deriveSizes([null]), 'invalid_input');
  throwsStockError(() => deriveSizes('sizes'), 'invalid_input');
  throwsStockError(() => deriveSizes(undefined), 'invalid_input');
  throwsStockError(() => deriveSizes([Object.freeze({ stock: 5, reservedStock: 1, lowStockThreshold: 2 })]), 'invalid_input');
});

test('validateCart reports every shortage and every bad line at once', () => {
  const products = [
    { id: 7, sizes: [{ size: 42, stock: 3, reservedStock: 1, lowStockThreshold: 0 }, { size: '43', stock: 0, reservedStock: 0, lowStockThreshold: 0 }] },
    { id: 'boot', sizes: [{ size: '40', stock: 10, reservedStock: 0, lowStockThreshold: 2 }] },
  ];
  const ok = validateCart(products, [{ product: 'boot', size: '40', quantity: 2 }]);
  assert.deepEqual(ok, { ok: true, items: [{ product: 'boot', size: '40', quantity: 2, available: 10 }], shortages: [], errors: [] });

  const result = validateCart(products, [
    { product: '7', size: '42', quantity: 2 },
    { product: 7, size: 42, quantity: 1 },
    { product: 7, size: '43', quantity: 1 },
    { product: 'sandal', size: '42', quantity: 1 },
    { product: 'boot', size: '41', quantity: 1 },
    { product: 'boot', size: '40', quantity: 0 },
    { product: 'boot', size: '40', quantity: 2.5 },
    { product: 'boot', size: '40', quantity: 1001 },
  ]);
  assert.equal(result.ok, false);
  assert.deepEqual(result.shortages, [
    { product: '7', size: '42', requested: 3, available: 2 },
    { product: '7', size: '43', requested: 1, available: 0 },
  ]);
  assert.deepEqual(result.errors.map((e) => [e.code, e.line]), [
    ['unknown_product', 3],
    ['unknown_size', 4],
    ['invalid_quantity', 5],
    ['invalid_quantity', 6],
    ['invalid_quantity', 7],
  ]);
  assert.equal(result.errors[1].message, 'items[4]: product "boot" has no size "41"');
  assert.equal(result.errors[1].product, 'boot');
  assert.equal(result.errors[1].size, '41');
});

test('validateCart speaks of variants for a shop on Payload\'s ecommerce plugin, keyed as the client keys them', async () => {
  const { NO_VARIANT, variantOfKey } = await import('payload-stock/client');
  const products = [
    { id: 1, variants: [{ id: 11, stock: 2, reservedStock: 0, lowStockThreshold: 0 }] },
    { id: 2, stock: 1, reservedStock: 0, lowStockThreshold: 0 },
  ];
  const result = validateCart(products, [
    { product: 1, variant: 11, quantity: 3 },
    { product: 2, variant: null, quantity: 1 },
  ]);
  assert.deepEqual(result.shortages, [{ product: '1', size: '11', variant: '11', requested: 3, available: 2 }]);
  assert.deepEqual(result.items[1], { product: '2', size: NO_VARIANT, variant: null, quantity: 1, available: 1 });
  assert.equal(variantOfKey(result.items[1].size), null);
  assert.equal(variantOfKey(result.items[0].size), '11');
  throwsStockError(() => validateCart(products, [{ product: 1, variant: 'a b', quantity: 1 }]), 'invalid_variant');
});

test('validateCart refuses an empty cart and throws on input that is not a cart', () => {
  const products = [{ id: 'p', sizes: [{ size: 'M', stock: 1, reservedStock: 0, lowStockThreshold: 0 }] }];
  assert.deepEqual(validateCart(products, []).errors.map((e) => e.code), ['empty_cart']);
  const many = Array.from({ length: 201 }, () => ({ product: 'p', size: 'M', quantity: 1 }));
  assert.deepEqual(validateCart(products, many).errors.map((e) => e.code), ['too_many_lines']);
  throwsStockError(() => validateCart(products, { product: 'p' }), 'invalid_input');
  throwsStockError(() => validateCart(products, [{ product: 'p', size: 'M', quantity: '1' }]), 'invalid_quantity');
  throwsStockError(() => validateCart(products, [{ size: 'M', quantity: 1 }]), 'invalid_input');
  throwsStockError(() => validateCart(products, [{ product: 'p', size: null, quantity: 1 }]), 'invalid_input');
  throwsStockError(() => validateCart(null, []), 'invalid_input');
  throwsStockError(() => validateCart([{ id: 'p' }], []), 'invalid_input');
  const error = throwsStockError(
    () => validateCart([{ id: 'p', sizes: [{ size: 'M', stock: 1, reservedStock: 2, lowStockThreshold: 0 }] }], []),
    'reserved_exceeds_stock',
  );
  assert.match(error.message, /^products\[0\]\.sizes\[0\]/);
});

test('reservationExpiresAt adds the TTL, 30 minutes by default', () => {
  assert.equal(reservationExpiresAt('2026-11-24T10:00:00Z'), '2026-11-24T10:30:00.000Z');
  assert.equal(reservationExpiresAt('2026-11-24T10:00:00Z', 60), '2026-11-24T10:01:00.000Z');
  assert.equal(reservationExpiresAt('2026-11-24T11:00:00.250+01:00', 1), '2026-11-24T10:00:01.250Z');
  assert.equal(reservationExpiresAt(new Date('2026-11-24T10:00:00Z')), '2026-11-24T10:30:00.000Z');
  assert.equal(reservationExpiresAt('2026-11-24T10:00:00Z', 604800), '2026-12-01T10:00:00.000Z');
});

test('reservationExpiresAt refuses malformed dates and TTLs', () => {
  for (const date of ['tomorrow', '2026-11-24', '2026-02-30T10:00:00Z', '', null, undefined, 1795514400000, new Date(NaN)]) {
    throwsStockError(() => reservationExpiresAt(date), 'invalid_date');
  }
  for (const ttl of [0, -1, 1.5, 604801, NaN, '60', null]) {
    throwsStockError(() => reservationExpiresAt('2026-11-24T10:00:00Z', ttl), 'invalid_ttl');
  }
  throwsStockError(() => reservationExpiresAt('9999-12-31T23:59:00Z'), 'invalid_date');
});

test('isReservationExpired is true from the expiry instant on', () => {
  const expiresAt = '2026-11-24T10:30:00.000Z';
  assert.equal(isReservationExpired(expiresAt, '2026-11-24T10:29:59.999Z'), false);
  assert.equal(isReservationExpired(expiresAt, '2026-11-24T10:30:00.000Z'), true);
  assert.equal(isReservationExpired(expiresAt, new Date('2026-11-24T11:00:00Z')), true);
  assert.equal(isReservationExpired(new Date(Date.now() - 1000)), true, 'now defaults to the current time');
  assert.equal(isReservationExpired(new Date(Date.now() + 60_000)), false);
  throwsStockError(() => isReservationExpired('never'), 'invalid_date');
  throwsStockError(() => isReservationExpired(expiresAt, 'later'), 'invalid_date');
});

test('applyMovement records the stock before and after and the size after it', () => {
  const applied = applyMovement(
    { stock: 5, reservedStock: 1, lowStockThreshold: 2 },
    { type: 'sale', quantity: -2, reason: 'Order ORD-2024-001', reference: 'pi_3Abc', orderReference: 'ORD-2024-001', date: '2026-11-24T10:00:00Z' },
  );
  assert.deepEqual(applied, {
    type: 'sale',
    quantity: -2,
    stockBefore: 5,
    stockAfter: 3,
    reservedStock: 1,
    availableStock: 2,
    isLowStock: true,
    reason: 'Order ORD-2024-001',
    reference: 'pi_3Abc',
    orderReference: 'ORD-2024-001',
    date: '2026-11-24T10:00:00.000Z',
  });
  const restock = applyMovement({ stock: 0, reservedStock: 0, lowStockThreshold: 0 }, { type: 'restock', quantity: 12 });
  assert.equal(restock.stockAfter, 12);
  assert.equal(restock.reference, null);
  assert.ok(Math.abs(Date.parse(restock.date) - Date.now()) < 60_000, 'the date defaults to now');
  assert.equal(applyMovement({ stock: 3, reservedStock: 0, lowStockThreshold: 0 }, { type: 'return', quantity: 1 }).stockAfter, 4);
  assert.equal(applyMovement({ stock: 3, reservedStock: 0, lowStockThreshold: 0 }, { type: 'adjustment', quantity: -3 }).stockAfter, 0);
});

test('applyMovement checks sign rules, stock below zero and stock below reserved', () => {
  const size = { stock: 5, reservedStock: 4, lowStockThreshold: 0 };
  throwsStockError(() => applyMovement(size, { type: 'sale', quantity: 1 }), 'invalid_movement_sign');
  throwsStockError(() => applyMovement(size, { type: 'restock', quantity: -1 }), 'invalid_movement_sign');
  throwsStockError(() => applyMovement(size, { type: 'return', quantity: -1 }), 'invalid_movement_sign');
  throwsStockError(() => applyMovement(size, { type: 'sale', quantity: -2 }), 'stock_below_reserved');
  throwsStockError(() => applyMovement(size, { type: 'adjustment', quantity: -6 }), 'insufficient_stock');
  throwsStockError(() => applyMovement(size, { type: 'adjustment', quantity: 0 }), 'invalid_quantity');
  throwsStockError(() => applyMovement(size, { type: 'adjustment', quantity: 0.5 }), 'invalid_quantity');
  throwsStockError(() => applyMovement(size, { type: 'adjustment', quantity: '-1' }), 'invalid_quantity');
  throwsStockError(() => applyMovement(size, { type: 'loss', quantity: -1 }), 'invalid_movement_type');
  throwsStockError(() => applyMovement(size, { quantity: -1 }), 'invalid_movement_type');
  throwsStockError(() => applyMovement(size, { type: 'restock', quantity: 1, date: 'soon' }), 'invalid_date');
  throwsStockError(() => applyMovement(size, { type: 'restock', quantity: 1, reference: 42 }), 'invalid_input');
  throwsStockError(() => applyMovement({ stock: 5 }, { type: 'restock', quantity: 1 }), 'invalid_quantity');
  throwsStockError(() => applyMovement(null, { type: 'restock', quantity: 1 }), 'invalid_input');
  throwsStockError(() => applyMovement(size, 'restock'), 'invalid_input');
});

/** The names a module exports (in Node, importing the CommonJS build also shows `default` and `__esModule`). */
const exported = (module) => Object.keys(module).filter((name) => name !== 'default' && name !== '__esModule').sort();

test('the root entry point is the rules only: the client and the plugin are subpaths', async () => {
  const root = await import('payload-stock');
  assert.deepEqual(exported(root), [
    'applyMovement',
    'availableStock',
    'deriveSizes',
    'isLowStock',
    'isReservationExpired',
    'planReturn',
    'reservationExpiresAt',
    'validateCart',
  ]);
  const client = await import('payload-stock/client');
  assert.deepEqual(exported(client), ['CHECKOUT_METADATA', 'NO_VARIANT', 'StockApiError', 'createStockClient', 'variantOfKey']);
  const plugin = await import('payload-stock/payload');
  for (const name of ['payloadStock', 'projectionProof', 'mayOpenAdmin']) assert.equal(typeof plugin[name], 'function', name);
});

test('planReturn checks a return against what was sold with the sidecar\'s rule, every problem at once', () => {
  const sold = [{ product: 'runner', size: '42', sold: 3, returned: 1 }];
  const plan = planReturn(sold, [
    { product: 'runner', size: '42', quantity: 1, reason: 'returned' },
    { product: 'runner', size: '42', quantity: 1, reason: 'damaged' },
  ]);
  assert.equal(plan.ok, true);
  assert.deepEqual(plan.lines.map((line) => line.restocked), [1, 0]);
  assert.deepEqual(plan.sold, [{ product: 'runner', size: '42', sold: 3, returned: 3, returnable: 0 }]);
  const refused = planReturn(sold, [{ product: 'runner', size: '42', quantity: 3, reason: 'returned' }, { product: 'runner', size: '43', quantity: 1, reason: 'returned' }]);
  assert.equal(refused.ok, false);
  assert.deepEqual(refused.errors.map((error) => error.code), ['not_sold', 'exceeds_returnable']);
  assert.deepEqual(refused.sold[0].returnable, 2, 'what may still come back, unchanged by a refused return');
  const variants = planReturn([{ product: 7, variant: 12, sold: 1 }], [{ product: 7, variant: 12, quantity: 1, reason: 'cancelled' }]);
  assert.deepEqual(variants.sold, [{ product: '7', size: '12', variant: '12', sold: 1, returned: 1, returnable: 0 }]);
  throwsStockError(() => planReturn(sold, [{ product: 'runner', size: '42', quantity: 1, reason: 'lost' }]), 'invalid_reason');
  throwsStockError(() => planReturn('sold', []), 'invalid_input');
});
