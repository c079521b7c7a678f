// Benchmark: the cost of calling payload-stock's wasm functions from Node, next to plain JavaScript doing the
// same arithmetic, and the size of the .wasm file. Prints a markdown table. Run: node bench/wasm-calls.mjs
// (after the package is built: bash scripts/bench.sh does both).
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const stock = require(join(here, '..', 'js-shim', 'dist', 'cjs', 'index.js'));

const CALLS = Number(process.env.BENCH_CALLS ?? 1_000_000);
const ROUNDS = 5; // the best of several rounds: the machine is shared, the minimum is the least disturbed

// Inputs vary from call to call so that neither V8 nor the wasm engine can fold a constant call away.
const figures = Array.from({ length: 1024 }, (_, i) => ({ stock: 50 + (i % 17), reserved: i % 13, threshold: i % 7 }));
const tenSizeProduct = (seed) => ({
  id: `runner-${seed}`,
  sizes: Array.from({ length: 10 }, (_, i) => ({
    id: `row-${seed}-${i}`,
    size: String(36 + i),
    stock: 20 + ((seed + i) % 9),
    reservedStock: (seed + i) % 5,
    lowStockThreshold: 3,
    sku: `RUN-${36 + i}`,
  })),
});
const products = Array.from({ length: 64 }, (_, seed) => tenSizeProduct(seed));
const carts = products.map((product, seed) => [
  { product: product.id, size: '38', quantity: 1 + (seed % 3) },
  { product: product.id, size: '41', quantity: 2 },
  { product: product.id, size: '38', quantity: 1 },
]);

let sink = 0; // every result feeds this, so no call is dead code

function measure(label, calls, body) {
  body(Math.min(calls, 20_000)); // warm up: let both tiers of V8 and the wasm compiler settle
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const start = process.hrtime.bigint();
    body(calls);
    const elapsed = Number(process.hrtime.bigint() - start);
    best = Math.min(best, elapsed / calls);
  }
  return { label, nsPerCall: best };
}

// Plain JavaScript, two ways: the bare arithmetic, and the same checks payload-stock makes (whole numbers from
// 0 to 1e9, reserved not above stock), which is what a shop would have to write to get the same guarantees.
const bareAvailable = (stockOnHand, reserved) => stockOnHand - reserved;
const bareIsLow = (stockOnHand, reserved, threshold) => stockOnHand - reserved <= threshold;
const isUnits = (n) => Number.isInteger(n) && n >= 0 && n <= 1e9;
const checkedAvailable = (stockOnHand, reserved) => {
  if (!isUnits(stockOnHand) || !isUnits(reserved)) throw new RangeError('invalid_quantity');
  if (reserved > stockOnHand) throw new RangeError('reserved_exceeds_stock');
  return stockOnHand - reserved;
};
const checkedIsLow = (stockOnHand, reserved, threshold) => {
  if (!isUnits(threshold)) throw new RangeError('invalid_quantity');
  return checkedAvailable(stockOnHand, reserved) <= threshold;
};
const checkedDerive = (sizes) => {
  const available = sizes.map((row) => checkedAvailable(row.stock, row.reservedStock));
  sizes.forEach((row, i) => {
    if (!isUnits(row.lowStockThreshold)) throw new RangeError('invalid_quantity');
    row.availableStock = available[i];
    row.isLowStock = available[i] <= row.lowStockThreshold;
  });
  return sizes;
};

const results = [
  measure('availableStock, plain JS (bare subtraction)', CALLS, (n) => {
    for (let i = 0; i < n; i++) {
      const f = figures[i & 1023];
      sink += bareAvailable(f.stock, f.reserved);
    }
  }),
  measure('availableStock, plain JS (same checks)', CALLS, (n) => {
    for (let i = 0; i < n; i++) {
      const f = figures[i & 1023];
      sink += checkedAvailable(f.stock, f.reserved);
    }
  }),
  measure('availableStock, wasm', CALLS, (n) => {
    for (let i = 0; i < n; i++) {
      const f = figures[i & 1023];
      sink += stock.availableStock(f.stock, f.reserved);
    }
  }),
  measure('isLowStock, plain JS (bare comparison)', CALLS, (n) => {
    for (let i = 0; i < n; i++) {
      const f = figures[i & 1023];
      sink += bareIsLow(f.stock, f.reserved, f.threshold) ? 1 : 0;
    }
  }),
  measure('isLowStock, plain JS (same checks)', CALLS, (n) => {
    for (let i = 0; i < n; i++) {
      const f = figures[i & 1023];
      sink += checkedIsLow(f.stock, f.reserved, f.threshold) ? 1 : 0;
    }
  }),
  measure('isLowStock, wasm', CALLS, (n) => {
    for (let i = 0; i < n; i++) {
      const f = figures[i & 1023];
      sink += stock.isLowStock(f.stock, f.reserved, f.threshold) ? 1 : 0;
    }
  }),
  measure('deriveSizes (10 sizes, in place), plain JS (same checks)', CALLS, (n) => {
    for (let i = 0; i < n; i++) sink += checkedDerive(products[i & 63].sizes)[9].availableStock;
  }),
  measure('deriveSizes (10 sizes, in place), wasm', CALLS, (n) => {
    for (let i = 0; i < n; i++) sink += stock.deriveSizes(products[i & 63].sizes)[9].availableStock;
  }),
  measure('validateCart (10-size product, 3 lines), wasm', CALLS, (n) => {
    for (let i = 0; i < n; i++) sink += stock.validateCart([products[i & 63]], carts[i & 63]).items.length;
  }),
];

const byLabel = Object.fromEntries(results.map((r) => [r.label, r.nsPerCall]));
const wasmPath = join(here, '..', 'js-shim', 'dist', 'wasm', 'stock_wasm_bg.wasm');
const wasmBytes = readFileSync(wasmPath);
const gzipped = gzipSync(wasmBytes, { level: 9 }).length;

const ratio = (wasmLabel, jsLabel) => byLabel[wasmLabel] / byLabel[jsLabel];
const availableRatio = ratio('availableStock, wasm', 'availableStock, plain JS (same checks)');
const lowRatio = ratio('isLowStock, wasm', 'isLowStock, plain JS (same checks)');
const availableBareRatio = ratio('availableStock, wasm', 'availableStock, plain JS (bare subtraction)');
const deriveNs = byLabel['deriveSizes (10 sizes, in place), wasm'];
const verdict = (ok) => (ok ? 'met' : 'MISSED');

console.log(`\npayload-stock wasm call costs: ${CALLS.toLocaleString('en')} calls per row, best of ${ROUNDS} rounds`);
console.log(`Node ${process.version}, ${process.platform}/${process.arch}\n`);
console.log('| call | ns per call |');
console.log('| --- | ---: |');
for (const { label, nsPerCall } of results) console.log(`| ${label} | ${nsPerCall.toFixed(1)} |`);
console.log('\n| target | measured | goal | |');
console.log('| --- | ---: | ---: | --- |');
console.log(`| .wasm size, raw | ${(wasmBytes.length / 1024).toFixed(1)} KB | | |`);
console.log(`| .wasm size, gzip -9 | ${(gzipped / 1024).toFixed(1)} KB | <= 40 KB | ${verdict(gzipped <= 40 * 1024)} |`);
console.log(`| availableStock wasm / plain JS with the same checks | ${availableRatio.toFixed(2)}x | <= 3x | ${verdict(availableRatio <= 3)} |`);
console.log(`| isLowStock wasm / plain JS with the same checks | ${lowRatio.toFixed(2)}x | <= 3x | ${verdict(lowRatio <= 3)} |`);
console.log(`| availableStock wasm / bare subtraction | ${availableBareRatio.toFixed(2)}x | (for reference) | |`);
console.log(`| deriveSizes, 10 sizes | ${(deriveNs / 1000).toFixed(2)} us | < 2 us | ${verdict(deriveNs < 2000)} |`);
if (Number.isNaN(sink)) console.log('(unreachable: keeps the results alive)');
