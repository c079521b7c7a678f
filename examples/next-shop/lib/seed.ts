// The demo's data, created once when SEED_DEMO=1 and the database has no product yet: the admin who logs into the
// panel, the user whose API key the sidecar projects with, and three products whose stock is entered as restock
// movements (which the payloadStock plugin records in the sidecar's ledger first).
import type { Payload } from 'payload';

export const DEMO_ADMIN = { email: 'admin@example.com', password: 'demo-password-0123' };

const PRODUCTS = [
  { title: 'Trail runner', slug: 'trail-runner', price: 129, stock: { '40': 3, '41': 6, '42': 1, '43': 4 } },
  { title: 'City sneaker', slug: 'city-sneaker', price: 89, stock: { '39': 2, '40': 5, '41': 5 } },
  { title: 'Wool sock', slug: 'wool-sock', price: 15, stock: { S: 12, M: 20, L: 9 } },
];

export async function seedDemo(payload: Payload): Promise<void> {
  const existing = await payload.count({ collection: 'products' });
  if (existing.totalDocs > 0) return;
  const apiKey = process.env.PAYLOAD_API_KEY;
  if (!apiKey) throw new Error('SEED_DEMO=1 needs PAYLOAD_API_KEY: the sidecar projects into Payload with that key');
  await payload.create({ collection: 'users', data: DEMO_ADMIN });
  await payload.create({
    collection: 'users',
    data: { email: 'sidecar@example.com', password: `sidecar-${apiKey}`, enableAPIKey: true, apiKey },
  });
  for (const product of PRODUCTS) {
    const doc = await payload.create({
      collection: 'products',
      data: { title: product.title, slug: product.slug, price: product.price, sizes: Object.keys(product.stock).map((size) => ({ size })) },
    });
    for (const [size, quantity] of Object.entries(product.stock)) {
      await payload.create({
        collection: 'stock-movements',
        data: { product: doc.id, size, type: 'restock', quantity, reason: 'Opening stock', lowStockThreshold: 1 },
      });
    }
  }
  payload.logger.info(`next-shop: seeded ${PRODUCTS.length} products; log in as ${DEMO_ADMIN.email} / ${DEMO_ADMIN.password}`);
}
