'use strict';
// createStockClient: a typed client for the stock-sidecar's /v1 API, for Next.js route handlers and Payload
// hooks (and the admin report and cleanup). Every failure is a StockApiError carrying the API's error code (and its shortages or errors).

class StockApiError extends Error {
  constructor(message, { status, code, body, cause } = {}) {
    super(message, cause ? { cause } : undefined);
    this.name = 'StockApiError';
    /** HTTP status, or 0 when the sidecar could not be reached. */
    this.status = status ?? 0;
    /** The API's stable error code, such as insufficient_stock, or sidecar_unreachable / sidecar_timeout. */
    this.code = code;
    /** For insufficient_stock: every size short of stock. */
    this.shortages = body?.shortages ?? [];
    /** For invalid_request on a cart: every problem, each with its code and line. */
    this.errors = body?.errors ?? [];
    /** The whole error body the sidecar sent, when it sent one. */
    this.body = body ?? null;
  }
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * The metadata that marks a PaymentIntent or Checkout Session as one of the shop's checkouts: spread it into the
 * `metadata` the checkout creates it with. A payment that succeeds without a reservation is then recorded as a
 * conflict for an operator; one without the marker and without a reservation (a subscription, an invoice, a
 * payment link on the same Stripe account) is not the shop's stock and is ignored quietly.
 */
const CHECKOUT_METADATA = Object.freeze({ payloadStock: '1' });

function createStockClient({ url, token, timeoutMs = DEFAULT_TIMEOUT_MS, fetch: fetchImpl = globalThis.fetch } = {}) {
  if (typeof url !== 'string' || !/^https?:\/\//.test(url)) {
    throw new TypeError('createStockClient: url must be the sidecar\'s http(s) base URL, such as http://127.0.0.1:4242');
  }
  if (typeof token !== 'string' || token.length === 0) {
    throw new TypeError('createStockClient: token must be the sidecar\'s SIDECAR_API_TOKEN (or ADMIN_API_TOKEN for movements)');
  }
  const base = url.replace(/\/+$/, '');

  async function request(method, path, body) {
    let response;
    try {
      response = await fetchImpl(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      const timedOut = cause?.name === 'TimeoutError';
      throw new StockApiError(
        timedOut ? `the stock sidecar did not answer within ${timeoutMs} ms` : `the stock sidecar at ${base} cannot be reached: ${cause?.message ?? cause}`,
        { code: timedOut ? 'sidecar_timeout' : 'sidecar_unreachable', cause },
      );
    }
    const text = await response.text();
    let parsed = null;
    try {
      parsed = text ? JSON.parse(text) : null;
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

  const path = (segment) => encodeURIComponent(String(segment));

  return {
    /** Reserves every item or none. `created` is false when the same request was made before. */
    async reserve({ reference, items, ttlSeconds } = {}) {
      const { status, body } = await request('POST', '/v1/reservations', { reference, items, ...(ttlSeconds === undefined ? {} : { ttlSeconds }) });
      return { ...body, created: status === 201 };
    },
    /** Releases a reservation (idempotent). */
    async release(reference) {
      return (await request('DELETE', `/v1/reservations/${path(reference)}`)).body;
    },
    /** The reservation, or null when no reservation has this reference. */
    async get(reference) {
      try {
        return (await request('GET', `/v1/reservations/${path(reference)}`)).body;
      } catch (error) {
        if (error instanceof StockApiError && error.code === 'reservation_not_found') return null;
        throw error;
      }
    },
    /** A product's sizes as they stand now. */
    async stock(product) {
      return (await request('GET', `/v1/products/${path(product)}/stock`)).body;
    },
    /**
     * Records a restock, return or adjustment (needs the sidecar's ADMIN_API_TOKEN as token). `created` is false
     * when a movement with the same reference was recorded before (that movement is returned).
     */
    async recordMovement(movement) {
      const { status, body } = await request('POST', '/v1/movements', movement);
      return { ...body, created: status === 201 };
    },
    /**
     * The monitoring report (needs ADMIN_API_TOKEN): active reservations and the oldest of them, the projection's
     * backlog, undelivered alerts, and each product's movements over the last `windowSeconds` (default 24 h).
     */
    async monitoring({ windowSeconds } = {}) {
      if (windowSeconds !== undefined && !Number.isInteger(windowSeconds)) {
        throw new TypeError('monitoring: windowSeconds must be a whole number of seconds (60 to 7776000)');
      }
      const query = windowSeconds === undefined ? '' : `?windowSeconds=${windowSeconds}`;
      return (await request('GET', `/api/admin/clean-expired-reservations${query}`)).body;
    },
    /** Releases every reservation past its expiry now (needs ADMIN_API_TOKEN); what it released. */
    async cleanExpired() {
      return (await request('POST', '/api/admin/clean-expired-reservations')).body;
    },
    /** The open conflicts, oldest first (needs ADMIN_API_TOKEN): what happened, when, to which reference. */
    async conflicts() {
      return (await request('GET', '/api/admin/conflicts')).body.conflicts;
    },
    /**
     * Marks a conflict resolved with a note of what was done about it (needs ADMIN_API_TOKEN). Resolving it again
     * changes nothing: `alreadyResolved` is then true and the first resolution stands.
     */
    async resolveConflict(id, resolution) {
      if (!Number.isSafeInteger(id)) throw new TypeError('resolveConflict: id must be the conflict\'s whole-number id');
      return (await request('POST', `/api/admin/conflicts/${id}/resolve`, { resolution })).body;
    },
  };
}

module.exports = { createStockClient, StockApiError, CHECKOUT_METADATA };
