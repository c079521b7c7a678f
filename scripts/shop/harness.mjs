// A real shop to run the sidecar against: a real Payload (scripts/shop/payload-server.mjs) and the real
// stock-sidecar binary, wired to each other, plus what is done to them: Payload REST calls, Stripe events signed as
// Stripe signs them, and waiting until Payload shows what the ledger holds. Used by the end-to-end tests
// (tests/e2e) and the benchmarks (bench/); its npm packages (Payload) are this folder's own.
import { spawn, execFile } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { projectionProof } from 'payload-stock/payload';
import { startSidecar } from '../sidecar-process.mjs';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..');
export const WEBHOOK_SECRET = 'whsec_e2e_0123456789abcdef';
const FIXTURES = join(repoRoot, 'sidecar', 'tests', 'fixtures', 'stripe');

/** The sidecar binary the tests run (built by `cargo test` / `cargo build`), or STOCK_SIDECAR_BIN. */
export function sidecarBinary() {
  const binary = process.env.STOCK_SIDECAR_BIN ?? join(repoRoot, 'target', 'debug', 'stock-sidecar');
  if (!existsSync(binary)) {
    throw new Error(`${binary} does not exist: build it first (cargo build -p stock-sidecar), or set STOCK_SIDECAR_BIN`);
  }
  return binary;
}

/** A port nothing listens on right now. */
export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a truthy value (which is returned) or `timeoutMs` passes. */
export async function waitFor(what, check, { timeoutMs = 20_000, intervalMs = 20 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
    await sleep(intervalMs);
  }
}

/**
 * Starts a test shop's Payload (scripts/shop/payload-server.mjs, or `script`: ecommerce-server.mjs) on `port` with the
 * database file `database` and `env` added to its environment; resolves once it serves.
 */
export async function startPayload({ database, port, sidecarUrl, sidecarAdminToken, apiKey, script = 'payload-server.mjs', env = {} }) {
  const child = spawn(process.execPath, ['--preserve-symlinks', join(here, script)], {
    cwd: here,
    env: { ...process.env, PAYLOAD_DB: database, PORT: String(port), SIDECAR_URL: sidecarUrl, SIDECAR_ADMIN_TOKEN: sidecarAdminToken, PAYLOAD_API_KEY: apiKey, NODE_ENV: 'test', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stderr.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`Payload did not start within 60 s:\n${output}`)), 60_000);
    child.stdout.on('data', (chunk) => {
      output += chunk;
      if (output.includes('"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`Payload exited with ${code} before serving:\n${output}`));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    /** The Payload process's id (the benchmarks read its CPU time and memory from /proc). */
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
    output: () => output,
  };
}

/**
 * Payload's REST API with the sidecar user's API key; `projection: true` adds the proof the sidecar's projection
 * sends (derived from `proofToken`, the sidecar's ADMIN_API_TOKEN), a string sends that header value as it is.
 * `authorization` replaces the API key (another user's `JWT ...` or `users API-Key ...`); `auth: false` sends none.
 */
export function payloadApi(url, apiKey, { proofToken } = {}) {
  async function call(method, path, { body, projection = false, auth = true, authorization } = {}) {
    const headers = { 'content-type': 'application/json' };
    if (auth) headers.authorization = authorization ?? `users API-Key ${apiKey}`;
    if (projection === true) {
      if (!proofToken) throw new Error('payloadApi: projection: true needs the proofToken option');
      headers['x-payload-stock'] = projectionProof(proofToken);
    } else if (typeof projection === 'string') {
      headers['x-payload-stock'] = projection;
    }
    const response = await fetch(`${url}/api${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      // left null
    }
    return { status: response.status, body: json, text };
  }
  return {
    call,
    get: (path, options) => call('GET', path, options),
    post: (path, body, options) => call('POST', path, { ...options, body }),
    patch: (path, body, options) => call('PATCH', path, { ...options, body }),
    /** The product's size rows keyed by size label. */
    async sizes(product) {
      const { status, body } = await call('GET', `/products/${product}?depth=0`);
      if (status !== 200) throw new Error(`GET product ${product}: ${status}`);
      return Object.fromEntries((body.sizes ?? []).map((row) => [row.size, row]));
    },
    /** Every stock-movements document of a product, oldest first. */
    async movements(product) {
      const { body } = await call('GET', `/stock-movements?depth=0&limit=1000&sort=date&where[product][equals]=${product}`);
      return body.docs;
    },
    async reservation(reference) {
      const { body } = await call('GET', `/stock-reservations?depth=0&where[reference][equals]=${encodeURIComponent(reference)}`);
      return body.docs[0] ?? null;
    },
  };
}

/** A Stripe event from the fixtures for `objectId` (PaymentIntent or Checkout Session id), with a fresh event id. */
export function stripeEvent(fixture, objectId, eventId = `evt_${randomBytes(12).toString('hex')}`) {
  const event = JSON.parse(readFileSync(join(FIXTURES, `${fixture}.json`), 'utf8'));
  event.id = eventId;
  event.data.object.id = objectId;
  event.created = Math.floor(Date.now() / 1000);
  return JSON.stringify(event);
}

/** The Stripe-Signature header Stripe would send for `payload` (v1 = HMAC-SHA256 of `${t}.${payload}`). */
export function stripeSignature(payload, secret = WEBHOOK_SECRET, timestamp = Math.floor(Date.now() / 1000)) {
  const signature = createHmac('sha256', secret).update(`${timestamp}.${payload}`).digest('hex');
  return `t=${timestamp},v1=${signature}`;
}

/** Posts a signed event to the sidecar's webhook route; returns the status and the answer. */
export async function sendStripeEvent(sidecarBase, payload) {
  const response = await fetch(`${sidecarBase}/webhooks/stripe`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'stripe-signature': stripeSignature(payload) },
    body: payload,
  });
  return { status: response.status, body: await response.json() };
}

const run = promisify(execFile);

/** Runs a stock-sidecar command on the shop's ledger; resolves with its exit code and output (never throws). */
export async function sidecarCommand(shop, args) {
  try {
    const { stdout, stderr } = await run(sidecarBinary(), args, { env: shop.sidecar.env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    return { code: error.code, stdout: error.stdout ?? '', stderr: error.stderr ?? '' };
  }
}

/**
 * A whole shop: Payload with the plugin and a sidecar projecting into it, each on a free port with a fresh
 * database (the sidecar's ledger in `databaseUrl` when given, a PostgreSQL schema say, a fresh SQLite file otherwise).
 * `stopPayload()` / `startPayload()` take Payload down and up again on the same port and database.
 */
export async function startShop({ sidecarLogs = 'ignore', databaseUrl } = {}) {
  const directory = mkdtempSync(join(tmpdir(), 'payload-stock-e2e-'));
  const apiKey = randomBytes(16).toString('hex');
  const payloadPort = await freePort();
  const sidecarPort = await freePort();
  const sidecar = await startSidecar(
    sidecarBinary(),
    {
      PAYLOAD_URL: `http://127.0.0.1:${payloadPort}`,
      PAYLOAD_API_KEY: apiKey,
      PROJECTION_RETRY_MAX_SECONDS: '1',
      PROJECTION_PAYLOAD_SAVE_GRACE_SECONDS: '1',
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      CLEANUP_INTERVAL_SECONDS: '0',
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    },
    { stdio: sidecarLogs, port: sidecarPort },
  );
  const payloadOptions = { database: join(directory, 'payload.db'), port: payloadPort, sidecarUrl: sidecar.base, sidecarAdminToken: sidecar.adminToken, apiKey };
  let earlierPayloadOutput = '';
  const shop = {
    directory,
    sidecar,
    payload: await startPayload(payloadOptions),
    api: payloadApi(`http://127.0.0.1:${payloadPort}`, apiKey, { proofToken: sidecar.adminToken }),
    async stopPayload() {
      await shop.payload.stop();
      earlierPayloadOutput += shop.payload.output();
      shop.payload = null;
    },
    /** Everything Payload has logged, from every start of it. */
    payloadLog() {
      return earlierPayloadOutput + (shop.payload?.output() ?? '');
    },
    async startPayload() {
      shop.payload = await startPayload(payloadOptions);
    },
    /** The sidecar's /v1 and admin API. */
    async sidecarGet(path, token = sidecar.apiToken) {
      const response = await fetch(`${sidecar.base}${path}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: response.status, body: await response.json() };
    },
    async sidecarPost(path, body, token = sidecar.adminToken) {
      const response = await fetch(`${sidecar.base}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body ?? {}),
      });
      return { status: response.status, body: await response.json() };
    },
    /** Waits until the sidecar reports nothing left to deliver to Payload. */
    async projected(timeoutMs = 30_000) {
      return waitFor('Payload to catch up with the ledger', async () => {
        const { body } = await shop.sidecarGet('/readyz');
        return body.payloadProjection.backlog === 0;
      }, { timeoutMs });
    },
    /** Creates a product in Payload (sizes without figures: the ledger owns them) and returns its id. */
    async createProduct(title, sizes) {
      const { status, body, text } = await shop.api.post('/products?depth=0', { title, sizes: sizes.map((size) => ({ size })) });
      if (status !== 201) throw new Error(`creating ${title}: ${status} ${text}`);
      return String(body.doc.id);
    },
    /** Kills the sidecar with SIGKILL (no graceful stop: a crash). */
    async killSidecar() {
      const child = shop.sidecarChild;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    /** Starts the sidecar again on the same port and ledger; resolves once it is ready. */
    async restartSidecar() {
      const child = spawn(sidecarBinary(), ['serve'], { env: sidecar.env, stdio: ['ignore', sidecarLogs, sidecarLogs] });
      shop.sidecarChild = child;
      await waitFor('the restarted sidecar to be ready', async () => (await fetch(`${sidecar.base}/readyz`)).ok, { timeoutMs: 15_000 });
    },
    sidecarChild: sidecar.child,
    async stop() {
      if (shop.sidecarChild !== sidecar.child && shop.sidecarChild.exitCode === null) {
        const exited = new Promise((resolve) => shop.sidecarChild.once('exit', resolve));
        shop.sidecarChild.kill('SIGTERM');
        await exited;
      }
      await Promise.allSettled([shop.payload?.stop(), sidecar.stop()]);
      rmSync(directory, { recursive: true, force: true });
    },
  };
  return shop;
}
