#!/usr/bin/env bash
# The whole test suite: lint, build, fuzz briefly, unit/integration/
# differential tests. Needs root for the namespace tests; with
# CTWALL_REQUIRE_ROOT=1 a test that would skip fails instead.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS="${FUZZ_SECONDS:-30}"

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo build --workspace --bins

# Fuzz the parsers and the tracker for a short while (stable toolchain).
if [ -d fuzz ]; then
  (
    cd fuzz
    for t in $(RUSTC_BOOTSTRAP=1 cargo fuzz list); do
      mkdir -p "corpus/$t"
      seeds=()
      [ -d "seeds/$t" ] && seeds=("seeds/$t")
      RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048
    done
  )
fi

# The load harness, briefly (core scenarios, and e2e through ctwall against
# the Linux bridge with and without conntrack; needs root for e2e).
cargo run --release -p bench -- --quick

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
# Loom models of the shared table (concurrent insert of one tuple, lookup
# against expiry and slot reuse, free-list ABA, one claim per expectation),
# every interleaving with up to 3 preemptions (loom_models::PREEMPTION_BOUND).
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p ct-core --release --lib loom_models 2>&1 | tee -a "$log"
# One closing line for the whole run (cargo's last lines are doc-test
# binaries that often hold no test).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
