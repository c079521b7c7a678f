// The shop's Payload: users (the admin, and the sidecar's user with an API key), products with sizes, and the
// payloadStock plugin, which adds the stock figures to the sizes and the stock-movements and stock-reservations
// collections, and sends every movement entered here to the stock-sidecar first.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sqliteAdapter } from '@payloadcms/db-sqlite';
import { buildConfig } from 'payload';
import { payloadStock } from 'payload-stock/payload';
import { seedDemo } from './lib/seed';
import { migrations } from './migrations';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;

/** PAYLOAD_SECRET signs the admins' logins: required in production (server.mjs refuses to start without it too);
 * a fixed one only for `next build` and development. */
function payloadSecret(): string {
  if (env.PAYLOAD_SECRET) return env.PAYLOAD_SECRET;
  if (env.NODE_ENV === 'production' && env.NEXT_PHASE !== 'phase-production-build') {
    throw new Error('PAYLOAD_SECRET is not set: a production shop needs a long random secret of its own');
  }
  return 'next-shop-development-only-secret-0123456789';
}

export default buildConfig({
  secret: payloadSecret(),
  telemetry: false,
  // The default avatar: Gravatar's would be fetched from the internet.
  admin: { user: 'users', avatar: 'default', meta: { titleSuffix: ' · next-shop' } },
  // A production server does not push the schema: the migrations (`npx payload migrate:create` after a change to
  // the collections) run at start.
  db: sqliteAdapter({ client: { url: env.DATABASE_URI ?? `file:${path.join(here, 'shop.db')}` }, wal: true, prodMigrations: migrations }),
  collections: [
    { slug: 'users', auth: { useAPIKey: true }, admin: { useAsTitle: 'email' }, fields: [] },
    {
      slug: 'products',
      admin: { useAsTitle: 'title', defaultColumns: ['title', 'price', 'slug'] },
      fields: [
        { name: 'title', type: 'text', required: true },
        { name: 'slug', type: 'text', required: true, unique: true, index: true },
        { name: 'price', type: 'number', required: true, min: 0, admin: { description: 'In euros' } },
        { name: 'sizes', type: 'array', fields: [{ name: 'size', type: 'text', required: true }] },
      ],
    },
  ],
  plugins: [payloadStock({ sidecarUrl: env.STOCK_SIDECAR_URL, sidecarToken: env.SIDECAR_ADMIN_TOKEN })],
  onInit: async (payload) => {
    if (env.SEED_DEMO === '1') await seedDemo(payload);
  },
  typescript: { autoGenerate: false, outputFile: path.join(here, 'payload-types.ts') },
});
