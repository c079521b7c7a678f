// A real Payload 3 for the end-to-end tests: SQLite in a file, a users collection with API keys (staff, and
// customers by role), a customers auth collection, a products
// collection with sizes (and a field of the shop's own, `color`, that the plugin must keep), and the payloadStock
// plugin. Payload's REST API is served by node:http through `handleEndpoints` (serve-rest.mjs).
//
// Environment: PAYLOAD_DB (database file), PORT (0 = any), SIDECAR_URL, SIDECAR_ADMIN_TOKEN, PAYLOAD_API_KEY
// (the sidecar's user gets this key, so a restarted server keeps it). Prints one JSON line when it serves:
// {"listening": <port>}.
import { buildConfig, getPayload } from 'payload';
import { sqliteAdapter } from '@payloadcms/db-sqlite';
import { payloadStock } from 'payload-stock/payload';
import { serveRest } from './serve-rest.mjs';

const { PAYLOAD_DB, PORT = '0', SIDECAR_URL, SIDECAR_ADMIN_TOKEN, PAYLOAD_API_KEY } = process.env;
if (!PAYLOAD_DB || !PAYLOAD_API_KEY) {
  console.error('payload-server: PAYLOAD_DB and PAYLOAD_API_KEY are required');
  process.exit(2);
}

const config = buildConfig({
  secret: 'payload-stock-e2e-secret-0123456789',
  telemetry: false,
  // WAL, as a production shop would run it: Payload's writes are several times faster than in rollback mode.
  db: sqliteAdapter({ client: { url: `file:${PAYLOAD_DB}` }, wal: true }),
  collections: [
    // Customers and staff in one collection, told apart by role as Payload's ecommerce template does: only staff
    // may open the admin panel. Shoppers of a separate auth collection (`customers`) exist too.
    {
      slug: 'users',
      auth: { useAPIKey: true },
      access: { admin: ({ req }) => req.user?.role !== 'customer' },
      fields: [{ name: 'role', type: 'select', defaultValue: 'admin', options: ['admin', 'customer'] }],
    },
    { slug: 'customers', auth: true, access: { create: () => true }, fields: [] },
    {
      slug: 'products',
      admin: { useAsTitle: 'title' },
      fields: [
        { name: 'title', type: 'text', required: true },
        { name: 'sizes', type: 'array', fields: [{ name: 'size', type: 'text', required: true }, { name: 'color', type: 'text' }] },
      ],
    },
  ],
  plugins: [payloadStock({ sidecarUrl: SIDECAR_URL, sidecarToken: SIDECAR_ADMIN_TOKEN })],
});

const payload = await getPayload({ config });
const existing = await payload.find({ collection: 'users', where: { email: { equals: 'sidecar@example.com' } }, limit: 1 });
if (existing.docs.length === 0) {
  await payload.create({
    collection: 'users',
    data: { email: 'sidecar@example.com', password: 'sidecar-password-0123', enableAPIKey: true, apiKey: PAYLOAD_API_KEY },
  });
}

serveRest({ config, payload, port: PORT, name: 'payload-server' });
