# Sourced by the other scripts: installs what building payload-stock needs, skipping what is already there, and
# builds the WebAssembly package into pkg/ and js-shim/dist/. Everything comes from crates.io and the npm
# registry: wasm-bindgen-cli from crates.io (it also runs the wasm tests in Node), wasm-opt from npm's binaryen.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$REPO_ROOT/js-shim/node_modules/.bin:$PATH"

# Each step is announced, and timed: `step_durations` (called on exit by test.sh) prints how long each one took.
STEP_NAMES=()
STEP_STARTS=()
step() {
  printf '\n==> %s\n' "$*"
  STEP_NAMES+=("$*")
  STEP_STARTS+=("$SECONDS")
}
step_durations() {
  local count="${#STEP_NAMES[@]}" index end
  [ "$count" -gt 0 ] || return 0
  printf '\nStep durations (%d s in all):\n' "$SECONDS"
  for ((index = 0; index < count; index++)); do
    end="${STEP_STARTS[$((index + 1))]:-$SECONDS}"
    printf '%6d s  %s\n' "$((end - STEP_STARTS[index]))" "${STEP_NAMES[index]:0:100}"
  done
}

# within MINUTES COMMAND...: runs COMMAND, but stops it (TERM, then KILL 30 s later) once it has run MINUTES
# minutes, so that a test that hangs fails its step with a message instead of using up CI's whole time limit.
within() {
  local minutes="$1"
  shift
  local status=0
  timeout --kill-after=30s "${minutes}m" "$@" || status=$?
  if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "TIMED OUT: '$*' was still running after $minutes minutes and was stopped; the tests it names above" \
      "as started (or running for over 60 seconds) but not finished are the ones that hang." >&2
  fi
  return "$status"
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    step "Adding the Rust target wasm32-unknown-unknown"
    rustup target add wasm32-unknown-unknown
  fi
}

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
ensure_wasm_bindgen_cli() {
  local wanted
  wanted="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3; exit }' "$REPO_ROOT/Cargo.lock")"
  if [ -z "$wanted" ]; then
    echo "setup: cannot find the wasm-bindgen version in Cargo.lock" >&2
    exit 1
  fi
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" != "$wanted" ]; then
    step "Installing wasm-bindgen-cli $wanted (about 2.5 minutes, once)"
    # Not --locked: its lock file pins a crate version the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$wanted"
  fi
}

# js-shim's devDependencies: binaryen (wasm-opt) and TypeScript (the plugin is typed with Payload's own types, from
# scripts/shop's Payload: see js-shim/tsconfig.json); tests/ needs the official stripe package (the sidecar's tests check its signatures against it), and Bun
# and Deno (their npm packages carry the binaries) to run the packed package in; scripts/shop holds Payload, its
# ecommerce plugin and the official stripe client: the shops the end-to-end tests and the benchmarks run against.
ensure_npm_packages() {
  if [ ! -x "$REPO_ROOT/js-shim/node_modules/.bin/wasm-opt" ] || [ ! -x "$REPO_ROOT/js-shim/node_modules/.bin/tsc" ]; then
    step "Installing js-shim's npm packages"
    (cd "$REPO_ROOT/js-shim" && npm ci --no-audit --no-fund)
  fi
  if [ ! -d "$REPO_ROOT/tests/node_modules/stripe" ] || [ ! -d "$REPO_ROOT/tests/node_modules/payload-stock" ] \
      || [ ! -d "$REPO_ROOT/tests/node_modules/deno" ]; then
    step "Installing the test tools' npm packages (tests/)"
    (cd "$REPO_ROOT/tests" && npm ci --no-audit --no-fund)
  fi
  if [ ! -d "$REPO_ROOT/scripts/shop/node_modules/payload" ] \
      || [ ! -d "$REPO_ROOT/scripts/shop/node_modules/@payloadcms/plugin-ecommerce" ]; then
    step "Installing the test shops' npm packages (scripts/shop: Payload, its ecommerce plugin, the stripe client)"
    (cd "$REPO_ROOT/scripts/shop" && npm ci --no-audit --no-fund)
  fi
}

# The PostgreSQL server the second run of the sidecar's suite and the multi-replica test use (each test creates a
# schema of its own and drops it). Trust authentication on 127.0.0.1, as on this project's machines; override with
# STOCK_TEST_POSTGRES_URL.
POSTGRES_TEST_URL="${STOCK_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

postgres_answers() {
  command -v psql >/dev/null && psql "$POSTGRES_TEST_URL" --quiet --no-psqlrc -c 'SELECT 1' >/dev/null 2>&1
}

# Succeeds when PostgreSQL answers at POSTGRES_TEST_URL, starting the local cluster first if it is installed but
# stopped; otherwise says why and fails (the PostgreSQL runs are then skipped).
ensure_postgres() {
  if postgres_answers; then
    return 0
  fi
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    local version
    for version in $(ls /etc/postgresql); do
      step "Starting the installed PostgreSQL $version cluster 'main' (it was stopped)"
      pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
    for _ in $(seq 1 30); do
      if postgres_answers; then
        return 0
      fi
      sleep 1
    done
  fi
  if ! command -v psql >/dev/null; then
    echo "PostgreSQL is not installed here (no psql)." >&2
  else
    echo "No PostgreSQL answers at $POSTGRES_TEST_URL, and none could be started." >&2
  fi
  return 1
}

ensure_tools() {
  ensure_wasm_target
  ensure_wasm_bindgen_cli
  ensure_npm_packages
}

# Debian's Chromium for the demo shop's browser test (playwright-core drives it; no browser download is possible).
ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    step "Installing Debian's chromium (the browser test's browser)"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
  fi
}

# The demo shop (examples/next-shop): its npm packages, and `next build` when a source changed since the last one
# (the payload-stock package it depends on included).
SHOP_DIR="$REPO_ROOT/examples/next-shop"
build_shop() {
  # payload-stock is installed as a copy (.npmrc's install-links, as a shop gets it from npm); the stamp says when.
  local copied="$SHOP_DIR/node_modules/.payload-stock-copied"
  if [ ! -d "$SHOP_DIR/node_modules/next" ]; then
    step "Installing the demo shop's npm packages (examples/next-shop)"
    (cd "$SHOP_DIR" && npm ci --no-audit --no-fund)
    touch "$copied"
  elif [ ! -f "$copied" ] || [ -n "$(find "$REPO_ROOT/js-shim/dist" -newer "$copied" -print -quit)" ]; then
    step "Copying the rebuilt payload-stock into the demo shop"
    rm -rf "$SHOP_DIR/node_modules/payload-stock"
    (cd "$SHOP_DIR" && npm install --no-audit --no-fund --no-save)
    touch "$copied"
  fi
  local stamp="$SHOP_DIR/.next/BUILD_ID"
  if [ ! -f "$stamp" ] || [ -n "$(find "$SHOP_DIR/app" "$SHOP_DIR/lib" "$SHOP_DIR/payload.config.ts" "$SHOP_DIR/migrations" "$SHOP_DIR/next.config.mjs" \
      "$SHOP_DIR/package-lock.json" "$REPO_ROOT/js-shim/dist" \
      -newer "$stamp" -print -quit 2>/dev/null)" ]; then
    step "Building the demo shop (next build, about 2 minutes)"
    (cd "$SHOP_DIR" && NEXT_TELEMETRY_DISABLED=1 npm run --silent build)
  fi
}

# The rules' WebAssembly module for every runtime: cargo builds it, wasm-bindgen writes the `web` glue without a
# default module path (so no bundler sees a .wasm URL it must serve, and the glue can be transpiled to CommonJS),
# wasm-opt shrinks it, and js-shim's build puts it into the package (dist/: ES modules, CommonJS, declarations).
build_package() {
  step "Building the wasm package (crates/stock-wasm -> pkg/ -> js-shim/dist/)"
  (cd "$REPO_ROOT" && cargo build --quiet -p stock-wasm --target wasm32-unknown-unknown --profile wasm-release)
  (cd "$REPO_ROOT" && wasm-bindgen --target web --omit-default-module-path --out-dir pkg \
    target/wasm32-unknown-unknown/wasm-release/stock_wasm.wasm)
  (cd "$REPO_ROOT" && wasm-opt -O3 --enable-bulk-memory --enable-nontrapping-float-to-int --enable-reference-types \
    --enable-sign-ext --enable-multivalue pkg/stock_wasm_bg.wasm -o pkg/stock_wasm_bg.wasm)
  (cd "$REPO_ROOT/js-shim" && npm run --silent build)
}
