#!/usr/bin/env bash
# Runs every test of payload-stock: formatting and lints, stock-core's unit and property tests, the wasm exports
# inside Node, the JavaScript package (ESM, CommonJS, TypeScript types), the installed-package tests and the
# end-to-end tests on a real Payload. The sidecar's suite runs twice, on SQLite and on PostgreSQL (started here if it
# is installed but stopped; skipped with a message if there is none), three sidecars share one PostgreSQL in the
# multi-replica end-to-end test, and the fault run (sidecar killed, Payload stopped) runs on SQLite and PostgreSQL. The demo shop (examples/next-shop) is built and tested in Chromium.
# Installs what it needs on a fresh machine first (see scripts/setup.sh).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"

trap step_durations EXIT
ensure_tools
# The first run is SQLite's whatever the caller's environment says.
unset STOCK_TEST_DATABASE

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (native, all targets, and the wasm crate for wasm32)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p stock-wasm --target wasm32-unknown-unknown --all-targets --quiet -- -D warnings

step "cargo test: stock-core unit and property tests, the sidecar's unit and integration tests (SQLite)"
within 30 cargo test --workspace

step "cargo test on PostgreSQL: the sidecar's integration tests again, each test in a schema of its own"
if ensure_postgres; then
  export STOCK_TEST_DATABASE="$POSTGRES_TEST_URL"
  # The very command of the first run: any other selection of targets (-p stock-sidecar, or --workspace --test it)
  # is another unit graph, in which the proc-macros' dependencies get other hashes, and about 80 crates were
  # compiled again (2 to 2.5 minutes on a fresh machine). Running stock-core's tests again costs under a second.
  within 15 cargo test --workspace
else
  echo "SKIPPED: the sidecar's suite on PostgreSQL and the multi-replica test need a PostgreSQL server" >&2
  echo "  (set STOCK_TEST_POSTGRES_URL to one whose user may create schemas)." >&2
fi

build_package

step "The wasm exports inside Node (cargo test for wasm32, run by wasm-bindgen-test-runner)"
# (No --quiet: cargo passes it on to the runner, which refuses it.)
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  within 20 cargo test -p stock-wasm --target wasm32-unknown-unknown

step "node --test: the payload-stock package (ESM, CommonJS, TypeScript types)"
(cd js-shim && within 10 node --test test/)

step "node --test: the packed package installed into an empty project (Node, Bun, Deno), and every relative link in the Markdown files"
within 10 node --test tests/package.test.mjs tests/links.test.mjs

step "node --test: end to end on a real Payload 3 with the payloadStock plugin and the sidecar projecting into it (three sidecars on one PostgreSQL in replicas.e2e.test.mjs; the fault run on SQLite and PostgreSQL)"
within 20 node --test tests/e2e/

step "The demo shop in a real browser (examples/next-shop: Next.js with Payload's admin panel, payload-stock in a client component and an Edge route, Debian's Chromium)"
ensure_chromium
build_shop
STOCK_SIDECAR_BINARY="$REPO_ROOT/target/debug/stock-sidecar" within 15 node --test examples/next-shop/test/

step "A bounded fuzz pass (30 s per target)"
bash "$REPO_ROOT/scripts/fuzz.sh"

step "All tests passed"
