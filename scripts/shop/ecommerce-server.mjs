// A real Payload 3 shop on Payload's official ecommerce plugin (@payloadcms/plugin-ecommerce), configured as its
// ecommerce template configures it: one `users` collection for staff and customers (told apart by role), products
// with variants, guest carts, orders, transactions, and the plugin's Stripe adapter. Stripe is the local fake of
// fake-stripe.mjs: the adapter's `import Stripe from 'stripe'` resolves to ./stripe-to-fake, which sends the
// official client to STRIPE_API_BASE. REST is served by serve-rest.mjs.
//
// With SIDECAR_URL, the payloadStock plugin is added after the ecommerce plugin (its ecommerce mode): that is the
// whole change a shop makes. Environment: PAYLOAD_DB (database file), PORT (0 = any), PAYLOAD_API_KEY (the API key
// of the staff user `sidecar@example.com`), STRIPE_API_BASE (the fake); SIDECAR_URL, SIDECAR_ADMIN_TOKEN and
// SIDECAR_API_TOKEN for payloadStock, RESERVATION_TTL_SECONDS for how long a payment start holds stock. Prints {"listening": <port>} when it serves.
import { buildConfig, getPayload } from 'payload';
import { sqliteAdapter } from '@payloadcms/db-sqlite';
import { ecommercePlugin } from '@payloadcms/plugin-ecommerce';
import { stripeAdapter } from '@payloadcms/plugin-ecommerce/payments/stripe';
import { payloadStock } from 'payload-stock/payload';
import { serveRest } from './serve-rest.mjs';

const { PAYLOAD_DB, PORT = '0', PAYLOAD_API_KEY, STRIPE_API_BASE, SIDECAR_URL, SIDECAR_ADMIN_TOKEN, SIDECAR_API_TOKEN, RESERVATION_TTL_SECONDS } = process.env;
if (!PAYLOAD_DB || !PAYLOAD_API_KEY || !STRIPE_API_BASE) {
  console.error('ecommerce-server: PAYLOAD_DB, PAYLOAD_API_KEY and STRIPE_API_BASE are required');
  process.exit(2);
}
const STRIPE_SECRET_KEY = 'sk_test_ecommerce_shop';

// The template's access rules: staff (role admin) may do everything, customers own their documents, anyone reads
// what is published.
const isAdmin = ({ req }) => req.user?.role === 'admin';
const access = {
  isAdmin,
  adminOnlyFieldAccess: isAdmin,
  adminOrPublishedStatus: ({ req }) => (isAdmin({ req }) ? true : { _status: { equals: 'published' } }),
  isAuthenticated: ({ req }) => Boolean(req.user),
  isCustomer: ({ req }) => req.user?.role === 'customer',
  customerOnlyFieldAccess: ({ req }) => req.user?.role === 'customer',
  isDocumentOwner: ({ req }) => (isAdmin({ req }) ? true : req.user ? { customer: { equals: req.user.id } } : false),
  publicAccess: () => true,
};

const config = buildConfig({
  secret: 'payload-stock-ecommerce-secret-0123456789',
  telemetry: false,
  db: sqliteAdapter({ client: { url: `file:${PAYLOAD_DB}` }, wal: true }),
  admin: { user: 'users' },
  collections: [
    {
      slug: 'users',
      auth: { useAPIKey: true },
      access: { admin: isAdmin, create: () => true },
      fields: [
        { name: 'name', type: 'text' },
        { name: 'role', type: 'select', defaultValue: 'customer', options: ['admin', 'customer'], access: { create: isAdmin, update: isAdmin } },
      ],
    },
  ],
  plugins: [
    ecommercePlugin({
      access,
      customers: { slug: 'users' },
      carts: { allowGuestCarts: true },
      products: { variants: true },
      payments: {
        paymentMethods: [stripeAdapter({ secretKey: STRIPE_SECRET_KEY, publishableKey: 'pk_test_ecommerce_shop', webhookSecret: 'whsec_ecommerce_shop' })],
      },
    }),
    ...(SIDECAR_URL
      ? [
          payloadStock({
            sidecarUrl: SIDECAR_URL,
            sidecarToken: SIDECAR_ADMIN_TOKEN,
            sidecarApiToken: SIDECAR_API_TOKEN,
            ecommerce: {
              stripeSecretKey: STRIPE_SECRET_KEY,
              stripeApiBase: STRIPE_API_BASE,
              ...(RESERVATION_TTL_SECONDS ? { reservationTtlSeconds: Number(RESERVATION_TTL_SECONDS) } : {}),
            },
          }),
        ]
      : []),
  ],
});

const payload = await getPayload({ config });
const existing = await payload.find({ collection: 'users', where: { email: { equals: 'sidecar@example.com' } }, limit: 1 });
if (existing.docs.length === 0) {
  await payload.create({
    collection: 'users',
    data: { email: 'sidecar@example.com', password: 'sidecar-password-0123', role: 'admin', enableAPIKey: true, apiKey: PAYLOAD_API_KEY },
  });
}

serveRest({ config, payload, port: PORT, name: 'ecommerce-server' });
