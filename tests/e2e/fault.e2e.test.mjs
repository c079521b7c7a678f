// The fault run (tests/e2e/fault-run.mjs) at the size the test command can afford: 2,000 reservations over 32
// sizes, their Stripe events with about half redelivered, 8 concurrent clients, the sidecar killed with SIGKILL
// three times and Payload stopped once. Everything must match the script: stock, reserved stock, every
// reservation's end, one sale document per sold item, nothing below zero, Payload equal to the ledger.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reportTables, runFaultRun } from './fault-run.mjs';

test('nothing is lost, doubled or oversold through crashes, redeliveries and a Payload outage', { timeout: 900_000 }, async (t) => {
  const report = await runFaultRun({ reservations: Number(process.env.FAULT_RESERVATIONS ?? 2000), log: (line) => t.diagnostic(line) });
  for (const line of reportTables(report).split('\n')) t.diagnostic(line);
  assert.deepEqual(report.mismatches, []);
  assert.equal(report.kills, 3);
  assert.ok(report.payloadOutageSeconds > 0);
  assert.ok(report.redeliveries >= 0.3 * report.events, `${report.redeliveries} redeliveries of ${report.events} events`);
  assert.ok(report.accepted >= 1000, `${report.accepted} reservations accepted`);
  assert.equal(report.saleDocuments, report.committedItems);
});
