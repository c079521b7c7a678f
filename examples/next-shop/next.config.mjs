import { withPayload } from '@payloadcms/next/withPayload';

/** @type {import('next').NextConfig} */
const nextConfig = {
  // payload-stock loads its WebAssembly module from its own folder at run time: it stays a Node package.
  // (.npmrc's install-links installs it from this repository's js-shim/ as a copy, as a shop installs it from npm.)
  serverExternalPackages: ['payload-stock'],
};

export default withPayload(nextConfig);
