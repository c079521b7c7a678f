import { withPayload } from '@payloadcms/next/withPayload';

/** @type {import('next').NextConfig} */
const nextConfig = {
  // Nothing for payload-stock: its WebAssembly module loads in server code, client components and the Edge runtime
  // as it is. (.npmrc's install-links installs it from this repository's js-shim/ as a copy, as a shop installs it
  // from npm.)
};

export default withPayload(nextConfig);
