// The demo shop in a real browser (Debian's Chromium driven by playwright-core): an admin logs into Payload's
// panel and finds the products, stock movements and reservations the sidecar projected; a customer checks a quantity
// in the page (payload-stock's rules in the browser); two customers try to buy the last pair of a size at the same
// moment, and exactly one gets it; an Edge-runtime route checks carts with the same rules. Screenshots go to
// SCREENSHOTS_DIR (a temporary directory unless set; `SCREENSHOTS_DIR=docs/screenshots` refreshes the README's).
//
// Needs the shop built (npm run build) and STOCK_SIDECAR_BINARY; scripts/test.sh provides both.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { startShop } from '../scripts/start-shop.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const binary = process.env.STOCK_SIDECAR_BINARY;
const skip = !binary ? 'STOCK_SIDECAR_BINARY is not set (scripts/test.sh sets it)' : !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM} (scripts/test.sh installs Debian's)` : false;

function freePort() {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.once('error', fail);
  });
}

/** Waits until the element with `testId` shows `expected` (a string, or a pattern it must match). */
async function textBecomes(page, testId, expected, timeoutMs = 10_000) {
  const element = page.getByTestId(testId);
  const matches = (text) => (typeof expected === 'string' ? text === expected : expected.test(text));
  await eventually(`${testId} to show ${expected}`, async () => matches(await element.textContent()), timeoutMs);
}

async function eventually(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs / 1000} s`);
    await new Promise((done) => setTimeout(done, 250));
  }
}

test('the demo shop: the admin panel shows the ledger, and of two buyers of the last pair exactly one gets it', { skip, timeout: 300_000 }, async () => {
  const screenshots = resolve(process.env.SCREENSHOTS_DIR ?? mkdtempSync(join(tmpdir(), 'next-shop-screens-')));
  mkdirSync(screenshots, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), 'next-shop-data-'));
  const shop = await startShop({ sidecarBinary: binary, port: await freePort(), sidecarPort: await freePort(), dataDir, fresh: true, stdio: process.env.SHOP_LOGS ? 'inherit' : 'ignore' });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  // A list's relationship cells fill in after the page: wait for them before the picture.
  const shot = async (page, name) => {
    await eventually(`${name}: the page to settle`, async () => (await page.getByText('Loading...').count()) === 0, 10_000);
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
  };
  try {
    // The admin logs in and opens a product: its sizes carry the figures the sidecar wrote.
    const admin = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const panel = await admin.newPage();
    await panel.goto(`${shop.shopUrl}/admin/login`);
    await panel.fill('input[name="email"]', shop.admin.email);
    await panel.fill('input[name="password"]', shop.admin.password);
    await panel.click('button[type="submit"]');
    await panel.waitForURL(/\/admin\/?$/, { timeout: 60_000 });
    // The panel's navigation has the plugin's collections, grouped under Stock.
    for (const collection of ['Products', 'Stock movements', 'Stock reservations']) {
      assert.equal(await panel.getByRole('link', { name: collection, exact: true }).count(), 1, `${collection} in the navigation`);
    }

    await panel.goto(`${shop.shopUrl}/admin/collections/products`);
    await panel.locator('tbody tr').first().waitFor();
    assert.equal(await panel.locator('tbody tr').count(), 3, 'the three seeded products');
    await shot(panel, 'admin-products');
    await panel.getByRole('link', { name: 'Trail runner' }).first().click();
    await panel.waitForURL(/\/admin\/collections\/products\/\d+/);
    const trailRunner = /\/products\/(\d+)/.exec(panel.url())[1];
    await panel.getByText('Sizes').first().waitFor();
    const sizeInputs = await panel.locator('input[name$=".size"]').evaluateAll((inputs) => inputs.map((input) => input.value));
    assert.deepEqual(sizeInputs, ['40', '41', '42', '43'], 'the sizes of the product');
    const stockInputs = await panel.locator('input[name$=".stock"]').evaluateAll((inputs) => inputs.map((input) => input.value));
    assert.deepEqual(stockInputs, ['3', '6', '1', '4'], 'the stock the sidecar projected');
    await shot(panel, 'admin-product');

    await panel.goto(`${shop.shopUrl}/admin/collections/stock-movements`);
    await panel.locator('tbody tr').first().waitFor();
    assert.equal(await panel.locator('tbody tr').count(), 10, 'one restock movement per size of the three products');
    assert.equal(await panel.locator('tbody tr', { hasText: /restock/i }).count(), 10);
    await shot(panel, 'admin-stock-movements');

    // Two customers on the product page; size 42 has its last pair.
    const [first, second] = await Promise.all([0, 1].map(async () => (await browser.newContext({ viewport: { width: 1100, height: 760 } })).newPage()));
    for (const page of [first, second]) {
      await page.goto(`${shop.shopUrl}/products/trail-runner`);
      assert.equal(await page.getByTestId('available-42').textContent(), 'Only 1 left');
      assert.equal(await page.getByTestId('available-41').textContent(), '6 in stock');
    }
    // The rules in the browser: a client component checks the quantity as the customer types, with payload-stock's
    // WebAssembly bundled into the page (no serverExternalPackages, no request to the server).
    await first.locator('[data-testid="quantity-check"][data-hydrated="true"]').waitFor();
    const requests = [];
    first.on('request', (request) => requests.push(request.url()));
    await first.getByTestId('check-size').selectOption('41');
    await first.getByTestId('check-quantity').fill('0');
    await textBecomes(first, 'check-verdict', 'Choose a whole number of pairs, 1 or more');
    await first.getByTestId('check-quantity').fill('6');
    await textBecomes(first, 'check-verdict', '6 × size 41: in stock');
    await textBecomes(first, 'check-available', ' 6 available');
    await first.getByTestId('check-quantity').fill('7');
    await textBecomes(first, 'check-verdict', 'Only 6 left in size 41');
    assert.deepEqual(requests, [], 'the quantity check ran in the page');
    // The page's JavaScript carries the rules (the module inlined: base64 of "\0asm") and neither the sidecar's
    // client nor the Payload plugin.
    const scripts = await first.evaluate(() => performance.getEntriesByType('resource').map((entry) => entry.name).filter((url) => new URL(url).pathname.endsWith('.js')));
    const bundle = (await Promise.all(scripts.map(async (src) => (await fetch(src)).text()))).join('\n');
    assert.ok(bundle.includes('AGFzbQ'), 'the wasm module is in the page');
    for (const serverOnly of ["createStockClient: url must be", 'payload-stock projection v1']) {
      assert.ok(!bundle.includes(serverOnly), `the page's JavaScript has no "${serverOnly}"`);
    }
    await shot(first, 'shop-product');
    await Promise.all([first.getByTestId('buy-42').click(), second.getByTestId('buy-42').click()]);
    const outcomes = await Promise.all([first, second].map(async (page) => {
      const outcome = page.getByTestId('outcome');
      await outcome.waitFor({ timeout: 30_000 });
      return { page, text: await outcome.textContent(), kind: await outcome.getAttribute('class') };
    }));
    const paid = outcomes.filter((outcome) => outcome.kind.includes('ok'));
    const refused = outcomes.filter((outcome) => outcome.kind.includes('refused'));
    assert.equal(paid.length, 1, `exactly one buyer gets the last pair: ${JSON.stringify(outcomes.map(({ text }) => text))}`);
    assert.equal(refused.length, 1);
    assert.match(paid[0].text, /^Paid: order NS-[0-9A-F]{6} confirmed, size 42 is yours\.$/);
    assert.equal(refused[0].text, 'Sorry, size 42 just sold out: nothing was charged.');
    await shot(paid[0].page, 'shop-paid');
    await shot(refused[0].page, 'shop-refused');
    await refused[0].page.reload();
    assert.equal(await refused[0].page.getByTestId('available-42').textContent(), 'Sold out');
    assert.ok(await refused[0].page.getByTestId('buy-42').isDisabled());

    // The admin sees the sale: one committed reservation, and a sale movement from the Stripe event.
    await eventually('Payload to show the committed reservation', async () => {
      await panel.goto(`${shop.shopUrl}/admin/collections/stock-reservations`);
      await panel.locator('tbody tr').first().waitFor();
      // The refused buyer's reservation was never made: one row, the paid one.
      const rows = panel.locator('tbody tr');
      return (await rows.count()) === 1 && (await rows.filter({ hasText: /committed/i }).count()) === 1;
    });
    await shot(panel, 'admin-stock-reservations');
    await eventually('Payload to show the sale movement', async () => {
      await panel.goto(`${shop.shopUrl}/admin/collections/stock-movements`);
      await panel.locator('tbody tr').first().waitFor();
      const sales = panel.locator('tbody tr', { hasText: /sale/i });
      return (await sales.count()) === 1 && (await sales.first().textContent()).includes('42');
    });
    await shot(panel, 'admin-sale-movement');

    // An Edge-runtime route checks carts against the sidecar's figures with payload-stock's rules.
    const checkCart = (body) => fetch(`${shop.shopUrl}/api/cart/check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const checked = await checkCart(JSON.stringify({ items: [{ product: trailRunner, size: '42', quantity: 1 }, { product: trailRunner, size: '41', quantity: 7 }, { product: trailRunner, size: '40', quantity: 1 }] }));
    assert.equal(checked.status, 200);
    const verdict = await checked.json();
    assert.equal(verdict.runtime, 'edge', 'the route ran on the Edge runtime');
    assert.equal(verdict.ok, false);
    assert.deepEqual(verdict.shortages.map(({ size, requested, available }) => [size, requested, available]), [['42', 1, 0], ['41', 7, 6]]);
    const unknown = await (await checkCart(JSON.stringify({ items: [{ product: '999999', size: '42', quantity: 1 }] }))).json();
    assert.deepEqual(unknown.errors.map(({ code }) => code), ['unknown_product']);
    const malformed = await checkCart('{"items": [');
    assert.equal(malformed.status, 422);
    assert.equal((await malformed.json()).error, 'invalid_request');
    const notLines = await checkCart(JSON.stringify({ items: [42] }));
    assert.equal(notLines.status, 422);
    assert.equal((await notLines.json()).error, 'invalid_input');
    const oversized = await checkCart(JSON.stringify({ items: [{ product: 'x'.repeat(20_000), size: '42', quantity: 1 }] }));
    assert.equal(oversized.status, 413);
    // Without a Content-Length (a chunked upload), the body is counted as it arrives and cut off all the same.
    const chunks = new ReadableStream({
      start(controller) {
        for (let chunk = 0; chunk < 20; chunk++) controller.enqueue(new TextEncoder().encode(' '.repeat(1024)));
        controller.close();
      },
    });
    const chunked = await fetch(`${shop.shopUrl}/api/cart/check`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: chunks, duplex: 'half' });
    assert.equal(chunked.status, 413);
    // A product id the sidecar's URL would reinterpret never reaches it.
    const dotted = await checkCart(JSON.stringify({ items: [{ product: '..', size: '42', quantity: 1 }] }));
    assert.equal(dotted.status, 422);
    // 30 checks a minute per client: the 31st is refused, whatever it asks.
    const checkStatuses = [];
    for (let attempt = 0; attempt < 30; attempt++) checkStatuses.push((await checkCart('{}')).status);
    const firstRefused = checkStatuses.indexOf(429);
    assert.ok(firstRefused > 0 && checkStatuses.slice(firstRefused).every((status) => status === 429), `cart checks are throttled: ${checkStatuses}`);

    // The cron route asks the sidecar to release expired reservations, and only with CRON_SECRET.
    const cron = `${shop.shopUrl}/api/cron/clean-expired-reservations`;
    assert.equal((await fetch(cron)).status, 401);
    const cleaned = await fetch(cron, { headers: { authorization: `Bearer ${shop.secrets.cronSecret}` } });
    assert.deepEqual(await cleaned.json(), { released: 0, references: [] });
    // Test mode pays only its own made-up PaymentIntents, and only reserved ones.
    const pay = (paymentIntent) => fetch(`${shop.shopUrl}/api/checkout/test-pay`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ paymentIntent }) });
    assert.equal((await pay('pi_3RealLooking')).status, 422);
    assert.equal((await pay('pi_test_never_reserved')).status, 404);

    // Starting checkouts is throttled per client (10 a minute), and a made-up X-Forwarded-For does not dodge it:
    // server.mjs sets the header from the connection. (Empty carts: counted, refused, nothing reserved.)
    const start = (forwardedFor) => fetch(`${shop.shopUrl}/api/checkout/create-payment-intent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
      body: JSON.stringify({ items: [] }),
    });
    const statuses = [];
    for (let attempt = 0; attempt < 12; attempt++) statuses.push((await start(`203.0.113.${attempt}`)).status);
    assert.ok(statuses.includes(429), `the client was throttled: ${statuses}`);
    assert.ok(statuses.slice(0, 8).every((status) => status === 422), `the first ones were answered: ${statuses}`);
    const throttled = await start('198.51.100.7');
    assert.equal(throttled.status, 429);
    assert.ok(Number(throttled.headers.get('retry-after')) > 0);
    assert.equal((await throttled.json()).error, 'too_many_checkouts');
  } finally {
    await browser.close();
    await shop.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
