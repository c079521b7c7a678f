// createStockClient against a real stock-sidecar (the debug build that `cargo test` leaves in target/), each
// error carrying the API's code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CHECKOUT_METADATA, createStockClient, StockApiError } from 'payload-stock/client';
import { startSidecar } from '../../scripts/sidecar-process.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const WEBHOOK_SECRET = 'whsec_client_test_0123456789';

/** Sends `event` to the sidecar's webhook, signed as Stripe signs it. */
async function sendSigned(event) {
  const body = JSON.stringify(event);
  const t = Math.floor(Date.now() / 1000);
  const signature = createHmac('sha256', WEBHOOK_SECRET).update(`${t}.${body}`).digest('hex');
  const response = await fetch(`${sidecar.base}/webhooks/stripe`, { method: 'POST', headers: { 'stripe-signature': `t=${t},v1=${signature}`, 'content-type': 'application/json' }, body });
  return { status: response.status, body: await response.json() };
}
const binary = join(here, '..', '..', 'target', 'debug', 'stock-sidecar');
let sidecar;
let client;

before(async () => {
  assert.ok(existsSync(binary), `${binary} is missing: build it with cargo build -p stock-sidecar (scripts/test.sh does)`);
  sidecar = await startSidecar(binary, { RUST_LOG: 'error', STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET });
  client = createStockClient({ url: sidecar.base, token: sidecar.apiToken });
  for (const [size, quantity] of [['42', 3], ['43', 1]]) {
    const response = await fetch(`${sidecar.base}/v1/movements`, {
      method: 'POST',
      headers: { authorization: `Bearer ${sidecar.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ product: 'runner', size, type: 'restock', quantity }),
    });
    assert.equal(response.status, 201);
  }
});

after(async () => sidecar?.stop());

async function rejectsWith(promise, code) {
  let caught;
  await assert.rejects(promise, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof StockApiError, `expected a StockApiError, got ${caught}`);
  assert.equal(caught.name, 'StockApiError');
  assert.equal(caught.code, code, caught.message);
  return caught;
}

test('reserve, get, stock and release a reservation', async () => {
  const reservation = await client.reserve({ reference: 'pi_client_1', items: [{ product: 'runner', size: 42, quantity: 2 }], ttlSeconds: 600 });
  assert.equal(reservation.created, true);
  assert.equal(reservation.status, 'active');
  assert.deepEqual(reservation.items, [{ product: 'runner', size: '42', quantity: 2 }]);
  const again = await client.reserve({ reference: 'pi_client_1', items: [{ product: 'runner', size: '42', quantity: 2 }] });
  assert.equal(again.created, false, 'the same request again is not a second reservation');

  assert.equal((await client.get('pi_client_1')).status, 'active');
  assert.equal(await client.get('pi_nobody'), null);
  const stock = await client.stock('runner');
  assert.deepEqual(stock.sizes.find((size) => size.size === '42'), {
    size: '42', stock: 3, reservedStock: 2, availableStock: 1, lowStockThreshold: 0, isLowStock: false,
  });

  assert.equal((await client.release('pi_client_1')).status, 'released');
  assert.equal((await client.release('pi_client_1')).status, 'released', 'idempotent');
  assert.equal((await client.stock('runner')).sizes[0].availableStock, 3);
});

test('the admin report and cleanup, with the admin token', async () => {
  const admin = createStockClient({ url: sidecar.base, token: sidecar.adminToken });
  await client.reserve({ reference: 'pi_client_report', items: [{ product: 'runner', size: '43', quantity: 1 }] });
  const report = await admin.monitoring({ windowSeconds: 3600 });
  assert.equal(report.activeReservations, 1);
  assert.equal(report.reservedUnits, 1);
  assert.equal(report.oldestActiveReservation.reference, 'pi_client_report');
  assert.deepEqual(report.oldestActiveReservations.map((reservation) => [reservation.reference, reservation.status, reservation.units]), [['pi_client_report', 'active', 1]]);
  assert.equal(report.movements.windowSeconds, 3600);
  assert.deepEqual(report.movements.products, [{ product: 'runner', movements: 2, netUnits: 4, byType: { restock: { movements: 2, units: 4 } } }]);
  assert.equal(report.payloadProjection.enabled, false);
  assert.equal(report.stockAlerts.undelivered, 0);
  assert.equal((await admin.monitoring()).movements.windowSeconds, 86400, 'a day by default');
  assert.deepEqual(await admin.cleanExpired(), { released: 0, references: [] }, 'nothing is past its expiry yet');

  await rejectsWith(admin.monitoring({ windowSeconds: 5 }), 'invalid_request');
  await assert.rejects(admin.monitoring({ windowSeconds: '1h' }), TypeError);
  await rejectsWith(client.monitoring(), 'unauthorized');
  await client.release('pi_client_report');
  assert.equal((await admin.monitoring()).activeReservations, 0);
});

test('conflicts are listed and resolved once; a payment that is not the shop\'s makes none', async () => {
  const admin = createStockClient({ url: sidecar.base, token: sidecar.adminToken });
  const paid = (id, reference, metadata) => ({ id, object: 'event', type: 'payment_intent.succeeded', data: { object: { id: reference, object: 'payment_intent', metadata } } });
  const foreign = await sendSigned(paid('evt_client_subscription', 'pi_client_invoice', {}));
  assert.deepEqual([foreign.status, foreign.body.outcome], [200, 'ignored'], 'someone else\'s payment on the same account');
  assert.deepEqual(await admin.conflicts(), []);
  const marked = await sendSigned(paid('evt_client_lost', 'pi_client_never_reserved', { ...CHECKOUT_METADATA, orderNumber: 'ORD-9' }));
  assert.deepEqual([marked.status, marked.body.outcome, marked.body.conflict], [200, 'conflict', 'unknown_reference']);
  const [conflict] = await admin.conflicts();
  assert.deepEqual([conflict.kind, conflict.reference, conflict.eventId, conflict.resolvedAt], ['unknown_reference', 'pi_client_never_reserved', 'evt_client_lost', null]);
  assert.match(conflict.details.message, /never reserved/);
  assert.equal((await admin.monitoring()).conflicts[0].id, conflict.id, 'the admin report lists it too');

  const resolved = await admin.resolveConflict(conflict.id, 'Refunded the customer');
  assert.deepEqual([resolved.alreadyResolved, resolved.conflict.resolution], [false, 'Refunded the customer']);
  const again = await admin.resolveConflict(conflict.id, 'Something else');
  assert.deepEqual([again.alreadyResolved, again.conflict.resolution], [true, 'Refunded the customer'], 'the first resolution stands');
  assert.deepEqual(await admin.conflicts(), []);
  await rejectsWith(admin.resolveConflict(999999, 'nothing'), 'conflict_not_found');
  await rejectsWith(admin.resolveConflict(conflict.id, ''), 'invalid_request');
  await rejectsWith(client.conflicts(), 'unauthorized');
  await assert.rejects(admin.resolveConflict('1', 'x'), TypeError);
});

test('errors carry the code, the status and every shortage or problem', async () => {
  const short = await rejectsWith(
    client.reserve({ reference: 'pi_client_short', items: [{ product: 'runner', size: '42', quantity: 4 }, { product: 'runner', size: '43', quantity: 2 }] }),
    'insufficient_stock',
  );
  assert.equal(short.status, 409);
  assert.deepEqual(short.shortages, [
    { product: 'runner', size: '42', requested: 4, available: 3 },
    { product: 'runner', size: '43', requested: 2, available: 1 },
  ]);

  const invalid = await rejectsWith(client.reserve({ reference: 'pi_client_bad', items: [{ product: 'runner', size: '99', quantity: 1 }] }), 'invalid_request');
  assert.equal(invalid.status, 422);
  assert.deepEqual(invalid.errors.map((error) => error.code), ['unknown_size']);

  await client.reserve({ reference: 'pi_client_taken', items: [{ product: 'runner', size: '42', quantity: 1 }] });
  await rejectsWith(client.reserve({ reference: 'pi_client_taken', items: [{ product: 'runner', size: '43', quantity: 1 }] }), 'reference_conflict');
  await rejectsWith(client.stock('sandal'), 'unknown_product');

  const wrongToken = createStockClient({ url: sidecar.base, token: 'not-the-token-0123456789' });
  assert.equal((await rejectsWith(wrongToken.stock('runner'), 'unauthorized')).status, 401);
});

test('an unreachable or silent sidecar is reported with its own codes', async () => {
  const silent = createServer(() => {}); // accepts and never answers
  await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const { port } = silent.address();
  try {
    const slow = createStockClient({ url: `http://127.0.0.1:${port}`, token: 'token', timeoutMs: 200 });
    await rejectsWith(slow.stock('runner'), 'sidecar_timeout');
  } finally {
    silent.closeAllConnections();
    await new Promise((resolve) => silent.close(resolve));
  }
  const closed = createStockClient({ url: `http://127.0.0.1:${port}`, token: 'token' });
  assert.equal((await rejectsWith(closed.stock('runner'), 'sidecar_unreachable')).status, 0);
});

test('the client refuses to be built without a URL and a token', () => {
  assert.throws(() => createStockClient({ token: 'x' }), TypeError);
  assert.throws(() => createStockClient({ url: 'localhost:4242', token: 'x' }), TypeError);
  assert.throws(() => createStockClient({ url: 'http://127.0.0.1:4242' }), TypeError);
});

test('a variant is reserved, and a payment the shop confirmed is sold once (admin token)', async () => {
  const admin = createStockClient({ url: sidecar.base, token: sidecar.adminToken });
  await admin.recordMovement({ product: 'tee', variant: 5, type: 'restock', quantity: 2 });
  const reservation = await client.reserve({ reference: 'pi_client_variant', items: [{ product: 'tee', variant: 5, quantity: 1 }] });
  assert.deepEqual(reservation.items, [{ product: 'tee', size: '5', quantity: 1 }]);
  const sold = await admin.commit('pi_client_variant', { orderReference: '17' });
  assert.equal(sold.outcome, 'committed');
  assert.equal(sold.reservation.status, 'committed');
  assert.equal((await admin.commit('pi_client_variant', { orderReference: '17' })).outcome, 'duplicate');
  await rejectsWith(client.commit('pi_client_variant'), 'unauthorized');
});
