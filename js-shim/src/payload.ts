// payload-stock/payload: the Payload 3 plugin. It declares what the shop's Payload shows of the stock sidecar's
// ledger: the products' sizes (figures written by the sidecar only), a stock-movements collection (an admin's
// restock, return or adjustment goes through the sidecar before it is saved) and a read-only stock-reservations
// collection. The sidecar keeps these up to date through Payload's REST API. Server only (node:crypto).
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Access, CollectionBeforeChangeHook, CollectionConfig, Config, Field, FieldHook, Plugin, PayloadRequest } from 'payload';
// By the package's own name, not by path: the exports map then gives the plugin the build every other import of
// payload-stock in the process gets (in Node, CommonJS), so there is one wasm instance and one StockApiError.
import { availableStock, isLowStock } from 'payload-stock';
import { createStockClient, NO_VARIANT, StockApiError, type ReturnReason, type StockClient } from 'payload-stock/client';
import { addEcommerceStock, checkoutFields, isEcommerceShop, relationId, variantValue, type EcommerceStockOptions } from './ecommerce.js';

export type { EcommerceStockOptions } from './ecommerce.js';

/** The header in which the sidecar's projection sends its proof; see projectionProof. */
export const PROJECTION_HEADER = 'x-payload-stock';
/** What the proof signs: names the purpose, so the proof is worth nothing anywhere else. */
const PROJECTION_PROOF_LABEL = 'payload-stock projection v1';
/** How far a proof's instant may be from now, either way (as Stripe's signatures). */
const PROOF_TOLERANCE_SECONDS = 300;

const MOVEMENT_TYPES = ['sale', 'restock', 'return', 'adjustment'] as const;
const RESERVATION_STATUSES = ['active', 'processing', 'committed', 'released', 'expired'] as const;

/** An access rule of the plugin's: Payload's own `Access` (it may answer a query, a `Where`, as well as a boolean). */
export type PayloadStockAccess = Access;

export interface PayloadStockOptions {
  /** The sidecar's base URL, such as http://127.0.0.1:4242. Without it, movements entered in Payload are refused. */
  sidecarUrl?: string;
  /** The sidecar's ADMIN_API_TOKEN: movements are admin operations, and the projection's proof is derived from it. */
  sidecarToken?: string;
  /**
   * The sidecar's SIDECAR_API_TOKEN, in a shop on Payload's ecommerce plugin: its payment starts reserve stock
   * with it.
   */
  sidecarApiToken?: string;
  /**
   * A shop on Payload's ecommerce plugin (`@payloadcms/plugin-ecommerce`): stock per variant, and per product
   * without variants, instead of a `sizes` array. Recognised by itself (variants or products with the ecommerce
   * plugin's `inventory` field); `false` forces the sizes shop, an object sets its options (and forces it).
   */
  ecommerce?: boolean | EcommerceStockOptions;
  /** The products collection (default 'products'); it gets a `sizes` array, or the missing fields of its own. */
  productsSlug?: string;
  /** The movements collection the plugin adds (default 'stock-movements'). */
  movementsSlug?: string;
  /** The read-only reservations collection the plugin adds (default 'stock-reservations'). */
  reservationsSlug?: string;
  /** The returns collection the plugin adds (default 'stock-returns'): who may enter movements may enter returns. */
  returnsSlug?: string;
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

function headerValue(req: PayloadRequest | undefined, name: string): string | null | undefined {
  const headers = req?.headers as Headers | Record<string, string> | undefined;
  if (!headers) return undefined;
  return typeof (headers as Headers).get === 'function' ? (headers as Headers).get(name) : (headers as Record<string, string>)[name];
}

/**
 * The proof the sidecar's projection sends in the x-payload-stock header at `unixSeconds` (default now):
 * `t=<seconds>,v1=<hex HMAC-SHA256 of "payload-stock projection v1.<seconds>">` under the token the plugin and the
 * sidecar share (the sidecar's ADMIN_API_TOKEN). Only a holder of that token can make it, the token itself never
 * travels to Payload, and it is taken within 300 seconds of its instant only. The stock-sidecar computes the same.
 */
export function projectionProof(sidecarToken: string, unixSeconds: number = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', sidecarToken).update(`${PROJECTION_PROOF_LABEL}.${unixSeconds}`).digest('hex');
  return `t=${unixSeconds},v1=${mac}`;
}

/**
 * Whether a request is the sidecar's projection, given the token the proof is made with (none: nothing is the
 * projection): authenticated with an API key AND carrying a proof made with the token within the tolerance,
 * compared in constant time. Only such requests may write stock figures, reservation documents and ledger
 * movement documents; an admin in the panel, another integration's API key or a shopper never can, so the
 * figures cannot drift from the ledger.
 */
export function isProjectionRequest(
  req: PayloadRequest | undefined,
  sidecarToken: string | undefined,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): boolean {
  if (!sidecarToken || (req?.user as { _strategy?: string } | null | undefined)?._strategy !== 'api-key') return false;
  const presented = headerValue(req, PROJECTION_HEADER);
  if (typeof presented !== 'string' || presented.length > 200) return false;
  const match = /^t=(\d{1,12}),v1=[0-9a-f]{64}$/.exec(presented);
  if (!match) return false;
  const instant = Number(match[1]);
  if (Math.abs(nowSeconds - instant) > PROOF_TOLERANCE_SECONDS) return false;
  const [given, wanted] = [Buffer.from(presented), Buffer.from(projectionProof(sidecarToken, instant))];
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/**
 * Whether the request's user may open Payload's admin panel, as Payload itself decides it: a user of the admin
 * collection (`admin.user`) whose `access.admin`, when that collection has one, lets them in. Shoppers in another
 * auth collection, and customers kept in the same `users` collection but refused by its `access.admin` (as in
 * Payload's ecommerce template, by role), may not.
 */
export async function mayOpenAdmin({ req }: { req: PayloadRequest }): Promise<boolean> {
  const user = req?.user;
  if (!user || !req.payload) return false;
  const adminSlug = req.payload.config?.admin?.user;
  if (!adminSlug || user.collection !== adminSlug) return false;
  const adminAccess = req.payload.collections?.[adminSlug]?.config?.access?.admin;
  if (typeof adminAccess !== 'function') return true;
  try {
    return Boolean(await adminAccess({ req }));
  } catch {
    return false;
  }
}

/** The name of the plugin's refusals of an admin's request (4xx): logged by Payload at `info`, as its own
 * ValidationError is, since they are answers, not failures (see `loggingLevels` in payloadStock). */
const REFUSAL_NAME = 'PayloadStockRefusal';
type ErrorClass = new (message: string, status: number, data: Record<string, unknown>, isPublic: boolean) => Error;
let Refusal: ErrorClass | undefined;

/** Payload's APIError (a 4xx as a PayloadStockRefusal), loaded when first needed so that using payload-stock
 * outside Payload never loads Payload. */
async function apiError(message: string, status: number, code: string, extra: Record<string, unknown> = {}): Promise<Error> {
  const { APIError } = await import('payload');
  if (status >= 500) return new APIError(message, status, { code, ...extra }, true);
  const RefusalClass: ErrorClass = (Refusal ??= { [REFUSAL_NAME]: class extends APIError {} }[REFUSAL_NAME]);
  return new RefusalClass(message, status, { code, ...extra }, true);
}

function figure(value: unknown): number {
  return typeof value === 'number' ? value : 0;
}

type IsProjection = (req: PayloadRequest | undefined) => boolean;

/** The sizes subfields the plugin owns, in the order it adds them. */
function sizeFields(isProjection: IsProjection): Field[] {
  const sidecarOnly = {
    create: ({ req }: { req: PayloadRequest }) => isProjection(req),
    update: ({ req }: { req: PayloadRequest }) => isProjection(req),
  };
  const readOnly = (description: string) => ({ readOnly: true, description });
  const computed = (compute: (stock: number, reserved: number, threshold: number) => number | boolean): { beforeChange: FieldHook[] } => ({
    beforeChange: [
      async ({ siblingData }) => {
        try {
          return compute(figure(siblingData?.stock), figure(siblingData?.reservedStock), figure(siblingData?.lowStockThreshold));
        } catch (error) {
          const stockError = error as Error & { code?: string };
          throw await apiError(`size ${siblingData?.size ?? '?'}: ${stockError.message}`, 400, stockError.code ?? 'invalid_stock');
        }
      },
    ],
  });
  return [
    { name: 'size', type: 'text', required: true },
    {
      name: 'stock',
      type: 'number',
      min: 0,
      defaultValue: 0,
      access: sidecarOnly,
      admin: readOnly('Units on hand. Written by the stock sidecar: add a stock movement to change it.'),
    },
    {
      name: 'reservedStock',
      type: 'number',
      min: 0,
      defaultValue: 0,
      access: sidecarOnly,
      admin: readOnly('Units held by checkouts in progress.'),
    },
    {
      name: 'lowStockThreshold',
      type: 'number',
      min: 0,
      defaultValue: 0,
      access: sidecarOnly,
      admin: readOnly('Set with a stock movement (its low-stock threshold field).'),
    },
    {
      name: 'availableStock',
      type: 'number',
      admin: readOnly('Stock minus reserved stock.'),
      hooks: computed((stock, reserved) => availableStock(stock, reserved)),
    },
    {
      name: 'isLowStock',
      type: 'checkbox',
      index: true,
      admin: readOnly('Available stock at or below the low-stock threshold.'),
      hooks: computed((stock, reserved, threshold) => isLowStock(stock, reserved, threshold)),
    },
  ];
}

/** The parts of a field the plugin looks at when it finds and copies fields: containers and names. */
type AnyField = { name?: string; type: string; fields?: Field[]; tabs?: Array<{ name?: string; fields?: Field[] }> };

/**
 * Finds the field named `name` among `fields`, looking inside rows, collapsibles and unnamed tabs (which do not
 * nest data), and returns the array holding it with its index.
 */
function findField(fields: Field[], name: string): { fields: Field[]; index: number } | null {
  for (let index = 0; index < fields.length; index += 1) {
    const field = fields[index] as AnyField;
    if (field.name === name) return { fields, index };
    if ((field.type === 'row' || field.type === 'collapsible') && Array.isArray(field.fields)) {
      const found = findField(field.fields, name);
      if (found) return found;
    }
    if (field.type === 'tabs' && Array.isArray(field.tabs)) {
      for (const tab of field.tabs) {
        if (!tab.name && Array.isArray(tab.fields)) {
          const found = findField(tab.fields, name);
          if (found) return found;
        }
      }
    }
  }
  return null;
}

/** A copy of `fields` in which every row, collapsible and tab is a copy too, so that changing them below leaves
 * the shop's config objects untouched. */
function copyContainers(fields: Field[]): Field[] {
  return fields.map((original) => {
    const field = original as AnyField;
    if ((field.type === 'row' || field.type === 'collapsible') && Array.isArray(field.fields)) {
      return { ...field, fields: copyContainers(field.fields) } as Field;
    }
    if (field.type === 'tabs' && Array.isArray(field.tabs)) {
      return { ...field, tabs: field.tabs.map((tab) => (Array.isArray(tab.fields) ? { ...tab, fields: copyContainers(tab.fields) } : tab)) } as Field;
    }
    return original;
  });
}

/** Adds the sizes array to the products collection, or the missing subfields to the shop's own sizes array. */
function addSizes(products: CollectionConfig, isProjection: IsProjection): void {
  products.fields = copyContainers(products.fields ?? []);
  const found = findField(products.fields, 'sizes');
  if (!found) {
    products.fields.push({
      name: 'sizes',
      type: 'array',
      labels: { singular: 'Size', plural: 'Sizes' },
      admin: { description: 'Stock per size, kept by the stock sidecar.' },
      fields: sizeFields(isProjection),
    });
    return;
  }
  const existing = found.fields[found.index] as AnyField;
  if (existing.type !== 'array') {
    throw new Error(`payloadStock: ${products.slug}.sizes is a ${existing.type} field; payload-stock needs an array of sizes`);
  }
  const names = new Set((existing.fields ?? []).map((field) => (field as AnyField).name));
  found.fields[found.index] = {
    ...existing,
    fields: [...(existing.fields ?? []), ...sizeFields(isProjection).filter((field) => !names.has((field as AnyField).name))],
  } as Field;
}

/** The ledger reference of a movement entered in Payload: the form carries it (a hidden field) from when it opens,
 * so a double submit or a retry of the same form sends the same one and the ledger records the movement once. */
/**
 * The admin's answer to a failed call to the sidecar: its own refusals keep their status and code (with `extra`
 * details); a wrong token or an unreachable sidecar is not the admin's mistake: 502 and 503, with a message saying
 * what to check. Anything else is thrown as it is.
 */
async function sidecarRefusal(error: unknown, extra: Record<string, unknown> = {}): Promise<unknown> {
  if (!(error instanceof StockApiError)) return error;
  if (error.status === 401 || error.status === 503) {
    return apiError(`The stock sidecar refused payload-stock's token (${error.code}): sidecarToken must be the sidecar's ADMIN_API_TOKEN.`, 502, error.code);
  }
  if (error.status === 0) {
    return apiError(`Nothing was saved: ${error.message}`, 503, error.code);
  }
  const status = error.status >= 400 && error.status < 500 ? error.status : 502;
  return apiError(error.message, status, error.code, extra);
}

function newSubmissionKey(): string {
  return `payload-${randomUUID()}`;
}

interface AccessRules {
  readMovements: PayloadStockAccess;
  createMovements: PayloadStockAccess;
  readReservations: PayloadStockAccess;
}

/** In a shop on Payload's ecommerce plugin, the variants collection: documents name a variant (null for a product
 * without variants) beside the ledger's size key. */
type VariantsSlug = string | null;

function movementsCollection({
  slug,
  productsSlug,
  variantsSlug,
  client,
  isProjection,
  access,
}: {
  slug: string;
  productsSlug: string;
  variantsSlug: VariantsSlug;
  client: StockClient | null;
  isProjection: IsProjection;
  access: AccessRules;
}): CollectionConfig {
  const recordInLedger: CollectionBeforeChangeHook = async ({ data, req, operation }) => {
    if (isProjection(req)) return variantsSlug ? { ...data, variant: await existingVariant(req, variantsSlug, data.size) } : data;
    if (operation !== 'create') return data;
    if (variantsSlug) {
      // The ledger's key of the variant chosen (none: the product's own stock), checked before the ledger moves.
      const variant = relationId(data.variant);
      const chosen = variant === null || variant === '' ? null : variant;
      const product = relationId(data.product);
      if (chosen !== null) {
        const found = await req.payload.db.findOne({ collection: variantsSlug as never, where: { id: { equals: chosen } }, req });
        if (!found || String(relationId((found as { product?: unknown }).product)) !== String(product)) {
          throw await apiError(`Variant ${String(chosen)} is not a variant of product ${String(product)}.`, 400, 'unknown_variant');
        }
      } else if (product !== null) {
        // A product with variants keeps its stock on them: its own figures are hidden and never sold.
        const found = await req.payload.db.findOne({ collection: productsSlug as never, where: { id: { equals: product } }, req });
        if ((found as { enableVariants?: unknown } | null)?.enableVariants === true) {
          throw await apiError(`Product ${String(product)} has variants: choose the variant whose stock moves.`, 400, 'variant_required');
        }
      }
      data = { ...data, size: chosen === null ? NO_VARIANT : String(chosen) };
    }
    if (data.type === 'sale') {
      throw await apiError('Sales are recorded from Stripe payments, not entered by hand; use an adjustment.', 400, 'sale_not_allowed');
    }
    const product = relationId(data.product);
    const missing = ['size', 'type', 'quantity'].filter((field) => data[field] === undefined || data[field] === null || data[field] === '');
    if (product === null || product === '') missing.unshift('product');
    if (missing.length > 0) {
      throw await apiError(`A stock movement needs ${missing.join(', ')}.`, 400, 'invalid_request', { missing });
    }
    if (!client) {
      throw await apiError('payloadStock: sidecarUrl and sidecarToken are not configured, so stock movements cannot be recorded.', 503, 'sidecar_not_configured');
    }
    // The form's hidden submission key is the ledger's reference: the same form sent twice is recorded once. (The
    // human `reference`, a delivery note number that may cover several sizes, stays a field of the document.)
    const submission = typeof data.submission === 'string' && /^[\x21-\x7e]{1,255}$/.test(data.submission) ? data.submission : newSubmissionKey();
    let recorded;
    try {
      recorded = await client.recordMovement({
        product: String(product),
        ...(variantsSlug ? { variant: data.size === NO_VARIANT ? null : String(data.size) } : { size: String(data.size) }),
        type: data.type,
        quantity: data.quantity,
        reason: data.reason ?? '',
        reference: submission,
        origin: 'payload',
        ...(typeof data.lowStockThreshold === 'number' ? { lowStockThreshold: data.lowStockThreshold } : {}),
      });
    } catch (error) {
      throw await sidecarRefusal(error, error instanceof StockApiError && error.body?.currentStock !== undefined ? { currentStock: error.body.currentStock } : {});
    }
    // The same form again (the ledger answered its first movement): its document is saved already.
    await refuseIfSaved(req, String(recorded.id));
    return {
      ...data,
      product,
      submission,
      reason: data.reason ?? recorded.reason,
      stockBefore: recorded.stockBefore,
      stockAfter: recorded.stockAfter,
      date: recorded.date,
      idempotencyKey: String(recorded.id),
    };
  };

  /** Refuses with 409 when the document of ledger movement `id` exists: the form was sent before. */
  async function refuseIfSaved(req: PayloadRequest, id: string): Promise<void> {
    const found = await req.payload.find({
      collection: slug as never,
      where: { idempotencyKey: { equals: id } },
      limit: 1,
      depth: 0,
      pagination: false,
      overrideAccess: true,
      req,
    });
    if (found.docs.length > 0) {
      const document = (found.docs[0] as { id: string | number }).id;
      throw await apiError(`This movement was recorded already (document ${document}); nothing was recorded again.`, 409, 'movement_already_recorded', { document });
    }
  }

  return {
    slug,
    labels: { singular: 'Stock movement', plural: 'Stock movements' },
    admin: {
      group: 'Stock',
      useAsTitle: 'reason',
      defaultColumns: ['product', variantsSlug ? 'variant' : 'size', 'type', 'quantity', 'stockAfter', 'date'],
      description: 'The stock ledger. Add a restock, return or adjustment here; sales come from Stripe payments.',
    },
    access: {
      // A shop's rule may answer a query (a Where) rather than true or false: it is passed on as it is.
      read: async (args) => isProjection(args.req) || access.readMovements(args),
      create: async (args) => isProjection(args.req) || access.createMovements(args),
      // The ledger is append-only: a mistake is corrected with another movement. Only the projection may rewrite
      // a document to what the ledger holds (reconcile --fix, or a document that was forged before it).
      update: ({ req }) => isProjection(req),
      delete: () => false,
    },
    hooks: { beforeChange: [recordInLedger] },
    defaultSort: '-date',
    fields: [
      { name: 'product', type: 'relationship', relationTo: productsSlug as never, required: true, index: true },
      ...variantField(variantsSlug, 'The variant whose stock moves; none for a product without variants.'),
      variantsSlug
        ? { name: 'size', type: 'text', index: true, admin: { readOnly: true, description: "The ledger's key: the variant's id, or (no variant)." } }
        : { name: 'size', type: 'text', required: true },
      {
        name: 'type',
        type: 'select',
        required: true,
        defaultValue: 'restock',
        options: MOVEMENT_TYPES.map((value) => ({ label: value[0].toUpperCase() + value.slice(1), value })),
      },
      { name: 'quantity', type: 'number', required: true, admin: { description: 'Units: a restock or a return adds (positive), an adjustment adds or removes.' } },
      { name: 'stockBefore', type: 'number', admin: { readOnly: true } },
      { name: 'stockAfter', type: 'number', admin: { readOnly: true } },
      { name: 'lowStockThreshold', type: 'number', min: 0, admin: { description: "Optional: sets the size's low-stock threshold with this movement." } },
      { name: 'reason', type: 'text' },
      { name: 'reference', type: 'text', index: true, admin: { description: 'A delivery note or order number, for people: several movements may share one.' } },
      {
        name: 'submission',
        type: 'text',
        index: true,
        defaultValue: newSubmissionKey,
        // A copy of a movement is another movement: it gets a key of its own.
        hooks: { beforeDuplicate: [() => newSubmissionKey()] },
        admin: { hidden: true, description: 'The ledger reference of this entry: the same form sent twice is recorded once.' },
      },
      { name: 'orderReference', type: 'text', index: true },
      { name: 'date', type: 'date', index: true, admin: { readOnly: true, date: { pickerAppearance: 'dayAndTime' } } },
      { name: 'idempotencyKey', type: 'text', unique: true, admin: { readOnly: true, description: "The ledger movement's id." } },
    ],
  };
}

function reservationsCollection({
  slug,
  productsSlug,
  variantsSlug,
  checkout,
  isProjection,
  access,
}: {
  slug: string;
  productsSlug: string;
  variantsSlug: VariantsSlug;
  /** Fields naming the checkout of each reservation (a shop on Payload's ecommerce plugin). */
  checkout: Field[];
  isProjection: IsProjection;
  access: AccessRules;
}): CollectionConfig {
  // The sidecar writes each item's size key; the document names the variant too, while it exists.
  const nameVariants: CollectionBeforeChangeHook = async ({ data, req }) =>
    variantsSlug && Array.isArray(data.items)
      ? {
          ...data,
          items: await Promise.all(data.items.map(async (item: Record<string, unknown>) => ({ ...item, variant: await existingVariant(req, variantsSlug, item?.size) }))),
        }
      : data;
  return {
    slug,
    labels: { singular: 'Stock reservation', plural: 'Stock reservations' },
    admin: {
      group: 'Stock',
      useAsTitle: 'reference',
      defaultColumns: ['reference', 'status', 'expiresAt', 'reservedAt'],
      description: 'Checkouts holding stock, written by the stock sidecar (read-only).',
    },
    access: {
      read: async (args) => isProjection(args.req) || access.readReservations(args),
      create: ({ req }) => isProjection(req),
      update: ({ req }) => isProjection(req),
      delete: ({ req }) => isProjection(req),
    },
    defaultSort: '-reservedAt',
    hooks: { beforeChange: [nameVariants] },
    fields: [
      { name: 'reference', type: 'text', required: true, unique: true, admin: { description: 'The PaymentIntent or Checkout Session id.' } },
      { name: 'status', type: 'select', required: true, index: true, options: RESERVATION_STATUSES.map((value) => ({ label: value, value })) },
      { name: 'expiresAt', type: 'date', admin: { date: { pickerAppearance: 'dayAndTime' } } },
      { name: 'reservedAt', type: 'date', admin: { date: { pickerAppearance: 'dayAndTime' } } },
      ...checkout,
      {
        name: 'payment',
        type: 'group',
        admin: {
          description:
            "What came back of the payment after it was taken, from Stripe's refund and dispute events. Money only: units come back through a return.",
        },
        fields: [
          { name: 'paymentIntent', type: 'text', index: true },
          { name: 'amount', type: 'number', admin: { description: "Charged, in the currency's smallest unit (cents); 0 until a charge event tells it." } },
          { name: 'refunded', type: 'number', admin: { description: "Refunded so far, in the currency's smallest unit." } },
          { name: 'dispute', type: 'select', options: ['open', 'won', 'lost'].map((value) => ({ label: value, value })) },
        ],
      },
      {
        name: 'items',
        type: 'array',
        fields: [
          { name: 'product', type: 'relationship', relationTo: productsSlug as never },
          ...variantField(variantsSlug),
          { name: 'size', type: 'text' },
          { name: 'quantity', type: 'number' },
        ],
      },
    ],
  };
}

const RETURN_REASONS = [
  { label: 'Returned (back on sale)', value: 'returned' },
  { label: 'Cancelled before shipping (back on sale)', value: 'cancelled' },
  { label: 'Returned damaged (not back on sale)', value: 'damaged' },
];

/**
 * Returns and cancellations of paid reservations, entered in the admin panel: each is recorded in the ledger
 * first (once per return id, never more units back than were sold), then saved; its restocked lines reach
 * stock-movements as `return` movements through the projection. Append-only, like the ledger.
 */
function returnsCollection({
  slug,
  reservationsSlug,
  productsSlug,
  variantsSlug,
  client,
  access,
}: {
  slug: string;
  reservationsSlug: string;
  productsSlug: string;
  variantsSlug: VariantsSlug;
  client: StockClient | null;
  access: AccessRules;
}): CollectionConfig {
  const recordInLedger: CollectionBeforeChangeHook = async ({ data, req, operation }) => {
    if (operation !== 'create') return data;
    const reservationId = relationId(data.reservation);
    const lines: Array<Record<string, unknown>> = Array.isArray(data.lines) ? data.lines : [];
    if (reservationId === null || reservationId === '' || lines.length === 0) {
      throw await apiError('A return needs the paid reservation and at least one line.', 400, 'invalid_request');
    }
    const reservation = await req.payload.db.findOne({ collection: reservationsSlug as never, where: { id: { equals: reservationId } }, req });
    const reference = (reservation as { reference?: unknown } | null)?.reference;
    if (typeof reference !== 'string') {
      throw await apiError(`Reservation ${String(reservationId)} does not exist.`, 400, 'reservation_not_found');
    }
    if (!client) {
      throw await apiError('payloadStock: sidecarUrl and sidecarToken are not configured, so returns cannot be recorded.', 503, 'sidecar_not_configured');
    }
    // The return's id (an RMA number the admin typed, else the form's own key) keys it in the ledger: the same form
    // sent twice is recorded once.
    const typed = typeof data.returnId === 'string' && data.returnId !== '' ? data.returnId : null;
    if (typed !== null && !/^[\x21-\x7e]{1,255}$/.test(typed)) {
      throw await apiError('The return id must be 1 to 255 visible characters without spaces, such as RMA-1001.', 400, 'invalid_request');
    }
    const returnId = typed ?? newSubmissionKey();
    // Payload keeps one document per return id, while the ledger keys returns by reservation: an id already saved
    // is refused before the ledger moves (the same return again, or another order's RMA number).
    const saved = await req.payload.db.findOne({ collection: slug as never, where: { returnId: { equals: returnId } }, req });
    if (saved) {
      const document = (saved as { id: string | number }).id;
      const same = (saved as { reference?: unknown }).reference === reference;
      throw await apiError(
        same
          ? `Return ${returnId} was recorded already (document ${document}); nothing was recorded again.`
          : `Return id ${returnId} is already used by another order's return (document ${document}); use another id.`,
        409,
        same ? 'return_already_recorded' : 'return_id_taken',
        { document },
      );
    }
    const asked = lines.map((line) => {
      const variant = relationId(line.variant);
      return {
        product: String(relationId(line.product)),
        ...(variantsSlug ? { variant: variant === null || variant === '' ? null : String(variant) } : { size: String(line.size ?? '') }),
        quantity: line.quantity as number,
        reason: (line.reason ?? 'returned') as ReturnReason,
      };
    });
    let recorded;
    try {
      recorded = await client.recordReturn(reference, { returnId, lines: asked });
    } catch (error) {
      throw await sidecarRefusal(error, error instanceof StockApiError && error.body?.errors ? { errors: error.body.errors } : {});
    }
    // Not created: the ledger recorded this return before and its document was never saved (Payload failed after
    // the ledger answered); it is saved now.
    return {
      ...data,
      reservation: reservationId,
      reference,
      returnId,
      recordedAt: recorded.return.createdAt,
      lines: lines.map((line, index) => ({ ...line, restocked: recorded.return.lines[index]?.restocked ?? 0 })),
    };
  };
  return {
    slug,
    labels: { singular: 'Stock return', plural: 'Stock returns' },
    admin: {
      group: 'Stock',
      useAsTitle: 'returnId',
      defaultColumns: ['returnId', 'reference', 'recordedAt'],
      description:
        'Units of a paid order coming back: returned or cancelled ones go back on sale (a return movement), damaged ones are recorded without. Never more than the order sold; a refund alone puts nothing back.',
    },
    access: {
      read: async (args) => access.readMovements(args),
      create: async (args) => access.createMovements(args),
      // Append-only, like the ledger: a mistake is corrected with an adjustment.
      update: () => false,
      delete: () => false,
    },
    hooks: { beforeChange: [recordInLedger] },
    defaultSort: '-recordedAt',
    fields: [
      {
        name: 'reservation',
        type: 'relationship',
        relationTo: reservationsSlug as never,
        required: true,
        // Only a paid reservation sold units that may come back.
        filterOptions: { status: { equals: 'committed' } },
        admin: { description: 'The paid checkout the units come from.' },
      },
      {
        name: 'returnId',
        type: 'text',
        required: true,
        unique: true,
        defaultValue: newSubmissionKey,
        hooks: { beforeDuplicate: [() => newSubmissionKey()] },
        admin: { description: 'The return\'s id (an RMA number, or the one made for this form): the same return sent twice is recorded once.' },
      },
      { name: 'reference', type: 'text', index: true, admin: { readOnly: true, description: 'The PaymentIntent or Checkout Session id.' } },
      {
        name: 'lines',
        type: 'array',
        required: true,
        minRows: 1,
        fields: [
          { name: 'product', type: 'relationship', relationTo: productsSlug as never, required: true },
          ...variantField(variantsSlug, 'The variant sold; none for a product without variants.'),
          ...(variantsSlug ? [] : [{ name: 'size', type: 'text', required: true } as Field]),
          { name: 'quantity', type: 'number', required: true, min: 1 },
          { name: 'reason', type: 'select', required: true, defaultValue: 'returned', options: RETURN_REASONS },
          { name: 'restocked', type: 'number', admin: { readOnly: true, description: 'Units put back on sale.' } },
        ],
      },
      { name: 'note', type: 'textarea' },
      { name: 'recordedAt', type: 'date', admin: { readOnly: true, date: { pickerAppearance: 'dayAndTime' } } },
    ],
  };
}

/** The variant a ledger size key names, as the relationship takes it, or null when it names none or the variant was
 * deleted (a document of the ledger's must still be written: the key stays in `size`). */
async function existingVariant(req: PayloadRequest, variantsSlug: string, size: unknown): Promise<string | number | null> {
  const variant = variantValue(size);
  if (variant === null) return null;
  const found = await req.payload.db.findOne({ collection: variantsSlug as never, where: { id: { equals: variant } }, req });
  return found ? variant : null;
}

/** The `variant` relationship of a shop on Payload's ecommerce plugin (none in a sizes shop). */
function variantField(variantsSlug: VariantsSlug, description?: string): Field[] {
  if (!variantsSlug) return [];
  return [
    {
      name: 'variant',
      type: 'relationship',
      relationTo: variantsSlug as never,
      index: true,
      // Only the chosen product's variants are offered.
      filterOptions: ({ siblingData }) => {
        const product = relationId((siblingData as { product?: unknown } | undefined)?.product);
        return product === null || product === '' ? true : { product: { equals: product } };
      },
      ...(description ? { admin: { description } } : {}),
    } as Field,
  ];
}

/**
 * The payload-stock plugin for `plugins: [payloadStock({...})]` in a Payload 3 config. `sidecarToken` is the
 * sidecar's ADMIN_API_TOKEN: stock movements are admin operations, and the projection's proof is derived from it.
 * `access` replaces who may read and enter movements and read reservations (default: users who may open the admin
 * panel); the sidecar's projection may always.
 */
export function payloadStock(options: PayloadStockOptions = {}): Plugin {
  const {
    sidecarUrl,
    sidecarToken,
    sidecarApiToken,
    ecommerce,
    productsSlug = 'products',
    movementsSlug = 'stock-movements',
    reservationsSlug = 'stock-reservations',
    returnsSlug = 'stock-returns',
    timeoutMs,
    access = {},
  } = options;
  const client = sidecarUrl && sidecarToken ? createStockClient({ url: sidecarUrl, token: sidecarToken, timeoutMs }) : null;
  const isProjection: IsProjection = (req) => isProjectionRequest(req, sidecarToken);
  for (const [name, rule] of Object.entries(access)) {
    if (!['readMovements', 'createMovements', 'readReservations'].includes(name) || typeof rule !== 'function') {
      throw new Error(`payloadStock: access.${name} is not one of readMovements, createMovements, readReservations as a function ({ req }) => boolean`);
    }
  }
  const rules: AccessRules = { readMovements: mayOpenAdmin, createMovements: mayOpenAdmin, readReservations: mayOpenAdmin, ...access };
  return (incomingConfig: Config): Config => {
    const config: Config = { ...incomingConfig, collections: [...(incomingConfig.collections ?? [])] };
    const collections = config.collections as CollectionConfig[];
    const index = collections.findIndex((collection) => collection.slug === productsSlug);
    if (index === -1) {
      throw new Error(
        `payloadStock: there is no collection with the slug "${productsSlug}"; pass productsSlug with your products collection's slug (and put payloadStock after any plugin that adds it)`,
      );
    }
    // The plugin's 4xx refusals are answers to the admin, not server failures: info, unless the shop says otherwise.
    // (Payload's type lists its own error names only; it looks any error's name up at run time.)
    config.loggingLevels = { [REFUSAL_NAME]: 'info', ...(config.loggingLevels ?? {}) } as Config['loggingLevels'];
    const ecommerceOptions: EcommerceStockOptions | null =
      ecommerce === false ? null : typeof ecommerce === 'object' ? ecommerce : ecommerce === true || isEcommerceShop(config, productsSlug, 'variants') ? {} : null;
    const variantsSlug: VariantsSlug = ecommerceOptions ? (ecommerceOptions.variantsSlug ?? 'variants') : null;
    if (ecommerceOptions) {
      const api = sidecarUrl && sidecarApiToken ? createStockClient({ url: sidecarUrl, token: sidecarApiToken, timeoutMs }) : null;
      addEcommerceStock(config, { productsSlug, options: ecommerceOptions, api, admin: client, isProjection, staff: rules.readReservations });
    } else {
      const products = { ...collections[index] };
      addSizes(products, isProjection);
      collections[index] = products;
    }
    collections.push(
      movementsCollection({ slug: movementsSlug, productsSlug, variantsSlug, client, isProjection, access: rules }),
      reservationsCollection({
        slug: reservationsSlug,
        productsSlug,
        variantsSlug,
        checkout: ecommerceOptions ? checkoutFields(ecommerceOptions) : [],
        isProjection,
        access: rules,
      }),
      returnsCollection({ slug: returnsSlug, reservationsSlug, productsSlug, variantsSlug, client, access: rules }),
    );
    if (!client) {
      const onInit = config.onInit;
      config.onInit = async (payload) => {
        if (onInit) await onInit(payload);
        payload.logger.warn("payloadStock: sidecarUrl or sidecarToken is not set; stock movements entered in Payload will be refused, and so are the sidecar's writes");
      };
    }
    return config;
  };
}
