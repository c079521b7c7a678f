// POST /api/checkout/create-payment-intent { items: [{ product, size, quantity }] }: starts a checkout. The
// PaymentIntent comes first (not confirmed: nothing is charged), then the cart is reserved in the sidecar under its
// id, all items or none; a refused reservation cancels the PaymentIntent. Stripe's webhook, pointed at the sidecar,
// turns the reservation into a sale when the payment succeeds. In test mode the PaymentIntent id is made up
// (lib/stock.ts). Each client may start CHECKOUT_LIMIT_PER_MINUTE (10) checkouts a minute (lib/throttle.ts): each
// holds stock for 30 minutes.
import config from '@payload-config';
import { NextResponse } from 'next/server';
import { getPayload } from 'payload';
import { CHECKOUT_METADATA, StockApiError } from 'payload-stock/client';
import { stockClient, testMode } from '../../../../../lib/stock';
import { checkoutLimitPerMinute, checkoutThrottle, clientAddress } from '../../../../../lib/throttle';
import { testPaymentIntentId } from '../../../../../lib/test-events';

type Item = { product: string; size: string; quantity: number };

function refused(status: number, error: string, message: string, extra: Record<string, unknown> = {}) {
  return NextResponse.json({ error, message, ...extra }, { status });
}

export async function POST(request: Request) {
  const wait = checkoutThrottle(clientAddress(request));
  if (wait > 0) {
    const response = refused(429, 'too_many_checkouts', `At most ${checkoutLimitPerMinute()} checkouts a minute: try again in ${wait} s.`);
    response.headers.set('retry-after', String(wait));
    return response;
  }
  const body = (await request.json().catch(() => null)) as { items?: Item[] } | null;
  const items = body?.items;
  if (!Array.isArray(items) || items.length === 0 || items.length > 20) {
    return refused(422, 'invalid_request', 'items: 1 to 20 lines of { product, size, quantity }');
  }
  // Prices come from Payload, never from the browser.
  const payload = await getPayload({ config });
  const products = await payload.find({ collection: 'products', depth: 0, limit: items.length, where: { id: { in: items.map((item) => item.product) } } });
  const price = new Map(products.docs.map((doc) => [String(doc.id), Number(doc.price)]));
  if (items.some((item) => !price.has(String(item.product)))) return refused(422, 'unknown_product', 'A product of the cart does not exist.');
  const amount = items.reduce((sum, item) => sum + Math.round((price.get(String(item.product)) ?? 0) * 100) * item.quantity, 0);

  let paymentIntent: string;
  let clientSecret: string | null = null;
  let cancel = async () => {};
  if (testMode()) {
    paymentIntent = testPaymentIntentId();
  } else {
    const secretKey = process.env.STRIPE_SECRET_KEY;
    if (!secretKey) return refused(503, 'stripe_not_configured', 'Set STRIPE_SECRET_KEY, or STRIPE_TEST_MODE=1 for the demo.');
    const { default: Stripe } = await import('stripe');
    const stripe = new Stripe(secretKey);
    const orderNumber = `NS-${Date.now()}`;
    const intent = await stripe.paymentIntents.create({
      amount,
      currency: 'eur',
      automatic_payment_methods: { enabled: true },
      metadata: { orderNumber, ...CHECKOUT_METADATA },
    });
    paymentIntent = intent.id;
    clientSecret = intent.client_secret;
    cancel = async () => { await stripe.paymentIntents.cancel(intent.id).catch(() => undefined); };
  }

  try {
    const reservation = await stockClient().reserve({ reference: paymentIntent, items });
    return NextResponse.json({ paymentIntent, clientSecret, amount, expiresAt: reservation.expiresAt }, { status: 201 });
  } catch (error) {
    await cancel();
    if (!(error instanceof StockApiError)) throw error;
    if (error.code === 'insufficient_stock') {
      const sizes = error.shortages.map((shortage) => `size ${shortage.size}`).join(', ');
      return refused(409, 'insufficient_stock', `Sorry, ${sizes} just sold out: nothing was charged.`, { shortages: error.shortages });
    }
    const status = error.status >= 400 && error.status < 500 ? error.status : 503;
    return refused(status, error.code, error.message);
  }
}
