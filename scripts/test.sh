#!/usr/bin/env bash
# Runs every test of payload-stock: formatting and lints, stock-core's unit and property tests, the wasm exports
# inside Node, the JavaScript package (ESM, CommonJS, TypeScript types), the installed-package tests and the
# end-to-end tests on a real Payload.
# Installs what it needs on a fresh machine first (see scripts/setup.sh).
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"

ensure_tools

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (native, all targets, and the wasm crate for wasm32)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy -p stock-wasm --target wasm32-unknown-unknown --all-targets --quiet -- -D warnings

step "cargo test: stock-core unit and property tests, the sidecar's unit and integration tests"
cargo test --workspace

build_package

step "wasm-pack test --node: the wasm exports inside Node"
wasm-pack --log-level warn test --node crates/stock-wasm

step "node --test: the payload-stock package (ESM, CommonJS, TypeScript types)"
(cd js-shim && node --test test/)

step "node --test: the packed package installed into an empty project"
node --test tests/package.test.mjs

step "node --test: end to end on a real Payload 3 with the payloadStock plugin and the sidecar projecting into it"
node --test tests/e2e/

step "A bounded fuzz pass (30 s per target)"
bash "$REPO_ROOT/scripts/fuzz.sh"

step "All tests passed"
