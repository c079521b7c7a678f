// The demo shop's HTTP server: Next.js's own request handler behind a node:http server that says who the client
// is. Next.js keeps an X-Forwarded-For that the client sent itself, so a throttle keyed on it could be dodged by
// sending a new value each time; here the header is set from the connection's address, unless the shop runs
// behind a proxy it trusts (TRUST_FORWARDED_FOR=1), which sets the header itself.
//
// Refuses to start in production with a setting meant for a laptop: test payments (STRIPE_TEST_MODE=1), which any
// visitor could use to pay any checkout, unless ALLOW_TEST_PAYMENTS_IN_PRODUCTION=1 says this server is a local
// demo and it listens on a loopback address only (scripts/start-shop.mjs, on 127.0.0.1); and a missing
// PAYLOAD_SECRET.
//
// Usage: node server.mjs (PORT, default 3000; SHOP_HOST, the address to listen on, default 127.0.0.1).
import { createServer } from 'node:http';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import next from 'next';

const env = process.env;
const production = env.NODE_ENV === 'production';

const hostname = env.SHOP_HOST ?? '127.0.0.1';
const loopback = ['127.0.0.1', '::1', 'localhost'].includes(hostname);

/** What must not run in production, each with what to do instead. */
function productionProblems() {
  if (!production) return [];
  const problems = [];
  if (!env.PAYLOAD_SECRET) problems.push('PAYLOAD_SECRET is not set: set a long random secret (it signs the admins\' logins).');
  if (env.STRIPE_TEST_MODE === '1' && !(env.ALLOW_TEST_PAYMENTS_IN_PRODUCTION === '1' && loopback)) {
    problems.push('STRIPE_TEST_MODE=1 lets any visitor pay any checkout through /api/checkout/test-pay: unset it and set STRIPE_SECRET_KEY (ALLOW_TEST_PAYMENTS_IN_PRODUCTION=1 is for a local demo listening on 127.0.0.1 only).');
  }
  return problems;
}

const problems = productionProblems();
if (problems.length > 0) {
  console.error(`next-shop: refusing to start in production:\n  - ${problems.join('\n  - ')}`);
  process.exit(1);
}

const port = Number(env.PORT ?? 3000);
const app = next({ dev: !production, dir: dirname(fileURLToPath(import.meta.url)), hostname, port });
await app.prepare();
const handle = app.getRequestHandler();
const trustForwarded = env.TRUST_FORWARDED_FOR === '1';

createServer((request, response) => {
  if (!trustForwarded) request.headers['x-forwarded-for'] = request.socket.remoteAddress ?? '';
  handle(request, response);
}).listen(port, hostname, () => {
  console.log(`next-shop: listening on http://${hostname}:${port}${trustForwarded ? ' (trusting X-Forwarded-For)' : ''}`);
});
