// Benchmark: K concurrent checkouts of one variant with 50 in stock on a shop built on Payload's ecommerce plugin,
// side by side in the same run: the ecommerce plugin alone, and with payload-stock added after it (the sidecar
// with PAYLOAD_SHOP=ecommerce). Each checkout is a guest's, as the ecommerce template's browser makes it: a cart,
// the payment start, paying at Stripe (the local fake of scripts/shop/fake-stripe.mjs), confirm-order. All K start
// at once.
// Prints a markdown table: orders created, units oversold, the final `inventory` Payload shows, and the time per
// checkout (its four calls, from the cart to the order or the refusal). A second table: how long after a payment
// start's answer Payload's `inventory` shows the units it holds (payment starts one after the other, the shop
// otherwise idle). Run: node bench/ecommerce-checkouts.mjs
// [stock-sidecar binary] (default target/release/stock-sidecar; BENCH_CHECKOUTS=100,500 and BENCH_STOCK=50 change
// the sizes).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const release = join(here, '..', 'target', 'release', 'stock-sidecar');
process.env.STOCK_SIDECAR_BIN = process.argv[2] ?? process.env.STOCK_SIDECAR_BIN ?? (existsSync(release) ? release : join(here, '..', 'target', 'debug', 'stock-sidecar'));
const { startEcommerceShop } = await import('../scripts/shop/ecommerce.mjs');

const STOCK = Number(process.env.BENCH_STOCK ?? 50);
const CHECKOUTS = (process.env.BENCH_CHECKOUTS ?? '100,500').split(',').map(Number);
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** One run: a fresh shop, one variant with STOCK units, `count` checkouts of one unit each at once. */
async function run(count, withStock) {
  const shop = await startEcommerceShop({ withStock });
  try {
    const { product, variants } = await shop.seedProduct({ title: 'Runner', variants: { 42: withStock ? 0 : STOCK } });
    const variant = variants[42];
    if (withStock) {
      await shop.restock(product, variant, STOCK);
      await shop.projected();
    }
    const times = [];
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: count }, async () => {
        const begun = performance.now();
        const result = await shop.checkout({ items: [{ product, variant, quantity: 1 }] });
        times.push(performance.now() - begun);
        return result;
      }),
    );
    const wall = performance.now() - started;
    if (withStock) await shop.projected();
    const orders = await shop.orderCount();
    const refused = results.filter((result) => result.stage !== 'done');
    const reasons = {};
    for (const result of refused) reasons[`${result.stage} ${result.status}`] = (reasons[`${result.stage} ${result.status}`] ?? 0) + 1;
    const open = [...shop.stripe.paymentIntents.values()].filter((intent) => intent.status === 'requires_payment_method').length;
    times.sort((a, b) => a - b);
    return {
      orders,
      oversold: Math.max(0, orders - STOCK),
      inventory: await shop.inventory({ variant }),
      refused: Object.entries(reasons).map(([reason, n]) => `${n} at ${reason}`).join(', ') || '-',
      open,
      mean: times.reduce((sum, time) => sum + time, 0) / times.length,
      p50: percentile(times, 50),
      p99: percentile(times, 99),
      perSecond: (count / wall) * 1000,
    };
  } finally {
    await shop.stop();
  }
}

const ms = (value) => `${value.toFixed(0)} ms`;
console.log(`\n### K concurrent checkouts of one variant with ${STOCK} in stock, Payload's ecommerce plugin alone and with payload-stock (same run)\n`);
console.log(`Sidecar: ${process.env.STOCK_SIDECAR_BIN}\n`);
console.log('| K | shop | orders | units oversold | final inventory | refused | PaymentIntents left open | time per checkout: mean | p50 | p99 | checkouts/s |');
console.log('| ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |');
for (const count of CHECKOUTS) {
  for (const [name, withStock] of [['ecommerce plugin alone', false], ['with payload-stock', true]]) {
    const result = await run(count, withStock);
    console.log(
      `| ${count} | ${name} | ${result.orders} | ${result.oversold} | ${result.inventory} | ${result.refused} | ${result.open} | ${ms(result.mean)} | ${ms(result.p50)} | ${ms(result.p99)} | ${result.perSecond.toFixed(1)} |`,
    );
  }
}

/** LAG_SAMPLES payment starts one after the other: the time from each answer until `inventory` shows it held. */
async function inventoryLag(samples) {
  const shop = await startEcommerceShop({ withStock: true });
  try {
    const { product, variants } = await shop.seedProduct({ title: 'Runner', variants: { 42: 0 } });
    const variant = variants[42];
    await shop.restock(product, variant, samples);
    await shop.projected();
    const lags = [];
    for (let index = 0; index < samples; index++) {
      const started = await shop.checkout({ items: [{ product, variant, quantity: 1 }], pay: false });
      if (started.stage !== 'initiated') throw new Error(`payment start refused: ${JSON.stringify(started.body)}`);
      const answered = performance.now();
      for (;;) {
        if ((await shop.inventory({ variant })) === samples - index - 1) break;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      lags.push(performance.now() - answered);
    }
    lags.sort((a, b) => a - b);
    return { p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags.at(-1) };
  } finally {
    await shop.stop();
  }
}

const LAG_SAMPLES = Number(process.env.BENCH_LAG_SAMPLES ?? 50);
const lag = await inventoryLag(LAG_SAMPLES);
console.log(`\n### Payload's inventory after a payment start (${LAG_SAMPLES} payment starts one after the other)\n`);
console.log('| from the payment start\'s answer to `inventory` showing the held unit | p50 | p99 | max |');
console.log('| --- | ---: | ---: | ---: |');
console.log(`| with payload-stock (the sidecar's projection, through Payload's REST API) | ${lag.p50.toFixed(1)} ms | ${lag.p99.toFixed(1)} ms | ${lag.max.toFixed(1)} ms |`);
