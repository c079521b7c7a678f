// The payloadStock plugin's config changes, without Payload (the end-to-end tests in tests/e2e/ run it in a real
// Payload): what it adds, what it keeps of a shop's own fields, and the mistakes it refuses at start.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { mayOpenAdmin, payloadStock, projectionProof } from 'payload-stock/payload';

const plugin = payloadStock({ sidecarUrl: 'http://127.0.0.1:4242', sidecarToken: 'admin-token-0123456789' });
const names = (fields) => fields.map((field) => field.name);

test('adds a sizes array to products and the three stock collections', () => {
  const config = plugin({ collections: [{ slug: 'products', fields: [{ name: 'title', type: 'text' }] }] });
  const products = config.collections.find((collection) => collection.slug === 'products');
  assert.deepEqual(names(products.fields), ['title', 'sizes']);
  const sizes = products.fields[1];
  assert.equal(sizes.type, 'array');
  assert.deepEqual(names(sizes.fields), ['size', 'stock', 'reservedStock', 'lowStockThreshold', 'availableStock', 'isLowStock']);
  assert.ok(sizes.fields.slice(1).every((field) => field.admin.readOnly), 'every figure is read-only in the admin panel');
  assert.deepEqual(config.collections.map((collection) => collection.slug), ['products', 'stock-movements', 'stock-reservations', 'stock-returns']);
  const movements = config.collections[1];
  const returns = config.collections[3];
  assert.equal(returns.fields.find((field) => field.name === 'reservation').relationTo, 'stock-reservations');
  assert.equal(returns.fields.find((field) => field.name === 'returnId').unique, true);
  assert.equal(returns.access.update(), false, 'returns are append-only');
  assert.equal(movements.fields.find((field) => field.name === 'idempotencyKey').unique, true);
  assert.equal(movements.fields.find((field) => field.name === 'product').relationTo, 'products');
});

test('adds only the missing fields to a shop\'s own sizes array, inside a row, keeping its own', () => {
  const shopSizes = { name: 'sizes', type: 'array', fields: [{ name: 'size', type: 'text', required: true }, { name: 'color', type: 'text' }, { name: 'stock', type: 'number', min: 0 }] };
  const stocked = payloadStock({ productsSlug: 'items', movementsSlug: 'moves', reservationsSlug: 'holds', returnsSlug: 'backs' })({ collections: [{ slug: 'items', fields: [{ type: 'row', fields: [shopSizes] }] }] });
  const sizes = stocked.collections[0].fields[0].fields[0];
  assert.deepEqual(names(sizes.fields), ['size', 'color', 'stock', 'reservedStock', 'lowStockThreshold', 'availableStock', 'isLowStock']);
  assert.equal(sizes.fields[2], shopSizes.fields[2], 'the shop\'s own stock field is kept as it is');
  assert.deepEqual(stocked.collections.map((collection) => collection.slug), ['items', 'moves', 'holds', 'backs']);
  assert.equal(stocked.collections[1].fields[0].relationTo, 'items');
});

test('refuses a config it cannot work with, saying what to change', () => {
  assert.throws(() => plugin({ collections: [{ slug: 'posts', fields: [] }] }), /no collection with the slug "products"; pass productsSlug/);
  assert.throws(() => plugin({ collections: [{ slug: 'products', fields: [{ name: 'sizes', type: 'json' }] }] }), /products\.sizes is a json field/);
});

test('does not change the config it is given', () => {
  const input = { collections: [{ slug: 'products', fields: [{ type: 'row', fields: [{ name: 'sizes', type: 'array', fields: [{ name: 'size', type: 'text' }] }] }] }] };
  const copy = structuredClone(input);
  plugin(input);
  assert.deepEqual(input, copy);
});

// What Payload hands access functions: the request with its user and the Payload instance's config.
const payloadWith = ({ adminAccess } = {}) => ({
  config: { admin: { user: 'users' } },
  collections: { users: { config: { access: adminAccess ? { admin: adminAccess } : {} } }, customers: { config: { access: {} } } },
});
const request = (user, headers = {}, payload = payloadWith()) => ({ user, headers: new Headers(headers), payload });

test('the projection\'s proof is the sidecar\'s: the same token and instant give the value the Rust side computes', () => {
  // sidecar/src/projection/payload.rs, the_proof_is_the_plugins_and_depends_on_the_token, asserts the same pair.
  assert.equal(projectionProof('admin-token-0123456789', 1800000000), 't=1800000000,v1=e897bf7292101060726b1cb7e970ce68065508b8801cd38d95f6cd2f599617ce');
  assert.notEqual(projectionProof('admin-token-0123456789', 1), projectionProof('admin-token-0123456780', 1));
  assert.match(projectionProof('admin-token-0123456789'), /^t=\d+,v1=[0-9a-f]{64}$/, 'now by default');
});

test('only an API key with the proof writes what the sidecar owns; the bare header or another token is refused', async () => {
  const config = plugin({ collections: [{ slug: 'products', fields: [] }] });
  const reservations = config.collections.find((collection) => collection.slug === 'stock-reservations');
  const stockField = config.collections[0].fields[0].fields.find((field) => field.name === 'stock');
  const apiKeyUser = { id: 1, collection: 'users', _strategy: 'api-key' };
  const proof = projectionProof('admin-token-0123456789');
  const now = Math.floor(Date.now() / 1000);
  for (const [user, header, allowed] of [
    [apiKeyUser, proof, true],
    [apiKeyUser, projectionProof('admin-token-0123456789', now - 250), true],
    [apiKeyUser, projectionProof('admin-token-0123456789', now - 400), false],
    [apiKeyUser, projectionProof('admin-token-0123456789', now + 400), false],
    [apiKeyUser, 'projection', false],
    [apiKeyUser, projectionProof('another-token-0123456789'), false],
    [apiKeyUser, `${proof}0`, false],
    [{ ...apiKeyUser, _strategy: 'local-jwt' }, proof, false],
    [null, proof, false],
  ]) {
    const req = request(user, { 'x-payload-stock': header });
    assert.equal(reservations.access.create({ req }), allowed, `${header} / ${user?._strategy}`);
    assert.equal(reservations.access.delete({ req }), allowed);
    assert.equal(stockField.access.update({ req }), allowed);
  }
  const unconfigured = payloadStock({})({ collections: [{ slug: 'products', fields: [] }] });
  const closed = unconfigured.collections.find((collection) => collection.slug === 'stock-reservations');
  assert.equal(closed.access.create({ req: request(apiKeyUser, { 'x-payload-stock': proof }) }), false, 'no token: never open');
});

test('movements and reservations are for users who may open the admin panel, as Payload decides it', async () => {
  const config = plugin({ collections: [{ slug: 'products', fields: [] }] });
  const movements = config.collections.find((collection) => collection.slug === 'stock-movements');
  const reservations = config.collections.find((collection) => collection.slug === 'stock-reservations');
  const staffOnly = payloadWith({ adminAccess: ({ req }) => req.user?.role !== 'customer' });
  const cases = [
    [{ collection: 'users', role: 'admin' }, staffOnly, true],
    [{ collection: 'users', role: 'customer' }, staffOnly, false],
    [{ collection: 'customers' }, staffOnly, false],
    [{ collection: 'users' }, payloadWith(), true],
    [null, payloadWith(), false],
  ];
  for (const [user, payload, allowed] of cases) {
    const req = request(user, {}, payload);
    assert.equal(await movements.access.read({ req }), allowed, JSON.stringify(user));
    assert.equal(await movements.access.create({ req }), allowed);
    assert.equal(await reservations.access.read({ req }), allowed);
    assert.equal(await mayOpenAdmin({ req }), allowed);
  }
  assert.equal(movements.access.update({ req: request({ collection: 'users', role: 'admin' }, {}, staffOnly) }), false, 'append-only for people');
});

test('a shop sets its own access rules, and a misspelt rule is refused at start', async () => {
  const custom = payloadStock({ sidecarToken: 'admin-token-0123456789', access: { readReservations: ({ req }) => req.user?.role === 'support' } });
  const config = custom({ collections: [{ slug: 'products', fields: [] }] });
  const reservations = config.collections.find((collection) => collection.slug === 'stock-reservations');
  assert.equal(await reservations.access.read({ req: request({ collection: 'customers', role: 'support' }) }), true);
  assert.equal(await reservations.access.read({ req: request({ collection: 'users', role: 'admin' }) }), false);
  assert.throws(() => payloadStock({ access: { readMovement: () => true } }), /access\.readMovement is not one of/);
});

test('a movement form carries a hidden submission key from when it opens, and a copy gets a new one', () => {
  const config = plugin({ collections: [{ slug: 'products', fields: [] }] });
  const submission = config.collections[1].fields.find((field) => field.name === 'submission');
  assert.match(submission.defaultValue(), /^payload-[0-9a-f-]{36}$/);
  assert.notEqual(submission.defaultValue(), submission.defaultValue());
  assert.equal(submission.admin.hidden, true);
  assert.match(submission.hooks.beforeDuplicate[0]({ value: 'payload-copied' }), /^payload-[0-9a-f-]{36}$/);
});

test('a shop\'s access rule may answer a query, passed on to Payload as it is', async () => {
  const byOwner = { owner: { equals: 7 } };
  const custom = payloadStock({ sidecarToken: 'admin-token-0123456789', access: { readMovements: () => byOwner } });
  const movements = custom({ collections: [{ slug: 'products', fields: [] }] }).collections[1];
  assert.equal(await movements.access.read({ req: request({ collection: 'users' }) }), byOwner);
});

/** A config as Payload's ecommerce plugin leaves it: variants and products with `inventory`, its payment endpoints. */
function ecommerceConfig(methods = ['stripe']) {
  const handler = async () => Response.json({});
  return {
    collections: [
      { slug: 'variants', versions: { drafts: true }, fields: [{ name: 'product', type: 'relationship', relationTo: 'products' }, { name: 'inventory', type: 'number' }] },
      { slug: 'products', fields: [{ name: 'title', type: 'text' }, { name: 'inventory', type: 'number', admin: { condition: (data) => !data?.enableVariants } }] },
    ],
    endpoints: methods.flatMap((method) => ['initiate', 'confirm-order'].map((step) => ({ path: `/payments/${method}/${step}`, method: 'post', handler }))),
  };
}

test('a shop on Payload\'s ecommerce plugin is recognised: figures on variants and products, variants named, no sizes', () => {
  const config = payloadStock({ sidecarUrl: 'http://127.0.0.1:4242', sidecarToken: 'admin-token-0123456789', sidecarApiToken: 'api-token-0123456789' })(ecommerceConfig());
  const [variants, products, movements, reservations] = config.collections;
  assert.deepEqual(names(variants.fields), ['product', 'inventory', 'stock', 'reservedStock', 'availableStock', 'lowStockThreshold', 'isLowStock']);
  assert.ok(!names(products.fields).includes('sizes'));
  assert.equal(products.fields.find((field) => field.name === 'stock').admin.condition, products.fields[1].admin.condition, 'hidden with inventory when the product has variants');
  assert.ok(variants.fields.find((field) => field.name === 'inventory').admin.readOnly);
  assert.ok(names(movements.fields).includes('variant'));
  assert.ok(names(reservations.fields).includes('transaction'));
  assert.deepEqual(config.endpoints.map((endpoint) => endpoint.path), ['/payload-stock/figures', '/payments/stripe/initiate', '/payments/stripe/confirm-order']);
  assert.equal(payloadStock({ ecommerce: false })(ecommerceConfig()).collections[1].fields.some((field) => field.name === 'sizes'), true, 'ecommerce: false keeps the sizes shop');
});

test('a payment method that cannot reserve is refused at start: it would sell stock nobody counted', () => {
  assert.throws(() => payloadStock({})(ecommerceConfig(['stripe', 'manual'])), /payment method\(s\) manual .* would sell stock without reserving it/);
  assert.throws(() => payloadStock({ ecommerce: { paymentMethods: ['stripe'] } })({ ...ecommerceConfig(), endpoints: [] }), /serves no \/api\/payments\/stripe\/initiate/);
});

test('the ecommerce plugin\'s transactions are indexed by their PaymentIntent, which every payment start looks up', () => {
  const config = ecommerceConfig();
  // As the ecommerce plugin nests it: in an unnamed tab.
  const stripeGroup = { name: 'stripe', type: 'group', fields: [{ name: 'customerID', type: 'text' }, { name: 'paymentIntentID', type: 'text' }] };
  config.collections.push({ slug: 'transactions', fields: [{ type: 'tabs', tabs: [{ label: 'Details', fields: [stripeGroup] }] }] });
  const stocked = payloadStock({})(config);
  const stripe = stocked.collections.find((collection) => collection.slug === 'transactions').fields[0].tabs[0].fields[0];
  assert.deepEqual(stripe.fields.map((field) => [field.name, field.index === true]), [['customerID', false], ['paymentIntentID', true]]);
  assert.equal(stripeGroup.fields[1].index, undefined, 'the shop\'s own config object is left as it was');
});
