// Test mode's stand-in for Stripe: the events Stripe sends when a PaymentIntent succeeds, signed the way Stripe
// signs them (Stripe-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">), so the sidecar verifies and
// applies them exactly as it would Stripe's own.
import { createHmac, randomBytes } from 'node:crypto';
import { CHECKOUT_METADATA } from 'payload-stock/client';

/** A PaymentIntent id in Stripe's shape, for a checkout that never reaches Stripe. */
export function testPaymentIntentId(): string {
  return `pi_test_${randomBytes(12).toString('hex')}`;
}

/** The body of a `payment_intent.succeeded` event for `paymentIntent` (amount in cents). */
export function paymentSucceededEvent(paymentIntent: string, amount: number, orderNumber: string): string {
  const created = Math.floor(Date.now() / 1000);
  const intent = {
    id: paymentIntent,
    object: 'payment_intent',
    amount,
    amount_capturable: 0,
    amount_details: { tip: {} },
    amount_received: amount,
    application: null,
    application_fee_amount: null,
    automatic_payment_methods: { allow_redirects: 'always', enabled: true },
    canceled_at: null,
    cancellation_reason: null,
    capture_method: 'automatic_async',
    client_secret: `${paymentIntent}_secret_test`,
    confirmation_method: 'automatic',
    created,
    currency: 'eur',
    customer: null,
    description: `next-shop order ${orderNumber}`,
    last_payment_error: null,
    latest_charge: `ch_test_${randomBytes(8).toString('hex')}`,
    livemode: false,
    metadata: { orderNumber, ...CHECKOUT_METADATA },
    next_action: null,
    on_behalf_of: null,
    payment_method: `pm_test_${randomBytes(8).toString('hex')}`,
    payment_method_configuration_details: null,
    payment_method_options: { card: { installments: null, mandate_options: null, network: null, request_three_d_secure: 'automatic' } },
    payment_method_types: ['card'],
    processing: null,
    receipt_email: null,
    review: null,
    setup_future_usage: null,
    shipping: null,
    source: null,
    statement_descriptor: null,
    statement_descriptor_suffix: null,
    status: 'succeeded',
    transfer_data: null,
    transfer_group: null,
  };
  return JSON.stringify({
    id: `evt_test_${randomBytes(12).toString('hex')}`,
    object: 'event',
    api_version: '2025-03-31.basil',
    created,
    data: { object: intent },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: 'payment_intent.succeeded',
  });
}

/** The Stripe-Signature header of `body` under `secret`, at the current second. */
export function stripeSignature(body: string, secret: string): string {
  const timestamp = Math.floor(Date.now() / 1000);
  const signature = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${signature}`;
}
