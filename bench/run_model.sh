#!/usr/bin/env bash
# The issue-3 model benchmark on this machine's GPU: `grrm bench model` (WGSL through wgpu and
# Vulkan) and bench/model_transformers.py (transformers + torch on CUDA) on the same Qwen3-0.6B
# shape and the same inputs, one process per phase so nvidia-smi's peak is per phase. Writes
# bench/model-<card>-<date>.md (side by side) and bench/model-<card>-<date>.json (all reports).
#
# grrm trains twice: with every activation kept, then with --recompute.
# Usage: bench/run_model.sh [--quick] [extra grrm bench model flags, e.g. --seed 1]
# Env: GRRM (grrm binary; default ./grrm, then target/release/grrm), PYTHON (default python3),
#      BUDGET_S (wall-clock budget for all phases, default 540), GPU_INDEX (default 0).
# Each phase has its own time limit, shortened to what is left of the budget, so the whole
# script ends in about BUDGET_S seconds even if a phase hangs.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
quick=()
if [[ "${1:-}" == "--quick" ]]; then quick=(--quick); shift; fi
extra=("$@")
grrm="${GRRM:-}"
if [[ -z "$grrm" ]]; then
    if [[ -x ./grrm ]]; then grrm=./grrm; else grrm="$here/../target/release/grrm"; fi
fi
py="${PYTHON:-python3}"
budget="${BUDGET_S:-540}"
gpu="${GPU_INDEX:-0}"
tmp="$(mktemp -d)"
t0=$(date +%s)
has_smi=0
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -i "$gpu" >/dev/null 2>&1 && has_smi=1

gpu_used() {
    if [[ $has_smi == 1 ]]; then
        nvidia-smi -i "$gpu" --query-gpu=memory.used --format=csv,noheader,nounits | head -1 | tr -d ' '
    else
        echo "-"
    fi
}

# measure NAME LIMIT_S CMD...: runs CMD under a time limit while polling the card's memory.
measure() {
    local name=$1 limit=$2
    shift 2
    local left=$((budget - ($(date +%s) - t0)))
    ((left < limit)) && limit=$left
    if ((limit < 10)); then
        echo "== $name: skipped, the ${budget} s budget is spent" >&2
        echo "$name skipped - - 0" >>"$tmp/smi.tsv"
        return
    fi
    echo "== $name (limit ${limit} s, $(( $(date +%s) - t0 )) s elapsed)" >&2
    sleep 1
    local idle smi=""
    idle=$(gpu_used)
    if [[ $has_smi == 1 ]]; then
        nvidia-smi -i "$gpu" --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$tmp/$name.smi" 2>/dev/null &
        smi=$!
    fi
    local start
    start=$(date +%s%N)
    timeout --kill-after=10 "$limit" "$@"
    local rc=$?
    local ms=$((($(date +%s%N) - start) / 1000000))
    local secs="$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
    [[ -n "$smi" ]] && { kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null; }
    local peak="-"
    [[ -s "$tmp/$name.smi" ]] && peak=$(tr -d ' ' <"$tmp/$name.smi" | grep -E '^[0-9]+$' | sort -n | tail -1)
    echo "$name $rc $idle ${peak:--} $secs" >>"$tmp/smi.tsv"
    echo "== $name: exit $rc, ${secs} s, card memory idle ${idle} MiB, peak ${peak} MiB" >&2
}

if [[ ! -x "$grrm" ]]; then
    echo "no grrm binary at $grrm (set GRRM)" >&2
fi
# Train first (largest memory), then beam search, then sampling (the longest phase).
measure grrm-train 200 "$grrm" bench model "${quick[@]}" --phases train --out "$tmp/grrm-train.json" "${extra[@]}"
measure torch-train_bf16 120 "$py" "$here/model_transformers.py" "${quick[@]}" --phases train_bf16 --out "$tmp/torch-train_bf16.json"
measure torch-train_fp32 120 "$py" "$here/model_transformers.py" "${quick[@]}" --phases train_fp32 --out "$tmp/torch-train_fp32.json"
measure grrm-train_recompute 200 "$grrm" bench model "${quick[@]}" --phases train --recompute --out "$tmp/grrm_recompute-train.json" "${extra[@]}"
measure grrm-beam 120 "$grrm" bench model "${quick[@]}" --phases beam --out "$tmp/grrm-beam.json" "${extra[@]}"
measure torch-beam 120 "$py" "$here/model_transformers.py" "${quick[@]}" --phases beam --out "$tmp/torch-beam.json"
measure grrm-generate 240 "$grrm" bench model "${quick[@]}" --phases generate --out "$tmp/grrm-generate.json" "${extra[@]}"
measure torch-generate 120 "$py" "$here/model_transformers.py" "${quick[@]}" --phases generate --out "$tmp/torch-generate.json"

card=""
driver=""
if [[ $has_smi == 1 ]]; then
    card="$(nvidia-smi -i "$gpu" --query-gpu=name --format=csv,noheader | head -1)"
    driver="$(nvidia-smi -i "$gpu" --query-gpu=driver_version --format=csv,noheader | head -1)"
fi
if [[ -z "$card" ]]; then
    card="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["adapter"])' "$tmp/grrm-train.json" 2>/dev/null || echo unknown)"
fi
date="$(date -u +%Y-%m-%d)"
slug="$(echo "$card" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')"
suffix=""
[[ ${#quick[@]} -gt 0 ]] && suffix="-quick"
out="$here/model-$slug-$date$suffix.md"
python3 "$here/model_table.py" --grrm "$tmp"/grrm-*.json --grrm-recompute "$tmp/grrm_recompute-train.json" \
    --torch "$tmp"/torch-*.json --smi "$tmp/smi.tsv" \
    --card "$card" --driver "$driver" --date "$date" --out "$out" >/dev/null
# Every raw report in one JSON file next to the table.
python3 - "$tmp" "$here/model-$slug-$date$suffix.json" <<'EOF'
import glob, json, os, sys
tmp, dst = sys.argv[1], sys.argv[2]
reports = {}
for path in sorted(glob.glob(os.path.join(tmp, "*.json"))):
    try:
        reports[os.path.basename(path)[:-5]] = json.load(open(path))
    except ValueError:
        pass
reports["nvidia_smi"] = open(os.path.join(tmp, "smi.tsv")).read().splitlines() if os.path.exists(os.path.join(tmp, "smi.tsv")) else []
json.dump(reports, open(dst, "w"), indent=2)
EOF
cat "$out"
echo "wrote $out and ${out%.md}.json ($(( $(date +%s) - t0 )) s)"
