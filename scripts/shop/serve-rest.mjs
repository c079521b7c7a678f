// Serves a Payload config's REST API over node:http through `handleEndpoints` (no Next.js is needed for REST), on
// 127.0.0.1:PORT (0 = any free port), and prints one JSON line when it listens: {"listening": <port>}. SIGTERM and
// SIGINT close the server and the database. Shared by the test shops (payload-server.mjs, ecommerce-server.mjs).
import http from 'node:http';
import { handleEndpoints } from 'payload';

export function serveRest({ config, payload, port = 0, name }) {
  const server = http.createServer(async (incoming, outgoing) => {
    try {
      const chunks = [];
      for await (const chunk of incoming) chunks.push(chunk);
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      const request = new Request(`http://${incoming.headers.host}${incoming.url}`, {
        method: incoming.method,
        headers: Object.entries(incoming.headers).flatMap(([header, value]) => (Array.isArray(value) ? value.map((v) => [header, v]) : [[header, value]])),
        body: incoming.method === 'GET' || incoming.method === 'HEAD' ? undefined : body,
      });
      const response = await handleEndpoints({ config, request });
      outgoing.writeHead(response.status, Object.fromEntries(response.headers));
      outgoing.end(Buffer.from(await response.arrayBuffer()));
    } catch (error) {
      console.error(`${name}:`, error);
      outgoing.writeHead(500, { 'content-type': 'application/json' });
      outgoing.end(JSON.stringify({ errors: [{ message: String(error?.message ?? error) }] }));
    }
  });
  server.listen(Number(port), '127.0.0.1', () => {
    console.log(JSON.stringify({ listening: server.address().port }));
  });
  const stop = () => server.close(() => payload.db.destroy?.().finally(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return server;
}
