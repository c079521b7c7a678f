// The payloadStock plugin in a shop on Payload's ecommerce plugin (@payloadcms/plugin-ecommerce): stock per variant
// and per product without variants, held at payment start, sold once, and shown without touching editors' drafts.
//
// Why this shape (the ecommerce plugin is used as it is, not forked):
// - Its payment endpoints (`/api/payments/<method>/initiate`, `/confirm-order`) are wrapped, whatever adapter the
//   shop configured: after the payment start has created the PaymentIntent and its transaction, the transaction's
//   items are reserved in the sidecar under the PaymentIntent's id; a cart that cannot be reserved has its
//   PaymentIntent cancelled at Stripe and is refused with its shortages (409). After confirm-order has created the
//   order, the sale is committed in the sidecar (the webhook commits it too; the ledger sells once).
// - Its confirm-order decrements `inventory` with a bare `$inc` below Payload's hooks. During a confirm-order the
//   plugin lets no `$inc` of `inventory` through (payload.db.updateOne is wrapped in onInit): the ledger already
//   counted the sale when it was reserved, and `inventory` is the ledger's available stock, written by the sidecar.
// - The figures (`inventory`, stock, reserved, available, threshold, low) are written by the sidecar through
//   `POST /api/payload-stock/figures`, straight into each document's row (payload.db.updateOne): no new version, so
//   an editor's unpublished draft is never published, overwritten or discarded. A draft read shows the row's
//   figures, and saving or publishing a draft keeps them: only the sidecar moves a figure.
import type { Access, CollectionConfig, Config, Endpoint, Field, FieldHook, Payload, PayloadHandler, PayloadRequest, Where } from 'payload';
import { availableStock, isLowStock } from 'payload-stock';
import { NO_VARIANT, StockApiError, variantOfKey, type StockClient } from 'payload-stock/client';

export { NO_VARIANT };

/** Options of the payloadStock plugin for a shop on Payload's ecommerce plugin. */
export interface EcommerceStockOptions {
  /** The variants collection (default 'variants'). */
  variantsSlug?: string;
  /** The ecommerce plugin's transactions, carts and orders collections (default 'transactions', 'carts', 'orders'). */
  transactionsSlug?: string;
  cartsSlug?: string;
  ordersSlug?: string;
  /** The payment methods whose endpoints reserve and commit stock (default ['stripe']). */
  paymentMethods?: string[];
  /**
   * The Stripe secret key of the shop's Stripe adapter: a payment start whose cart cannot be reserved has its
   * PaymentIntent cancelled with it, so that no payment can be made for it.
   */
  stripeSecretKey?: string;
  /** Stripe's API (default https://api.stripe.com); the tests point it at a local fake. */
  stripeApiBase?: string;
  /** How long a payment start holds its units, in seconds (default: the sidecar's RESERVATION_TTL_SECONDS). */
  reservationTtlSeconds?: number;
}

type IsProjection = (req: PayloadRequest | undefined) => boolean;

/** Set on req.context while a confirm-order runs: its `$inc` of `inventory` is not applied. */
const CONFIRMING = 'payloadStockConfirmingOrder';
/** Set on req.context while the figures endpoint writes: the only writes that may change a figure of a row. */
const PROJECTING = 'payloadStockProjectingFigures';
/** Per request, the figures read from documents' rows for draft reads, by `<collection>:<id>`. */
const ROW_FIGURES = 'payloadStockRowFigures';

/** The figure fields, as the ledger names them; `inventory` mirrors availableStock. */
const FIGURES = ['stock', 'reservedStock', 'availableStock', 'lowStockThreshold', 'isLowStock'] as const;

/** A relationship value as an id (Payload gives an object when the relation is populated); null when none. */
export function relationId(value: unknown): string | number | null {
  const id = value !== null && typeof value === 'object' ? (value as { id?: unknown }).id : value;
  return typeof id === 'string' || typeof id === 'number' ? id : null;
}

/** An id as Payload's relationship fields take it: a number for the SQL adapters' numeric ids. */
export function idValue(key: string): string | number {
  return /^\d+$/.test(key) && Number.isSafeInteger(Number(key)) ? Number(key) : key;
}

/** Whether a collection config (or any field list) has a data field named `name` at its top level. */
function hasField(fields: Field[] | undefined, name: string): boolean {
  return (fields ?? []).some((field) => 'name' in field && field.name === name);
}

/** Whether the config is a shop of Payload's ecommerce plugin: variants or products with its `inventory`. */
export function isEcommerceShop(config: Config, productsSlug: string, variantsSlug: string): boolean {
  const collections = (config.collections ?? []) as CollectionConfig[];
  return collections.some((collection) => (collection.slug === variantsSlug || collection.slug === productsSlug) && hasField(collection.fields, 'inventory'));
}

/**
 * The read-only figure fields added to variants and products, written by the sidecar only. What can be sold
 * (`availableStock`, `isLowStock`) is public like `inventory`; units on hand, held units and the threshold (a
 * competitor would watch sales and checkouts through them) are read by staff only. `condition` is the `inventory`
 * field's own (the ecommerce plugin hides a product's inventory when it has variants).
 */
function figureFields(isProjection: IsProjection, staff: Access, condition: unknown): Field[] {
  const sidecarOnly = { create: ({ req }: { req: PayloadRequest }) => isProjection(req), update: ({ req }: { req: PayloadRequest }) => isProjection(req) };
  const private_ = { ...sidecarOnly, read: async (args: { req: PayloadRequest }) => isProjection(args.req) || Boolean(await staff(args as never)) };
  const shown = (description: string) => ({ readOnly: true, position: 'sidebar' as const, description, ...(condition ? { condition } : {}) });
  return [
    { name: 'stock', type: 'number', min: 0, defaultValue: 0, access: private_, admin: shown('Units on hand, kept by the stock sidecar: add a stock movement to change it.') },
    { name: 'reservedStock', type: 'number', min: 0, defaultValue: 0, access: private_, admin: shown('Units held by payments in progress.') },
    { name: 'availableStock', type: 'number', min: 0, defaultValue: 0, access: sidecarOnly, admin: shown('Stock minus reserved stock: what can still be sold (also the inventory).') },
    { name: 'lowStockThreshold', type: 'number', min: 0, defaultValue: 0, access: private_, admin: shown('Set with a stock movement (its low-stock threshold field).') },
    { name: 'isLowStock', type: 'checkbox', index: true, defaultValue: false, access: sidecarOnly, admin: shown('Available stock at or below the low-stock threshold.') },
  ] as Field[];
}

/** The figures of a document's row (not of a draft version), read once per request. */
async function rowFigures(req: PayloadRequest, collection: string, id: string | number): Promise<Record<string, unknown> | null> {
  const cache = ((req.context ??= {})[ROW_FIGURES] ??= new Map()) as Map<string, Promise<Record<string, unknown> | null>>;
  const key = `${collection}:${id}`;
  if (!cache.has(key)) {
    cache.set(
      key,
      req.payload.db
        .findOne({ collection: collection as never, where: { id: { equals: id } }, req })
        .then((row) => (row ? Object.fromEntries(['inventory', ...FIGURES].map((name) => [name, (row as Record<string, unknown>)[name]])) : null)),
    );
  }
  return cache.get(key)!;
}

/**
 * Adds the figure fields to a variants or products collection and guards them and the ecommerce plugin's
 * `inventory`: only the sidecar writes them; a draft read shows the document row's figures, and saving or
 * publishing a draft keeps them.
 */
function guardFigures(collection: CollectionConfig, isProjection: IsProjection, staff: Access): CollectionConfig {
  const slug = collection.slug;
  const figuresOfRow: FieldHook = async ({ draft, req, siblingData, value }) => {
    const id = relationId(siblingData?.id);
    if (!draft || id === null) return value;
    const row = await rowFigures(req, slug, id);
    if (!row) return value;
    for (const name of FIGURES) siblingData[name] = row[name];
    return row.inventory;
  };
  const fields = (collection.fields ?? []).map((field) => {
    if (!('name' in field) || field.name !== 'inventory') return field;
    const inventory = field as Field & { access?: Record<string, unknown>; hooks?: { afterRead?: FieldHook[] }; admin?: Record<string, unknown> };
    return {
      ...inventory,
      access: { ...inventory.access, create: ({ req }: { req: PayloadRequest }) => isProjection(req), update: ({ req }: { req: PayloadRequest }) => isProjection(req) },
      admin: { ...inventory.admin, readOnly: true, description: 'Available stock, kept by the stock sidecar: add a stock movement to change it.' },
      hooks: { ...inventory.hooks, afterRead: [...(inventory.hooks?.afterRead ?? []), figuresOfRow] },
    } as Field;
  });
  const inventoryField = (collection.fields ?? []).find((field) => 'name' in field && field.name === 'inventory') as { admin?: { condition?: unknown } } | undefined;
  const missing = figureFields(isProjection, staff, inventoryField?.admin?.condition).filter((field) => !hasField(fields, (field as { name: string }).name));
  // Version snapshots (drafts, autosaves) get the row's figures of now. The row itself is guarded below Payload:
  // the onInit wrapper of db.updateOne takes the figures out of every other write to it.
  const keepRowFigures = async ({ data, operation, originalDoc, req }: { data: Record<string, unknown>; operation: string; originalDoc?: Record<string, unknown>; req: PayloadRequest }) => {
    if (operation !== 'update' || isProjection(req)) return data;
    const id = relationId(originalDoc?.id);
    const row = id === null ? null : await rowFigures(req, slug, id);
    return row ? { ...data, ...row } : data;
  };
  return {
    ...collection,
    fields: [...fields, ...missing],
    hooks: { ...collection.hooks, beforeChange: [...(collection.hooks?.beforeChange ?? []), keepRowFigures as never] },
  };
}

/** The `variant` relationship value of a ledger size key: the variant's id, or null for a product without variants. */
export function variantValue(size: unknown): string | number | null {
  if (typeof size !== 'string') return null;
  const variant = variantOfKey(size);
  return variant === null ? null : idValue(variant);
}

/**
 * The stock-reservations fields naming the ecommerce plugin's checkout of a reservation: its transaction (found by
 * the PaymentIntent's id, the reservation's reference), cart and order, looked up when read (stored nowhere, so they
 * are always right). A paid reservation without an order is a payment whose browser never came back.
 */
export function checkoutFields(options: EcommerceStockOptions): Field[] {
  const transactionsSlug = options.transactionsSlug ?? 'transactions';
  const lookUp = (name: 'id' | 'cart' | 'order'): FieldHook => async ({ req, siblingData }) => {
    const reference = siblingData?.reference;
    if (typeof reference !== 'string' || !req?.payload) return null;
    const cache = ((req.context ??= {})[`payloadStockCheckout:${reference}`] ??= req.payload
      .find({ collection: transactionsSlug as never, where: { 'stripe.paymentIntentID': { equals: reference } }, limit: 1, depth: 0, pagination: false, overrideAccess: true, req })
      .then((found) => (found.docs[0] as Record<string, unknown> | undefined) ?? null)
      .catch(() => null)) as Promise<Record<string, unknown> | null>;
    const transaction = await cache;
    return transaction ? relationId(transaction[name]) : null;
  };
  const shown = (name: 'id' | 'cart' | 'order', description: string) => ({ virtual: true, admin: { readOnly: true, description }, hooks: { afterRead: [lookUp(name)] } });
  return [
    { name: 'transaction', type: 'relationship', relationTo: transactionsSlug as never, ...shown('id', "The ecommerce plugin's transaction of this payment.") },
    { name: 'cart', type: 'relationship', relationTo: (options.cartsSlug ?? 'carts') as never, ...shown('cart', 'The cart that was checked out.') },
    { name: 'order', type: 'relationship', relationTo: (options.ordersSlug ?? 'orders') as never, ...shown('order', 'None while the shopper has not come back from paying (the sale is counted all the same).') },
  ] as Field[];
}

/** A JSON answer in Payload's error shape, with the sidecar's code. */
function refusal(status: number, message: string, code: string, extra: Record<string, unknown> = {}): Response {
  return Response.json({ message, code, errors: [{ message, data: { code, ...extra } }], ...extra }, { status });
}

/** Cancels a PaymentIntent at Stripe; whether it is cancelled (or could not be paid anyway). */
async function cancelPaymentIntent(options: EcommerceStockOptions, id: string, payload: Payload): Promise<boolean> {
  if (!options.stripeSecretKey) {
    payload.logger.error({ msg: `payloadStock: PaymentIntent ${id} could not be reserved and stays open: set ecommerce.stripeSecretKey so that it is cancelled` });
    return false;
  }
  const base = (options.stripeApiBase ?? 'https://api.stripe.com').replace(/\/+$/, '');
  try {
    const response = await fetch(`${base}/v1/payment_intents/${encodeURIComponent(id)}/cancel`, {
      method: 'POST',
      headers: { authorization: `Bearer ${options.stripeSecretKey}`, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'cancellation_reason=abandoned',
      signal: AbortSignal.timeout(10_000),
    });
    if (response.ok) return true;
    const answer = await response.text();
    payload.logger.error({ msg: `payloadStock: Stripe refused to cancel PaymentIntent ${id} (${response.status}): ${answer.slice(0, 300)}` });
  } catch (error) {
    payload.logger.error({ err: error, msg: `payloadStock: PaymentIntent ${id} could not be cancelled at Stripe` });
  }
  return false;
}

export interface Wiring {
  productsSlug: string;
  options: EcommerceStockOptions;
  /** The sidecar with SIDECAR_API_TOKEN (reserving), and with ADMIN_API_TOKEN (committing). */
  api: StockClient | null;
  admin: StockClient | null;
  isProjection: IsProjection;
  /** Who may read the private figures (units on hand, held, threshold): the plugin's readReservations rule. */
  staff: Access;
}

/** The reservation lines of a transaction's items: each a variant, or a product without variants. */
function linesOf(items: unknown): Array<{ product: string | number; variant: string | number | null; quantity: number }> {
  return (Array.isArray(items) ? items : []).map((item) => ({
    product: relationId((item as { product?: unknown }).product) ?? '',
    variant: relationId((item as { variant?: unknown }).variant),
    quantity: (item as { quantity?: unknown }).quantity as number,
  }));
}

/** The payment start: the ecommerce plugin's handler, then the transaction's items reserved under the PaymentIntent. */
function reservingInitiate(handler: PayloadHandler, wiring: Wiring, transactionsSlug: string): PayloadHandler {
  return async (req) => {
    const response = await handler(req);
    if (response.status !== 200) return response;
    const started = (await response.clone().json().catch(() => null)) as { paymentIntentID?: unknown } | null;
    const reference = typeof started?.paymentIntentID === 'string' ? started.paymentIntentID : null;
    if (!reference) {
      // Fail closed: a payment this plugin cannot name in the ledger would sell stock nobody counted.
      req.payload.logger.error({ msg: 'payloadStock: a payment start answered without a paymentIntentID, so its stock cannot be reserved; it is refused' });
      return refusal(502, 'This payment could not be started; nothing was charged.', 'stock_not_reserved');
    }
    const found = await req.payload.find({
      collection: transactionsSlug as never,
      where: { 'stripe.paymentIntentID': { equals: reference } },
      limit: 1,
      depth: 0,
      pagination: false,
      overrideAccess: true,
      req,
    });
    const transaction = found.docs[0] as { id: string | number; items?: unknown } | undefined;
    let refused: Response;
    try {
      if (!transaction) throw new Error(`no transaction names PaymentIntent ${reference}`);
      if (!wiring.api) throw new StockApiError('payloadStock: sidecarUrl and sidecarApiToken are not set, so no payment can reserve stock', { code: 'sidecar_not_configured', status: 503 });
      await wiring.api.reserve({ reference, items: linesOf(transaction.items), ttlSeconds: wiring.options.reservationTtlSeconds });
      return response;
    } catch (error) {
      const stock = error instanceof StockApiError ? error : null;
      if (stock?.code === 'insufficient_stock') {
        const shortages = stock.shortages.map((shortage) => ({ ...shortage, variant: variantOfKey(shortage.size) }));
        refused = refusal(409, 'Not enough stock for this cart; nothing was charged.', 'insufficient_stock', { shortages });
      } else if (stock && stock.status >= 400 && stock.status < 500 && stock.status !== 401) {
        refused = refusal(stock.status, stock.message, stock.code, stock.errors.length > 0 ? { errors: stock.errors } : {});
      } else {
        req.payload.logger.error({ err: error, msg: `payloadStock: the payment start ${reference} could not reserve its stock` });
        refused = refusal(503, 'Stock cannot be reserved right now; nothing was charged. Please try again.', stock?.code ?? 'stock_unavailable');
      }
    }
    // Nothing may be paid for an unreserved cart: the PaymentIntent is cancelled, its transaction with it.
    await cancelPaymentIntent(wiring.options, reference, req.payload);
    if (transaction) {
      await req.payload
        .update({ collection: transactionsSlug as never, id: transaction.id, data: { status: 'cancelled' } as never, overrideAccess: true, req })
        .catch((error: unknown) => req.payload.logger.error({ err: error, msg: `payloadStock: transaction ${transaction.id} of the refused payment ${reference} could not be marked cancelled` }));
    }
    return refused;
  };
}

/** confirm-order: the ecommerce plugin's handler with its `inventory` decrement held back, then the sale committed. */
function committingConfirm(handler: PayloadHandler, wiring: Wiring, transactionsSlug: string): PayloadHandler {
  return async (req) => {
    (req.context ??= {})[CONFIRMING] = true;
    const response = await handler(req);
    if (response.status !== 200) return response;
    const confirmed = (await response.clone().json().catch(() => null)) as { orderID?: unknown; transactionID?: unknown } | null;
    const transactionID = relationId(confirmed?.transactionID);
    if (transactionID === null) return response;
    const transaction = (await req.payload.findByID({ collection: transactionsSlug as never, id: transactionID, depth: 0, overrideAccess: true, req }).catch(() => null)) as {
      stripe?: { paymentIntentID?: unknown };
    } | null;
    const reference = transaction?.stripe?.paymentIntentID;
    if (typeof reference !== 'string' || !wiring.admin) {
      req.payload.logger.warn({ msg: `payloadStock: order ${String(confirmed?.orderID)} is confirmed, but its sale is left to Stripe's webhook at the sidecar (${wiring.admin ? 'no PaymentIntent on its transaction' : 'sidecarToken is not set'})` });
      return response;
    }
    try {
      const orderID = relationId(confirmed?.orderID);
      const sold = await wiring.admin.commit(reference, orderID === null ? {} : { orderReference: String(orderID) });
      if (sold.outcome === 'conflict') {
        req.payload.logger.error({ msg: `payloadStock: the paid order ${String(orderID)} (PaymentIntent ${reference}) could not be sold from stock: ${sold.conflict}; see the sidecar's conflicts` });
      }
    } catch (error) {
      // Stripe's webhook at the sidecar sells it too: the order stands, and the log says why it waits.
      req.payload.logger.warn({ err: error, msg: `payloadStock: the sale of PaymentIntent ${reference} waits for Stripe's webhook at the sidecar` });
    }
    return response;
  };
}

/** `POST /api/payload-stock/figures`: the sidecar's figures written into each variant's (or product's) row. */
function figuresEndpoint(wiring: Wiring, variantsSlug: string): Endpoint {
  return {
    path: '/payload-stock/figures',
    method: 'post',
    handler: async (req) => {
      if (!wiring.isProjection(req)) return refusal(403, 'Only the stock sidecar writes stock figures.', 'forbidden');
      const body = (await req.json?.().catch(() => null)) as { product?: unknown; sizes?: unknown } | null;
      const product = relationId(body?.product);
      if (product === null || !Array.isArray(body?.sizes)) return refusal(400, 'Expected { product, sizes: [...] }.', 'invalid_request');
      const written: string[] = [];
      const missing: string[] = [];
      for (const entry of body.sizes as Array<Record<string, unknown>>) {
        const size = typeof entry?.size === 'string' ? entry.size : null;
        const [stock, reserved, threshold] = [entry?.stock, entry?.reservedStock, entry?.lowStockThreshold] as number[];
        let figures: Record<string, unknown>;
        try {
          if (size === null) throw new Error('size missing');
          const available = availableStock(stock, reserved);
          figures = { stock, reservedStock: reserved, availableStock: available, lowStockThreshold: threshold, isLowStock: isLowStock(stock, reserved, threshold), inventory: available };
        } catch (error) {
          return refusal(400, `sizes: ${(error as Error).message}`, 'invalid_request');
        }
        const variant = variantOfKey(size as string);
        const [collection, id] = variant === null ? [wiring.productsSlug, product] : [variantsSlug, idValue(variant)];
        const where: Where = variant === null ? { id: { equals: id } } : { and: [{ id: { equals: id } }, { product: { equals: product } }] };
        // updatedAt: null keeps the row's timestamp: a stock change is no edit (Payload's admin compares it with
        // a draft's to tell whether the draft is unpublished).
        let row: unknown;
        try {
          (req.context ??= {})[PROJECTING] = true;
          const exists = await req.payload.db.findOne({ collection: collection as never, where, req });
          row = exists ? await req.payload.db.updateOne({ collection: collection as never, where, data: { ...figures, updatedAt: null }, req }) : null;
        } catch (error) {
          req.payload.logger.error({ err: error, msg: `payloadStock: the figures of ${collection} ${String(id)} could not be written; the sidecar retries` });
          return refusal(500, `the figures of ${collection} ${String(id)} could not be written`, 'write_failed');
        }
        (row ? written : missing).push(size as string);
      }
      return Response.json({ written, missing });
    },
  };
}

type Container = { type: string; name?: string; fields?: Field[]; tabs?: Array<{ name?: string; fields: Field[] }> };

/** `fields` with `change` applied to each field, looking inside rows, collapsibles and unnamed tabs (which nest no
 * data), every container copied on the way so that the shop's config objects stay as they were. */
function mapDataFields(fields: Field[], change: (field: Field) => Field): Field[] {
  return fields.map((original) => {
    const field = original as unknown as Container;
    if ((field.type === 'row' || field.type === 'collapsible') && Array.isArray(field.fields)) {
      return { ...field, fields: mapDataFields(field.fields, change) } as unknown as Field;
    }
    if (field.type === 'tabs' && Array.isArray(field.tabs)) {
      return { ...field, tabs: field.tabs.map((tab) => (tab.name ? tab : { ...tab, fields: mapDataFields(tab.fields, change) })) } as unknown as Field;
    }
    return change(original);
  });
}

/** The transactions collection with its `stripe.paymentIntentID` indexed. */
function indexPaymentIntent(collection: CollectionConfig): CollectionConfig {
  const fields = mapDataFields(collection.fields ?? [], (field) => {
    const group = field as unknown as Container;
    if (group.type !== 'group' || group.name !== 'stripe' || !Array.isArray(group.fields)) return field;
    return { ...group, fields: group.fields.map((inner) => ('name' in inner && inner.name === 'paymentIntentID' ? ({ ...inner, index: true } as Field) : inner)) } as unknown as Field;
  });
  return { ...collection, fields };
}

/** Makes a config of Payload's ecommerce plugin a payload-stock shop (see the top of this file). */
export function addEcommerceStock(config: Config, wiring: Wiring): void {
  const variantsSlug = wiring.options.variantsSlug ?? 'variants';
  const transactionsSlug = wiring.options.transactionsSlug ?? 'transactions';
  const collections = config.collections as CollectionConfig[];
  for (const slug of [variantsSlug, wiring.productsSlug]) {
    const index = collections.findIndex((collection) => collection.slug === slug);
    if (index !== -1) collections[index] = guardFigures(collections[index], wiring.isProjection, wiring.staff);
  }
  // Every payment start, confirm-order and stock-reservations read looks a transaction up by its PaymentIntent:
  // an index on it (the ecommerce plugin has none; a production database needs a migration for it).
  const transactions = collections.findIndex((collection) => collection.slug === transactionsSlug);
  if (transactions !== -1) collections[transactions] = indexPaymentIntent(collections[transactions]);
  const endpoints = [...(config.endpoints ?? [])];
  const methods = wiring.options.paymentMethods ?? ['stripe'];
  // Every payment method the ecommerce plugin serves must reserve: one that did not would sell stock the ledger
  // never counted. Only Stripe's PaymentIntents can be named in the ledger.
  const served = endpoints.flatMap((endpoint) => /^\/payments\/([^/]+)\/initiate$/.exec(endpoint.path)?.[1] ?? []);
  const unknown = served.filter((method) => !methods.includes(method));
  if (unknown.length > 0) {
    throw new Error(`payloadStock: the payment method(s) ${unknown.join(', ')} of the ecommerce plugin would sell stock without reserving it; payload-stock reserves Stripe PaymentIntents only (ecommerce.paymentMethods: ${JSON.stringify(methods)})`);
  }
  for (const method of methods) {
    const wrapped = { initiate: false, confirm: false };
    for (const [index, endpoint] of endpoints.entries()) {
      if (endpoint.path === `/payments/${method}/initiate`) {
        endpoints[index] = { ...endpoint, handler: reservingInitiate(endpoint.handler, wiring, transactionsSlug) };
        wrapped.initiate = true;
      }
      if (endpoint.path === `/payments/${method}/confirm-order`) {
        endpoints[index] = { ...endpoint, handler: committingConfirm(endpoint.handler, wiring, transactionsSlug) };
        wrapped.confirm = true;
      }
    }
    if (!wrapped.initiate || !wrapped.confirm) {
      throw new Error(`payloadStock: the ecommerce plugin serves no /api/payments/${method}/initiate and /confirm-order; put payloadStock after ecommercePlugin in plugins, with its ${method} payment method`);
    }
  }
  endpoints.unshift(figuresEndpoint(wiring, variantsSlug));
  config.endpoints = endpoints;

  const onInit = config.onInit;
  config.onInit = async (payload) => {
    // confirm-order's `$inc` of `inventory` (below Payload's hooks) is not applied: the ledger sold those units
    // when they were reserved, and the sidecar writes `inventory`. Any other write goes through untouched.
    // Every other write to a variant's or product's row leaves its figures as they are (only the figures endpoint,
    // and the sidecar's own REST writes, move them), so that publishing a draft opened before a sale cannot put
    // the old figures back, however the writes interleave.
    const updateOne = payload.db.updateOne.bind(payload.db);
    const stockCollections = new Set([variantsSlug, wiring.productsSlug]);
    const guarded = new Set(['inventory', ...FIGURES]);
    payload.db.updateOne = (async (args: Parameters<typeof updateOne>[0]) => {
      const data = args.data as Record<string, unknown> | undefined;
      if (!data || !stockCollections.has(args.collection as string) || args.req?.context?.[PROJECTING] || wiring.isProjection(args.req as PayloadRequest | undefined)) {
        return updateOne(args);
      }
      const increment = (data.inventory as { $inc?: unknown } | undefined)?.$inc !== undefined;
      if (increment && !args.req?.context?.[CONFIRMING]) {
        payload.logger.warn({ msg: `payloadStock: an $inc of ${String(args.collection)} ${String(args.id)}'s inventory outside confirm-order was not applied: stock moves through the ledger (a stock movement)` });
      }
      const kept = Object.fromEntries(Object.entries(data).filter(([name]) => !guarded.has(name)));
      if (Object.keys(kept).length === 0) {
        return payload.db.findOne({ collection: args.collection, where: args.where ?? { id: { equals: args.id } }, req: args.req });
      }
      return updateOne({ ...args, data: kept });
    }) as typeof payload.db.updateOne;
    if (!wiring.api || !wiring.admin) {
      payload.logger.error({ msg: 'payloadStock: sidecarUrl, sidecarToken and sidecarApiToken must all be set in a shop on the ecommerce plugin: until then every payment start is refused' });
    }
    if (!wiring.options.stripeSecretKey) {
      payload.logger.warn({ msg: 'payloadStock: ecommerce.stripeSecretKey is not set: a payment start refused for lack of stock leaves its PaymentIntent open at Stripe' });
    }
    if (onInit) await onInit(payload);
  };
}
