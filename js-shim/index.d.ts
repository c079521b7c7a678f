// Types of payload-stock. The functions and their types come from the wasm-bindgen output (wasm/stock_wasm.d.ts,
// written from crates/stock-wasm); deriveSizes is declared again here with a type parameter, so that the extra
// fields of a shop's size rows keep their types.
import type { SizeFigures } from './wasm/stock_wasm';

export {
  availableStock,
  isLowStock,
  validateCart,
  reservationExpiresAt,
  isReservationExpired,
  applyMovement,
} from './wasm/stock_wasm';

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
} from './wasm/stock_wasm';

/**
 * Fills in `availableStock` and `isLowStock` on every row of a product's `sizes` array, in place, and returns the
 * same array, typed with the two new fields. Every other field of a row is kept. All rows are checked before any
 * is written, so an invalid row leaves the array as it was.
 *
 * Throws a StockError naming the row (`sizes[2]`) on a missing, non-numeric, negative or fractional figure
 * (`invalid_quantity`), on reservedStock > stock (`reserved_exceeds_stock`), or when a row is not an object or
 * cannot be written, such as a frozen object (`invalid_input`).
 */
export declare function deriveSizes<T extends SizeFigures>(
  sizes: T[],
): Array<T & { availableStock: number; isLowStock: boolean }>;
