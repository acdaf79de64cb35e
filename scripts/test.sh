#!/usr/bin/env bash
# Runs every test of the workspace on whatever adapter exists (lavapipe on a machine without a
# GPU), after installing what is missing. This is the command CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/fetch-test-assets.sh
export RUST_BACKTRACE=1
# Tests share one adapter per test binary; lavapipe already uses every core for one dispatch.
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast -- --test-threads=2
