// payload-stock: the rules of stock, from stock-core compiled to WebAssembly, for every runtime a Next.js shop uses
// (Node's ES modules and CommonJS, browsers through a bundler, the Edge runtime, Bun, Deno). This module wraps the
// wasm-bindgen exports; `#wasm-module` (package.json "imports") instantiates the module first, the way the runtime
// allows: load/inline.ts everywhere, load/edge.ts on the Edge runtime.
import '#wasm-module';
import * as wasm from './wasm/stock_wasm.js';
import type { DerivedSize, SizeFigures } from './wasm/stock_wasm.js';

// Plain values, not re-exports: in the CommonJS build a re-export is a getter, and four getters turn the exports
// object into a slow dictionary, which cost every call through it (`stock.availableStock(...)`) about 7 ns. Their
// documentation travels with their signatures.
export const validateCart = wasm.validateCart;
export const reservationExpiresAt = wasm.reservationExpiresAt;
export const isReservationExpired = wasm.isReservationExpired;
export const applyMovement = wasm.applyMovement;
export const planReturn = wasm.planReturn;

export type {
  StockErrorCode,
  StockError,
  SizeFigures,
  DerivedSize,
  ProductStock,
  CartItem,
  RequestedItem,
  Shortage,
  CartProblem,
  CartValidation,
  MovementType,
  MovementInput,
  AppliedMovement,
  SoldItem,
  ReturnReason,
  ReturnItem,
  ReturnPlan,
} from './wasm/stock_wasm.js';

/**
 * availableStock and isLowStock take their figures as plain WebAssembly numbers, the cheapest call there is. On the
 * way in JavaScript converts each argument with ToNumber, which throws its own TypeError for a BigInt or a Symbol
 * before payload-stock sees the value. Those are reported like every other bad figure: a StockError with the code
 * invalid_quantity. (try/catch costs nothing on the path that does not throw.)
 */
function invalidFigure(cause: TypeError): Error {
  const error = new Error(`expected a number for every figure: ${cause.message}`, { cause });
  error.name = 'StockError';
  Object.assign(error, { code: 'invalid_quantity' });
  return error;
}

/**
 * Units available for new reservations: `stock - reservedStock`.
 *
 * Throws a StockError: `invalid_quantity` for anything but a whole number from 0 to 1e9, `reserved_exceeds_stock`
 * when reservedStock > stock.
 */
export function availableStock(stock: number, reservedStock: number): number {
  try {
    return wasm.availableStock(stock, reservedStock);
  } catch (error) {
    throw error instanceof TypeError ? invalidFigure(error) : error;
  }
}

/**
 * Whether a size is low on stock: available units at or below its low-stock threshold.
 *
 * Throws a StockError on a bad figure, as availableStock does.
 */
export function isLowStock(stock: number, reservedStock: number, lowStockThreshold: number): boolean {
  try {
    return wasm.isLowStock(stock, reservedStock, lowStockThreshold);
  } catch (error) {
    throw error instanceof TypeError ? invalidFigure(error) : error;
  }
}

/**
 * Fills in `availableStock` and `isLowStock` on every row of a product's `sizes` array, in place, and returns the
 * same array, typed with the two new fields. Every other field of a row is kept. All rows are checked before any
 * is written, so an invalid row leaves the array as it was.
 *
 * Throws a StockError naming the row (`sizes[2]`) on a missing, non-numeric, negative or fractional figure
 * (`invalid_quantity`), on reservedStock > stock (`reserved_exceeds_stock`), or when a row is not an object or
 * cannot be written, such as a frozen object (`invalid_input`).
 */
export function deriveSizes<T extends SizeFigures>(sizes: T[]): Array<T & { availableStock: number; isLowStock: boolean }> {
  // The rows are the caller's own, written in place: each keeps its fields and gains the two derived ones.
  return wasm.deriveSizes(sizes) as DerivedSize[] as unknown as Array<T & { availableStock: number; isLowStock: boolean }>;
}
