// A shop on Payload's ecommerce plugin to run checkouts against (scripts/shop/ecommerce-server.mjs), with Stripe
// played by the local fake of fake-stripe.mjs: products with variants and without, guest carts, and a checkout as
// the ecommerce template's browser makes it (cart, payment start, the customer paying at Stripe, confirm-order).
// Used by the end-to-end tests (tests/e2e) and the benchmarks (bench/).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSidecar } from '../sidecar-process.mjs';
import { startFakeStripe } from './fake-stripe.mjs';
import { freePort, payloadApi, sendStripeEvent, sidecarBinary, startPayload, waitFor, WEBHOOK_SECRET } from './harness.mjs';

/** The Stripe secret key the shop's adapter (and the sidecar) use against the fake. */
export const STRIPE_SECRET_KEY = 'sk_test_ecommerce_shop';

/**
 * Starts the fake Stripe and the shop's Payload on a fresh database; with `withStock`, a sidecar too
 * (PAYLOAD_SHOP=ecommerce) and the payloadStock plugin in Payload's config. `sidecarEnv` adds sidecar settings;
 * `reservationTtlSeconds` is how long a payment start holds its units.
 */
export async function startEcommerceShop({ withStock = false, sidecarEnv = {}, sidecarLogs = 'ignore', reservationTtlSeconds } = {}) {
  const stripe = await startFakeStripe();
  const directory = mkdtempSync(join(tmpdir(), 'payload-stock-ecommerce-'));
  const apiKey = randomBytes(16).toString('hex');
  const payloadPort = await freePort();
  const sidecar = withStock
    ? await startSidecar(
        sidecarBinary(),
        {
          PAYLOAD_URL: `http://127.0.0.1:${payloadPort}`,
          PAYLOAD_API_KEY: apiKey,
          PAYLOAD_SHOP: 'ecommerce',
          PROJECTION_RETRY_MAX_SECONDS: '1',
          PROJECTION_PAYLOAD_SAVE_GRACE_SECONDS: '1',
          STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
          STRIPE_SECRET_KEY,
          STRIPE_API_BASE: `${stripe.url}/`,
          CLEANUP_INTERVAL_SECONDS: '0',
          RUST_LOG: process.env.RUST_LOG ?? 'warn',
          ...sidecarEnv,
        },
        { stdio: sidecarLogs, port: await freePort() },
      )
    : null;
  const payload = await startPayload({
    database: join(directory, 'shop.db'),
    port: payloadPort,
    apiKey,
    script: 'ecommerce-server.mjs',
    env: {
      STRIPE_API_BASE: stripe.url,
      ...(reservationTtlSeconds ? { RESERVATION_TTL_SECONDS: String(reservationTtlSeconds) } : {}),
      ...(sidecar ? { SIDECAR_URL: sidecar.base, SIDECAR_ADMIN_TOKEN: sidecar.adminToken, SIDECAR_API_TOKEN: sidecar.apiToken } : {}),
    },
  });
  const api = payloadApi(payload.url, apiKey, sidecar ? { proofToken: sidecar.adminToken } : {});

  /** A guest's REST call (no credentials), answered as { status, body, text }. */
  const guest = (path, body) => api.call('POST', path, { body, auth: false });

  async function created(path, data) {
    const { status, body } = await api.post(path, data);
    if (status !== 201) throw new Error(`POST ${path}: ${status} ${JSON.stringify(body)}`);
    return body.doc;
  }

  let sizeType;
  /**
   * A published product at `priceInUSD` cents: with `variants` ({ label: inventory }, one variant per size label), or
   * with its own `inventory` when there are none. Returns { product, variants: { label: id } }.
   */
  async function seedProduct({ title, priceInUSD = 4990, variants, inventory = 0 }) {
    if (!variants) {
      const product = await created('/products', { title, priceInUSDEnabled: true, priceInUSD, inventory, _status: 'published' });
      return { product: product.id, variants: {} };
    }
    sizeType ??= await created('/variantTypes', { label: 'Size', name: 'size' });
    const product = await created('/products', {
      title,
      enableVariants: true,
      variantTypes: [sizeType.id],
      priceInUSDEnabled: true,
      priceInUSD,
      _status: 'published',
    });
    const ids = {};
    for (const [label, units] of Object.entries(variants)) {
      const option = await created('/variantOptions', { label, value: `${product.id}-${label}`, variantType: sizeType.id });
      const variant = await created('/variants', {
        title: `${title} ${label}`,
        product: product.id,
        options: [option.id],
        inventory: units,
        priceInUSDEnabled: true,
        priceInUSD,
        _status: 'published',
      });
      ids[label] = variant.id;
    }
    return { product: product.id, variants: ids };
  }

  /** The `inventory` Payload shows for a variant (or, with `product`, for a product without variants). */
  async function inventory({ variant, product }) {
    const path = variant !== undefined ? `/variants/${variant}?depth=0` : `/products/${product}?depth=0`;
    const { status, body } = await api.get(path);
    if (status !== 200) throw new Error(`GET ${path}: ${status}`);
    return body.inventory;
  }

  /**
   * A guest's checkout, step by step as the template's browser makes it: a cart of `items` ([{ product, variant?,
   * quantity }]), the payment start, paying at Stripe (unless `pay: false`) and confirm-order (unless `confirm:
   * false`). Resolves to { stage, status, body, cart, secret, email, paymentIntentID, orderID }: `stage` is the step
   * that refused (`cart`, `initiate`, `confirm`), where it was left (`initiated`, `paid`), or `done`.
   */
  async function checkout({ items, email = `${randomBytes(6).toString('hex')}@example.com`, pay = true, confirm = true }) {
    const cart = await guest('/carts', { items, currency: 'USD', customerEmail: email });
    if (cart.status !== 201) return { stage: 'cart', status: cart.status, body: cart.body };
    const { id: cartID, secret } = cart.body.doc;
    const started = await guest('/payments/stripe/initiate', { cartID, secret, customerEmail: email });
    if (started.status !== 200) return { stage: 'initiate', status: started.status, body: started.body, cart: cartID };
    const { paymentIntentID } = started.body;
    const checkoutState = { cart: cartID, secret, email, paymentIntentID };
    if (!pay) return { stage: 'initiated', status: 200, body: started.body, ...checkoutState };
    stripe.pay(paymentIntentID);
    if (!confirm) return { stage: 'paid', status: 200, body: started.body, ...checkoutState };
    return confirmOrder(checkoutState);
  }

  /** The browser back from paying: confirm-order for a checkout `checkout()` left at `paid`. */
  async function confirmOrder({ cart, secret, email, paymentIntentID }) {
    const confirmed = await guest('/payments/stripe/confirm-order', { cartID: cart, secret, customerEmail: email, paymentIntentID });
    const state = { cart, secret, email, paymentIntentID };
    if (confirmed.status !== 200) return { stage: 'confirm', status: confirmed.status, body: confirmed.body, ...state };
    return { stage: 'done', status: 200, body: confirmed.body, ...state, orderID: confirmed.body.orderID };
  }

  /** The sidecar's API: `token` 'admin' (default for POST) or 'api'. */
  async function sidecarCall(method, path, body, token = method === 'GET' ? 'api' : 'admin') {
    const response = await fetch(`${sidecar.base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token === 'admin' ? sidecar.adminToken : sidecar.apiToken}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  }

  return {
    /** The folder holding Payload's database (shop.db). */
    directory,
    payload,
    api,
    stripe,
    sidecar,
    seedProduct,
    inventory,
    checkout,
    confirmOrder,
    sidecarCall,
    /** Records a restock of a variant (`variant: null`: a product without variants) in the ledger. */
    async restock(product, variant, quantity) {
      const answer = await sidecarCall('POST', '/v1/movements', { product, variant, type: 'restock', quantity, reason: 'test stock' });
      if (answer.status !== 201) throw new Error(`restock: ${answer.status} ${JSON.stringify(answer.body)}`);
      return answer.body;
    },
    /** Sends Stripe's event of `type` about a PaymentIntent, signed, to the sidecar's webhook. */
    async webhook(type, paymentIntentID) {
      return sendStripeEvent(sidecar.base, stripe.paymentIntentEvent(type, paymentIntentID));
    },
    /** Waits until the sidecar has nothing left to deliver to Payload. */
    async projected(timeoutMs = 30_000) {
      return waitFor('Payload to catch up with the ledger', async () => {
        const { body } = await sidecarCall('GET', '/readyz');
        return body.payloadProjection.backlog === 0;
      }, { timeoutMs });
    },
    /** How many orders Payload holds. */
    async orderCount() {
      const { body } = await api.get('/orders?limit=0&depth=0');
      return body.totalDocs;
    },
    async stop() {
      await Promise.allSettled([payload.stop(), sidecar?.stop()]);
      await stripe.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
