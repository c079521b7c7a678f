// Types of payload-stock. The functions and their types come from the wasm-bindgen output (wasm/stock_wasm.d.ts,
// written from crates/stock-wasm); deriveSizes is declared again here with a type parameter, so that the extra
// fields of a shop's size rows keep their types.
import type { SizeFigures, MovementType } from './wasm/stock_wasm';

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

/** One line of a reservation request. */
export interface ReservationItem {
  product: string | number;
  size: string | number;
  quantity: number;
}

/** A reservation as the sidecar stores it. */
export interface Reservation {
  reference: string;
  status: 'active' | 'processing' | 'committed' | 'released' | 'expired';
  createdAt: string;
  expiresAt: string;
  items: Array<{ product: string; size: string; quantity: number }>;
}

/** A product's sizes as the sidecar sees them now. */
export interface ProductStockAnswer {
  product: string;
  sizes: Array<{
    size: string;
    stock: number;
    reservedStock: number;
    availableStock: number;
    lowStockThreshold: number;
    isLowStock: boolean;
  }>;
}

/** Stable codes of the sidecar's /v1 errors, plus the client's own for a sidecar it cannot reach. */
export type StockApiErrorCode =
  | 'insufficient_stock'
  | 'invalid_request'
  | 'invalid_json'
  | 'reference_conflict'
  | 'reservation_not_found'
  | 'reservation_already_committed'
  | 'unknown_product'
  | 'unauthorized'
  | 'api_disabled'
  | 'internal_error'
  | 'sidecar_unreachable'
  | 'sidecar_timeout'
  | 'sidecar_error'
  | (string & {});

/** What every method of the stock client throws. */
export declare class StockApiError extends Error {
  name: 'StockApiError';
  /** HTTP status, or 0 when the sidecar could not be reached. */
  status: number;
  code: StockApiErrorCode;
  /** For insufficient_stock: every size short of stock. */
  shortages: Array<{ product: string; size: string; requested: number; available: number }>;
  /** For invalid_request on a cart: every problem. */
  errors: Array<{ code: string; message: string; line?: number | null; product?: string | null; size?: string | null }>;
  body: Record<string, unknown> | null;
}

export interface StockClientOptions {
  /** The sidecar's base URL, such as http://127.0.0.1:4242. */
  url: string;
  /** The sidecar's SIDECAR_API_TOKEN. */
  token: string;
  /** Each call gives up after this long (default 10,000 ms) with code sidecar_timeout. */
  timeoutMs?: number;
  /** A fetch implementation (default: the global fetch). */
  fetch?: typeof fetch;
}

export interface StockClient {
  /** Reserves every item or none; `created` is false when the same request was made before. */
  reserve(request: { reference: string; items: ReservationItem[]; ttlSeconds?: number }): Promise<Reservation & { created: boolean }>;
  /** Releases a reservation (idempotent). */
  release(reference: string): Promise<Reservation>;
  /** The reservation, or null when none has this reference. */
  get(reference: string): Promise<Reservation | null>;
  /** A product's sizes as they stand now. */
  stock(product: string | number): Promise<ProductStockAnswer>;
  /**
   * Records a restock, return or adjustment; needs the sidecar's ADMIN_API_TOKEN as `token`. `created` is false
   * when a movement with the same `reference` was recorded before (that one is returned).
   */
  recordMovement(movement: MovementRequest): Promise<RecordedMovement & { created: boolean }>;
  /**
   * The monitoring report; needs ADMIN_API_TOKEN as `token`. `windowSeconds` (60 to 7,776,000; default 86,400)
   * is how far back `movements` counts.
   */
  monitoring(options?: { windowSeconds?: number }): Promise<MonitoringReport>;
  /** Releases every reservation past its expiry now; needs ADMIN_API_TOKEN as `token`. */
  cleanExpired(): Promise<CleanupResult>;
  /** The open conflicts, oldest first (50 at most); needs ADMIN_API_TOKEN as `token`. */
  conflicts(): Promise<Conflict[]>;
  /**
   * Marks a conflict resolved with a note of what was done about it (1 to 500 characters); needs ADMIN_API_TOKEN.
   * Resolving it again changes nothing: `alreadyResolved` is true and the first resolution stands.
   */
  resolveConflict(id: number, resolution: string): Promise<{ alreadyResolved: boolean; conflict: Conflict }>;
}

/** What the ledger could not do as a Stripe event asked, and what it did instead. */
export interface Conflict {
  id: number;
  /** `oversold` (paid, units gone: nothing sold), `unknown_reference` (a marked payment nobody reserved: nothing sold), `unreadable_event` (a signed event that could not be read: nothing applied). */
  kind: 'oversold' | 'unknown_reference' | 'unreadable_event';
  /** The PaymentIntent or Checkout Session (`-` when the event could not say). */
  reference: string;
  eventId: string;
  /** RFC 3339. */
  createdAt: string;
  /** The ledger's message and the figures behind it (an oversold payment's shortages). */
  details: { message?: string; [key: string]: unknown };
  resolvedAt: string | null;
  resolution: string | null;
}

/** Spread into a PaymentIntent's or Checkout Session's `metadata`: marks it as one of the shop's checkouts. */
export declare const CHECKOUT_METADATA: { readonly payloadStock: '1' };

/** What the sidecar's monitoring report shows (GET /api/admin/clean-expired-reservations, `stock-sidecar stats --json`). */
export interface MonitoringReport {
  /** RFC 3339: the instant the figures were read at. */
  now: string;
  /** Reservations holding units now (active and not past their expiry, or processing). */
  activeReservations: number;
  reservedUnits: number;
  /** The first of `oldestActiveReservations`, or null when none holds units. */
  oldestActiveReservation: OldestReservation | null;
  /** The reservations holding units the longest, oldest first (10 at most). */
  oldestActiveReservations: OldestReservation[];
  /** Past their expiry (they hold nothing) but not yet marked expired by cleanup. */
  expiredNotReleased: number;
  /** Conflicts from Stripe events (oversold, unknown_reference, unreadable_event) not yet resolved. */
  openConflicts: number;
  /** The oldest of them (50 at most). */
  conflicts: Conflict[];
  movements: MovementWindow;
  payloadProjection: ProjectionStatus;
  stockAlerts: StockAlertsStatus;
  ledgerWrites: LedgerWrites;
}

/** A reservation holding units, in the monitoring report. */
export interface OldestReservation {
  reference: string;
  /** 'active', or 'processing' (a payment under way: held past its expiry). */
  status: string;
  /** Units held, all sizes together. */
  units: number;
  createdAt: string;
  expiresAt: string;
  ageSeconds: number;
}

/** Each product's movements over the report's window. */
export interface MovementWindow {
  windowSeconds: number;
  /** RFC 3339: the window's start. */
  since: string | null;
  products: ProductMovements[];
}

export interface ProductMovements {
  product: string;
  movements: number;
  /** The change of its stock over the window, all sizes together. */
  netUnits: number;
  /** By movement type; types without movements are left out. */
  byType: Partial<Record<MovementType, { movements: number; units: number }>>;
}

/** How far Payload is behind the ledger. */
export interface ProjectionStatus {
  /** Whether this sidecar projects into Payload (PAYLOAD_URL). */
  enabled: boolean;
  /** Changes not yet delivered (after coalescing). */
  backlog: number;
  /** Movements whose Payload document the stock-movements hook saves itself (not a backlog). */
  awaitingPayloadSave: number;
  /** Undelivered changes whose delivery failed at least once. */
  failing: number;
  lastError: string | null;
  oldestUndeliveredAgeSeconds: number | null;
  oldestUndeliveredChangeAt: string | null;
}

/** How far the alert webhook (LOW_STOCK_WEBHOOK_URL) is behind. */
export interface StockAlertsStatus {
  /** Alerts the webhook has not accepted yet (0 without a webhook: alerts are then only logged). */
  undelivered: number;
  lastError: string | null;
}

/** Ledger writes and commits since the sidecar opened its store; writes / commits is the group commit's batch size. */
export interface LedgerWrites {
  writes: number;
  commits: number;
}

/** What a cleanup released. */
export interface CleanupResult {
  released: number;
  references: string[];
}

/** A movement for POST /v1/movements. */
export interface MovementRequest {
  product: string;
  size: string;
  type: 'restock' | 'return' | 'adjustment';
  /** Whole units: positive for a restock or a return; either sign for an adjustment. */
  quantity: number;
  reason?: string;
  /** Makes the request idempotent. */
  reference?: string;
  /** Applied only if the size has exactly this many units on hand (else 409 stale_stock). */
  expectedStock?: number;
  /** Sets the size's low-stock threshold with the movement. */
  lowStockThreshold?: number;
  /** 'payload' when the caller saves the Payload stock-movements document itself (the plugin's hook does). */
  origin?: 'sidecar' | 'payload';
}

/** A movement as the ledger recorded it. */
export interface RecordedMovement {
  /** The ledger's id: the idempotencyKey of its stock-movements document in Payload. */
  id: number;
  product: string;
  size: string;
  type: MovementType;
  quantity: number;
  stockBefore: number;
  stockAfter: number;
  reason: string;
  reference: string | null;
  orderReference: string | null;
  /** RFC 3339. */
  date: string;
}

/** A typed client for the stock-sidecar's /v1 API (reserve, release, get, stock, recordMovement) and its admin report and cleanup (monitoring, cleanExpired). */
export declare function createStockClient(options: StockClientOptions): StockClient;

export interface PayloadStockOptions {
  /** The sidecar's base URL, such as http://127.0.0.1:4242. Without it, movements entered in Payload are refused. */
  sidecarUrl?: string;
  /** The sidecar's ADMIN_API_TOKEN: movements are admin operations. */
  sidecarToken?: string;
  /** The products collection (default 'products'); it gets a `sizes` array, or the missing fields of its own. */
  productsSlug?: string;
  /** The movements collection the plugin adds (default 'stock-movements'). */
  movementsSlug?: string;
  /** The read-only reservations collection the plugin adds (default 'stock-reservations'). */
  reservationsSlug?: string;
  /** Each call to the sidecar gives up after this long (default 10,000 ms). */
  timeoutMs?: number;
  /**
   * Who may read and enter stock movements and read stock reservations. Each defaults to `mayOpenAdmin`: users
   * who may open the admin panel (the `admin.user` collection, through its `access.admin` when it has one), so a
   * shop's customers never can. The sidecar's projection always may.
   */
  access?: {
    readMovements?: PayloadStockAccess;
    createMovements?: PayloadStockAccess;
    readReservations?: PayloadStockAccess;
  };
}

/** An access function as Payload calls it: `({ req }) => boolean`. */
export type PayloadStockAccess = (args: { req: any }) => boolean | Promise<boolean>;

/** The default access rule: whether the request's user may open Payload's admin panel, as Payload decides it. */
export declare function mayOpenAdmin(args: { req: any }): Promise<boolean>;

/**
 * The proof the stock-sidecar's projection sends in the `x-payload-stock` header, derived from the token the
 * plugin and the sidecar share (the sidecar's ADMIN_API_TOKEN): `v1=` and a hex HMAC-SHA256.
 */
export declare function projectionProof(sidecarToken: string): string;

/**
 * The Payload 3 plugin: `plugins: [payloadStock({ sidecarUrl, sidecarToken })]`. Adds the sizes fields to the
 * products collection and the stock-movements and stock-reservations collections. Typed structurally so that
 * payload-stock does not depend on Payload's types; it takes and returns a Payload `Config`.
 */
export declare function payloadStock(options?: PayloadStockOptions): <C extends { collections?: unknown[] }>(config: C) => C;
