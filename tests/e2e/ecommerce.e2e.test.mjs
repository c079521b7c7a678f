// End to end on a shop built on Payload's official ecommerce plugin (@payloadcms/plugin-ecommerce, its carts,
// transactions, orders and Stripe adapter), with the payloadStock plugin added after it and the real sidecar
// (PAYLOAD_SHOP=ecommerce). Stripe is the local fake of scripts/shop/fake-stripe.mjs; its webhooks are signed events.
// Checkouts run as the ecommerce template's browser runs them: cart, payment start, paying, confirm-order.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startEcommerceShop } from '../../scripts/shop/ecommerce.mjs';
import { sidecarCommand, sleep, waitFor } from '../../scripts/shop/harness.mjs';

/** Waits until Payload shows `inventory` for a variant (or a product without variants) and returns the document. */
async function shows(shop, target, expected) {
  const path = target.variant !== undefined ? `/variants/${target.variant}?depth=0` : `/products/${target.product}?depth=0`;
  return waitFor(`${path} to show ${JSON.stringify(expected)}`, async () => {
    const { body } = await shop.api.get(path);
    return Object.entries(expected).every(([name, value]) => body?.[name] === value) ? body : null;
  });
}

/** The ledger's figures of a variant (its id) or of a product without variants ('(no variant)'). */
async function ledger(shop, product, size) {
  const { body } = await shop.sidecarCall('GET', `/v1/products/${product}/stock`);
  return body.sizes.find((entry) => entry.size === String(size));
}

describe('a shop on Payload\'s ecommerce plugin, with payload-stock', () => {
  let shop;
  let runner;
  let cap;

  before(async () => {
    shop = await startEcommerceShop({ withStock: true });
    runner = await shop.seedProduct({ title: 'Runner', variants: { 41: 0, 42: 0, 43: 0, 44: 0 } });
    cap = await shop.seedProduct({ title: 'Cap', inventory: 0 });
    for (const [size, units] of [[41, 4], [42, 1], [43, 3], [44, 5]]) await shop.restock(runner.product, runner.variants[size], units);
    await shop.restock(cap.product, null, 2);
    await shop.projected();
  });

  after(async () => {
    await shop?.stop();
  });

  test('variants and a product without variants show the ledger\'s figures, inventory among them', async () => {
    const variant = await shows(shop, { variant: runner.variants[41] }, { inventory: 4 });
    assert.deepEqual(
      { stock: variant.stock, reservedStock: variant.reservedStock, availableStock: variant.availableStock, isLowStock: variant.isLowStock },
      { stock: 4, reservedStock: 0, availableStock: 4, isLowStock: false },
    );
    const product = await shows(shop, { product: cap.product }, { inventory: 2, stock: 2 });
    assert.equal(product.availableStock, 2);
  });

  test('the last unit bought by two carts at once: one order, the other refused before any charge', async () => {
    const ordersBefore = await shop.orderCount();
    const line = { product: runner.product, variant: runner.variants[42], quantity: 1 };
    const [first, second] = await Promise.all([shop.checkout({ items: [line] }), shop.checkout({ items: [line] })]);
    const done = [first, second].filter((result) => result.stage === 'done');
    const refused = [first, second].filter((result) => result.stage !== 'done');
    assert.equal(done.length, 1, JSON.stringify([first, second]));
    assert.equal(refused.length, 1);
    assert.equal(refused[0].stage, 'initiate');
    assert.equal(refused[0].status, 409);
    assert.equal(refused[0].body.code, 'insufficient_stock');
    assert.deepEqual(refused[0].body.shortages.map(({ variant, requested, available }) => ({ variant, requested, available })), [
      { variant: String(runner.variants[42]), requested: 1, available: 0 },
    ]);
    // No PaymentIntent of the refused cart is left open: it was cancelled at Stripe, its transaction with it.
    const intents = [...shop.stripe.paymentIntents.values()].filter((intent) => intent.metadata.cartID === String(refused[0].cart));
    assert.deepEqual(intents.map((intent) => intent.status), ['canceled']);
    const { body: transactions } = await shop.api.get(`/transactions?depth=0&where[cart][equals]=${refused[0].cart}`);
    assert.deepEqual(transactions.docs.map((transaction) => transaction.status), ['cancelled']);

    assert.equal(await shop.orderCount(), ordersBefore + 1);
    await shop.projected();
    const variant = await shows(shop, { variant: runner.variants[42] }, { inventory: 0, stock: 0, reservedStock: 0 });
    assert.equal(variant.availableStock, 0);
    assert.equal((await ledger(shop, runner.product, runner.variants[42])).stock, 0, 'sold once, never below zero');
  });

  test('a product without variants: its own stock is held at payment start and sold once', async () => {
    const done = await shop.checkout({ items: [{ product: cap.product, quantity: 2 }] });
    assert.equal(done.stage, 'done', JSON.stringify(done.body));
    const again = await shop.checkout({ items: [{ product: cap.product, quantity: 1 }] });
    assert.equal(again.status, 400, 'the ecommerce plugin\'s own check sees inventory 0 once the sale is shown');
    await shop.projected();
    await shows(shop, { product: cap.product }, { inventory: 0, stock: 0 });
  });

  test('a payment whose browser never comes back is sold by Stripe\'s webhook alone', async () => {
    const ordersBefore = await shop.orderCount();
    const paid = await shop.checkout({ items: [{ product: runner.product, variant: runner.variants[43], quantity: 2 }], confirm: false });
    assert.equal(paid.stage, 'paid');
    await shop.projected();
    await shows(shop, { variant: runner.variants[43] }, { inventory: 1, stock: 3, reservedStock: 2 });

    const answer = await shop.webhook('payment_intent.succeeded', paid.paymentIntentID);
    assert.equal(answer.body.outcome, 'committed', JSON.stringify(answer.body));
    await shop.projected();
    await shows(shop, { variant: runner.variants[43] }, { inventory: 1, stock: 1, reservedStock: 0 });
    assert.equal(await shop.orderCount(), ordersBefore, 'creating the order stays the ecommerce plugin\'s business');
    // The admin sees a paid checkout without an order: the reservation names the payment, the cart and the transaction.
    const { body } = await shop.api.get(`/stock-reservations?depth=0&where[reference][equals]=${paid.paymentIntentID}`);
    const [reservation] = body.docs;
    assert.equal(reservation.status, 'committed');
    assert.equal(reservation.cart, paid.cart);
    assert.ok(reservation.transaction, 'the transaction is named');
    assert.equal(reservation.order, null);
    assert.deepEqual(reservation.items.map(({ variant, quantity }) => ({ variant, quantity })), [{ variant: runner.variants[43], quantity: 2 }]);
  });

  test('confirm-order and the webhook, in either order, sell once', async () => {
    const line = { product: runner.product, variant: runner.variants[44], quantity: 1 };
    // The browser first: confirm-order sells, the webhook then finds it sold.
    const confirmedFirst = await shop.checkout({ items: [line] });
    assert.equal(confirmedFirst.stage, 'done', JSON.stringify(confirmedFirst.body));
    assert.equal((await shop.webhook('payment_intent.succeeded', confirmedFirst.paymentIntentID)).body.outcome, 'unchanged');
    // The webhook first: it sells, confirm-order creates the order and sells nothing more.
    const paid = await shop.checkout({ items: [line], confirm: false });
    assert.equal((await shop.webhook('payment_intent.succeeded', paid.paymentIntentID)).body.outcome, 'committed');
    const confirmed = await shop.confirmOrder(paid);
    assert.equal(confirmed.stage, 'done', JSON.stringify(confirmed.body));
    // And Stripe redelivering the event changes nothing.
    assert.equal((await shop.webhook('payment_intent.succeeded', paid.paymentIntentID)).body.outcome, 'unchanged');

    await shop.projected();
    const variant = await shows(shop, { variant: runner.variants[44] }, { stock: 3, inventory: 3 });
    assert.equal(variant.reservedStock, 0);
    assert.equal((await ledger(shop, runner.product, runner.variants[44])).stock, 3, 'two sales of one unit, from five');
  });

  test('an editor\'s open draft of a variant during a sale: the draft intact, the figures right, nothing published', async () => {
    const id = runner.variants[41];
    // The editor drafts a new price (the ecommerce plugin names variants after their options, so not the title).
    const draft = await shop.api.patch(`/variants/${id}?draft=true&depth=0`, { priceInUSD: 5990 });
    assert.equal(draft.status, 200, draft.text);
    const { body: before } = await shop.api.get(`/variants/${id}?depth=0`);
    const sale = await shop.checkout({ items: [{ product: runner.product, variant: id, quantity: 1 }] });
    assert.equal(sale.stage, 'done', JSON.stringify(sale.body));
    await shop.projected();

    const published = await shows(shop, { variant: id }, { inventory: 3, stock: 3 });
    assert.equal(published.updatedAt, before.updatedAt, 'a stock change is no edit: the admin still sees the draft as unpublished');
    assert.equal(published.priceInUSD, 4990, 'the draft was not published');
    const { body: latest } = await shop.api.get(`/variants/${id}?draft=true&depth=0`);
    assert.equal(latest.priceInUSD, 5990, 'the draft is intact');
    assert.equal(latest._status, 'draft');
    assert.deepEqual([latest.inventory, latest.stock], [3, 3], 'a draft read shows the figures of now');

    // Publishing the draft keeps the figures of now, not those the draft was opened with.
    const publish = await shop.api.patch(`/variants/${id}?depth=0`, { ...latest, _status: 'published', inventory: 4, stock: 4 });
    assert.equal(publish.status, 200, publish.text);
    const after = await shows(shop, { variant: id }, { priceInUSD: 5990 });
    assert.deepEqual([after.inventory, after.stock], [3, 3]);
  });

  test('nobody but the sidecar writes a figure: an admin\'s PATCH keeps them, a customer cannot touch stock', async () => {
    const id = runner.variants[44];
    const patched = await shop.api.patch(`/variants/${id}?depth=0`, { inventory: 99, stock: 99, reservedStock: 5 });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual([patched.body.doc.inventory, patched.body.doc.stock, patched.body.doc.reservedStock], [3, 3, 0]);

    const email = 'shopper@example.com';
    const signup = await fetch(`${shop.payload.url}/api/users`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: 'shopper-password-1' }) });
    assert.equal(signup.status, 201);
    const login = await fetch(`${shop.payload.url}/api/users/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: 'shopper-password-1' }) });
    const { token } = await login.json();
    const asCustomer = { authorization: `JWT ${token}` };
    const movement = await shop.api.call('POST', '/stock-movements', { body: { product: runner.product, variant: id, type: 'restock', quantity: 10 }, authorization: asCustomer.authorization });
    assert.equal(movement.status, 403, movement.text);
    const reservations = await shop.api.call('GET', '/stock-reservations', { authorization: asCustomer.authorization });
    assert.equal(reservations.status, 403, reservations.text);
    const variantPatch = await shop.api.call('PATCH', `/variants/${id}`, { body: { inventory: 50 }, authorization: asCustomer.authorization });
    assert.equal(variantPatch.status, 403, variantPatch.text);
    // What can be sold is public, as inventory is; units on hand and held are staff's.
    const seen = await shop.api.call('GET', `/variants/${id}?depth=0`, { authorization: asCustomer.authorization });
    assert.equal(seen.status, 200, seen.text);
    assert.deepEqual([seen.body.inventory, seen.body.availableStock, 'stock' in seen.body, 'reservedStock' in seen.body], [3, 3, false, false]);
    const figures = await shop.api.call('POST', '/payload-stock/figures', { body: { product: runner.product, sizes: [] } });
    assert.equal(figures.status, 403, 'an admin\'s API key without the sidecar\'s proof cannot write figures');
    assert.equal((await ledger(shop, runner.product, id)).stock, 3);
  });

  test('a return of a variant entered in Payload puts it back in inventory, once', async () => {
    const boot = await shop.seedProduct({ title: 'Boot', variants: { 40: 0 } });
    const id = boot.variants[40];
    await shop.restock(boot.product, id, 2);
    const sold = await shop.checkout({ items: [{ product: boot.product, variant: id, quantity: 1 }] });
    assert.equal(sold.stage, 'done', JSON.stringify(sold.body));
    await shop.projected();
    await shows(shop, { variant: id }, { inventory: 1, stock: 1 });
    const reservation = await waitFor('the paid reservation', async () => {
      const { body } = await shop.api.get(`/stock-reservations?depth=0&where[reference][equals]=${sold.paymentIntentID}`);
      return body.docs[0]?.status === 'committed' ? body.docs[0] : null;
    });
    const form = { reservation: reservation.id, returnId: 'RMA-eco-1', lines: [{ product: boot.product, variant: id, quantity: 1, reason: 'returned' }] };
    const created = await shop.api.post('/stock-returns?depth=0', form);
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.doc.lines[0].restocked, 1);
    await shop.projected();
    await shows(shop, { variant: id }, { inventory: 2, stock: 2 });
    const again = await shop.api.post('/stock-returns?depth=0', { ...form, returnId: 'RMA-eco-2' });
    assert.equal(again.status, 409, again.text);
    assert.equal(again.body.errors[0].data.code, 'exceeds_returnable');
    assert.equal((await ledger(shop, boot.product, id)).stock, 2, 'one unit sold, one came back');
  });

  test('an admin\'s restock of a variant in Payload lands in the ledger and in inventory', async () => {
    const id = runner.variants[42];
    const created = await shop.api.post('/stock-movements?depth=0', { product: runner.product, variant: id, type: 'restock', quantity: 6, reason: 'Delivery 7' });
    assert.equal(created.status, 201, created.text);
    assert.deepEqual([created.body.doc.size, created.body.doc.variant, created.body.doc.stockAfter], [String(id), id, 6]);
    // A product with variants keeps its stock on them; a variant of another product is not this one's.
    const noVariant = await shop.api.post('/stock-movements?depth=0', { product: runner.product, type: 'restock', quantity: 1 });
    assert.equal(noVariant.status, 400, noVariant.text);
    assert.equal(noVariant.body.errors[0].data.code, 'variant_required');
    const foreign = await shop.api.post('/stock-movements?depth=0', { product: cap.product, variant: id, type: 'restock', quantity: 1 });
    assert.equal(foreign.status, 400, foreign.text);
    assert.equal(foreign.body.errors[0].data.code, 'unknown_variant');
    await shop.projected();
    await shows(shop, { variant: id }, { inventory: 6, stock: 6 });
  });
});

describe('import and reconcile on a shop that kept its stock in inventory', () => {
  let shop;

  before(async () => {
    shop = await startEcommerceShop({ withStock: true });
  });

  after(async () => {
    await shop?.stop();
  });

  test('import reads inventory into the ledger once; reconcile finds a drifted inventory and fixes it', async () => {
    const boot = await shop.seedProduct({ title: 'Boot', variants: { 38: 0, 39: 0 } });
    const belt = await shop.seedProduct({ title: 'Belt', inventory: 0 });
    // Inventory entered before payload-stock managed it (written here the only way the plugin still allows).
    for (const [path, inventory] of [[`/variants/${boot.variants[38]}`, 4], [`/variants/${boot.variants[39]}`, 0], [`/products/${belt.product}`, 6]]) {
      const written = await shop.api.patch(`${path}?depth=0`, { inventory }, { projection: true });
      assert.equal(written.status, 200, written.text);
    }
    const first = await sidecarCommand(shop, ['import']);
    assert.equal(first.code, 0, first.stderr);
    const stock = async (product) => (await shop.sidecarCall('GET', `/v1/products/${product}/stock`)).body.sizes.map(({ size, stock }) => [size, stock]);
    assert.deepEqual(await stock(boot.product), [[String(boot.variants[38]), 4], [String(boot.variants[39]), 0]]);
    assert.deepEqual(await stock(belt.product), [['(no variant)', 6]]);
    const again = await sidecarCommand(shop, ['import']);
    assert.match(again.stdout, new RegExp(`already there +product ${belt.product} size \\(no variant\\): the ledger has 6`));
    await shop.projected();
    await shows(shop, { product: belt.product }, { inventory: 6, stock: 6 });
    assert.equal((await sidecarCommand(shop, ['reconcile'])).code, 0);

    // Drift: somebody with the sidecar's key wrote an inventory by hand.
    await shop.api.patch(`/variants/${boot.variants[38]}?depth=0`, { inventory: 99 }, { projection: true });
    const found = await sidecarCommand(shop, ['reconcile']);
    assert.equal(found.code, 1, found.stdout);
    assert.match(found.stdout, new RegExp(`${boot.product} +${boot.variants[38]} +inventory +99 +4`));
    const fixed = await sidecarCommand(shop, ['reconcile', '--fix']);
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    await shows(shop, { variant: boot.variants[38] }, { inventory: 4 });
    assert.equal((await sidecarCommand(shop, ['reconcile'])).code, 0);
  });
});

describe('an abandoned payment', () => {
  let shop;

  before(async () => {
    shop = await startEcommerceShop({ withStock: true, reservationTtlSeconds: 1 });
  });

  after(async () => {
    await shop?.stop();
  });

  test('is released at expiry: the units come back and its PaymentIntent is cancelled at Stripe', async () => {
    const runner = await shop.seedProduct({ title: 'Runner', variants: { 42: 0 } });
    await shop.restock(runner.product, runner.variants[42], 1);
    const started = await shop.checkout({ items: [{ product: runner.product, variant: runner.variants[42], quantity: 1 }], pay: false });
    assert.equal(started.stage, 'initiated', JSON.stringify(started.body));
    await shop.projected();
    await shows(shop, { variant: runner.variants[42] }, { inventory: 0, reservedStock: 1 });

    await sleep(1_100);
    const cleanup = await shop.sidecarCall('POST', '/api/admin/clean-expired-reservations');
    assert.deepEqual(cleanup.body.references, [started.paymentIntentID]);
    await shop.projected();
    await shows(shop, { variant: runner.variants[42] }, { inventory: 1, reservedStock: 0 });
    await waitFor('the PaymentIntent to be cancelled at Stripe', () => shop.stripe.paymentIntents.get(started.paymentIntentID).status === 'canceled');
  });
});
