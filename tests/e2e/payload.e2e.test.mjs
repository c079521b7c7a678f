// End to end on a real Payload 3 with the payloadStock plugin and the real stock-sidecar binary projecting into
// it. Everything is checked where a shop looks: in Payload, through its REST API.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createStockClient } from 'payload-stock/client';
import { projectionProof } from 'payload-stock/payload';
import { sendStripeEvent, sidecarCommand, sleep, startShop, stripeEvent, waitFor } from '../../scripts/shop/harness.mjs';

let shop;
let client;

before(async () => {
  shop = await startShop();
  client = createStockClient({ url: shop.sidecar.base, token: shop.sidecar.apiToken });
});

after(async () => {
  await shop?.stop();
});

/** Restocks through the sidecar's admin API (what a restock entered anywhere ends up as). */
async function restock(product, size, quantity, lowStockThreshold) {
  const { status, body } = await shop.sidecarPost('/v1/movements', { product, size, type: 'restock', quantity, reason: 'Delivery', ...(lowStockThreshold === undefined ? {} : { lowStockThreshold }) });
  assert.equal(status, 201, JSON.stringify(body));
}

/** Waits until Payload's row for `size` shows every figure in `expected`. */
async function sizeShows(product, size, expected) {
  return waitFor(`${product} size ${size} to show ${JSON.stringify(expected)}`, async () => {
    const row = (await shop.api.sizes(product))[size];
    return row && Object.entries(expected).every(([name, value]) => row[name] === value) ? row : null;
  });
}

describe('the seed\'s four recommended tests, checked in Payload', () => {
  test('a payment that succeeds sells the units: stock down, a sale movement, the reservation committed', async () => {
    const product = await shop.createProduct('Runner', ['42', '43']);
    await restock(product, '42', 3, 1);
    await sizeShows(product, '42', { stock: 3, reservedStock: 0, availableStock: 3, lowStockThreshold: 1, isLowStock: false });

    const reserved = await client.reserve({ reference: 'pi_e2e_success', items: [{ product, size: '42', quantity: 2 }] });
    assert.equal(reserved.status, 'active');
    await sizeShows(product, '42', { stock: 3, reservedStock: 2, availableStock: 1, isLowStock: true });
    const active = await waitFor('the reservation document', () => shop.api.reservation('pi_e2e_success'));
    assert.equal(active.status, 'active');
    assert.deepEqual(active.items.map(({ size, quantity }) => ({ size, quantity })), [{ size: '42', quantity: 2 }]);

    const answer = await sendStripeEvent(shop.sidecar.base, stripeEvent('payment_intent.succeeded', 'pi_e2e_success'));
    assert.equal(answer.status, 200, JSON.stringify(answer.body));
    const row = await sizeShows(product, '42', { stock: 1, reservedStock: 0, availableStock: 1, isLowStock: true });
    assert.equal(row.size, '42');
    const sale = await waitFor('the sale movement', async () => (await shop.api.movements(product)).find((doc) => doc.type === 'sale'));
    assert.equal(sale.quantity, -2);
    assert.equal(sale.stockBefore, 3);
    assert.equal(sale.stockAfter, 1);
    assert.equal(sale.size, '42');
    assert.equal(sale.reference, 'pi_e2e_success');
    await waitFor('the reservation to show committed', async () => (await shop.api.reservation('pi_e2e_success'))?.status === 'committed');
    const untouched = (await shop.api.sizes(product))['43'];
    assert.equal(untouched.stock ?? 0, 0, 'the other size is not touched');
  });

  test('a payment that fails decrements nothing (the units stay held for a retry)', async () => {
    const product = await shop.createProduct('Trail', ['40']);
    await restock(product, '40', 2);
    await client.reserve({ reference: 'pi_e2e_failed', items: [{ product, size: '40', quantity: 1 }] });
    const answer = await sendStripeEvent(shop.sidecar.base, stripeEvent('payment_intent.payment_failed', 'pi_e2e_failed'));
    assert.equal(answer.status, 200);
    await shop.projected();
    const row = (await shop.api.sizes(product))['40'];
    assert.equal(row.stock, 2);
    assert.equal(row.reservedStock, 1);
    assert.equal((await shop.api.movements(product)).filter((doc) => doc.type === 'sale').length, 0);
  });

  test('insufficient stock is refused with 409 before any PaymentIntent, and Payload does not move', async () => {
    const product = await shop.createProduct('Court', ['39']);
    await restock(product, '39', 1);
    await shop.projected();
    const before = (await shop.api.sizes(product))['39'];
    await assert.rejects(client.reserve({ reference: 'pi_e2e_short', items: [{ product, size: '39', quantity: 2 }] }), (error) => {
      assert.equal(error.status, 409);
      assert.equal(error.code, 'insufficient_stock');
      assert.deepEqual(error.shortages, [{ product, size: '39', requested: 2, available: 1 }]);
      return true;
    });
    await shop.projected();
    assert.deepEqual((await shop.api.sizes(product))['39'], before);
    assert.equal(await shop.api.reservation('pi_e2e_short'), null);
  });

  test('an expired reservation is released by cleanup and Payload shows the units available again', async () => {
    const product = await shop.createProduct('Sprint', ['41']);
    await restock(product, '41', 2);
    await client.reserve({ reference: 'pi_e2e_expiry', items: [{ product, size: '41', quantity: 2 }], ttlSeconds: 1 });
    await sizeShows(product, '41', { reservedStock: 2, availableStock: 0 });
    await sleep(1_100); // the shortest TTL is 1 s; the sidecar's own tests use a manual clock instead
    const cleanup = await shop.sidecarPost('/api/admin/clean-expired-reservations');
    assert.equal(cleanup.status, 200);
    assert.ok(cleanup.body.references.includes('pi_e2e_expiry'));
    await sizeShows(product, '41', { stock: 2, reservedStock: 0, availableStock: 2 });
    await waitFor('the reservation to show expired', async () => (await shop.api.reservation('pi_e2e_expiry'))?.status === 'expired');
  });
});

describe('Payload down while events arrive', () => {
  test('Payload converges to the ledger after it comes back, with no duplicate movement', async () => {
    const product = await shop.createProduct('Outage', ['44']);
    await restock(product, '44', 10);
    await shop.projected();
    await shop.stopPayload();

    const references = Array.from({ length: 6 }, (_, index) => `pi_e2e_outage_${index}`);
    for (const reference of references) {
      await client.reserve({ reference, items: [{ product, size: '44', quantity: 1 }] });
    }
    for (const reference of references.slice(0, 4)) {
      const event = stripeEvent('payment_intent.succeeded', reference);
      assert.equal((await sendStripeEvent(shop.sidecar.base, event)).status, 200);
      // Stripe redelivers: the same event again changes nothing.
      assert.equal((await sendStripeEvent(shop.sidecar.base, event)).body.outcome, 'duplicate');
    }
    assert.equal((await sendStripeEvent(shop.sidecar.base, stripeEvent('payment_intent.canceled', references[4]))).status, 200);

    const { body: ready } = await shop.sidecarGet('/readyz');
    assert.equal(ready.status, 'ready', 'the sidecar stays ready while Payload is down');
    assert.ok(ready.payloadProjection.backlog > 0, JSON.stringify(ready));
    await waitFor('a failed delivery to be reported', async () => (await shop.sidecarGet('/readyz')).body.payloadProjection.failing > 0);
    const { body: monitoring } = await shop.sidecarGet('/api/admin/clean-expired-reservations', shop.sidecar.adminToken);
    assert.ok(monitoring.payloadProjection.backlog > 0);
    assert.match(monitoring.payloadProjection.lastError, /unreachable/i);
    assert.ok(monitoring.payloadProjection.oldestUndeliveredAgeSeconds >= 0);

    await shop.startPayload();
    await shop.projected();
    const { body: ledger } = await shop.sidecarGet(`/v1/products/${product}/stock`);
    const inLedger = ledger.sizes.find((size) => size.size === '44');
    const row = (await shop.api.sizes(product))['44'];
    assert.equal(row.stock, 6);
    assert.equal(row.reservedStock, 1);
    assert.equal(row.availableStock, 5);
    assert.equal(row.stock, inLedger.stock);
    assert.equal(row.reservedStock, inLedger.reservedStock);
    const sales = (await shop.api.movements(product)).filter((doc) => doc.type === 'sale');
    assert.equal(sales.length, 4, 'one sale movement per paid reservation');
    assert.equal(new Set(sales.map((doc) => doc.reference)).size, 4);
    assert.equal((await shop.api.reservation(references[4])).status, 'released');
    assert.equal((await shop.api.reservation(references[5])).status, 'active');

    const reconcile = await sidecarCommand(shop, ['reconcile']);
    assert.equal(reconcile.code, 0, reconcile.stdout + reconcile.stderr);
  });
});

describe('stock movements entered in Payload', () => {
  test('an admin restock through Payload lands in the ledger and is saved with stockBefore and stockAfter', async () => {
    const product = await shop.createProduct('Restocked', ['38']);
    await restock(product, '38', 2);
    const { status, body, text } = await shop.api.post('/stock-movements?depth=0', { product: Number(product), size: '38', type: 'restock', quantity: 5, reason: 'Supplier delivery 118', lowStockThreshold: 2 });
    assert.equal(status, 201, text);
    assert.equal(body.doc.stockBefore, 2);
    assert.equal(body.doc.stockAfter, 7);
    assert.match(body.doc.idempotencyKey, /^\d+$/);
    const { body: ledger } = await shop.sidecarGet(`/v1/products/${product}/stock`);
    assert.equal(ledger.sizes.find((size) => size.size === '38').stock, 7);
    await sizeShows(product, '38', { stock: 7, availableStock: 7, lowStockThreshold: 2 });
    // After its grace period (1 s here) the outbox checks for the document, finds the admin's, and adds none.
    await waitFor('the grace period to pass', async () => (await shop.sidecarGet('/readyz')).body.payloadProjection.awaitingPayloadSave === 0);
    await shop.projected();
    const restocks = (await shop.api.movements(product)).filter((doc) => doc.reason === 'Supplier delivery 118');
    assert.equal(restocks.length, 1, 'the admin\'s document is the movement\'s only document');
    assert.equal(restocks[0].idempotencyKey, body.doc.idempotencyKey);
  });

  test('a movement whose Payload save never happened gets its document from the outbox after the grace period', async () => {
    const product = await shop.createProduct('Unsaved', ['35']);
    await restock(product, '35', 1);
    await shop.projected();
    // What the plugin's hook sends; here nobody saves the document afterwards (as when Payload fails after the call).
    const { status, body } = await shop.sidecarPost('/v1/movements', { product, size: '35', type: 'return', quantity: 1, reason: 'Return 7', origin: 'payload' });
    assert.equal(status, 201);
    const { body: ready } = await shop.sidecarGet('/readyz');
    assert.equal(ready.payloadProjection.awaitingPayloadSave, 1);
    const document = await waitFor('the outbox to create the document', async () => (await shop.api.movements(product)).find((doc) => doc.reason === 'Return 7'));
    assert.equal(document.idempotencyKey, String(body.id));
    assert.equal(document.stockBefore, 1);
    assert.equal(document.stockAfter, 2);
  });

  test('a movement the ledger refuses is not saved, and the admin gets the sidecar\'s reason', async () => {
    const product = await shop.createProduct('Refused', ['37']);
    await restock(product, '37', 1);
    await shop.projected();
    const before = (await shop.api.movements(product)).length;
    const tooMuch = await shop.api.post('/stock-movements', { product: Number(product), size: '37', type: 'adjustment', quantity: -5, reason: 'Count' });
    assert.equal(tooMuch.status, 409, tooMuch.text);
    assert.equal(tooMuch.body.errors[0].data.code, 'insufficient_stock');
    const unknownSize = await shop.api.post('/stock-movements', { product: Number(product), size: '99', type: 'adjustment', quantity: -1 });
    assert.equal(unknownSize.status, 404, unknownSize.text);
    assert.equal(unknownSize.body.errors[0].data.code, 'unknown_size');
    const sale = await shop.api.post('/stock-movements', { product: Number(product), size: '37', type: 'sale', quantity: -1 });
    assert.equal(sale.status, 400);
    assert.equal(sale.body.errors[0].data.code, 'sale_not_allowed');
    assert.equal((await shop.api.movements(product)).length, before);
    const { body: ledger } = await shop.sidecarGet(`/v1/products/${product}/stock`);
    assert.equal(ledger.sizes[0].stock, 1);
  });

  test('stock figures cannot be written in Payload except by the sidecar, and the ledger is append-only', async () => {
    const product = await shop.createProduct('Guarded', ['36']);
    await restock(product, '36', 4);
    const row = await sizeShows(product, '36', { stock: 4 });
    const patched = await shop.api.patch(`/products/${product}?depth=0`, { sizes: [{ ...row, stock: 999, reservedStock: 50 }] });
    assert.equal(patched.status, 200, patched.text);
    const after = (await shop.api.sizes(product))['36'];
    assert.equal(after.stock, 4, 'a write without the projection header keeps the stored figure');
    assert.equal(after.reservedStock, 0);
    const [movement] = await shop.api.movements(product);
    assert.equal((await shop.api.patch(`/stock-movements/${movement.id}`, { quantity: 100 })).status, 403);
    assert.equal((await shop.api.call('DELETE', `/stock-movements/${movement.id}`)).status, 403);
    assert.equal((await shop.api.post('/stock-reservations', { reference: 'pi_forged', status: 'active' })).status, 403);
  });
});

describe('after the sale: refunds and returns', () => {
  /** A paid checkout of `quantity` units of `size` (of `stock` restocked) under `reference`. */
  async function paid(name, size, stock, reference, quantity) {
    const product = await shop.createProduct(name, [size]);
    await restock(product, size, stock);
    await client.reserve({ reference, items: [{ product, size, quantity }] });
    const answer = await sendStripeEvent(shop.sidecar.base, stripeEvent('payment_intent.succeeded', reference));
    assert.equal(answer.body.outcome, 'committed', JSON.stringify(answer.body));
    await sizeShows(product, size, { stock: stock - quantity, reservedStock: 0 });
    return product;
  }

  test('a refund is shown on the reservation\'s document and puts no unit back', async () => {
    const product = await paid('Refunded', '42', 3, 'pi_e2e_refunded', 2);
    const refund = JSON.parse(stripeEvent('charge.refunded', 'ch_e2e_refunded'));
    refund.data.object.payment_intent = 'pi_e2e_refunded';
    const answer = await sendStripeEvent(shop.sidecar.base, JSON.stringify(refund));
    assert.equal(answer.body.outcome, 'recorded', JSON.stringify(answer.body));
    const document = await waitFor('the refund on the reservation document', async () => {
      const found = await shop.api.reservation('pi_e2e_refunded');
      return found?.payment?.refunded === 4990 ? found : null;
    });
    assert.deepEqual(
      { paymentIntent: document.payment.paymentIntent, amount: document.payment.amount, dispute: document.payment.dispute ?? null },
      { paymentIntent: 'pi_e2e_refunded', amount: 4990, dispute: null },
    );
    await shop.projected();
    assert.equal((await shop.api.sizes(product))['42'].stock, 1, 'money and stock are separate facts');
  });

  test('a return entered in the admin panel lands in the ledger once, never beyond what was sold', async () => {
    const product = await paid('Returned', '43', 3, 'pi_e2e_returned', 2);
    const reservation = await waitFor('the paid reservation\'s document', async () => {
      const found = await shop.api.reservation('pi_e2e_returned');
      return found?.status === 'committed' ? found : null;
    });
    const form = {
      reservation: reservation.id,
      returnId: 'RMA-e2e-1',
      lines: [
        { product: Number(product), size: '43', quantity: 1, reason: 'returned' },
        { product: Number(product), size: '43', quantity: 1, reason: 'damaged' },
      ],
    };
    const created = await shop.api.post('/stock-returns?depth=0', form);
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.doc.reference, 'pi_e2e_returned');
    assert.deepEqual(created.body.doc.lines.map((line) => line.restocked), [1, 0]);
    await sizeShows(product, '43', { stock: 2, availableStock: 2 });
    const movement = await waitFor('the return movement in stock-movements', async () =>
      (await shop.api.movements(product)).find((doc) => doc.type === 'return' && doc.reference === 'RMA-e2e-1'));
    assert.equal(movement.quantity, 1);
    assert.equal(movement.orderReference, 'ORD-2024-001');

    const again = await shop.api.post('/stock-returns', form);
    assert.equal(again.status, 409, again.text);
    assert.equal(again.body.errors[0].data.code, 'return_already_recorded');
    const other = await paid('Returned elsewhere', '44', 1, 'pi_e2e_returned_other', 1);
    const otherReservation = await waitFor('the other paid reservation', async () => {
      const found = await shop.api.reservation('pi_e2e_returned_other');
      return found?.status === 'committed' ? found : null;
    });
    const reused = await shop.api.post('/stock-returns', { reservation: otherReservation.id, returnId: 'RMA-e2e-1', lines: [{ product: Number(other), size: '44', quantity: 1, reason: 'returned' }] });
    assert.equal(reused.status, 409, reused.text);
    assert.equal(reused.body.errors[0].data.code, 'return_id_taken');
    assert.equal((await shop.sidecarGet('/v1/reservations/pi_e2e_returned_other/returns')).body.returns.length, 0, 'refused before the ledger moved');
    const beyond = await shop.api.post('/stock-returns', { ...form, returnId: 'RMA-e2e-2', lines: [form.lines[0]] });
    assert.equal(beyond.status, 409, beyond.text);
    assert.equal(beyond.body.errors[0].data.code, 'exceeds_returnable');
    const { body: ledger } = await shop.sidecarGet('/v1/reservations/pi_e2e_returned/returns');
    assert.deepEqual(ledger.sold, [{ product, size: '43', sold: 2, returned: 2, returnable: 0 }]);
    assert.equal(ledger.returns.length, 1);
    await shop.projected();
    assert.equal((await shop.api.sizes(product))['43'].stock, 2, 'the refused and repeated returns moved nothing');
    assert.equal((await shop.api.call('DELETE', `/stock-returns/${created.body.doc.id}`)).status, 403, 'returns are append-only');
  });
});

describe('who may change stock through Payload', () => {
  /** Logs a new user of `collection` in and returns its `authorization` header value. */
  async function loggedIn(collection, data) {
    const email = `${collection}-${Math.random().toString(36).slice(2)}@example.com`;
    const password = 'shopper-password-0123';
    const created = collection === 'customers'
      ? await shop.api.post('/customers', { email, password }, { auth: false })
      : await shop.api.post(`/${collection}`, { email, password, ...data });
    assert.equal(created.status, 201, created.text);
    const login = await shop.api.post(`/${collection}/login`, { email, password }, { auth: false });
    assert.equal(login.status, 200, login.text);
    return `JWT ${login.body.token}`;
  }

  /** What must not move: the ledger's figures of `product` and Payload's documents. */
  async function snapshot(product) {
    const { body: ledger } = await shop.sidecarGet(`/v1/products/${product}/stock`);
    const { body: monitoring } = await shop.sidecarGet('/api/admin/clean-expired-reservations', shop.sidecar.adminToken);
    return { sizes: ledger.sizes, movementsInPayload: (await shop.api.movements(product)).length, sizesInPayload: await shop.api.sizes(product), movementsInLedger: monitoring.movements.products };
  }

  test('a shopper, logged in as a customer of either kind, can neither enter nor read movements, nor read reservations', async () => {
    const product = await shop.createProduct('Last pair', ['42']);
    await restock(product, '42', 3);
    await sizeShows(product, '42', { stock: 3 });
    await shop.projected();
    const before = await snapshot(product);
    for (const authorization of [await loggedIn('users', { role: 'customer' }), await loggedIn('customers')]) {
      const adjustment = await shop.api.post('/stock-movements', { product: Number(product), size: '42', type: 'adjustment', quantity: -3, reason: 'mine now' }, { authorization });
      assert.equal(adjustment.status, 403, adjustment.text);
      assert.equal((await shop.api.get('/stock-movements', { authorization })).status, 403);
      assert.equal((await shop.api.get('/stock-reservations', { authorization })).status, 403);
    }
    assert.deepEqual(await snapshot(product), before, 'nothing changed in the ledger or in Payload');
  });

  test('another API key, or the old bare header, cannot write what only the projection writes', async () => {
    const product = await shop.createProduct('Forged figures', ['40']);
    await restock(product, '40', 2);
    const row = await sizeShows(product, '40', { stock: 2 });
    await shop.projected();
    const integration = await shop.api.post('/users', { email: `integration-${Date.now()}@example.com`, password: 'integration-password-01', enableAPIKey: true, apiKey: 'another-integrations-key-0123456789' });
    assert.equal(integration.status, 201, integration.text);
    const reservation = (await shop.api.get('/stock-reservations?limit=1&depth=0')).body.docs[0];
    const before = await snapshot(product);
    const now = Math.floor(Date.now() / 1000);
    for (const [authorization, projection] of [
      ['users API-Key another-integrations-key-0123456789', 'projection'],
      ['users API-Key another-integrations-key-0123456789', projectionProof('a-token-the-sidecar-does-not-have')],
      [undefined, 'projection'],
      [undefined, `t=${now},v1=${'0'.repeat(64)}`],
      // A real proof seen once (in a proxy's log, say) is worthless once its 300 seconds have passed.
      [undefined, projectionProof(shop.sidecar.adminToken, now - 600)],
    ]) {
      const options = { authorization, projection };
      const patched = await shop.api.patch(`/products/${product}?depth=0`, { sizes: [{ ...row, stock: 999 }] }, options);
      assert.equal(patched.status, 200, patched.text);
      assert.equal((await shop.api.sizes(product))['40'].stock, 2, 'the stored figure is kept');
      assert.equal((await shop.api.post('/stock-reservations', { reference: 'pi_forged', status: 'active' }, options)).status, 403);
      if (reservation) {
        assert.equal((await shop.api.call('DELETE', `/stock-reservations/${reservation.id}`, options)).status, 403);
        assert.equal((await shop.api.patch(`/stock-reservations/${reservation.id}`, { status: 'released' }, options)).status, 403);
      }
      const [movement] = await shop.api.movements(product);
      assert.equal((await shop.api.patch(`/stock-movements/${movement.id}`, { quantity: 100, idempotencyKey: '999999' }, options)).status, 403);
    }
    assert.deepEqual(await snapshot(product), before);
  });

  test('a movement form sent twice is recorded once; one delivery note may cover several movements', async () => {
    const product = await shop.createProduct('Double submit', ['39', '40']);
    await restock(product, '39', 1);
    await restock(product, '40', 1);
    await shop.projected();
    // What the admin panel's form sends: its hidden submission key, the same on a double click or a retry.
    const form = { product: Number(product), size: '39', type: 'restock', quantity: 4, reason: 'Delivery note 55', reference: 'DN 55', submission: 'payload-form-0001' };
    const first = await shop.api.post('/stock-movements?depth=0', form);
    assert.equal(first.status, 201, first.text);
    assert.deepEqual([first.body.doc.reference, first.body.doc.submission], ['DN 55', 'payload-form-0001']);
    const second = await shop.api.post('/stock-movements?depth=0', form);
    assert.equal(second.status, 409, second.text);
    assert.equal(second.body.errors[0].data.code, 'movement_already_recorded');
    // The same form key with other content is refused by the ledger, not merged into the first.
    const other = await shop.api.post('/stock-movements?depth=0', { ...form, quantity: 2 });
    assert.equal(other.status, 409, other.text);
    assert.equal(other.body.errors[0].data.code, 'reference_conflict');
    // The same delivery note on another size is another movement (another form).
    const nextSize = await shop.api.post('/stock-movements?depth=0', { ...form, size: '40', submission: undefined });
    assert.equal(nextSize.status, 201, nextSize.text);
    assert.match(nextSize.body.doc.submission, /^payload-[0-9a-f-]{36}$/, 'a key of its own when none is sent');
    const { body: ledger } = await shop.sidecarGet(`/v1/products/${product}/stock`);
    assert.deepEqual(ledger.sizes.map((size) => [size.size, size.stock]), [['39', 5], ['40', 5]], 'each recorded once');
    await shop.projected();
    assert.equal((await shop.api.movements(product)).filter((doc) => doc.reference === 'DN 55').length, 2);
  });
});

describe('import and reconcile', () => {
  test('import brings stock entered in Payload into the ledger once; reconcile finds and fixes drift', async () => {
    const product = await shop.createProduct('Imported', ['M', 'L']);
    // Stock entered before payload-stock managed it (written here the only way the plugin allows).
    const rows = Object.values(await shop.api.sizes(product));
    const seeded = rows.map((row) => ({ ...row, stock: row.size === 'M' ? 7 : 2, lowStockThreshold: 1 }));
    assert.equal((await shop.api.patch(`/products/${product}`, { sizes: seeded }, { projection: true })).status, 200);

    const first = await sidecarCommand(shop, ['import']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`imported +product ${product} size M: 7 unit`));
    const { body: ledger } = await shop.sidecarGet(`/v1/products/${product}/stock`);
    assert.deepEqual(ledger.sizes.map(({ size, stock, lowStockThreshold }) => ({ size, stock, lowStockThreshold })), [
      { size: 'M', stock: 7, lowStockThreshold: 1 },
      { size: 'L', stock: 2, lowStockThreshold: 1 },
    ]);
    const again = await sidecarCommand(shop, ['import']);
    assert.match(again.stdout, new RegExp(`already there +product ${product} size M: the ledger has 7`));
    await shop.projected();
    const imports = (await shop.api.movements(product)).filter((doc) => doc.type === 'adjustment');
    assert.deepEqual(imports.map((doc) => [doc.size, doc.quantity]).sort(), [['L', 2], ['M', 7]]);
    assert.match(imports[0].reason, /Imported from Payload/);

    // Drift: somebody with the sidecar's key wrote a figure by hand.
    const drifted = Object.values(await shop.api.sizes(product)).map((row) => (row.size === 'M' ? { ...row, stock: 99 } : row));
    await shop.api.patch(`/products/${product}`, { sizes: drifted }, { projection: true });
    const found = await sidecarCommand(shop, ['reconcile']);
    assert.equal(found.code, 1, found.stdout);
    assert.match(found.stdout, new RegExp(`${product} +M +stock +99 +7`));
    const fixed = await sidecarCommand(shop, ['reconcile', '--fix']);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(fixed.stdout, /1 product\(s\) rewritten/);
    assert.equal((await shop.api.sizes(product)).M.stock, 7);
    assert.equal((await sidecarCommand(shop, ['reconcile'])).code, 0);
  });

  test('movement documents are compared by content: a forged key is rewritten, never counted as delivered', async () => {
    const product = await shop.createProduct('Forged ledger', ['41']);
    await restock(product, '41', 3);
    await shop.projected();
    const [real] = await shop.api.movements(product);
    // A document planted ahead of the ledger under the key the next movement will get (as a leaked proof could).
    const nextKey = String(Number(real.idempotencyKey) + 1);
    const planted = await shop.api.post('/stock-movements?depth=0', { product: Number(product), size: '41', type: 'adjustment', quantity: -3, stockBefore: 3, stockAfter: 0, reason: 'planted', idempotencyKey: nextKey }, { projection: true });
    assert.equal(planted.status, 201, planted.text);
    await restock(product, '41', 2);
    await shop.projected();
    const documents = (await shop.api.movements(product)).filter((doc) => doc.idempotencyKey === nextKey);
    assert.equal(documents.length, 1);
    assert.deepEqual([documents[0].type, documents[0].quantity, documents[0].stockAfter], ['restock', 2, 5], 'the ledger\'s movement replaced the planted one');

    // A document changed after delivery: reconcile finds it by content and --fix rewrites it.
    const changed = await shop.api.patch(`/stock-movements/${real.id}?depth=0`, { quantity: 30, stockAfter: 30 }, { projection: true });
    assert.equal(changed.status, 200, changed.text);
    const found = await sidecarCommand(shop, ['reconcile']);
    assert.equal(found.code, 1, found.stdout);
    assert.match(found.stdout, new RegExp(`movement ${real.idempotencyKey}: its stock-movements document says something other than the ledger`));
    const fixed = await sidecarCommand(shop, ['reconcile', '--fix']);
    assert.match(fixed.stdout, /1 rewritten/);
    const restored = (await shop.api.movements(product)).find((doc) => doc.id === real.id);
    assert.deepEqual([restored.quantity, restored.stockAfter], [3, 3]);
    assert.equal((await sidecarCommand(shop, ['reconcile'])).code, 0);
  });
});

describe('Payload\'s log', () => {
  test('a whole run, refusals and redeliveries included, leaves no error in Payload\'s log', () => {
    const log = shop.payloadLog();
    assert.ok(log.includes('listening'), 'the log was captured');
    // Payload's logger colours its levels in a terminal-like stream: the colour codes go first.
    const lines = log.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
    assert.ok(lines.some((line) => /\bINFO\b/.test(line)), 'the levels are readable');
    const errors = lines.filter((line) => /\b(ERROR|FATAL)\b|"level":\s*[56]0/.test(line));
    assert.deepEqual(errors, []);
  });
});
