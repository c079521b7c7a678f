// Benchmark: how many reservations per second one stock-sidecar takes on this machine (SQLite, synchronous=FULL,
// one durable commit per reservation), at several numbers of concurrent clients, and a flash sale's outcome.
// Prints markdown tables. Run: node bench/sidecar-reservations.mjs [path to a release stock-sidecar]
// (bash scripts/bench.sh builds it and passes it).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSidecar } from '../scripts/sidecar-process.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const binary = process.argv[2] ?? join(here, '..', 'target', 'release', 'stock-sidecar');
const REQUESTS_PER_ROW = Number(process.env.BENCH_REQUESTS ?? 3000);
const SIZES = 20;

const sidecar = await startSidecar(binary, { RUST_LOG: 'error' });
const { base, apiToken, adminToken } = sidecar;

async function post(path, token, body) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** `total` reservations of 1 unit from `concurrency` clients in parallel; returns throughput and latencies. */
async function reservationRun(label, concurrency, total) {
  let next = 0;
  const latencies = [];
  const statuses = new Map();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const index = next++;
        const began = performance.now();
        const status = await post('/v1/reservations', apiToken, {
          reference: `pi_bench_${label}_${index}`,
          items: [{ product: 'bench', size: String(index % SIZES), quantity: 1 }],
        });
        latencies.push(performance.now() - began);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  return { concurrency, total, perSecond: total / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), statuses };
}

try {
  for (let size = 0; size < SIZES; size++) {
    await post('/v1/movements', adminToken, { product: 'bench', size: String(size), type: 'restock', quantity: 1_000_000 });
  }
  await post('/v1/movements', adminToken, { product: 'flash', size: '42', type: 'restock', quantity: 50 });

  const rows = [];
  for (const concurrency of [1, 16, 64]) {
    rows.push(await reservationRun(`c${concurrency}`, concurrency, REQUESTS_PER_ROW));
  }

  console.log(`\nstock-sidecar reservations: ${REQUESTS_PER_ROW} requests per row, 1 unit each over ${SIZES} sizes`);
  console.log('(SQLite WAL, synchronous=FULL: one durable commit per reservation; client: Node fetch on the same 2 cores)\n');
  console.log('| concurrent clients | reservations | reservations/s | p50 ms | p99 ms | statuses |');
  console.log('| ---: | ---: | ---: | ---: | ---: | --- |');
  for (const row of rows) {
    const statuses = [...row.statuses].map(([status, count]) => `${status}: ${count}`).join(', ');
    console.log(`| ${row.concurrency} | ${row.total} | ${row.perSecond.toFixed(0)} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ${statuses} |`);
  }

  const buyers = 500;
  let next = 0;
  const outcomes = new Map();
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < buyers) {
        const index = next++;
        const status = await post('/v1/reservations', apiToken, {
          reference: `pi_flash_${index}`,
          items: [{ product: 'flash', size: '42', quantity: 1 }],
        });
        outcomes.set(status, (outcomes.get(status) ?? 0) + 1);
      }
    }),
  );
  const stock = await (await fetch(`${base}/v1/products/flash/stock`, { headers: { authorization: `Bearer ${apiToken}` } })).json();
  const reserved = stock.sizes[0].reservedStock;
  console.log(`\nFlash sale: ${buyers} buyers, 64 at a time, for 50 units\n`);
  console.log('| reserved (201) | refused (409) | units reserved in the ledger | oversold |');
  console.log('| ---: | ---: | ---: | ---: |');
  console.log(`| ${outcomes.get(201) ?? 0} | ${outcomes.get(409) ?? 0} | ${reserved} | ${Math.max(0, reserved - 50)} |`);
} finally {
  await sidecar.stop();
}
