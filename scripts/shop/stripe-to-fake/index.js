// `import Stripe from 'stripe'` in the test shop: the official client, sent to STRIPE_API_BASE when it is set (the
// local fake of ../fake-stripe.mjs), else to Stripe's servers as usual.
import Upstream from 'stripe-upstream';

export default function Stripe(key, config = {}) {
  const base = process.env.STRIPE_API_BASE;
  if (!base) return new Upstream(key, config);
  const url = new URL(base);
  return new Upstream(key, { ...config, host: url.hostname, port: Number(url.port), protocol: url.protocol.replace(':', '') });
}
Object.setPrototypeOf(Stripe, Upstream);
