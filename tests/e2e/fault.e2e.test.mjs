// The fault run (tests/e2e/fault-run.mjs) at the size the test command can afford: 2,000 reservations over 32
// sizes, their Stripe events with about half redelivered, 8 concurrent clients, the sidecar killed with SIGKILL
// three times and Payload stopped once. Everything must match the script: stock, reserved stock, every
// reservation's end, one sale document per sold item, nothing below zero, Payload equal to the ledger. Run on
// SQLite, and again on PostgreSQL (a schema of its own) when the test command has a server: there the sidecar
// decides reservations and Stripe events in batches, and each kill lands while the other clients' requests are in
// flight, so in the middle of a batch's transaction or between its commit and the answers.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { psql, schemaUrl } from '../../scripts/postgres.mjs';
import { reportTables, runFaultRun } from './fault-run.mjs';

const server = process.env.STOCK_TEST_DATABASE;

async function faultRun(t, databaseUrl) {
  const report = await runFaultRun({ reservations: Number(process.env.FAULT_RESERVATIONS ?? 2000), databaseUrl, log: (line) => t.diagnostic(line) });
  for (const line of reportTables(report).split('\n')) t.diagnostic(line);
  assert.deepEqual(report.mismatches, []);
  assert.equal(report.kills, 3);
  assert.ok(report.payloadOutageSeconds > 0);
  assert.ok(report.redeliveries >= 0.3 * report.events, `${report.redeliveries} redeliveries of ${report.events} events`);
  assert.ok(report.accepted >= 1000, `${report.accepted} reservations accepted`);
  assert.equal(report.saleDocuments, report.committedItems);
}

test('nothing is lost, doubled or oversold through crashes, redeliveries and a Payload outage', { timeout: 900_000 }, async (t) => {
  await faultRun(t);
});

test('on PostgreSQL too, with the sidecar killed in the middle of its batches', { skip: server ? false : 'STOCK_TEST_DATABASE is not set: no PostgreSQL server (scripts/test.sh sets it when one is reachable)', timeout: 900_000 }, async (t) => {
  const schema = `stock_fault_${randomBytes(6).toString('hex')}`;
  assert.ok(psql(`CREATE SCHEMA ${schema}`, server), `creating the schema ${schema}`);
  try {
    await faultRun(t, schemaUrl(schema, server));
  } finally {
    psql(`DROP SCHEMA IF EXISTS ${schema} CASCADE`, server);
  }
});
