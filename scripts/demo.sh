#!/usr/bin/env bash
# The main job, shown end to end: builds the payload-stock package and the stock-sidecar, starts the sidecar on
# its embedded defaults (SQLite, in a temporary directory, with demo tokens), and walks one checkout through it:
# restock, reservation, a Stripe-signed payment, the last pair refused, cleanup. Stops the sidecar at the end.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
ensure_tools
build_package
# A debug build: it shares its compiled dependencies with scripts/test.sh, and the demo needs no speed.
step "Building the stock-sidecar"
cargo build --quiet -p stock-sidecar
step "Demo"
node scripts/demo.mjs "$REPO_ROOT/target/debug/stock-sidecar"
