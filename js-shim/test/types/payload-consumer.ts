// Compiled by types.test.mjs with `tsc --noEmit`, as a Payload shop compiles its config: the plugin is typed with
// Payload's own Config and Plugin, and refuses wrong options. (skipLibCheck as in Payload's templates: Payload's
// declarations need React's, which a shop has and this test does not.)
import { payloadStock, projectionProof } from 'payload-stock/payload';
import type { Config, Plugin } from 'payload';

// The plugin is a Payload Plugin: it takes the shop's Config and gives one back.
declare const shopConfig: Config;
const plugin: Plugin = payloadStock({ sidecarUrl: 'http://127.0.0.1:4242', sidecarToken: 'admin-token' });
const withStock: Config | Promise<Config> = plugin(shopConfig);
const plugins: Config['plugins'] = [payloadStock()];
// @ts-expect-error slugs are strings
payloadStock({ productsSlug: 1 });
// Access rules of the shop's own, sync or async.
payloadStock({ access: { readMovements: ({ req }) => req.user?.collection === 'users', readReservations: async () => false } });
// @ts-expect-error an access rule is a function
payloadStock({ access: { createMovements: true } });
const proof: string = projectionProof('admin-token');

void [withStock, plugins, proof];
