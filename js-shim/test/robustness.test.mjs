// Whatever a caller passes, every export either returns or throws a StockError with a code: never a wasm trap
// (a Rust panic shows up as "RuntimeError: unreachable"), never another kind of error. Random inputs from a
// seeded generator, so a failure reproduces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as stock from 'payload-stock';

function generator(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = (list) => list[Math.floor(next() * list.length)];
  const number = () =>
    pick([0, 1, 2, 5, 1000, 1001, 1e9, 1e9 + 1, -1, -0, 0.5, 2.5, NaN, Infinity, -Infinity, 2 ** 53, Math.floor(next() * 50)]);
  const scalar = () =>
    pick([number, number, number, () => pick(['', '5', 'abc', '2026-11-24T10:00:00Z', 'sale', 'restock', 'M', '42']), () => pick([null, undefined, true, false]), () => pick([{}, [], new Date(NaN), new Date(0), Symbol('s'), 10n])])();
  const size = () => ({ size: pick(['40', '41', 42, scalar()]), stock: number(), reservedStock: pick([number(), scalar()]), lowStockThreshold: number() });
  const value = (depth = 0) => {
    if (depth > 2 || next() < 0.4) return scalar();
    return pick([
      () => Array.from({ length: Math.floor(next() * 5) }, () => (next() < 0.7 ? size() : value(depth + 1))),
      () => ({ id: pick(['p', 1, scalar()]), sizes: Array.from({ length: Math.floor(next() * 4) }, size) }),
      () => ({ product: pick(['p', 1, scalar()]), size: pick(['40', 42, scalar()]), quantity: number() }),
      () => ({ type: pick(['sale', 'restock', 'return', 'adjustment', scalar()]), quantity: number(), reason: scalar(), date: pick([undefined, scalar()]) }),
      size,
    ])();
  };
  return { value, number, pick };
}

function callSafely(name, call) {
  try {
    call();
  } catch (error) {
    assert.ok(error instanceof Error, `${name} threw a non-Error: ${String(error)}`);
    assert.equal(error.name, 'StockError', `${name} threw ${error.name}: ${error.message}`);
    assert.equal(typeof error.code, 'string');
  }
}

test('random input never traps and never throws anything but a StockError', () => {
  const { value, number, pick } = generator(20261124);
  for (let i = 0; i < 3000; i++) {
    callSafely('availableStock', () => stock.availableStock(pick([number(), value()]), pick([number(), value()])));
    callSafely('isLowStock', () => stock.isLowStock(number(), number(), pick([number(), value()])));
    callSafely('deriveSizes', () => stock.deriveSizes(value()));
    callSafely('validateCart', () => stock.validateCart(value(), value()));
    callSafely('reservationExpiresAt', () => stock.reservationExpiresAt(value(), pick([undefined, number(), value()])));
    callSafely('isReservationExpired', () => stock.isReservationExpired(value(), value()));
    callSafely('applyMovement', () => stock.applyMovement(value(), value()));
  }
});
