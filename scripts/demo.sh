#!/usr/bin/env bash
# The main job, shown end to end: builds the payload-stock package, the stock-sidecar and the demo shop
# (examples/next-shop: Next.js with Payload 3 and the payloadStock plugin), then starts the sidecar on its embedded
# SQLite and the shop, seeded with an admin and three products, in Stripe test mode. Ctrl-C stops both.
# `--fresh` starts over with empty databases. The terminal walkthrough of one checkout against the bare sidecar is
# `node scripts/demo.mjs target/debug/stock-sidecar`.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
ensure_tools
build_package
# A debug build: it shares its compiled dependencies with scripts/test.sh, and the demo needs no speed.
step "Building the stock-sidecar"
cargo build --quiet -p stock-sidecar
build_shop
step "Starting the stock-sidecar and the shop"
node examples/next-shop/scripts/start-shop.mjs "$REPO_ROOT/target/debug/stock-sidecar" "$@"
