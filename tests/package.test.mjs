// The npm package as a shop installs it: `npm pack` the js-shim, install the tarball into an empty project, then
// load it from CommonJS and from an ES module in fresh Node processes. Catches a wrong `files` list or
// `exports` map, which tests run inside js-shim cannot see.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const shim = join(here, '..', 'js-shim');
let project;

before(() => {
  project = mkdtempSync(join(tmpdir(), 'payload-stock-consumer-'));
  execFileSync('npm', ['pack', '--silent', '--pack-destination', project], { cwd: shim, stdio: ['ignore', 'pipe', 'inherit'] });
  const tarball = readdirSync(project).find((name) => name.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack wrote a tarball');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--silent', `./${tarball}`], {
    cwd: project,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
});

after(() => rmSync(project, { recursive: true, force: true }));

function runNode(file, source) {
  writeFileSync(join(project, file), source);
  return execFileSync(process.execPath, [file], { cwd: project, encoding: 'utf8' }).trim();
}

test('the installed package loads with require()', () => {
  const output = runNode(
    'consumer.cjs',
    `const { deriveSizes, availableStock } = require('payload-stock');
     const [row] = deriveSizes([{ size: '42', stock: 5, reservedStock: 2, lowStockThreshold: 3 }]);
     console.log(JSON.stringify([availableStock(9, 4), row.availableStock, row.isLowStock]));`,
  );
  assert.equal(output, '[5,3,true]');
});

test('the subpaths of the installed package load with require() and import: the client, and the plugin (ES modules only)', () => {
  const required = runNode(
    'client.cjs',
    `const { createStockClient, StockApiError, CHECKOUT_METADATA } = require('payload-stock/client');
     const rules = require('payload-stock');
     console.log(JSON.stringify([typeof createStockClient, new StockApiError('x', { code: 'sidecar_error' }).name, CHECKOUT_METADATA, 'createStockClient' in rules]));`,
  );
  assert.equal(required, '["function","StockApiError",{"payloadStock":"1"},false]');
  const imported = runNode(
    'plugin.mjs',
    `import { payloadStock, projectionProof } from 'payload-stock/payload';
     import { createStockClient } from 'payload-stock/client';
     const config = payloadStock()({ collections: [{ slug: 'products', fields: [] }] });
     console.log(JSON.stringify([config.collections.map((collection) => collection.slug), /^t=\\d+,v1=[0-9a-f]{64}$/.test(projectionProof('t')), typeof createStockClient]));`,
  );
  assert.equal(imported, '[["products","stock-movements","stock-reservations","stock-returns"],true,"function"]');
});

test('the installed package loads with import', () => {
  const output = runNode(
    'consumer.mjs',
    `import { validateCart, reservationExpiresAt } from 'payload-stock';
     const products = [{ id: 'p', sizes: [{ size: 'M', stock: 1, reservedStock: 0, lowStockThreshold: 0 }] }];
     const result = validateCart(products, [{ product: 'p', size: 'M', quantity: 2 }]);
     console.log(JSON.stringify([result.ok, result.shortages[0].available, reservationExpiresAt('2026-11-24T10:00:00Z', 60)]));`,
  );
  assert.equal(output, '[false,1,"2026-11-24T10:01:00.000Z"]');
});

test('the tarball holds the wasm module and the types, and nothing from the repository around it', () => {
  const listing = execFileSync('npm', ['pack', '--dry-run', '--json'], { cwd: shim, encoding: 'utf8' });
  const files = JSON.parse(listing)[0].files.map((file) => file.path).sort();
  assert.deepEqual(files, [
    'CHANGELOG.md',
    'LICENSE',
    'README.md',
    ...['client', 'index', 'load/inline'].flatMap((name) => [`dist/cjs/${name}.d.ts`, `dist/cjs/${name}.js`]),
    'dist/cjs/package.json',
    ...['stock_wasm', 'stock_wasm_inline'].flatMap((name) => [`dist/cjs/wasm/${name}.d.ts`, `dist/cjs/wasm/${name}.js`]),
    ...['client', 'ecommerce', 'index', 'load/edge', 'load/inline', 'payload'].flatMap((name) => [`dist/${name}.d.ts`, `dist/${name}.js`]),
    'dist/wasm/stock_wasm.d.ts',
    'dist/wasm/stock_wasm.js',
    'dist/wasm/stock_wasm_bg.wasm',
    'dist/wasm/stock_wasm_inline.d.ts',
    'dist/wasm/stock_wasm_inline.js',
    'package.json',
  ].sort());
});

// Bun and Deno, from the npm packages in tests/package.json (the binaries of both ship inside them): the same
// consumer, run by each on the installed package, through its exports map.
const runtimes = {
  bun: { binary: join(here, 'node_modules', 'bun', 'bin', 'bun.exe'), args: ['run'] },
  deno: { binary: join(here, 'node_modules', 'deno', 'deno'), args: ['run', '--no-prompt', '--no-lock', '--quiet'] },
};
for (const [name, { binary, args }] of Object.entries(runtimes)) {
  const skip = existsSync(binary) ? false : `${name} is not installed (npm ci in tests/ installs it)`;
  test(`the installed package runs in ${name}: the rules, their errors, and the client`, { skip }, () => {
    writeFileSync(
      join(project, `${name}.mjs`),
      `import { availableStock, deriveSizes, validateCart, reservationExpiresAt } from 'payload-stock';
       import { createStockClient, StockApiError } from 'payload-stock/client';
       const products = [{ id: 'p', sizes: [{ size: 'M', stock: 1, reservedStock: 0, lowStockThreshold: 0 }] }];
       let code = null;
       try { availableStock(1, 2); } catch (error) { code = error.code; }
       const client = createStockClient({ url: 'http://127.0.0.1:9', token: 't', timeoutMs: 2000 });
       const unreachable = await client.stock('p').catch((error) => error instanceof StockApiError && error.code);
       console.log(JSON.stringify([
         availableStock(9, 4),
         deriveSizes([{ stock: 5, reservedStock: 2, lowStockThreshold: 3 }])[0].isLowStock,
         validateCart(products, [{ product: 'p', size: 'M', quantity: 2 }]).shortages[0].available,
         reservationExpiresAt('2026-11-24T10:00:00Z', 60),
         code,
         unreachable,
       ]));`,
    );
    const output = execFileSync(binary, [...args, `${name}.mjs`], { cwd: project, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' } }).trim();
    assert.equal(output, '[5,true,1,"2026-11-24T10:01:00.000Z","reserved_exceeds_stock","sidecar_unreachable"]');
  });
}
