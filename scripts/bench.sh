#!/usr/bin/env bash
# Builds the payload-stock package and a release stock-sidecar, then runs the benchmarks under bench/, each
# printing markdown tables.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
ensure_tools
build_package
step "Building the stock-sidecar and bench/ledger (release)"
cargo build --release --quiet -p stock-sidecar -p ledger-bench
step "bench/wasm-calls.mjs"
node bench/wasm-calls.mjs
step "bench/wasm-package.mjs (sizes, load times in Node and Chromium, call costs; OLD_PACKAGE_DIR beside it when set)"
node bench/wasm-package.mjs ${OLD_PACKAGE_DIR:+"$OLD_PACKAGE_DIR"}
step "bench/ledger webhook-ingest (signed webhooks: SQLite FULL and NORMAL, PostgreSQL with one and two sidecars, next to this machine's bare commit loops)"
"$REPO_ROOT/target/release/webhook-ingest" "$REPO_ROOT/target/release/stock-sidecar"
step "bench/projection-lag.mjs (a real Payload)"
node bench/projection-lag.mjs "$REPO_ROOT/target/release/stock-sidecar"
if ! command -v wrk >/dev/null; then
  step "Installing Debian's wrk (the load generator of bench/hot-size.mjs)"
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
  else
    sudo apt-get install -y -qq wrk >/dev/null || { sudo apt-get update -qq && sudo apt-get install -y -qq wrk >/dev/null; }
  fi
fi
step "bench/hot-size.mjs (reservations of one hot size with wrk: SQLite, PostgreSQL, two sidecars on PostgreSQL)"
node bench/hot-size.mjs "$REPO_ROOT/target/release/stock-sidecar"
step "bench/product-reads.mjs (GET of one product's stock with wrk, SQLite)"
node bench/product-reads.mjs "$REPO_ROOT/target/release/stock-sidecar"
step "bench/flash-sale.mjs (payload-stock on SQLite and PostgreSQL against the seed's read-check-write, a real Payload)"
node bench/flash-sale.mjs "$REPO_ROOT/target/release/stock-sidecar"
step "bench/ecommerce-checkouts.mjs (K checkouts of one variant on Payload's ecommerce plugin, alone and with payload-stock)"
node bench/ecommerce-checkouts.mjs "$REPO_ROOT/target/release/stock-sidecar"
