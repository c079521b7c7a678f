// Benchmark: how long after the sidecar answers Stripe's payment_intent.succeeded webhook a real Payload shows the
// sale (the product's sizes and the sale's stock-movements document), one purchase at a time, and how long Payload
// takes to catch up after a burst. Prints markdown tables.
// Run: node bench/projection-lag.mjs [path to a release stock-sidecar] (bash scripts/bench.sh passes it).
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createStockClient } from '../js-shim/dist/client.js';

const here = dirname(fileURLToPath(import.meta.url));
process.env.STOCK_SIDECAR_BIN = process.argv[2] ?? process.env.STOCK_SIDECAR_BIN ?? join(here, '..', 'target', 'release', 'stock-sidecar');
const { sendStripeEvent, startShop, stripeEvent } = await import('../scripts/shop/harness.mjs');

const SEQUENTIAL = Number(process.env.BENCH_PURCHASES ?? 200);
const BURST = Number(process.env.BENCH_BURST ?? 300);
const BURST_CLIENTS = 16;

const shop = await startShop();
const client = createStockClient({ url: shop.sidecar.base, token: shop.sidecar.apiToken });
const product = await shop.createProduct('Benchmark runner', ['42']);
await shop.sidecarPost('/v1/movements', { product, size: '42', type: 'restock', quantity: 100_000, reason: 'Benchmark stock' });
await shop.projected();

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** Polls Payload until it shows `reference`'s sale document and the product's stock at `stock`. */
async function payloadShows(reference, stock) {
  for (;;) {
    const sale = await shop.api.get(`/stock-movements?depth=0&limit=1&where[reference][equals]=${reference}`);
    if (sale.body?.docs?.length === 1) {
      const sizes = await shop.api.sizes(product);
      if (sizes['42'].stock === stock) return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

let stock = 100_000;
const lags = [];
for (let index = 0; index < SEQUENTIAL; index++) {
  const reference = `pi_lag_${index}`;
  await client.reserve({ reference, items: [{ product, size: '42', quantity: 1 }] });
  // A customer takes seconds to pay: the reservation reaches Payload before the payment does.
  await shop.projected();
  const answer = await sendStripeEvent(shop.sidecar.base, stripeEvent('payment_intent.succeeded', reference));
  const answered = performance.now();
  if (answer.status !== 200) throw new Error(`webhook answered ${answer.status}`);
  stock -= 1;
  await payloadShows(reference, stock);
  lags.push(performance.now() - answered);
}
lags.sort((a, b) => a - b);

// A burst: BURST purchases from BURST_CLIENTS clients at once; then how long until Payload shows all of them.
let next = 0;
const burstStart = performance.now();
await Promise.all(
  Array.from({ length: BURST_CLIENTS }, async () => {
    while (next < BURST) {
      const reference = `pi_burst_${next++}`;
      await client.reserve({ reference, items: [{ product, size: '42', quantity: 1 }] });
      const answer = await sendStripeEvent(shop.sidecar.base, stripeEvent('payment_intent.succeeded', reference));
      if (answer.status !== 200) throw new Error(`webhook answered ${answer.status}`);
    }
  }),
);
const lastAnswer = performance.now();
const { body: afterBurst } = await shop.sidecarGet('/readyz');
await shop.projected(300_000);
const caughtUp = performance.now();
stock -= BURST;
const shown = (await shop.api.sizes(product))['42'];
const sales = await shop.api.get(`/stock-movements?depth=0&limit=1&where[type][equals]=sale`);
await shop.stop();

const ms = (value) => value.toFixed(1);
console.log(`\n### Projection lag: webhook answered -> Payload shows the sale (${SEQUENTIAL} purchases, one at a time)\n`);
console.log('| median | p90 | p99 | max |');
console.log('| ---: | ---: | ---: | ---: |');
console.log(`| ${ms(percentile(lags, 50))} ms | ${ms(percentile(lags, 90))} ms | ${ms(percentile(lags, 99))} ms | ${ms(lags[lags.length - 1])} ms |`);
console.log(`\n### Burst: ${BURST} purchases from ${BURST_CLIENTS} clients\n`);
console.log('| purchases/s answered | backlog at the last answer | Payload caught up after the last answer | Payload stock right | sale documents |');
console.log('| ---: | ---: | ---: | :---: | ---: |');
console.log(`| ${ms(BURST / ((lastAnswer - burstStart) / 1000))} | ${afterBurst.payloadProjection.backlog} | ${ms(caughtUp - lastAnswer)} ms | ${shown.stock === stock ? 'yes' : `NO (${shown.stock} vs ${stock})`} | ${sales.body.totalDocs} |`);
