// payload-stock/client: a typed client for the stock-sidecar's /v1 API, for Next.js route handlers and Payload
// hooks (and the admin report and cleanup). Server only: it carries the sidecar's token. Every failure is a
// StockApiError carrying the API's error code (and its shortages or errors).
import type { MovementType } from './wasm/stock_wasm.js';

/** Stable codes of the sidecar's /v1 errors, plus the client's own for a sidecar it cannot reach. */
export type StockApiErrorCode =
  | 'insufficient_stock'
  | 'invalid_request'
  | 'invalid_json'
  | 'reference_conflict'
  | 'reservation_not_found'
  | 'reservation_already_committed'
  | 'reservation_not_sold'
  | 'return_id_conflict'
  | 'exceeds_returnable'
  | 'unknown_product'
  | 'unauthorized'
  | 'api_disabled'
  | 'internal_error'
  | 'sidecar_unreachable'
  | 'sidecar_timeout'
  | 'sidecar_error'
  | (string & {});

/**
 * A size short of stock, in an insufficient_stock error. In a shop on Payload's ecommerce plugin `size` is the
 * ledger's key of a variant: its id, or "(no variant)" for a product without variants (`variantOfKey` reads it).
 */
export interface StockShortage {
  product: string;
  size: string;
  requested: number;
  available: number;
}

/** A problem with a cart, in an invalid_request error. */
export interface StockRequestProblem {
  code: string;
  message: string;
  line?: number | null;
  product?: string | null;
  size?: string | null;
}

/** What every method of the stock client throws. */
export class StockApiError extends Error {
  override name = 'StockApiError' as const;
  /** HTTP status, or 0 when the sidecar could not be reached. */
  status: number;
  /** The API's stable error code, such as insufficient_stock, or sidecar_unreachable / sidecar_timeout. */
  code: StockApiErrorCode;
  /** For insufficient_stock: every size short of stock. */
  shortages: StockShortage[];
  /** For invalid_request on a cart: every problem, each with its code and line. */
  errors: StockRequestProblem[];
  /** The whole error body the sidecar sent, when it sent one. */
  body: Record<string, unknown> | null;

  constructor(
    message: string,
    { status, code, body, cause }: { status?: number; code: StockApiErrorCode; body?: Record<string, unknown> | null; cause?: unknown },
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.status = status ?? 0;
    this.code = code;
    this.shortages = (body?.shortages as StockShortage[] | undefined) ?? [];
    this.errors = (body?.errors as StockRequestProblem[] | undefined) ?? [];
    this.body = body ?? null;
  }
}

/**
 * One line of a reservation request: a `size`, or in a shop on Payload's ecommerce plugin a `variant` (its id, or
 * null for a product without variants), never both.
 */
export interface ReservationItem {
  product: string | number;
  size?: string | number;
  variant?: string | number | null;
  quantity: number;
}

/** A reservation as the sidecar stores it. */
export interface Reservation {
  reference: string;
  status: 'active' | 'processing' | 'committed' | 'released' | 'expired';
  createdAt: string;
  expiresAt: string;
  items: Array<{ product: string; size: string; quantity: number }>;
  /**
   * What came back of its payment after it was taken (refunds, a dispute), from Stripe's money events; null until one
   * arrives (or, for a Checkout Session, until it completes) and in the answers of reserve and release. Money only:
   * units come back through a return.
   */
  payment: PaymentAfterSale | null;
}

/** A payment's money after the sale, in the currency's smallest unit (cents). */
export interface PaymentAfterSale {
  paymentIntent: string;
  /** The amount charged; 0 while no charge event told it. */
  amount: number;
  /** Refunded so far. */
  refunded: number;
  fullyRefunded: boolean;
  dispute: 'open' | 'won' | 'lost' | null;
}

/** Why units come back: `returned` and `cancelled` (before shipping) go back on sale, `damaged` does not. */
export type ReturnReason = 'returned' | 'cancelled' | 'damaged';

/** A return to record: the caller's id (an RMA number; a retry under it records nothing) and its lines. */
export interface ReturnRequest {
  returnId: string;
  /** Each line names a size, or in a shop on Payload's ecommerce plugin a variant (null for a product without variants). */
  lines: Array<{ product: string | number; size?: string | number; variant?: string | number | null; quantity: number; reason: ReturnReason }>;
}

/** A return as recorded. */
export interface ReturnRecord {
  reference: string;
  returnId: string;
  createdAt: string;
  /** `restocked`: units put back on sale by the line (0 for damaged ones). */
  lines: Array<{ product: string; size: string; quantity: number; reason: ReturnReason; restocked: number }>;
}

/** A size a paid reservation sold, and what may still come back of it. */
export interface SoldSizeAnswer {
  product: string;
  size: string;
  sold: number;
  returned: number;
  returnable: number;
}

/** What recording a return did. */
export interface RecordedReturn {
  created: boolean;
  return: ReturnRecord;
  sold: SoldSizeAnswer[];
}

/** A reservation's returns (oldest first) and what may still come back (`sold` is empty unless it is committed). */
export interface ReturnsAnswer {
  reference: string;
  status: Reservation['status'];
  sold: SoldSizeAnswer[];
  returns: ReturnRecord[];
}

/** What the ledger did with a payment the shop confirmed (POST /v1/reservations/{reference}/commit). */
export interface CommitAnswer {
  reference: string;
  /** committed, committed_late, unchanged (already sold), duplicate (confirmed before) or conflict. */
  outcome: 'committed' | 'committed_late' | 'unchanged' | 'duplicate' | 'conflict' | (string & {});
  /** oversold, unknown_reference or sale_after_refund (the payment was refunded or disputed first), when outcome is conflict. */
  conflict: string | null;
  reservation: Reservation | null;
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

export interface StockClientOptions {
  /** The sidecar's base URL, such as http://127.0.0.1:4242. */
  url: string;
  /** The sidecar's SIDECAR_API_TOKEN (or ADMIN_API_TOKEN for movements and the admin report). */
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
  /**
   * Sells a reservation whose payment the shop saw succeed at Stripe, as `payment_intent.succeeded` would (whichever
   * comes first sells, once); needs ADMIN_API_TOKEN as `token`.
   */
  commit(reference: string, options?: { orderReference?: string }): Promise<CommitAnswer>;
  /**
   * Records a return (or a cancellation) of units the paid reservation `reference` sold, once per `returnId`; needs
   * ADMIN_API_TOKEN as `token`. `created` is false when the same return was recorded before under its id. Throws a
   * StockApiError: `exceeds_returnable` (more of a size than may still come back, across all its returns),
   * `reservation_not_sold`, `return_id_conflict` (the id names a return of other lines), `invalid_request`.
   */
  recordReturn(reference: string, request: ReturnRequest): Promise<RecordedReturn>;
  /** A reservation's returns and what may still come back of each size it sold; null when none has this reference. */
  returns(reference: string): Promise<ReturnsAnswer | null>;
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
  /**
   * `oversold` (paid, units gone: nothing sold), `unknown_reference` (a marked payment nobody reserved: nothing sold),
   * `unreadable_event` (a signed event that could not be read: nothing applied), `refunded_before_sale` (a full refund
   * or a dispute arrived while the reservation held its units: they were released, and its success takes none),
   * `sale_after_refund` (the success of a payment already fully refunded or disputed: nothing sold).
   */
  kind: 'oversold' | 'unknown_reference' | 'unreadable_event' | 'refunded_before_sale' | 'sale_after_refund';
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
  /** Conflicts from Stripe events (oversold, unknown_reference, unreadable_event, refunded_before_sale, sale_after_refund) not yet resolved. */
  openConflicts: number;
  /** The oldest of them (50 at most). */
  conflicts: Conflict[];
  movements: MovementWindow;
  payloadProjection: ProjectionStatus;
  stockAlerts: StockAlertsStatus;
  ledgerWrites: LedgerWrites;
  /** What came back of the shop's payments after the sale, all time (money only). */
  payments: { fullyRefunded: number; partiallyRefunded: number; openDisputes: number; lostDisputes: number; wonDisputes: number };
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

/** A movement for POST /v1/movements: of a `size`, or of a `variant` (its id, or null for a product without variants). */
export interface MovementRequest {
  product: string;
  size?: string;
  variant?: string | number | null;
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

const DEFAULT_TIMEOUT_MS = 10_000;

/** The size key under which the ledger keeps the stock of a product without variants (ecommerce plugin shops). */
export const NO_VARIANT = '(no variant)';

/** The variant a ledger size key stands for, in a shop on Payload's ecommerce plugin: null for NO_VARIANT. */
export function variantOfKey(size: string): string | null {
  return size === NO_VARIANT ? null : size;
}

/**
 * The metadata that marks a PaymentIntent or Checkout Session as one of the shop's checkouts: spread it into the
 * `metadata` the checkout creates it with. A payment that succeeds without a reservation is then recorded as a
 * conflict for an operator; one without the marker and without a reservation (a subscription, an invoice, a
 * payment link on the same Stripe account) is not the shop's stock and is ignored quietly. (Payload's ecommerce
 * plugin marks its PaymentIntents with its own `cartItemsSnapshot`, which the sidecar takes as well.)
 */
export const CHECKOUT_METADATA: { readonly payloadStock: '1' } = Object.freeze({ payloadStock: '1' });

type JsonObject = Record<string, unknown>;

/** A typed client for the stock-sidecar's /v1 API (reserve, release, get, stock, recordMovement) and its admin report and cleanup (monitoring, cleanExpired). */
export function createStockClient(options: StockClientOptions): StockClient {
  const { url, token, timeoutMs = DEFAULT_TIMEOUT_MS, fetch: fetchImpl = globalThis.fetch } = options ?? ({} as Partial<StockClientOptions>);
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
    throw new TypeError("createStockClient: url must be the sidecar's http(s) base URL, such as http://127.0.0.1:4242");
  }
  if (typeof token !== 'string' || token.length === 0) {
    throw new TypeError("createStockClient: token must be the sidecar's SIDECAR_API_TOKEN (or ADMIN_API_TOKEN for movements)");
  }
  const base = url.replace(/\/+$/, '');

  async function request(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
    let response: Response;
    try {
      response = await fetchImpl(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      const timedOut = (cause as Error | undefined)?.name === 'TimeoutError';
      throw new StockApiError(
        timedOut
          ? `the stock sidecar did not answer within ${timeoutMs} ms`
          : `the stock sidecar at ${base} cannot be reached: ${(cause as Error | undefined)?.message ?? cause}`,
        { code: timedOut ? 'sidecar_timeout' : 'sidecar_unreachable', cause },
      );
    }
    const text = await response.text();
    let parsed: JsonObject | null = null;
    try {
      parsed = text ? (JSON.parse(text) as JsonObject) : null;
    } catch {
      // not JSON: reported below
    }
    if (!response.ok) {
      const code = typeof parsed?.error === 'string' ? parsed.error : 'sidecar_error';
      const message = typeof parsed?.message === 'string' ? parsed.message : `the stock sidecar answered ${response.status}`;
      throw new StockApiError(message, { status: response.status, code, body: parsed });
    }
    if (parsed === null) {
      throw new StockApiError(`the stock sidecar answered ${response.status} without a JSON body`, { status: response.status, code: 'sidecar_error' });
    }
    return { status: response.status, body: parsed };
  }

  const segment = (value: string | number) => encodeURIComponent(String(value));

  return {
    async reserve({ reference, items, ttlSeconds } = {} as Parameters<StockClient['reserve']>[0]) {
      const { status, body } = await request('POST', '/v1/reservations', { reference, items, ...(ttlSeconds === undefined ? {} : { ttlSeconds }) });
      return { ...body, created: status === 201 };
    },
    async release(reference) {
      return (await request('DELETE', `/v1/reservations/${segment(reference)}`)).body;
    },
    async get(reference) {
      try {
        return (await request('GET', `/v1/reservations/${segment(reference)}`)).body;
      } catch (error) {
        if (error instanceof StockApiError && error.code === 'reservation_not_found') return null;
        throw error;
      }
    },
    async commit(reference, { orderReference } = {}) {
      return (await request('POST', `/v1/reservations/${segment(reference)}/commit`, orderReference === undefined ? {} : { orderReference })).body;
    },
    async recordReturn(reference, returned) {
      const { status, body } = await request('POST', `/v1/reservations/${segment(reference)}/returns`, returned);
      return { ...body, created: status === 201 };
    },
    async returns(reference) {
      try {
        return (await request('GET', `/v1/reservations/${segment(reference)}/returns`)).body;
      } catch (error) {
        if (error instanceof StockApiError && error.code === 'reservation_not_found') return null;
        throw error;
      }
    },
    async stock(product) {
      return (await request('GET', `/v1/products/${segment(product)}/stock`)).body;
    },
    async recordMovement(movement) {
      const { status, body } = await request('POST', '/v1/movements', movement);
      return { ...body, created: status === 201 };
    },
    async monitoring({ windowSeconds } = {}) {
      if (windowSeconds !== undefined && !Number.isInteger(windowSeconds)) {
        throw new TypeError('monitoring: windowSeconds must be a whole number of seconds (60 to 7776000)');
      }
      const query = windowSeconds === undefined ? '' : `?windowSeconds=${windowSeconds}`;
      return (await request('GET', `/api/admin/clean-expired-reservations${query}`)).body;
    },
    async cleanExpired() {
      return (await request('POST', '/api/admin/clean-expired-reservations')).body;
    },
    async conflicts() {
      return (await request('GET', '/api/admin/conflicts')).body.conflicts;
    },
    async resolveConflict(id, resolution) {
      if (!Number.isSafeInteger(id)) throw new TypeError("resolveConflict: id must be the conflict's whole-number id");
      return (await request('POST', `/api/admin/conflicts/${id}/resolve`, { resolution })).body;
    },
  };
}
