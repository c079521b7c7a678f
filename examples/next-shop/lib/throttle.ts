// A per-client limit on starting checkouts: each checkout holds stock for 30 minutes, so without one a loop could
// hold every size. A fixed one-minute window per client address, kept in this process's memory (one Next.js
// server; several servers each count their own, so put the limit at the proxy too when there are many).
//
// The client's address is X-Forwarded-For's first entry: server.mjs sets the header from the connection unless
// TRUST_FORWARDED_FOR=1 says a proxy in front sets it.

/** Checkouts a client may start per minute (CHECKOUT_LIMIT_PER_MINUTE, default 10). */
export const checkoutLimitPerMinute = () => {
  const configured = Number(process.env.CHECKOUT_LIMIT_PER_MINUTE ?? 10);
  return Number.isInteger(configured) && configured > 0 ? configured : 10;
};

const WINDOW_MS = 60_000;
/** Clients remembered at most: past it, the oldest windows are forgotten first. */
const MAX_CLIENTS = 50_000;
const windows = new Map<string, { startedAt: number; count: number }>();

/** The address the request came from, as server.mjs (or a trusted proxy) put it in X-Forwarded-For. */
export function clientAddress(request: Request): string {
  return (request.headers.get('x-forwarded-for') ?? '').split(',')[0].trim() || 'unknown';
}

/** Counts one checkout of `client` at `now`; how many seconds to wait when it is over the limit, else 0. */
export function checkoutThrottle(client: string, now = Date.now()): number {
  const window = windows.get(client);
  if (!window || now - window.startedAt >= WINDOW_MS) {
    windows.delete(client);
    if (windows.size >= MAX_CLIENTS) windows.delete(windows.keys().next().value as string);
    windows.set(client, { startedAt: now, count: 1 });
    return 0;
  }
  if (window.count >= checkoutLimitPerMinute()) return Math.ceil((window.startedAt + WINDOW_MS - now) / 1000);
  window.count += 1;
  return 0;
}
