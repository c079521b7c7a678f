// The shop's server-side view of the stock-sidecar: the typed client (SIDECAR_API_TOKEN) for reserving and reading
// stock, and the settings the checkout's test mode needs.
import { createStockClient } from 'payload-stock/client';

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: see examples/next-shop/README.md`);
  return value;
}

export const sidecarUrl = () => required('STOCK_SIDECAR_URL');

/** The client the route handlers and pages use. */
export const stockClient = () => createStockClient({ url: sidecarUrl(), token: required('SIDECAR_API_TOKEN'), timeoutMs: 5_000 });

/** The client with the sidecar's ADMIN_API_TOKEN (SIDECAR_ADMIN_TOKEN here), for the cron route's cleanup. */
export const adminStockClient = () => createStockClient({ url: sidecarUrl(), token: required('SIDECAR_ADMIN_TOKEN'), timeoutMs: 10_000 });

/**
 * Test mode (STRIPE_TEST_MODE=1): Stripe's servers are not called. The checkout makes up a PaymentIntent id, and
 * "paying" sends the sidecar the signed payment_intent.succeeded event Stripe would send, signed with
 * STRIPE_WEBHOOK_SECRET. With real keys and `stripe listen --forward-to <sidecar>/webhooks/stripe`, the same
 * checkout works against Stripe (docs/nextjs-checkout.md shows the handler with Stripe's SDK).
 */
export const testMode = () =>
  process.env.STRIPE_TEST_MODE === '1' &&
  // Any visitor could pay any checkout: never on a production server, unless it is a local demo (server.mjs).
  (process.env.NODE_ENV !== 'production' || process.env.ALLOW_TEST_PAYMENTS_IN_PRODUCTION === '1');
export const webhookSecret = () => required('STRIPE_WEBHOOK_SECRET');
