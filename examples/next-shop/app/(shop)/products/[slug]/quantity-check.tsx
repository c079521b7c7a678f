'use client';
// How many pairs can I have? Checked in the browser as the customer types, with payload-stock's rules: the same
// WebAssembly module the sidecar's rules are compiled from, bundled into the page (no request to the server, no
// bundler configuration). The figures are the ones the page was rendered with; the checkout's reservation in the
// sidecar stays the decision.
import { useEffect, useState } from 'react';
import { availableStock, validateCart, type SizeFigures } from 'payload-stock';

type Size = SizeFigures & { size: string };

export function QuantityCheck({ product, sizes }: { product: string; sizes: Size[] }) {
  const [size, setSize] = useState(sizes[0]?.size ?? '');
  const [quantity, setQuantity] = useState('1');
  // Set once React has hydrated the form: until then the page shows the server's rendering of it.
  const [hydrated, setHydrated] = useState(false);
  useEffect(() => setHydrated(true), []);
  const chosen = sizes.find((row) => row.size === size);
  if (!chosen) return null;
  const available = availableStock(chosen.stock, chosen.reservedStock);
  const cart = validateCart([{ id: product, sizes }], [{ product, size, quantity: Number(quantity) }]);
  const verdict = cart.ok
    ? { kind: 'ok', text: `${quantity} × size ${size}: in stock` }
    : cart.shortages[0]
      ? { kind: 'refused', text: available === 0 ? `Size ${size} is sold out` : `Only ${available} left in size ${size}` }
      : cart.errors[0]?.code === 'invalid_quantity'
        ? { kind: 'refused', text: 'Choose a whole number of pairs, 1 or more' }
        : { kind: 'refused', text: cart.errors[0]?.message ?? 'This quantity cannot be ordered.' };
  return (
    <form className="quantity-check" onSubmit={(event) => event.preventDefault()} data-testid="quantity-check" data-hydrated={hydrated}>
      <h2>How many pairs?</h2>
      <label>
        Size{' '}
        <select value={size} onChange={(event) => setSize(event.target.value)} data-testid="check-size">
          {sizes.map((row) => <option key={row.size} value={row.size}>{row.size}</option>)}
        </select>
      </label>{' '}
      <label>
        Pairs{' '}
        <input type="number" min={1} value={quantity} onChange={(event) => setQuantity(event.target.value)} data-testid="check-quantity" />
      </label>
      <span data-testid="check-available"> {available} available</span>
      <p className={`result ${verdict.kind}`} data-testid="check-verdict">{verdict.text}</p>
    </form>
  );
}
