// The fault run: thousands of reservations and their Stripe events against the real sidecar and a real Payload,
// with redeliveries, shuffled order, concurrent clients, the sidecar killed with SIGKILL and restarted, and Payload
// stopped and restarted. At the end every figure is checked against what the scripted events must give, computed
// here without asking the sidecar. Run by tests/e2e/fault.e2e.test.mjs (on SQLite, and on PostgreSQL when the
// test command has a server); by hand, longer, with FAULT_DATABASE_URL=postgres://... for PostgreSQL:
//   FAULT_RESERVATIONS=20000 node tests/e2e/fault-run.mjs
import { pathToFileURL } from 'node:url';
import { createStockClient, StockApiError } from 'payload-stock/client';
import { sendStripeEvent, sidecarCommand, startShop, stripeEvent } from '../../scripts/shop/harness.mjs';

/** A small seeded generator (mulberry32), so that a failing run can be replayed with its seed. */
function random(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What happens to a reservation, the events Stripe sends for it (in an order Stripe may use), and its end. */
const FATES = [
  { name: 'paid', weight: 35, kind: 'pi', events: [['payment_intent.succeeded']], status: 'committed' },
  { name: 'failed then paid', weight: 10, kind: 'pi', events: [['payment_intent.payment_failed', 'payment_intent.succeeded'], ['payment_intent.succeeded', 'payment_intent.payment_failed']], status: 'committed' },
  { name: 'processing then paid', weight: 5, kind: 'pi', events: [['payment_intent.processing', 'payment_intent.succeeded'], ['payment_intent.succeeded', 'payment_intent.processing']], status: 'committed' },
  { name: 'canceled', weight: 15, kind: 'pi', events: [['payment_intent.canceled']], status: 'released' },
  { name: 'failed, not retried yet', weight: 5, kind: 'pi', events: [['payment_intent.payment_failed']], status: 'active' },
  { name: 'checkout paid', weight: 15, kind: 'cs', events: [['checkout.session.completed']], status: 'committed' },
  { name: 'checkout expired', weight: 10, kind: 'cs', events: [['checkout.session.expired']], status: 'released' },
  { name: 'abandoned', weight: 5, kind: 'pi', events: [[]], status: 'active' },
];

function pick(next, choices) {
  const total = choices.reduce((sum, choice) => sum + choice.weight, 0);
  let roll = next() * total;
  for (const choice of choices) {
    roll -= choice.weight;
    if (roll < 0) return choice;
  }
  return choices[choices.length - 1];
}

function shuffle(next, items) {
  for (let index = items.length - 1; index > 0; index--) {
    const other = Math.floor(next() * (index + 1));
    [items[index], items[other]] = [items[other], items[index]];
  }
  return items;
}

/** Runs `work` over `items` with `concurrency` workers; `onProgress(done)` after each. */
async function inParallel(items, concurrency, work, onProgress) {
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++];
        await work(item);
        done += 1;
        await onProgress?.(done);
      }
    }),
  );
}

/** Calls `attempt` until it gives an answer, as a client does when the server was killed under it. */
async function untilAnswered(attempt, counters) {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      const unreachable = error instanceof StockApiError ? error.status === 0 || error.status >= 500 : true;
      if (!unreachable || tries > 600) throw error;
      counters.retriedRequests += 1;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

export async function runFaultRun({ reservations = 2000, products = 4, sizesPerProduct = 8, unitsPerSize, concurrency = 8, redeliveryRate = 0.35, seed = 20261124, databaseUrl, log = () => {} } = {}) {
  // About 2.1 units per sizes' share of the reservations: most are accepted, the last ones run short of stock.
  unitsPerSize ??= Math.ceil((reservations * 2.1) / (products * sizesPerProduct));
  const next = random(seed);
  const counters = { retriedRequests: 0, kills: 0, payloadOutageMs: 0, deliveries: 0, redeliveries: 0, refused: 0 };
  const started = performance.now();
  const shop = await startShop({ databaseUrl });
  try {
    const client = createStockClient({ url: shop.sidecar.base, token: shop.sidecar.apiToken, timeoutMs: 5_000 });

    // The catalogue: products with sizes, each restocked through the ledger.
    const sizes = [];
    for (let p = 0; p < products; p++) {
      const labels = Array.from({ length: sizesPerProduct }, (_, index) => String(36 + index));
      const product = await shop.createProduct(`Fault ${p}`, labels);
      for (const size of labels) {
        const { status } = await shop.sidecarPost('/v1/movements', { product, size, type: 'restock', quantity: unitsPerSize, reason: 'Fault run stock' });
        if (status !== 201) throw new Error(`restock answered ${status}`);
        sizes.push({ product, size });
      }
    }
    const key = ({ product, size }) => `${product}/${size}`;

    // The script: every reservation with its items and fate.
    const script = Array.from({ length: reservations }, (_, index) => {
      const fate = pick(next, FATES);
      const lines = new Map();
      const count = 1 + Math.floor(next() * 2);
      for (let line = 0; line < count; line++) {
        const size = sizes[Math.floor(next() * sizes.length)];
        lines.set(key(size), { ...size, quantity: (lines.get(key(size))?.quantity ?? 0) + 1 + Math.floor(next() * 2) });
      }
      const reference = `${fate.kind === 'cs' ? 'cs_test_fault' : 'pi_fault'}_${seed}_${index}`;
      const order = fate.events[Math.floor(next() * fate.events.length)];
      return { reference, fate, items: [...lines.values()], order, accepted: false };
    });

    // Phase 1: reservations from concurrent clients; the sidecar is killed once halfway.
    const killAt = Math.floor(reservations / 2);
    await inParallel(script, concurrency, async (entry) => {
      try {
        await untilAnswered(() => client.reserve({ reference: entry.reference, items: entry.items.map(({ product, size, quantity }) => ({ product, size, quantity })) }), counters);
        entry.accepted = true;
      } catch (error) {
        if (error instanceof StockApiError && error.code === 'insufficient_stock') {
          counters.refused += 1;
          return;
        }
        throw error;
      }
    }, async (done) => {
      if (done === killAt) {
        log(`killing the sidecar (SIGKILL) after ${done} reservations`);
        await shop.killSidecar();
        counters.kills += 1;
        await shop.restartSidecar();
      }
    });

    // Phase 2: the events of the accepted reservations, each delivered once or more (same event id), shuffled
    // across reservations with each reservation's own events in their scripted order.
    const accepted = script.filter((entry) => entry.accepted);
    const deliveries = [];
    for (const entry of accepted) {
      entry.order.forEach((type, position) => {
        const fixture = type === 'checkout.session.completed' ? 'checkout.session.completed' : type;
        const payload = stripeEvent(fixture, entry.reference);
        deliveries.push({ entry, position, payload });
        while (next() < redeliveryRate) {
          deliveries.push({ entry, position, payload, redelivery: true });
          counters.redeliveries += 1;
        }
      });
    }
    shuffle(next, deliveries);
    // Keep each reservation's first deliveries in their scripted order (a redelivery may come at any time).
    const byEntry = new Map();
    for (const delivery of deliveries.filter((item) => !item.redelivery)) {
      if (!byEntry.has(delivery.entry)) byEntry.set(delivery.entry, []);
      byEntry.get(delivery.entry).push(delivery);
    }
    for (const list of byEntry.values()) {
      const slots = list.map((item) => deliveries.indexOf(item)).sort((a, b) => a - b);
      list.sort((a, b) => a.position - b.position).forEach((item, index) => {
        deliveries[slots[index]] = item;
      });
    }
    counters.deliveries = deliveries.length;

    const killsAt = new Set([Math.floor(deliveries.length / 3), Math.floor((2 * deliveries.length) / 3)]);
    const payloadDownAt = Math.floor(deliveries.length * 0.4);
    const payloadUpAt = Math.floor(deliveries.length * 0.7);
    let payloadDownSince = 0;
    const acknowledged = [];
    await inParallel(deliveries, concurrency, async (delivery) => {
      const answer = await untilAnswered(async () => {
        const result = await sendStripeEvent(shop.sidecar.base, delivery.payload);
        if (result.status >= 500) throw new Error(`webhook answered ${result.status}`);
        return result;
      }, counters);
      if (answer.status !== 200) throw new Error(`webhook answered ${answer.status}: ${JSON.stringify(answer.body)}`);
      acknowledged.push(delivery.payload);
    }, async (done) => {
      if (killsAt.has(done)) {
        log(`killing the sidecar (SIGKILL) after ${done} deliveries`);
        await shop.killSidecar();
        counters.kills += 1;
        await shop.restartSidecar();
      }
      if (done === payloadDownAt) {
        log(`stopping Payload after ${done} deliveries`);
        payloadDownSince = performance.now();
        await shop.stopPayload();
      }
      if (done === payloadUpAt) {
        await shop.startPayload();
        counters.payloadOutageMs = performance.now() - payloadDownSince;
        log(`Payload back after ${(counters.payloadOutageMs / 1000).toFixed(1)} s`);
      }
    });
    if (!shop.payload) await shop.startPayload();

    // The expectation, from the script alone.
    const expected = new Map(sizes.map((size) => [key(size), { stock: unitsPerSize, reserved: 0 }]));
    let committedItems = 0;
    for (const entry of accepted) {
      for (const item of entry.items) {
        const figures = expected.get(key(item));
        if (entry.fate.status === 'committed') {
          figures.stock -= item.quantity;
          committedItems += 1;
        }
        if (entry.fate.status === 'active') figures.reserved += item.quantity;
      }
    }

    // The findings.
    const mismatches = [];
    let negative = 0;
    for (const size of sizes) {
      const { body } = await shop.sidecarGet(`/v1/products/${size.product}/stock`);
      const shown = body.sizes.find((row) => row.size === size.size);
      const want = expected.get(key(size));
      if (shown.stock < 0) negative += 1;
      if (shown.stock !== want.stock || shown.reservedStock !== want.reserved) {
        mismatches.push(`ledger ${key(size)}: stock ${shown.stock} reserved ${shown.reservedStock}, expected ${want.stock} / ${want.reserved}`);
      }
    }
    let statusMismatches = 0;
    await inParallel(accepted, concurrency, async (entry) => {
      const reservation = await client.get(entry.reference);
      if (reservation?.status !== entry.fate.status) {
        statusMismatches += 1;
        if (statusMismatches <= 10) mismatches.push(`${entry.reference} (${entry.fate.name}): ${reservation?.status}, expected ${entry.fate.status}`);
      }
    });
    // Every event that was acknowledged was recorded as processed: delivering it again changes nothing.
    let notRecorded = 0;
    await inParallel([...new Set(acknowledged)], concurrency, async (payload) => {
      const answer = await sendStripeEvent(shop.sidecar.base, payload);
      if (answer.body.duplicate !== true) notRecorded += 1;
    });
    if (notRecorded > 0) mismatches.push(`${notRecorded} acknowledged event(s) were not recorded as processed`);

    // Payload shows exactly the ledger.
    await shop.projected(600_000);
    for (const size of sizes) {
      const row = (await shop.api.sizes(size.product))[size.size];
      const want = expected.get(key(size));
      if (row.stock !== want.stock || row.reservedStock !== want.reserved || row.availableStock !== want.stock - want.reserved) {
        mismatches.push(`Payload ${key(size)}: ${row.stock}/${row.reservedStock}/${row.availableStock}, expected ${want.stock}/${want.reserved}`);
      }
    }
    const sales = [];
    for (let page = 1; ; page++) {
      const { body } = await shop.api.get(`/stock-movements?depth=0&limit=1000&page=${page}&where[type][equals]=sale&select[reference]=true&select[size]=true&select[product]=true`);
      sales.push(...body.docs);
      if (!body.hasNextPage) break;
    }
    const saleKeys = new Set(sales.map((doc) => `${doc.reference}|${doc.product}|${doc.size}`));
    const duplicateSales = sales.length - saleKeys.size;
    if (sales.length !== committedItems) mismatches.push(`Payload has ${sales.length} sale documents, expected ${committedItems}`);
    if (duplicateSales > 0) mismatches.push(`${duplicateSales} duplicate sale document(s)`);
    if (negative > 0) mismatches.push(`${negative} size(s) below zero`);
    const reconcile = await sidecarCommand(shop, ['reconcile']);
    if (reconcile.code !== 0) mismatches.push(`reconcile found differences:\n${reconcile.stdout}`);

    return {
      seed,
      reservations,
      accepted: accepted.length,
      refused: counters.refused,
      sizes: sizes.length,
      events: deliveries.length - counters.redeliveries,
      deliveries: counters.deliveries,
      redeliveries: counters.redeliveries,
      kills: counters.kills,
      retriedRequests: counters.retriedRequests,
      payloadOutageSeconds: counters.payloadOutageMs / 1000,
      committedItems,
      saleDocuments: sales.length,
      duplicateSales,
      negative,
      statusMismatches,
      mismatches,
      seconds: (performance.now() - started) / 1000,
    };
  } finally {
    await shop.stop();
  }
}

/** The report as markdown tables. */
export function reportTables(report) {
  return [
    '| reservations | accepted | refused (no stock) | sizes | events | deliveries | redeliveries | SIGKILLs | requests retried | Payload outage |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${report.reservations} | ${report.accepted} | ${report.refused} | ${report.sizes} | ${report.events} | ${report.deliveries} | ${report.redeliveries} (${((100 * report.redeliveries) / report.events).toFixed(0)}%) | ${report.kills} | ${report.retriedRequests} | ${report.payloadOutageSeconds.toFixed(1)} s |`,
    '',
    '| sold items | sale documents in Payload | duplicate documents | sizes below zero | reservation states wrong | other mismatches | run time |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    `| ${report.committedItems} | ${report.saleDocuments} | ${report.duplicateSales} | ${report.negative} | ${report.statusMismatches} | ${report.mismatches.length} | ${report.seconds.toFixed(0)} s |`,
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const report = await runFaultRun({
    reservations: Number(process.env.FAULT_RESERVATIONS ?? 2000),
    seed: Number(process.env.FAULT_SEED ?? 20261124),
    databaseUrl: process.env.FAULT_DATABASE_URL,
    log: (line) => console.error(line),
  });
  console.log(reportTables(report));
  for (const mismatch of report.mismatches) console.log(`MISMATCH ${mismatch}`);
  process.exitCode = report.mismatches.length === 0 ? 0 : 1;
}
