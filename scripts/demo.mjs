// payload-stock end to end: the rules in WebAssembly on a sample product, then one checkout through a real
// stock-sidecar. Run by scripts/demo.sh, which builds both first. Usage: node scripts/demo.mjs <sidecar binary>
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { deriveSizes, validateCart } from '../js-shim/dist/index.js'; // in a shop: from 'payload-stock'
import { startSidecar } from './sidecar-process.mjs';

const binary = process.argv[2];
if (!binary) {
  console.error('usage: node scripts/demo.mjs <path to the stock-sidecar binary> (scripts/demo.sh passes it)');
  process.exit(2);
}

// 1. The rules, in the shop's own process.
const product = {
  id: 'trail-runner',
  sizes: [
    { size: '41', stock: 5, reservedStock: 3, lowStockThreshold: 3 },
    { size: '42', stock: 1, reservedStock: 0, lowStockThreshold: 3 },
  ],
};
console.log('The wasm package on a sample product (deriveSizes):');
console.table(deriveSizes(product.sizes));
const check = validateCart([product], [{ product: 'trail-runner', size: '41', quantity: 3 }]);
console.log(`validateCart asking 3 of size 41: ok=${check.ok}, shortages=${JSON.stringify(check.shortages)}\n`);

// 2. The sidecar: a real process on a free port with a database of its own.
const webhookSecret = `whsec_${randomBytes(16).toString('hex')}`;
const sidecar = await startSidecar(binary, {
  STRIPE_WEBHOOK_SECRET: webhookSecret,
  RUST_LOG: process.env.RUST_LOG ?? 'warn,stripe_webhook=error',
});
const { base, apiToken, adminToken } = sidecar;

async function call(method, path, { token = apiToken, body, headers = {} } = {}) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : body && JSON.stringify(body),
  });
  const text = await response.text();
  console.log(`${method} ${path} -> ${response.status} ${text}`);
  return JSON.parse(text);
}

/** A Stripe event as Stripe signs it: HMAC-SHA256 of "<t>.<payload>" with the endpoint secret. */
function signedEvent(type, objectId) {
  const event = {
    id: `evt_demo_${randomBytes(6).toString('hex')}`,
    object: 'event',
    api_version: '2025-03-31.basil',
    created: Math.floor(Date.now() / 1000),
    type,
    data: { object: JSON.parse(readFileSync(new URL('../sidecar/tests/fixtures/stripe/payment_intent.succeeded.json', import.meta.url))).data.object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
  };
  event.data.object.id = objectId;
  const payload = JSON.stringify(event);
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac('sha256', webhookSecret).update(`${t}.${payload}`).digest('hex');
  return { payload, signature: `t=${t},v1=${v1}` };
}

try {
  console.log(`stock-sidecar is up on ${base}\n`);
  await call('POST', '/v1/movements', { token: adminToken, body: { product: 'trail-runner', size: '42', type: 'restock', quantity: 1, reason: 'Supplier delivery', reference: 'PO-1042', lowStockThreshold: 1 } });
  await call('POST', '/v1/reservations', { body: { reference: 'pi_3DemoAlice', items: [{ product: 'trail-runner', size: '42', quantity: 1 }] } });
  console.log('\nA second customer wants the same last pair:');
  await call('POST', '/v1/reservations', { body: { reference: 'pi_3DemoBob', items: [{ product: 'trail-runner', size: '42', quantity: 1 }] } });
  console.log('\nStripe says Alice paid (a signed payment_intent.succeeded), then redelivers it:');
  const paid = signedEvent('payment_intent.succeeded', 'pi_3DemoAlice');
  for (let delivery = 0; delivery < 2; delivery++) {
    await call('POST', '/webhooks/stripe', { token: '', body: paid.payload, headers: { 'stripe-signature': paid.signature } });
  }
  console.log('\nThe stock, sold once:');
  await call('GET', '/v1/products/trail-runner/stock');
  await call('GET', '/api/admin/clean-expired-reservations', { token: adminToken });
} finally {
  await sidecar.stop();
}
