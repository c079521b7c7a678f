// POST /api/cart/check { items: [{ product, size, quantity }] }: whether a cart can be ordered now, checked on the
// Edge runtime against the sidecar's figures. payload-stock's edge build (its .wasm imported as a WebAssembly
// module, which the Edge runtime requires) runs the rules; payload-stock/client reads the figures. Nothing is
// reserved: the checkout does that. Bounded work per request: 16 KB, 20 lines, one read of the sidecar per product.
import { validateCart, type CartItem, type ProductStock } from 'payload-stock';
import { StockApiError } from 'payload-stock/client';
import { stockClient } from '../../../../../lib/stock';

export const runtime = 'edge';

const MAX_LINES = 20;
const MAX_BODY_BYTES = 16 * 1024;

function refused(status: number, error: string, message: string) {
  return Response.json({ error, message }, { status });
}

export async function POST(request: Request) {
  // A cart of 20 lines is far below this; anything bigger is refused before it is read whole.
  if (Number(request.headers.get('content-length') ?? 0) > MAX_BODY_BYTES) {
    return refused(413, 'body_too_large', `A cart check is at most ${MAX_BODY_BYTES} bytes.`);
  }
  const text = await request.text();
  if (text.length > MAX_BODY_BYTES) return refused(413, 'body_too_large', `A cart check is at most ${MAX_BODY_BYTES} bytes.`);
  let body: { items?: unknown } | null = null;
  try {
    body = JSON.parse(text) as { items?: unknown } | null;
  } catch {
    // answered below, as any other malformed cart
  }
  const items = body?.items;
  if (!Array.isArray(items) || items.length === 0 || items.length > MAX_LINES) {
    return refused(422, 'invalid_request', `items: 1 to ${MAX_LINES} lines of { product, size, quantity }`);
  }
  const products = [...new Set(items.map((item) => String((item as CartItem | null)?.product ?? '')))].filter(Boolean);
  const client = stockClient();
  let figures: ProductStock[];
  try {
    const answers = await Promise.all(
      products.map((product) =>
        client.stock(product).then(
          (answer): ProductStock => ({ id: answer.product, sizes: answer.sizes }),
          (error: unknown): null => {
            // A product the ledger does not know: validateCart reports its lines as unknown_product.
            if (error instanceof StockApiError && error.code === 'unknown_product') return null;
            throw error;
          },
        ),
      ),
    );
    figures = answers.filter((answer): answer is ProductStock => answer !== null);
  } catch (error) {
    const code = error instanceof StockApiError ? error.code : 'internal_error';
    return refused(503, code, 'The stock service does not answer; try again in a moment.');
  }
  let result;
  try {
    result = validateCart(figures, items as CartItem[]);
  } catch (error) {
    // Lines that are not { product, size, quantity } objects: a StockError saying which.
    const { code, message } = error as { code?: string; message?: string };
    return refused(422, code ?? 'invalid_request', message ?? 'The cart is not a list of { product, size, quantity }.');
  }
  // `runtime` says where this ran: Next.js defines EdgeRuntime in the Edge runtime only.
  return Response.json({ ...result, runtime: typeof (globalThis as { EdgeRuntime?: string }).EdgeRuntime === 'string' ? 'edge' : 'node' });
}
