// A product page: its sizes with the units available right now. The figures come from the sidecar's ledger (the
// truth, with reservations of checkouts under way), and availability and the low-stock flag are computed with
// payload-stock's WebAssembly rules, the very ones the sidecar decides with; QuantityCheck runs them again in the
// browser as the customer types.
import config from '@payload-config';
import { notFound } from 'next/navigation';
import { getPayload } from 'payload';
import { deriveSizes } from 'payload-stock';
import { stockClient } from '../../../../lib/stock';
import { BuyButton } from './buy-button';
import { QuantityCheck } from './quantity-check';

export const dynamic = 'force-dynamic';

export default async function ProductPage({ params }: { params: Promise<{ slug: string }> }) {
  const { slug } = await params;
  const payload = await getPayload({ config });
  const found = await payload.find({ collection: 'products', depth: 0, limit: 1, where: { slug: { equals: slug } } });
  const product = found.docs[0];
  if (!product) notFound();
  const ledger = await stockClient().stock(product.id).catch(() => null);
  const sizes = deriveSizes(
    (ledger?.sizes ?? []).map(({ size, stock, reservedStock, lowStockThreshold }) => ({ size, stock, reservedStock, lowStockThreshold })),
  );
  return (
    <>
      <h1>{String(product.title)}</h1>
      <p>€{Number(product.price).toFixed(2)}</p>
      {ledger === null ? <p className="out">The stock service does not answer; try again in a moment.</p> : null}
      <table className="sizes">
        <thead>
          <tr><th>Size</th><th>Available</th><th></th></tr>
        </thead>
        <tbody>
          {sizes.map((size) => (
            <tr key={size.size} data-size={size.size}>
              <td>{size.size}</td>
              <td className={size.availableStock === 0 ? 'out' : size.isLowStock ? 'low' : ''} data-testid={`available-${size.size}`}>
                {size.availableStock === 0 ? 'Sold out' : size.isLowStock ? `Only ${size.availableStock} left` : `${size.availableStock} in stock`}
              </td>
              <td><BuyButton product={String(product.id)} size={String(size.size)} disabled={size.availableStock === 0} /></td>
            </tr>
          ))}
        </tbody>
      </table>
      {sizes.length > 0 ? (
        <QuantityCheck
          product={String(product.id)}
          sizes={sizes.map(({ size, stock, reservedStock, lowStockThreshold }) => ({ size: String(size), stock, reservedStock, lowStockThreshold }))}
        />
      ) : null}
    </>
  );
}
