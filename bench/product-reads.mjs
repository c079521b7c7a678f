// Benchmark: reads of one product's stock, what a shop's product pages ask for. wrk (2 threads, 64 kept-alive
// connections, 5 s) sends GET /v1/products/hot/stock to one sidecar on SQLite, the product having 5 sizes. Each
// binary runs 3 times, alternating, so the machine's state is the same for both; the table shows the median run.
// Run: node bench/product-reads.mjs [release stock-sidecar] [older stock-sidecar]. Needs wrk (Debian: apt install wrk).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startSidecar } from '../scripts/sidecar-process.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const binaries = [process.argv[2] ?? join(here, '..', 'target', 'release', 'stock-sidecar'), process.argv[3]].filter(Boolean);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const run = promisify(execFile);

/** wrk's latency line for a percentile, in milliseconds. */
function percentile(output, label) {
  const match = new RegExp(`${label}%\\s+([\\d.]+)(us|ms|s)`).exec(output);
  if (!match) return NaN;
  const scale = { us: 0.001, ms: 1, s: 1000 }[match[2]];
  return Number(match[1]) * scale;
}

async function readBurst(binary) {
  const tokens = { SIDECAR_API_TOKEN: randomBytes(16).toString('hex'), ADMIN_API_TOKEN: randomBytes(16).toString('hex') };
  const sidecar = await startSidecar(binary, { ...tokens, CLEANUP_INTERVAL_SECONDS: '0', RUST_LOG: 'warn' }, { stdio: 'ignore' });
  try {
    for (const size of ['40', '41', '42', '43', '44']) {
      const restock = await fetch(`${sidecar.base}/v1/movements`, {
        method: 'POST',
        headers: { authorization: `Bearer ${tokens.ADMIN_API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ product: 'hot', size, type: 'restock', quantity: 1000, reason: 'bench' }),
      });
      if (restock.status !== 201) throw new Error(`restocking size ${size}: ${restock.status} ${await restock.text()}`);
    }
    const { stdout } = await run('wrk', ['-t', '2', '-c', '64', '-d', `${SECONDS}s`, '--latency', '-H', `authorization: Bearer ${tokens.SIDECAR_API_TOKEN}`, `${sidecar.base}/v1/products/hot/stock`]);
    const failures = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
    return {
      perSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)[1]),
      p50: percentile(stdout, '50'),
      p99: percentile(stdout, '99'),
      failed: failures ? Number(failures[1]) : 0,
    };
  } finally {
    await sidecar.stop();
  }
}

const rows = [];
const runs = binaries.map(() => []);
for (let round = 0; round < RUNS; round++) {
  for (const [index, binary] of binaries.entries()) {
    console.error(`product-reads: round ${round + 1} of ${RUNS}, ${index === 0 ? 'this build' : 'older build'}`);
    runs[index].push(await readBurst(binary));
  }
}
for (const [index, results] of runs.entries()) {
  const sorted = [...results].sort((a, b) => a.perSecond - b.perSecond);
  const median = sorted[Math.floor(sorted.length / 2)];
  const all = results.map((result) => result.perSecond.toFixed(0)).join(', ');
  rows.push(`| ${index === 0 ? 'this build' : 'older build'} | ${median.perSecond.toFixed(0)} (${all}) | ${median.p50.toFixed(2)} ms | ${median.p99.toFixed(2)} ms | ${median.failed} |`);
}
console.log(`\nReads of one product's stock (5 sizes): wrk, 64 kept-alive connections, ${SECONDS} s, GET /v1/products/hot/stock on SQLite; median of ${RUNS} runs (all runs in brackets)\n`);
console.log('| binary | reads/s | p50 | p99 | not 2xx |');
console.log('| --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
