// The payloadStock plugin's config changes, without Payload (the end-to-end tests in tests/e2e/ run it in a real
// Payload): what it adds, what it keeps of a shop's own fields, and the mistakes it refuses at start.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { payloadStock } from 'payload-stock';

const plugin = payloadStock({ sidecarUrl: 'http://127.0.0.1:4242', sidecarToken: 'admin-token-0123456789' });
const names = (fields) => fields.map((field) => field.name);

test('adds a sizes array to products and the two stock collections', () => {
  const config = plugin({ collections: [{ slug: 'products', fields: [{ name: 'title', type: 'text' }] }] });
  const products = config.collections.find((collection) => collection.slug === 'products');
  assert.deepEqual(names(products.fields), ['title', 'sizes']);
  const sizes = products.fields[1];
  assert.equal(sizes.type, 'array');
  assert.deepEqual(names(sizes.fields), ['size', 'stock', 'reservedStock', 'lowStockThreshold', 'availableStock', 'isLowStock']);
  assert.ok(sizes.fields.slice(1).every((field) => field.admin.readOnly), 'every figure is read-only in the admin panel');
  assert.deepEqual(config.collections.map((collection) => collection.slug), ['products', 'stock-movements', 'stock-reservations']);
  const movements = config.collections[1];
  assert.equal(movements.fields.find((field) => field.name === 'idempotencyKey').unique, true);
  assert.equal(movements.fields.find((field) => field.name === 'product').relationTo, 'products');
});

test('adds only the missing fields to a shop\'s own sizes array, inside a row, keeping its own', () => {
  const shopSizes = { name: 'sizes', type: 'array', fields: [{ name: 'size', type: 'text', required: true }, { name: 'color', type: 'text' }, { name: 'stock', type: 'number', min: 0 }] };
  const stocked = payloadStock({ productsSlug: 'items', movementsSlug: 'moves', reservationsSlug: 'holds' })({ collections: [{ slug: 'items', fields: [{ type: 'row', fields: [shopSizes] }] }] });
  const sizes = stocked.collections[0].fields[0].fields[0];
  assert.deepEqual(names(sizes.fields), ['size', 'color', 'stock', 'reservedStock', 'lowStockThreshold', 'availableStock', 'isLowStock']);
  assert.equal(sizes.fields[2], shopSizes.fields[2], 'the shop\'s own stock field is kept as it is');
  assert.deepEqual(stocked.collections.map((collection) => collection.slug), ['items', 'moves', 'holds']);
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
