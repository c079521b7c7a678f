#!/usr/bin/env bash
# Builds the payload-stock package and shows it at work on a sample product: derived sizes, a cart check, a
# reservation's expiry and a stock movement. (The stock-sidecar, the main job, arrives with a later issue.)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT"
ensure_tools
build_package
step "Demo"
node scripts/demo.mjs
