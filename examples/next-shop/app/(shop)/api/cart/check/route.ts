// POST /api/cart/check { items: [{ product, size, quantity }] }: whether a cart can be ordered now, checked on the
// Edge runtime against the sidecar's figures. payload-stock's rules run here with their .wasm imported as a
// WebAssembly module, as the Edge runtime requires; payload-stock/client reads the figures. Nothing is reserved:
// the checkout does that. Anyone may call it, so its work is bounded: 30 checks a minute per client
// (lib/throttle.ts), a body of 16 KB at most, read as a stream and cut off past that, 20 lines and 10 products, each
// id checked before it reaches the sidecar, one read of the sidecar per product.
import { validateCart, type CartItem, type ProductStock } from 'payload-stock';
import { StockApiError } from 'payload-stock/client';
import { stockClient } from '../../../../../lib/stock';
import { cartCheckLimitPerMinute, cartCheckThrottle, clientAddress } from '../../../../../lib/throttle';

export const runtime = 'edge';

const MAX_LINES = 20;
const MAX_PRODUCTS = 10;
const MAX_BODY_BYTES = 16 * 1024;
/** A product id as Payload makes them (numbers, ObjectIds, UUIDs): nothing a URL path would reinterpret. */
const PRODUCT_ID = /^[A-Za-z0-9_-]{1,64}$/;

function refused(status: number, error: string, message: string, headers: Record<string, string> = {}) {
  return Response.json({ error, message }, { status, headers });
}

/** The body as text, or null past MAX_BODY_BYTES: counted as it arrives, so a chunked upload cannot grow it. */
async function readBounded(request: Request): Promise<string | null> {
  if (Number(request.headers.get('content-length') ?? 0) > MAX_BODY_BYTES) return null;
  if (!request.body) return '';
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_BODY_BYTES) {
      // Not awaited: in Next.js's local Edge sandbox, awaiting it never returned (seen with a 20 KB chunked upload).
      reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

export async function POST(request: Request) {
  const wait = cartCheckThrottle(clientAddress(request));
  if (wait > 0) {
    return refused(429, 'too_many_checks', `At most ${cartCheckLimitPerMinute()} cart checks a minute: try again in ${wait} s.`, { 'retry-after': String(wait) });
  }
  const text = await readBounded(request);
  if (text === null) return refused(413, 'body_too_large', `A cart check is at most ${MAX_BODY_BYTES} bytes.`);
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
  // Lines that are not objects are left to validateCart, which names them.
  const named = items.flatMap((item) => (item !== null && typeof item === 'object' && 'product' in item ? [String(item.product)] : []));
  const products = [...new Set(named)];
  if (products.some((product) => !PRODUCT_ID.test(product))) {
    return refused(422, 'invalid_request', 'product: an id of 1 to 64 letters, digits, "-" or "_"');
  }
  if (products.length > MAX_PRODUCTS) return refused(422, 'invalid_request', `At most ${MAX_PRODUCTS} products a check.`);
  let figures: ProductStock[];
  try {
    const client = stockClient();
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
    // The sidecar's own codes (a wrong token among them) are for the shop's logs, not for whoever called.
    console.error('cart check: the stock sidecar could not be read', error);
    return refused(503, 'stock_unavailable', 'The stock service does not answer; try again in a moment.');
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
