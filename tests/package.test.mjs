// The npm package as a shop installs it: `npm pack` the js-shim, install the tarball into an empty project, then
// load it from CommonJS and from an ES module in fresh Node processes. Catches a wrong `files` list or
// `exports` map, which tests run inside js-shim cannot see.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
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
    'client.cjs',
    'index.cjs',
    'index.d.ts',
    'index.mjs',
    'package.json',
    'plugin.cjs',
    'wasm/stock_wasm.d.ts',
    'wasm/stock_wasm.js',
    'wasm/stock_wasm_bg.wasm',
  ]);
});
