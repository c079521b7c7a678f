// Per-client limits on starting checkouts (each holds stock for 30 minutes, so without one a loop could hold every
// size) and on cart checks (each reads the sidecar once per product). A fixed one-minute window per client address, kept in this process's memory (one Next.js
// server; several servers each count their own, so put the limit at the proxy too when there are many).
//
// The client's address is X-Forwarded-For's last entry: server.mjs sets the header from the connection unless
// TRUST_FORWARDED_FOR=1 says a proxy in front appends to it (the last entry is then the address the proxy saw;
// earlier ones are the client's own claims). An IPv6 client counts by its /64, which it may rotate within.

/** Checkouts a client may start per minute (CHECKOUT_LIMIT_PER_MINUTE, default 10). */
export const checkoutLimitPerMinute = () => {
  const configured = Number(process.env.CHECKOUT_LIMIT_PER_MINUTE ?? 10);
  return Number.isInteger(configured) && configured > 0 ? configured : 10;
};

/** Cart checks (POST /api/cart/check) a client may make per minute: each reads the sidecar once per product. */
export const cartCheckLimitPerMinute = () => 30;

const WINDOW_MS = 60_000;
/** Clients remembered at most per throttle: past it, the oldest windows are forgotten first. */
const MAX_CLIENTS = 50_000;

/**
 * A throttle allowing `limitPerMinute()` calls per client in a fixed one-minute window: the function counts one call
 * of `client` at `now` and answers how many seconds to wait when it is over the limit, else 0.
 */
function throttle(limitPerMinute: () => number): (client: string, now?: number) => number {
  const windows = new Map<string, { startedAt: number; count: number }>();
  return (client, now = Date.now()) => {
    const window = windows.get(client);
    if (!window || now - window.startedAt >= WINDOW_MS) {
      windows.delete(client);
      if (windows.size >= MAX_CLIENTS) windows.delete(windows.keys().next().value as string);
      windows.set(client, { startedAt: now, count: 1 });
      return 0;
    }
    if (window.count >= limitPerMinute()) return Math.ceil((window.startedAt + WINDOW_MS - now) / 1000);
    window.count += 1;
    return 0;
  };
}

/** The client the request came from, as server.mjs (or a trusted proxy) put it in X-Forwarded-For. */
export function clientAddress(request: Request): string {
  const entries = (request.headers.get('x-forwarded-for') ?? '').split(',').map((entry) => entry.trim()).filter(Boolean);
  const address = (entries.at(-1) ?? 'unknown').replace(/^::ffff:/, '');
  if (!address.includes(':')) return address;
  // An IPv6 address: its first four groups (the /64 a client is given), with "::" spelt out first.
  const [head, tail = ''] = address.split('::');
  const groups = head.split(':').filter(Boolean);
  const rest = address.includes('::') ? tail.split(':').filter(Boolean) : [];
  const full = [...groups, ...Array(Math.max(0, 8 - groups.length - rest.length)).fill('0'), ...rest];
  return `${full.slice(0, 4).join(':')}::/64`;
}

/** Counts one checkout of `client` at `now`; how many seconds to wait when it is over the limit, else 0. */
export const checkoutThrottle = throttle(checkoutLimitPerMinute);

/** Counts one cart check of `client`: the same, with its own windows and limit. */
export const cartCheckThrottle = throttle(cartCheckLimitPerMinute);
