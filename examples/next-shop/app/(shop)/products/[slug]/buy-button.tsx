'use client';
// Buying one pair: start the checkout (the server reserves the pair in the sidecar under the PaymentIntent's id),
// then pay. In test mode paying sends the sidecar the signed payment_intent.succeeded event Stripe would send.
import { useState } from 'react';

type Outcome = { kind: 'ok' | 'refused'; message: string } | null;

export function BuyButton({ product, size, disabled }: { product: string; size: string; disabled: boolean }) {
  const [busy, setBusy] = useState(false);
  const [outcome, setOutcome] = useState<Outcome>(null);

  async function buy() {
    setBusy(true);
    try {
      const started = await fetch('/api/checkout/create-payment-intent', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ items: [{ product, size, quantity: 1 }] }),
      });
      const checkout = await started.json();
      if (!started.ok) {
        setOutcome({ kind: 'refused', message: checkout.message ?? 'The checkout could not start.' });
        return;
      }
      const paid = await fetch('/api/checkout/test-pay', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ paymentIntent: checkout.paymentIntent }),
      });
      const payment = await paid.json();
      setOutcome(paid.ok
        ? { kind: 'ok', message: `Paid: order ${payment.orderNumber} confirmed, size ${size} is yours.` }
        : { kind: 'refused', message: payment.message ?? 'The payment failed.' });
    } catch (error) {
      setOutcome({ kind: 'refused', message: `The shop could not be reached: ${String(error)}` });
    } finally {
      setBusy(false);
    }
  }

  return (
    <div>
      <button type="button" onClick={buy} disabled={disabled || busy} data-testid={`buy-${size}`}>
        {busy ? 'Buying…' : 'Buy'}
      </button>
      {outcome ? <div className={`result ${outcome.kind}`} data-testid="outcome" role="status">{outcome.message}</div> : null}
    </div>
  );
}
