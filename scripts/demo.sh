#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds grrm, checks the GPU
# kernels on the chosen adapter, then runs the whole pipeline (configs/demo.toml) into
# ./demo-out: synthetic data, semantic IDs, curriculum SFT, SRPO, evaluation and the table.
# Extra arguments go to `grrm demo` (e.g. --set rl.steps=20, --adapter NVIDIA, --out DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --locked
./target/release/grrm devices
./target/release/grrm selfcheck
./target/release/grrm demo "$@"
