// Compiled by types.test.mjs with `tsc --noEmit`: the package's types accept correct calls and refuse wrong ones
// (each @ts-expect-error line must be an error, or tsc fails).
import {
  applyMovement,
  availableStock,
  deriveSizes,
  isLowStock,
  isReservationExpired,
  planReturn,
  reservationExpiresAt,
  validateCart,
  type ReturnPlan,
  type AppliedMovement,
  type CartValidation,
  type StockError,
  type StockErrorCode,
} from 'payload-stock';
import {
  createStockClient,
  StockApiError,
  type Reservation,
  type RecordedMovement,
  type MonitoringReport,
  type CleanupResult,
  type Conflict,
  type RecordedReturn,
  type ReturnsAnswer,
  CHECKOUT_METADATA,
} from 'payload-stock/client';

const available: number = availableStock(10, 3);
const low: boolean = isLowStock(10, 3, 2);

interface ShopSize {
  id: string;
  size: string;
  stock: number;
  reservedStock: number;
  lowStockThreshold: number;
  sku: string;
}
const rows: ShopSize[] = [{ id: 'a', size: '42', stock: 5, reservedStock: 1, lowStockThreshold: 2, sku: 'RUN-42' }];
const derived = deriveSizes(rows);
const sku: string = derived[0].sku; // the shop's own fields keep their types
const derivedAvailable: number = derived[0].availableStock;
const derivedLow: boolean = derived[0].isLowStock;

const cart: CartValidation = validateCart([{ id: 1, sizes: rows }], [{ product: 1, size: '42', quantity: 2 }]);
const firstShortage: number | undefined = cart.shortages[0]?.requested;
const firstCode: StockErrorCode | undefined = cart.errors[0]?.code;

const expiresAt: string = reservationExpiresAt('2026-11-24T10:00:00Z', 1800);
const expiresFromDate: string = reservationExpiresAt(new Date());
const expired: boolean = isReservationExpired(expiresAt) || isReservationExpired(expiresAt, new Date());

const movement: AppliedMovement = applyMovement(rows[0], { type: 'restock', quantity: 4, reason: 'delivery' });
const after: number = movement.stockAfter;

try {
  availableStock(1, 2);
} catch (error) {
  const code: StockErrorCode = (error as StockError).code;
  void code;
}

// @ts-expect-error quantities are numbers
availableStock('10', 3);
// @ts-expect-error isLowStock needs the threshold
isLowStock(10, 3);
// @ts-expect-error rows need stock, reservedStock and lowStockThreshold
deriveSizes([{ size: '42', stock: 5 }]);
// @ts-expect-error movement types are sale, restock, return, adjustment
applyMovement(rows[0], { type: 'theft', quantity: -1 });
// @ts-expect-error cart lines need a quantity
validateCart([], [{ product: 'p', size: '42' }]);
// @ts-expect-error the TTL is a number of seconds
reservationExpiresAt('2026-11-24T10:00:00Z', '30m');

async function checkout(): Promise<string> {
  const client = createStockClient({ url: 'http://127.0.0.1:4242', token: 'token' });
  try {
    const reservation: Reservation & { created: boolean } = await client.reserve({
      reference: 'pi_1',
      items: [{ product: 1, size: '42', quantity: 1 }],
    });
    const found: Reservation | null = await client.get('pi_1');
    const available: number | undefined = (await client.stock(1)).sizes[0]?.availableStock;
    void [found, available];
    return reservation.expiresAt;
  } catch (error) {
    if (error instanceof StockApiError && error.code === 'insufficient_stock') {
      return error.shortages.map((shortage) => `${shortage.size}: ${shortage.available} left`).join(', ');
    }
    throw error;
  }
}
// @ts-expect-error the client needs a token
createStockClient({ url: 'http://127.0.0.1:4242' });

async function restock(): Promise<number> {
  const admin = createStockClient({ url: 'http://127.0.0.1:4242', token: 'admin-token' });
  const movement: RecordedMovement & { created: boolean } = await admin.recordMovement({
    product: '1',
    size: '42',
    type: 'restock',
    quantity: 5,
  });
  // @ts-expect-error sales come from Stripe, not from recordMovement
  await admin.recordMovement({ product: '1', size: '42', type: 'sale', quantity: -1 });
  return movement.stockAfter;
}

async function watch(): Promise<number> {
  const admin = createStockClient({ url: 'http://127.0.0.1:4242', token: 'admin-token' });
  const report: MonitoringReport = await admin.monitoring({ windowSeconds: 3600 });
  const oldest: string | undefined = report.oldestActiveReservation?.reference;
  const sold: number | undefined = report.movements.products[0]?.byType.sale?.units;
  // @ts-expect-error the window is a number of seconds
  await admin.monitoring({ windowSeconds: '1h' });
  const cleaned: CleanupResult = await admin.cleanExpired();
  void [oldest, sold];
  return report.payloadProjection.backlog + cleaned.released;
}


// Conflicts: listed, then resolved with a note.
async function resolveAll(admin: ReturnType<typeof createStockClient>): Promise<number> {
  const open: Conflict[] = await admin.conflicts();
  for (const conflict of open) {
    const kind: 'oversold' | 'unknown_reference' | 'unreadable_event' | 'refunded_before_sale' | 'sale_after_refund' = conflict.kind;
    const { alreadyResolved } = await admin.resolveConflict(conflict.id, `handled ${kind}`);
    void alreadyResolved;
  }
  // @ts-expect-error the id is the conflict's number
  await admin.resolveConflict('1', 'note');
  return open.length;
}
const metadata: { orderNumber: string; payloadStock: '1' } = { orderNumber: 'ORD-1', ...CHECKOUT_METADATA };
void [resolveAll, metadata];

void [checkout, restock, watch, available, low, sku, derivedAvailable, derivedLow, firstShortage, firstCode, expiresFromDate, expired, after];

// Returns: the rule in the browser, the record through the sidecar.
const plan: ReturnPlan = planReturn([{ product: 'p', size: '42', sold: 2 }], [{ product: 'p', size: '42', quantity: 1, reason: 'damaged' }]);
const stillReturnable: number = plan.sold[0]?.returnable ?? 0;
// @ts-expect-error a return line needs a reason
planReturn([{ product: 'p', size: '42', sold: 2 }], [{ product: 'p', size: '42', quantity: 1 }]);
async function takeBack(admin: ReturnType<typeof createStockClient>): Promise<number> {
  const recorded: RecordedReturn = await admin.recordReturn('pi_1', { returnId: 'RMA-1', lines: [{ product: 'p', size: '42', quantity: 1, reason: 'returned' }] });
  const listed: ReturnsAnswer | null = await admin.returns('pi_1');
  // @ts-expect-error lost is not a reason a return knows
  await admin.recordReturn('pi_1', { returnId: 'RMA-2', lines: [{ product: 'p', size: '42', quantity: 1, reason: 'lost' }] });
  return recorded.sold.length + (listed?.returns.length ?? 0) + stillReturnable;
}
void takeBack;
