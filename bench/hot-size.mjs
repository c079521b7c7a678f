// Benchmark: reservations of one hot size. wrk (a C load generator: 2 threads, 64 kept-alive connections, 5 s)
// sends every request as a new 1-unit reservation of one size that has 1,000,000 units, to one sidecar on SQLite,
// one on PostgreSQL, and two sharing one PostgreSQL (a wrk of 1 thread and 32 connections on each, at once).
// Each configuration runs 3 times; the table shows the median run. With a second binary (an older build), both
// run in the same session, configuration by configuration, so the machine's state is the same for both.
// Run: node bench/hot-size.mjs [release stock-sidecar] [older stock-sidecar]. Needs wrk (Debian: apt install wrk)
// and, for the PostgreSQL rows, a server at BENCH_POSTGRES_URL (default the local one).
import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startSidecar } from '../scripts/sidecar-process.mjs';
import { POSTGRES, psql, schemaUrl } from '../scripts/postgres.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const binaries = [process.argv[2] ?? join(here, '..', 'target', 'release', 'stock-sidecar'), process.argv[3]].filter(Boolean);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const run = promisify(execFile);

try {
  execFileSync('wrk', ['--version'], { stdio: 'ignore' });
} catch (error) {
  // wrk prints its usage and exits 1 for --version; only a missing binary is an error.
  if (error.code === 'ENOENT') {
    console.error('bench/hot-size.mjs needs wrk (Debian: apt install wrk)');
    process.exit(1);
  }
}

/** `count` sidecars of `binary` on one ledger: SQLite (count 1) or a fresh PostgreSQL schema; null without one. */
async function startLedger(binary, store, count) {
  const tokens = { SIDECAR_API_TOKEN: randomBytes(16).toString('hex'), ADMIN_API_TOKEN: randomBytes(16).toString('hex') };
  const settings = { ...tokens, CLEANUP_INTERVAL_SECONDS: '0', RUST_LOG: 'warn' };
  let schema = null;
  if (store === 'postgres') {
    schema = `bench_hot_${randomBytes(6).toString('hex')}`;
    if (!psql(`CREATE SCHEMA ${schema}`)) return null;
    // A checkpoint now rather than during the run: the runs before wrote a lot of WAL.
    psql('CHECKPOINT');
    settings.DATABASE_URL = schemaUrl(schema);
  }
  const sidecars = [];
  for (let index = 0; index < count; index++) sidecars.push(await startSidecar(binary, settings, { stdio: 'ignore' }));
  const restock = await fetch(`${sidecars[0].base}/v1/movements`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens.ADMIN_API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ product: 'hot', size: '42', type: 'restock', quantity: 1_000_000, reason: 'bench' }),
  });
  if (restock.status !== 201) throw new Error(`restocking the hot size: ${restock.status} ${await restock.text()}`);
  return {
    bases: sidecars.map((sidecar) => sidecar.base),
    token: tokens.SIDECAR_API_TOKEN,
    async stop() {
      await Promise.all(sidecars.map((sidecar) => sidecar.stop()));
      if (schema) psql(`DROP SCHEMA ${schema} CASCADE`);
    },
  };
}

/** One wrk run against every sidecar of the ledger at once (64 connections in all); the summed figures. */
async function burst(ledger, label) {
  const perSidecar = 64 / ledger.bases.length;
  const runs = ledger.bases.map((base) =>
    run('wrk', ['-t', String(Math.min(2, perSidecar)), '-c', String(perSidecar), '-d', `${SECONDS}s`, '-s', join(here, 'hot-size.lua'), base], {
      env: { ...process.env, BENCH_RUN: `${label}-${randomBytes(4).toString('hex')}`, BENCH_TOKEN: ledger.token, BENCH_PRODUCT: 'hot', BENCH_SIZE: '42' },
    }),
  );
  const results = (await Promise.all(runs)).map(({ stdout }) => JSON.parse(stdout.trim().split('\n').at(-1)));
  return {
    perSecond: results.reduce((sum, result) => sum + result.requests / result.seconds, 0),
    p50: Math.max(...results.map((result) => result.p50_ms)),
    p99: Math.max(...results.map((result) => result.p99_ms)),
    refused: results.reduce((sum, result) => sum + result.not_201 + result.socket_errors, 0),
  };
}

const configurations = [
  ['SQLite (FULL)', 'sqlite', 1],
  ['PostgreSQL', 'postgres', 1],
  ['PostgreSQL, two sidecars', 'postgres', 2],
].filter(([, store]) => (process.env.BENCH_LEDGERS ?? 'sqlite,postgres').split(',').includes(store));
const rows = [];
for (const [name, store, count] of configurations) {
  for (const [index, binary] of binaries.entries()) {
    const measured = [];
    for (let attempt = 0; attempt < RUNS; attempt++) {
      // The previous run's writes on disk first (SQLite's and PostgreSQL's), so that none is still being flushed
      // while this one measures.
      execFileSync('sync');
      const ledger = await startLedger(binary, store, count);
      if (!ledger) break;
      try {
        measured.push(await burst(ledger, `r${attempt}`));
      } finally {
        await ledger.stop();
      }
    }
    if (measured.length === 0) {
      rows.push(`| ${name} | ${index === 0 ? 'this build' : 'older build'} | skipped: no PostgreSQL at ${POSTGRES} | | | |`);
      continue;
    }
    measured.sort((a, b) => a.perSecond - b.perSecond);
    const median = measured[Math.floor(measured.length / 2)];
    const all = measured.map((result) => Math.round(result.perSecond)).join(', ');
    rows.push(`| ${name} | ${index === 0 ? 'this build' : 'older build'} | ${Math.round(median.perSecond)} (${all}) | ${median.p50.toFixed(1)} ms | ${median.p99.toFixed(1)} ms | ${median.refused} |`);
    console.error(rows.at(-1));
  }
}

console.log(`\nReservations of one hot size: wrk, 64 kept-alive connections in all, ${SECONDS} s, every request a new 1-unit reservation of a size with 1,000,000 units; median of ${RUNS} runs (all runs in brackets)\n`);
console.log('| ledger | binary | reservations/s | p50 | p99 | not 201 |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const row of rows) console.log(row);
