#!/usr/bin/env bash
# A bounded fuzz pass over every cargo-fuzz target in fuzz/ (libFuzzer, no sanitizer, so the stable toolchain
# builds it): FUZZ_SECONDS per target (default 30), starting from the committed seed corpus. New corpus entries go
# to a temporary directory; a crash stops the script and leaves its input under fuzz/artifacts/. Prints the
# executions of each target.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$REPO_ROOT/fuzz"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  step "Installing cargo-fuzz 0.13.2"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
step "Building the fuzz targets"
cargo fuzz build --sanitizer none -O

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in webhook v1_requests stock_rules; do
  step "cargo fuzz run $target for ${SECONDS_PER_TARGET} s"
  mkdir -p "$scratch/$target"
  cargo fuzz run "$target" --sanitizer none -O "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 2>"$scratch/$target.log" \
    || { tail -40 "$scratch/$target.log"; echo "fuzz target $target failed: see fuzz/artifacts/$target/" >&2; exit 1; }
  grep -E "^stat::number_of_executed_units|^Done" "$scratch/$target.log" | sed "s/^/  $target: /"
done
