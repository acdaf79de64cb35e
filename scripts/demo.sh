#!/usr/bin/env bash
# The main job on the embedded default. Until the full pipeline lands this runs the GPU
# self-check and the kernel benchmark on whatever adapter exists.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
./target/release/grrm devices
./target/release/grrm selfcheck
