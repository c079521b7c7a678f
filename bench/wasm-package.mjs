// Benchmark: the payload-stock package as each runtime loads it, this build next to an older one (0.1.0's
// `--target nodejs` build reads its .wasm file with fs, so it loads in Node only). Prints markdown tables:
//   - sizes: the .wasm raw and gzipped, and what each way of loading it puts on the wire;
//   - load time in Node: a fresh process's require() or import of the package (median of BENCH_LOADS, 15);
//   - load time in Chromium: a fresh page loading the module, inlined against a separate .wasm fetched and
//     compiled by streaming (the two strategies this build chose between), and the whole entry unbundled;
//   - call costs: the same calls on both builds and in plain JavaScript (bench/wasm-package-calls.mjs, a process
//     per build).
//
// Run: node bench/wasm-package.mjs [OLD_PACKAGE_DIR], or OLD_PACKAGE_DIR=... bash scripts/bench.sh
//   OLD_PACKAGE_DIR: the js-shim/ folder of an older build, its wasm/ built (index.cjs and wasm/stock_wasm_bg.wasm,
//   as 0.1.0 had them; docs/BENCHMARKS.md, "Issue 19", says how it was made). Without it, this build alone.
//   Chromium: /usr/bin/chromium (CHROMIUM_PATH), driven by the demo shop's playwright-core.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const shim = join(here, '..', 'js-shim');
const dist = join(shim, 'dist');
const oldDir = process.argv[2] ? resolve(process.argv[2]) : null;
const LOADS = Number(process.env.BENCH_LOADS ?? 15);
const CALLS = Number(process.env.BENCH_CALLS ?? 1_000_000);
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

if (!existsSync(join(dist, 'index.js'))) {
  console.error('bench/wasm-package.mjs: js-shim/dist is not built (source scripts/setup.sh && ensure_tools && build_package)');
  process.exit(1);
}
if (oldDir && !existsSync(join(oldDir, 'index.cjs'))) {
  console.error(`bench/wasm-package.mjs: ${oldDir} has no index.cjs: give the js-shim/ folder of an older build`);
  process.exit(1);
}

const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
const gz = (buffer) => gzipSync(buffer, { level: 9 }).length;
const files = (folder, names) => Buffer.concat(names.map((name) => readFileSync(join(folder, name))));
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

// --- Sizes -------------------------------------------------------------------------------------------------
const sizes = [];
const sizeRow = (what, buffer) => sizes.push({ what, raw: buffer.length, gzip: gz(buffer) });
sizeRow('this build: the .wasm', readFileSync(join(dist, 'wasm', 'stock_wasm_bg.wasm')));
sizeRow('this build, browser/Node entry (index + load/inline + glue + inlined module)', files(dist, ['index.js', 'load/inline.js', 'wasm/stock_wasm.js', 'wasm/stock_wasm_inline.js']));
sizeRow('this build, Edge entry (index + load/edge + glue; the .wasm beside)', files(dist, ['index.js', 'load/edge.js', 'wasm/stock_wasm.js']));
sizeRow('alternative: index + glue + separate .wasm fetched', files(dist, ['index.js', 'wasm/stock_wasm.js', 'wasm/stock_wasm_bg.wasm']));
if (oldDir) {
  sizeRow('0.1.0 build: the .wasm', readFileSync(join(oldDir, 'wasm', 'stock_wasm_bg.wasm')));
  sizeRow('0.1.0 build: glue + .wasm (Node only)', files(oldDir, ['index.cjs', 'wasm/stock_wasm.js', 'wasm/stock_wasm_bg.wasm']));
}

// --- Load time in Node: a fresh process each time, timing only the require or import ------------------------
function nodeLoad(kind, specifier) {
  const source =
    kind === 'require'
      ? `const t = performance.now(); require(${JSON.stringify(specifier)}); process.stdout.write(String(performance.now() - t));`
      : `const t = performance.now(); await import(${JSON.stringify(specifier)}); process.stdout.write(String(performance.now() - t));`;
  const args = kind === 'require' ? ['-e', source] : ['--input-type=module', '-e', source];
  const times = [];
  for (let run = 0; run < LOADS; run++) times.push(Number(execFileSync(process.execPath, args, { encoding: 'utf8' })));
  return median(times);
}
const nodeLoads = [
  ['this build, require() (CommonJS build)', nodeLoad('require', join(dist, 'cjs', 'index.js'))],
  ['this build, import (ES module build, as bundlers see it)', nodeLoad('import', pathToFileURL(join(dist, 'index.js')).href)],
];
if (oldDir) nodeLoads.push(['0.1.0 build, require() (reads the .wasm with fs)', nodeLoad('require', join(oldDir, 'index.cjs'))]);

// --- Load time in Chromium: a fresh context (empty cache) and page per load --------------------------------
async function chromiumLoads() {
  if (!existsSync(CHROMIUM)) return { skipped: `no Chromium at ${CHROMIUM}` };
  let chromium;
  try {
    ({ chromium } = createRequire(join(here, '..', 'examples', 'next-shop', 'package.json'))('playwright-core'));
  } catch {
    return { skipped: 'playwright-core is not installed (npm ci in examples/next-shop)' };
  }
  const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html' };
  // Served gzipped, as a CDN would: the wire size is the gzip size.
  const server = createServer((request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, 'http://x').pathname));
    if (path === '/') {
      // The import map does in the page what package.json's "imports" does for a bundler.
      const importMap = JSON.stringify({ imports: { '#wasm-module': '/load/inline.js' } });
      response.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><title>bench</title><script type="importmap">${importMap}</script>`);
      return;
    }
    const file = join(dist, path);
    if (!file.startsWith(dist) || !existsSync(file)) return response.writeHead(404).end();
    response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'content-encoding': 'gzip' });
    response.end(gzipSync(readFileSync(file)));
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // Both start with the package's JavaScript (glue and rules) loaded, and time only the module's way in: one
  // request each, so the figures compare the strategies, not how many files an unbundled page fetches.
  const strategies = {
    'inlined module: import its base64, decode, compile synchronously, instantiate (this build)': `
      const glue = await import('/wasm/stock_wasm.js');
      const t = performance.now();
      const { wasmBase64 } = await import('/wasm/stock_wasm_inline.js');
      glue.initSync({ module: new WebAssembly.Module(Uint8Array.fromBase64(wasmBase64)) });
      glue.availableStock(5, 2);
      return performance.now() - t;`,
    'separate .wasm: fetch, compile by streaming, instantiate': `
      const glue = await import('/wasm/stock_wasm.js');
      const t = performance.now();
      await glue.default({ module_or_path: '/wasm/stock_wasm_bg.wasm' });
      glue.availableStock(5, 2);
      return performance.now() - t;`,
    'this build\'s whole entry, unbundled (index, load/inline, glue, inlined module: four requests)': `
      const t = performance.now();
      const m = await import('/index.js');
      m.availableStock(5, 2);
      return performance.now() - t;`,
  };
  const results = {};
  try {
    for (const [name, body] of Object.entries(strategies)) {
      const times = [];
      for (let run = 0; run < LOADS; run++) {
        const context = await browser.newContext();
        const page = await context.newPage();
        await page.goto(origin);
        times.push(await page.evaluate(`(async () => { ${body} })()`));
        await context.close();
      }
      results[name] = median(times);
    }
    results.version = browser.version();
  } finally {
    await browser.close();
    server.close();
  }
  return results;
}
const browserLoads = await chromiumLoads();

// --- Call costs: each build in a process of its own (two instances in one V8 heap disturb each other's figures),
// the builds alternated over BENCH_PROCESSES rounds (5), the best kept: on these VMs a run lands in one of two
// speeds (about 12 and 18 ns for availableStock) whatever the build, so one run each would compare luck -------
const builds = { 'this build': join(dist, 'cjs', 'index.js') };
if (oldDir) builds['0.1.0'] = join(oldDir, 'index.cjs');
const callNames = ['availableStock', 'isLowStock', 'deriveSizes (10 sizes)', 'validateCart (10 sizes, 2 lines)'];
const best = {};
const PROCESSES = Number(process.env.BENCH_PROCESSES ?? 5);
for (let round = 0; round < PROCESSES; round++) {
  const order = round % 2 === 0 ? Object.entries(builds) : Object.entries(builds).reverse();
  for (const [build, entry] of [...order, ['plain', 'plain']]) {
    const output = execFileSync(process.execPath, [join(here, 'wasm-package-calls.mjs'), entry], { encoding: 'utf8', env: { ...process.env, BENCH_CALLS: String(CALLS) } });
    for (const [name, ns] of Object.entries(JSON.parse(output))) {
      best[build] ??= {};
      best[build][name] = Math.min(best[build][name] ?? Infinity, ns);
    }
  }
}

// --- Report --------------------------------------------------------------------------------------------------
console.log(`\npayload-stock package: sizes, load times and call costs (Node ${process.version}, ${process.platform}/${process.arch})\n`);
console.log('| what a runtime loads | raw | gzip -9 |');
console.log('| --- | ---: | ---: |');
for (const { what, raw, gzip } of sizes) console.log(`| ${what} | ${kb(raw)} | ${kb(gzip)} |`);

console.log(`\n| load in Node (fresh process, median of ${LOADS}) | ms |`);
console.log('| --- | ---: |');
for (const [what, ms] of nodeLoads) console.log(`| ${what} | ${ms.toFixed(1)} |`);

if (browserLoads.skipped) {
  console.log(`\nChromium: skipped (${browserLoads.skipped})`);
} else {
  console.log(`\n| load in Chromium ${browserLoads.version} (fresh context, gzip over loopback, median of ${LOADS}) | ms |`);
  console.log('| --- | ---: |');
  for (const [what, ms] of Object.entries(browserLoads)) if (what !== 'version') console.log(`| ${what} | ${ms.toFixed(1)} |`);
  if (oldDir) console.log('| 0.1.0 build | cannot load (reads its .wasm with fs) |');
}

const names = Object.keys(builds);
console.log(`\n| call (ns per call, best of ${PROCESSES} processes x 5 rounds of ${CALLS.toLocaleString('en')}) | ${names.join(' | ')} | plain JS, same checks |`);
console.log(`| --- | ${names.map(() => '---:').join(' | ')} | ---: |`);
for (const name of callNames) {
  const plainNs = best.plain[name];
  console.log(`| ${name} | ${names.map((build) => best[build][name].toFixed(1)).join(' | ')} | ${plainNs === undefined ? '' : plainNs.toFixed(1)} |`);
}
