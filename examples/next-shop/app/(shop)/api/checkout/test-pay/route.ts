// POST /api/checkout/test-pay { paymentIntent }: test mode only. Does what Stripe does when the customer pays:
// sends the sidecar's webhook a payment_intent.succeeded event, signed with STRIPE_WEBHOOK_SECRET.
import { NextResponse } from 'next/server';
import { sidecarUrl, stockClient, testMode, webhookSecret } from '../../../../../lib/stock';
import { paymentSucceededEvent, stripeSignature } from '../../../../../lib/test-events';

export async function POST(request: Request) {
  if (!testMode()) return NextResponse.json({ error: 'not_found', message: 'Only in test mode.' }, { status: 404 });
  const body = (await request.json().catch(() => null)) as { paymentIntent?: string } | null;
  const paymentIntent = body?.paymentIntent;
  if (typeof paymentIntent !== 'string' || !paymentIntent.startsWith('pi_test_')) {
    return NextResponse.json({ error: 'invalid_request', message: 'paymentIntent: a test PaymentIntent id' }, { status: 422 });
  }
  const reservation = await stockClient().get(paymentIntent);
  if (!reservation) return NextResponse.json({ error: 'reservation_not_found', message: 'No checkout has this id.' }, { status: 404 });
  const orderNumber = `NS-${paymentIntent.slice(-6).toUpperCase()}`;
  const event = paymentSucceededEvent(paymentIntent, 100, orderNumber);
  const answer = await fetch(`${sidecarUrl()}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(event, webhookSecret()) },
    body: event,
  });
  const result = await answer.json();
  if (!answer.ok || !String(result.outcome).startsWith('committed')) {
    return NextResponse.json({ error: 'payment_not_applied', message: `The sidecar answered ${answer.status}: ${result.outcome ?? result.message}`, result }, { status: 409 });
  }
  return NextResponse.json({ orderNumber, outcome: result.outcome });
}
