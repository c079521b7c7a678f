#!/usr/bin/env bash
# Builds the payload-stock package (release) and runs the benchmarks under bench/, each printing a table.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
ensure_tools
build_package
step "bench/wasm-calls.mjs"
node bench/wasm-calls.mjs
