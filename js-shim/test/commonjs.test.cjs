// The payload-stock package from CommonJS: require() gives the same functions as import, backed by one wasm
// instance, and the errors keep their shape.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const stock = require('payload-stock');

test('require() exposes every function', () => {
  for (const name of ['availableStock', 'isLowStock', 'deriveSizes', 'validateCart', 'reservationExpiresAt', 'isReservationExpired', 'applyMovement']) {
    assert.equal(typeof stock[name], 'function', name);
  }
  assert.equal(stock.availableStock(10, 3), 7);
  assert.equal(stock.reservationExpiresAt('2026-11-24T10:00:00Z'), '2026-11-24T10:30:00.000Z');
});

test('require() and import share one module instance', async () => {
  const esm = await import('payload-stock');
  assert.equal(esm.deriveSizes, stock.deriveSizes);
  assert.equal(esm.availableStock, stock.availableStock);
});

test('the plugin gets the build require() gets: one wasm instance and one StockApiError in the process', () => {
  // A fresh process that imports only the plugin: the rules and the client it loads are the CommonJS build's.
  const script = `await import('payload-stock/payload');
    const loaded = Object.keys((await import('node:module')).createRequire(import.meta.url).cache);
    console.log(JSON.stringify(['index.js', 'client.js'].map((file) => loaded.some((path) => path.endsWith(\`/dist/cjs/\${file}\`)))));`;
  const output = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: __dirname, encoding: 'utf8' });
  assert.equal(output.trim(), '[true,true]');
});

test('errors thrown to CommonJS callers are StockErrors with a code', () => {
  assert.throws(() => stock.availableStock(-1, 0), { name: 'StockError', code: 'invalid_quantity' });
  assert.throws(() => stock.deriveSizes([{ stock: 1, reservedStock: 2, lowStockThreshold: 0 }]), {
    name: 'StockError',
    code: 'reserved_exceeds_stock',
    message: 'sizes[0]: inconsistent stock: 2 units reserved but only 1 on hand',
  });
});
