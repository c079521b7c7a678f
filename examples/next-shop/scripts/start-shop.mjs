// Starts the demo shop: the stock-sidecar (SQLite in the data directory), then the built Next.js app with Payload
// (its own SQLite there too), seeded on first start with an admin and three products whose stock is recorded in
// the sidecar's ledger. Used by `bash scripts/demo.sh` and by the browser test.
//
// As a command: node examples/next-shop/scripts/start-shop.mjs <stock-sidecar binary> [--fresh]
//   (PORT, default 3000, and SIDECAR_PORT, default 4242; the data directory is examples/next-shop/.data).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const shopRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The tokens and keys of one data directory: made once, kept with the databases they belong to. */
function secretsOf(dataDir) {
  const file = join(dataDir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8'));
  const token = () => randomBytes(16).toString('hex');
  const secrets = {
    sidecarApiToken: token(),
    sidecarAdminToken: token(),
    payloadApiKey: token(),
    payloadSecret: token(),
    webhookSecret: `whsec_${token()}`,
    cronSecret: token(),
  };
  writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${what} within ${timeoutMs / 1000} s${last ? `: ${last.message}` : ''}`);
}

function started(command, args, options, name) {
  const child = spawn(command, args, options);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (error) => console.error(`${name}: ${error.message}`));
  return {
    child,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Starts the sidecar and the shop and waits until the shop is seeded. `stdio` is where their logs go. Returns the
 * URLs, the secrets, the admin's login and `stop()`.
 */
export async function startShop({ sidecarBinary, port = 3000, sidecarPort = 4242, dataDir = join(shopRoot, '.data'), fresh = false, stdio = 'inherit' }) {
  if (!existsSync(join(shopRoot, '.next', 'BUILD_ID'))) {
    throw new Error('the shop is not built: run `npm run build` in examples/next-shop (scripts/demo.sh does)');
  }
  if (fresh) rmSync(dataDir, { recursive: true, force: true });
  mkdirSync(dataDir, { recursive: true });
  const secrets = secretsOf(dataDir);
  const shopUrl = `http://127.0.0.1:${port}`;
  const sidecarUrl = `http://127.0.0.1:${sidecarPort}`;
  const sidecar = started(sidecarBinary, ['serve'], {
    stdio: ['ignore', stdio, stdio],
    env: {
      ...process.env,
      LISTEN_ADDR: `127.0.0.1:${sidecarPort}`,
      DATABASE_URL: `sqlite://${join(dataDir, 'ledger.db')}`,
      SIDECAR_API_TOKEN: secrets.sidecarApiToken,
      ADMIN_API_TOKEN: secrets.sidecarAdminToken,
      STRIPE_WEBHOOK_SECRET: secrets.webhookSecret,
      PAYLOAD_URL: shopUrl,
      PAYLOAD_API_KEY: secrets.payloadApiKey,
      LOG_FORMAT: process.env.LOG_FORMAT ?? 'text',
    },
  }, 'stock-sidecar');
  let shop;
  const stop = async () => {
    await shop?.stop();
    await sidecar.stop();
  };
  try {
    await waitFor('the sidecar did not answer /readyz', async () => (await fetch(`${sidecarUrl}/readyz`)).ok, 15_000);
    shop = started(process.execPath, [join(shopRoot, 'server.mjs')], {
      cwd: shopRoot,
      stdio: ['ignore', stdio, stdio],
      env: {
        ...process.env,
        NODE_ENV: 'production',
        PORT: String(port),
        SHOP_HOST: '127.0.0.1',
        // Test payments on a production build: only because this server listens on 127.0.0.1 (server.mjs refuses
        // STRIPE_TEST_MODE in production otherwise).
        ALLOW_TEST_PAYMENTS_IN_PRODUCTION: '1',
        DATABASE_URI: `file:${join(dataDir, 'shop.db')}`,
        PAYLOAD_SECRET: secrets.payloadSecret,
        PAYLOAD_API_KEY: secrets.payloadApiKey,
        STOCK_SIDECAR_URL: sidecarUrl,
        SIDECAR_API_TOKEN: secrets.sidecarApiToken,
        SIDECAR_ADMIN_TOKEN: secrets.sidecarAdminToken,
        STRIPE_TEST_MODE: '1',
        STRIPE_WEBHOOK_SECRET: secrets.webhookSecret,
        CRON_SECRET: secrets.cronSecret,
        SEED_DEMO: '1',
      },
    }, 'next-shop');
    // The first request starts Payload, which seeds the demo; the seed is done when the sidecar has the stock.
    const asSidecarUser = { headers: { authorization: `users API-Key ${secrets.payloadApiKey}` } };
    await waitFor('the shop did not answer', async () => (await fetch(`${shopUrl}/api/products?limit=0`, asSidecarUser)).status < 500, 60_000);
    await waitFor('the demo products were not seeded', async () => {
      const products = await (await fetch(`${shopUrl}/api/products?depth=0&limit=10`, asSidecarUser)).json();
      if (!Array.isArray(products.docs) || products.docs.length < 3) return false;
      const ledger = await fetch(`${sidecarUrl}/v1/products/${products.docs[0].id}/stock`, { headers: { authorization: `Bearer ${secrets.sidecarApiToken}` } });
      return ledger.ok;
    }, 60_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { shopUrl, sidecarUrl, secrets, admin: { email: 'admin@example.com', password: 'demo-password-0123' }, stop };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [binary, ...flags] = process.argv.slice(2);
  if (!binary) {
    console.error('usage: node examples/next-shop/scripts/start-shop.mjs <stock-sidecar binary> [--fresh]');
    process.exit(2);
  }
  const shop = await startShop({
    sidecarBinary: binary,
    port: Number(process.env.PORT ?? 3000),
    sidecarPort: Number(process.env.SIDECAR_PORT ?? 4242),
    fresh: flags.includes('--fresh'),
  });
  console.log(`
next-shop is running (Stripe test mode: no card is charged, the shop signs Stripe's events itself)
  shop          ${shop.shopUrl}            (open a product, buy a pair)
  admin panel   ${shop.shopUrl}/admin      (log in as ${shop.admin.email} / ${shop.admin.password})
  stock-sidecar ${shop.sidecarUrl}        (monitoring: GET /api/admin/clean-expired-reservations with the admin token in examples/next-shop/.data/secrets.json)
Ctrl-C stops both.`);
  const stopBoth = () => shop.stop().then(() => process.exit(0));
  process.on('SIGINT', stopBoth);
  process.on('SIGTERM', stopBoth);
}
