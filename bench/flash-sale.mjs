// Benchmark: a flash sale, payload-stock against the seed's own approach, on the same real Payload.
// K buyers at once each want 1 unit of one size with S units in stock; half of the winners pay, half abandon.
// - payload-stock: K reservations sent at one instant by bench/ledger's reserve-burst (connections opened
//   beforehand, as a shop's server keeps them; then again with connections opened during the burst), then signed
//   payment_intent.succeeded / .canceled webhooks; the sidecar projects into Payload.
// - baseline (what the seed describes): each buyer reads the product through Payload's REST API, checks
//   availableStock, writes reservedStock + 1 back; a payer then reads again and writes stock - 1, reserved - 1; an
//   abandoner writes reserved - 1.
// - payload-stock on PostgreSQL: the same burst and webhooks to one sidecar, then to two sharing the ledger (the
//   buyers and the webhooks spread over them in turn), projecting into the same Payload; skipped with a note when
//   no PostgreSQL answers at BENCH_POSTGRES_URL (default the local one).
// Prints markdown tables. Run: node bench/flash-sale.mjs [release stock-sidecar] (scripts/bench.sh builds it and
// reserve-burst next to it, and passes it).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { POSTGRES, psql, schemaUrl } from '../scripts/postgres.mjs';

const here = dirname(fileURLToPath(import.meta.url));
process.env.STOCK_SIDECAR_BIN = process.argv[2] ?? process.env.STOCK_SIDECAR_BIN ?? join(here, '..', 'target', 'release', 'stock-sidecar');
// The buyers of payload-stock's side: a Rust program (bench/ledger), because Node's fetch tops out near 2,700
// requests/s on this machine, below the sidecar; the baseline's buyers stay in Node, far below that limit.
const burstBinary = join(dirname(process.env.STOCK_SIDECAR_BIN), 'reserve-burst');
const { WEBHOOK_SECRET, freePort, sendStripeEvent, sidecarBinary, startShop, stripeEvent, waitFor } = await import('../scripts/shop/harness.mjs');
const { startSidecar } = await import('../scripts/sidecar-process.mjs');

const STOCK = Number(process.env.BENCH_STOCK ?? 50);
const BUYERS = (process.env.BENCH_BUYERS ?? '100,500,1000').split(',').map(Number);
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (value) => `${value.toFixed(1)} ms`;

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
/** A process's CPU time so far (user + system, ms) and peak resident memory (VmHWM, MiB), from /proc. */
function usage(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { cpuMs, peakMiB: peak ? Number(peak[1]) / 1024 : NaN };
}

const shop = await startShop();

/** Where a run's buyers and webhooks go: the sidecars (sharing one ledger), their tokens and processes. */
function sqliteTarget() {
  return {
    bases: [shop.sidecar.base],
    apiToken: shop.sidecar.apiToken,
    adminToken: shop.sidecar.adminToken,
    pids: () => [shop.sidecarChild.pid],
    projected: (timeoutMs) => shop.projected(timeoutMs),
  };
}

/** `count` sidecars on a fresh PostgreSQL schema, projecting into the shop's Payload; null without PostgreSQL. */
async function postgresTarget(count) {
  const schema = `bench_flash_${randomBytes(6).toString('hex')}`;
  if (!psql(`CREATE SCHEMA ${schema}`)) return null;
  const shared = {
    DATABASE_URL: schemaUrl(schema),
    SIDECAR_API_TOKEN: randomBytes(16).toString('hex'),
    ADMIN_API_TOKEN: randomBytes(16).toString('hex'),
    PAYLOAD_URL: shop.payload.url,
    PAYLOAD_API_KEY: shop.sidecar.env.PAYLOAD_API_KEY,
    PROJECTION_RETRY_MAX_SECONDS: '1',
    STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
    CLEANUP_INTERVAL_SECONDS: '0',
    RUST_LOG: 'warn',
  };
  const sidecars = [];
  for (let index = 0; index < count; index++) sidecars.push(await startSidecar(sidecarBinary(), shared, { stdio: 'ignore', port: await freePort() }));
  return {
    bases: sidecars.map((sidecar) => sidecar.base),
    apiToken: shared.SIDECAR_API_TOKEN,
    adminToken: shared.ADMIN_API_TOKEN,
    pids: () => sidecars.map((sidecar) => sidecar.child.pid),
    projected: (timeoutMs = 30_000) => waitFor('Payload to catch up with the PostgreSQL ledger', async () => {
      const response = await fetch(`${sidecars[0].base}/readyz`);
      return (await response.json()).payloadProjection.backlog === 0;
    }, { timeoutMs }),
    async stop() {
      await Promise.allSettled(sidecars.map((sidecar) => sidecar.stop()));
      psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    },
  };
}

/** K buyers at once through reserve-burst; `mode` is warm (connections open beforehand) or cold. */
function burst(target, product, buyers, prefix, mode) {
  const output = execFileSync(burstBinary, [target.bases.join(','), target.apiToken, product, '42', String(buyers), prefix, mode], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return JSON.parse(output);
}

/** CPU time of every PostgreSQL server process (the postmaster and its backends), in ms. */
function postgresCpuMs() {
  let total = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'postgres') total += usage(entry).cpuMs;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

/** CPU time and the largest peak RSS of a run's sidecar processes. */
function sidecarsUsage(target) {
  const each = target.pids().map(usage);
  return { cpuMs: each.reduce((sum, one) => sum + one.cpuMs, 0), peakMiB: Math.max(...each.map((one) => one.peakMiB)) };
}

async function payloadStockRun(target, buyers, run, mode) {
  const product = await shop.createProduct(`Flash ${run} ${mode}`, ['42']);
  await fetch(`${target.bases[0]}/v1/movements`, {
    method: 'POST',
    headers: { authorization: `Bearer ${target.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ product, size: '42', type: 'restock', quantity: STOCK, reason: 'Flash sale stock' }),
  });
  await target.projected();
  const before = { sidecar: sidecarsUsage(target), payload: usage(shop.payload.pid), postgres: { cpuMs: postgresCpuMs(), peakMiB: NaN } };
  const result = burst(target, product, buyers, `pi_flash_${run}_${mode}_`, mode);
  const winners = result.winners;
  const payers = winners.slice(0, Math.ceil(winners.length / 2));
  const paying = new Set(payers);
  await Promise.all(winners.map((reference, index) => sendStripeEvent(target.bases[index % target.bases.length], stripeEvent(paying.has(reference) ? 'payment_intent.succeeded' : 'payment_intent.canceled', reference))));
  const eventsDone = performance.now();
  await target.projected(600_000);
  const after = { sidecar: sidecarsUsage(target), payload: usage(shop.payload.pid), postgres: { cpuMs: postgresCpuMs(), peakMiB: NaN } };
  const shown = (await shop.api.sizes(product))['42'];
  // Requests the shop made: K reservations and one webhook per winner.
  const requests = buyers + winners.length;
  return {
    mode,
    footprint: footprint(before, after, requests),
    winners: winners.length,
    oversold: Math.max(0, winners.length - STOCK),
    overloaded: result.overloaded,
    perSecond: result.perSecond,
    p50: result.p50,
    p99: result.p99,
    payloadCatchUp: performance.now() - eventsDone,
    final: `${shown.stock}/${shown.reservedStock}`,
    expected: `${STOCK - payers.length}/0`,
  };
}

/** CPU ms per 1,000 requests and peak RSS of each process measured (`before`/`after` from usage()). */
function footprint(before, after, requests) {
  return Object.fromEntries(Object.keys(after).map((name) => [name, {
    cpuPer1000: ((after[name].cpuMs - before[name].cpuMs) * 1000) / requests,
    peakMiB: after[name].peakMiB,
  }]));
}

/** The seed's read-check-write through Payload's REST API. Writes carry the projection header, as the sidecar's do. */
async function baselineRun(buyers, run) {
  const product = await shop.createProduct(`Baseline ${run}`, ['42']);
  const write = async (figures) => {
    const row = (await shop.api.sizes(product))['42'];
    const next = figures(row);
    const { status } = await shop.api.patch(`/products/${product}?depth=0`, { sizes: [{ ...row, ...next }] }, { projection: true });
    // Lost updates can drive a figure below zero: Payload refuses that write (400), and the unit is lost track of.
    if (status !== 200) refusedWrites += 1;
  };
  let refusedWrites = 0;
  await write(() => ({ stock: STOCK, reservedStock: 0 }));
  const before = { payload: usage(shop.payload.pid) };
  const latencies = [];
  const winners = [];
  const started = performance.now();
  await Promise.all(Array.from({ length: buyers }, async (_, index) => {
    const began = performance.now();
    const row = (await shop.api.sizes(product))['42'];
    if (row.stock - row.reservedStock >= 1) {
      const { status } = await shop.api.patch(`/products/${product}?depth=0`, { sizes: [{ ...row, reservedStock: row.reservedStock + 1 }] }, { projection: true });
      if (status === 200) winners.push(index);
    }
    latencies.push(performance.now() - began);
  }));
  const reserveSeconds = (performance.now() - started) / 1000;
  const payers = winners.slice(0, Math.ceil(winners.length / 2));
  await Promise.all(winners.map((index) => write((row) => (payers.includes(index) ? { stock: row.stock - 1, reservedStock: row.reservedStock - 1 } : { reservedStock: row.reservedStock - 1 }))));
  const after = { payload: usage(shop.payload.pid) };
  const shown = (await shop.api.sizes(product))['42'];
  latencies.sort((a, b) => a - b);
  return {
    footprint: footprint(before, after, buyers + winners.length),
    winners: winners.length,
    oversold: Math.max(0, winners.length - STOCK),
    perSecond: buyers / reserveSeconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    final: `${shown.stock}/${shown.reservedStock}`,
    expected: `${STOCK - payers.length}/0`,
    refusedWrites,
  };
}

const rows = [];
let postgresNote = null;
for (const [run, buyers] of BUYERS.entries()) {
  const row = {
    buyers,
    stock: await payloadStockRun(sqliteTarget(), buyers, run, 'warm'),
    cold: await payloadStockRun(sqliteTarget(), buyers, run, 'cold'),
    baseline: await baselineRun(buyers, run),
    postgres: [],
  };
  for (const replicas of [1, 2]) {
    const target = await postgresTarget(replicas);
    if (!target) {
      postgresNote = `PostgreSQL rows skipped: no PostgreSQL answers at ${POSTGRES} (set BENCH_POSTGRES_URL)`;
      break;
    }
    try {
      row.postgres.push({ replicas, result: await payloadStockRun(target, buyers, `${run}_pg${replicas}`, 'warm') });
    } finally {
      await target.stop();
    }
  }
  rows.push(row);
}
await shop.stop();

console.log(`\n### Flash sale: K buyers for ${STOCK} units of one size, half the winners pay (same real Payload for both)\n`);
console.log('| K | approach | winners | oversold | reservations/s | p50 | p99 | 503 overloaded (retried) | final stock/reserved (expected) | Payload caught up after the last webhook |');
console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |');
if (postgresNote) console.log(`${postgresNote}\n`);
for (const { buyers, stock, cold, baseline, postgres } of rows) {
  for (const { replicas, result } of postgres) {
    console.log(`| ${buyers} | payload-stock on PostgreSQL, ${replicas} sidecar${replicas > 1 ? 's' : ''} | ${result.winners} | ${result.oversold} | ${result.perSecond.toFixed(0)} | ${ms(result.p50)} | ${ms(result.p99)} | ${result.overloaded} | ${result.final} (${result.expected}) | ${ms(result.payloadCatchUp)} |`);
  }
  console.log(`| ${buyers} | payload-stock, cold connections | ${cold.winners} | ${cold.oversold} | ${cold.perSecond.toFixed(0)} | ${ms(cold.p50)} | ${ms(cold.p99)} | ${cold.overloaded} | ${cold.final} (${cold.expected}) | ${ms(cold.payloadCatchUp)} |`);
  console.log(`| ${buyers} | payload-stock | ${stock.winners} | ${stock.oversold} | ${stock.perSecond.toFixed(0)} | ${ms(stock.p50)} | ${ms(stock.p99)} | ${stock.overloaded} | ${stock.final} (${stock.expected}) | ${ms(stock.payloadCatchUp)} |`);
  console.log(`| ${buyers} | seed baseline | ${baseline.winners} | ${baseline.oversold} | ${baseline.perSecond.toFixed(0)} | ${ms(baseline.p50)} | ${ms(baseline.p99)} | - (${baseline.refusedWrites} writes refused) | ${baseline.final} (${baseline.expected}) | - |`);
  console.log(`| ${buyers} | ratio | | | ${(stock.perSecond / baseline.perSecond).toFixed(1)}x | | | | | |`);
}

console.log('\n### Footprint of the flash-sale runs (CPU per 1,000 requests: the K reservations and one webhook or write per winner)\n');
console.log('| K | approach | sidecar CPU ms / 1,000 | sidecar peak RSS MiB | Payload CPU ms / 1,000 | Payload peak RSS MiB | PostgreSQL server CPU ms / 1,000 |');
console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: |');
for (const { buyers, stock, baseline, postgres } of rows) {
  const { sidecar, payload } = stock.footprint;
  console.log(`| ${buyers} | payload-stock | ${sidecar.cpuPer1000.toFixed(0)} | ${sidecar.peakMiB.toFixed(1)} | ${payload.cpuPer1000.toFixed(0)} | ${payload.peakMiB.toFixed(1)} | - |`);
  for (const { replicas, result } of postgres) {
    const { sidecar: sidecars, payload: shopPayload, postgres: server } = result.footprint;
    console.log(`| ${buyers} | payload-stock on PostgreSQL, ${replicas} sidecar${replicas > 1 ? 's' : ''} (CPU summed, RSS of the largest) | ${sidecars.cpuPer1000.toFixed(0)} | ${sidecars.peakMiB.toFixed(1)} | ${shopPayload.cpuPer1000.toFixed(0)} | ${shopPayload.peakMiB.toFixed(1)} | ${server.cpuPer1000.toFixed(0)} |`);
  }
  console.log(`| ${buyers} | seed baseline | - | - | ${baseline.footprint.payload.cpuPer1000.toFixed(0)} | ${baseline.footprint.payload.peakMiB.toFixed(1)} | - |`);
}
