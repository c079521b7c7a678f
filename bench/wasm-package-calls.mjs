// One build's call costs for bench/wasm-package.mjs, in a process of its own: `node bench/wasm-package-calls.mjs
// <entry>` loads the CommonJS entry (or `plain`: JavaScript making the same checks) and prints the best ns per call
// of each call over 5 rounds of BENCH_CALLS, as JSON.
import { createRequire } from 'node:module';

const CALLS = Number(process.env.BENCH_CALLS ?? 1_000_000);
const ROUNDS = 5;
const entry = process.argv[2];

const isUnits = (n) => Number.isInteger(n) && n >= 0 && n <= 1e9;
const checkedAvailable = (stock, reserved) => {
  if (!isUnits(stock) || !isUnits(reserved)) throw new RangeError('invalid_quantity');
  if (reserved > stock) throw new RangeError('reserved_exceeds_stock');
  return stock - reserved;
};
const api =
  entry === 'plain'
    ? { availableStock: checkedAvailable, isLowStock: (stock, reserved, threshold) => checkedAvailable(stock, reserved) <= threshold }
    : createRequire(import.meta.url)(entry);

// Inputs vary from call to call so that neither V8 nor the wasm engine can fold a constant call away.
const figures = Array.from({ length: 1024 }, (_, i) => ({ stock: 50 + (i % 17), reserved: i % 13, threshold: i % 7 }));
const products = Array.from({ length: 64 }, (_, seed) => ({
  id: `runner-${seed}`,
  sizes: Array.from({ length: 10 }, (_, i) => ({ size: String(36 + i), stock: 20 + ((seed + i) % 9), reservedStock: (seed + i) % 5, lowStockThreshold: 3 })),
}));
const carts = products.map((product, seed) => [
  { product: product.id, size: '38', quantity: 1 + (seed % 3) },
  { product: product.id, size: '41', quantity: 2 },
]);
let sink = 0;

/** The best ns per call of `call(i)` over ROUNDS rounds of `count` calls, after a warm-up. */
function measure(count, call) {
  for (let i = 0; i < Math.min(count, 20_000); i++) sink += call(i);
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < count; i++) sink += call(i);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / count);
  }
  return best;
}

const results = {
  availableStock: measure(CALLS, (i) => api.availableStock(figures[i & 1023].stock, figures[i & 1023].reserved)),
  isLowStock: measure(CALLS, (i) => (api.isLowStock(figures[i & 1023].stock, figures[i & 1023].reserved, figures[i & 1023].threshold) ? 1 : 0)),
};
if (entry !== 'plain') {
  // The object-heavy calls take microseconds: a tenth of the calls gives as steady a figure.
  results['deriveSizes (10 sizes)'] = measure(CALLS / 10, (i) => api.deriveSizes(products[i & 63].sizes)[9].availableStock);
  results['validateCart (10 sizes, 2 lines)'] = measure(CALLS / 10, (i) => api.validateCart([products[i & 63]], carts[i & 63]).items.length);
}
if (Number.isNaN(sink)) console.error('(unreachable: keeps the results alive)');
console.log(JSON.stringify(results));
