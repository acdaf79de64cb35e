#!/usr/bin/env bash
# Runs the WGSL kernel table (grrm bench kernels) and the same matmuls through PyTorch/cuBLAS on
# this machine's GPU, and writes both side by side to bench/kernels-<card>-<date>.md.
# Usage: bench/run_kernels.sh [--quick] [path/to/grrm-or-bench_kernels binary]
# With no binary given it runs `cargo run --release -p grrm-model --example bench_kernels`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
quick=()
if [[ "${1:-}" == "--quick" ]]; then quick=(--quick); shift; fi
bin="${1:-}"
tmp="$(mktemp -d)"
if [[ -n "$bin" ]]; then
    "$bin" "${quick[@]}" --out "$tmp/wgsl.md"
else
    (cd "$here/.." && cargo run --release -q -p grrm-model --example bench_kernels -- "${quick[@]}" --out "$tmp/wgsl.md")
fi
torch_ok=1
python3 "$here/matmul_torch.py" "${quick[@]}" --out "$tmp/torch.md" || torch_ok=0
card="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)"
driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
[[ -z "$card" ]] && card="$(head -1 "$tmp/wgsl.md" | sed 's/^adapter: //; s/ (.*//')"
date="$(date -u +%Y-%m-%d)"
slug="$(echo "$card" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')"
out="$here/kernels-$slug-$date.md"
{
    echo "# Kernel benchmark: $card"
    echo
    echo "- date: $date (UTC)"
    echo "- driver: ${driver:-unknown}"
    echo "- host: $(uname -srm)"
    echo
    echo "## WGSL kernels through wgpu (grrm bench kernels)"
    echo
    cat "$tmp/wgsl.md"
    echo
    echo "## The same matmuls through PyTorch (cuBLAS)"
    echo
    if [[ $torch_ok == 1 ]]; then cat "$tmp/torch.md"; else echo "PyTorch with CUDA not available here."; fi
} > "$out"
echo "wrote $out"
