// The shop's front page: every product, read from Payload.
import config from '@payload-config';
import { getPayload } from 'payload';

export const dynamic = 'force-dynamic';

export default async function ShopPage() {
  const payload = await getPayload({ config });
  const products = await payload.find({ collection: 'products', depth: 0, sort: 'title', limit: 100 });
  return (
    <>
      <h1>Shoes and socks</h1>
      <div className="products">
        {products.docs.map((product) => (
          <div className="card" key={product.id}>
            <h2><a href={`/products/${product.slug}`}>{String(product.title)}</a></h2>
            <p>€{Number(product.price).toFixed(2)}</p>
          </div>
        ))}
      </div>
    </>
  );
}
