#!/usr/bin/env bash
# Rollout scaling on one host with two GPUs (issue 8): the same rollout-heavy SRPO steps
# (reasoning mode, 64 prompts x 16 responses of up to 128 tokens, the demo's SFT model) with
#   one_gpu            rollouts on the learner's GPU (1 rollout actor),
#   one_gpu_2threads   the same with 2 rollout actors,
#   two_pools          one rollout pool per GPU (system.rollout_adapters = ["0", "1"]),
#   remote2            two `grrm rollout-worker` processes (GPU 0 and 1) through NATS JetStream.
# Needs nats-server on PATH and two adapters (grrm devices). Writes OUT/summary.txt.
# Usage: OUT=dir [GRRM=path/to/grrm] bench/run_rollout_scaling.sh
set -u
G="${GRRM:-grrm}"
OUT="${OUT:-rollout-scaling-out}"; mkdir -p "$OUT"
nvidia-smi --query-gpu=index,name,driver_version --format=csv > "$OUT/devices.txt" 2>/dev/null
tmp=$(mktemp -d)
timeout 600 "$G" demo --out "$tmp/d" > "$OUT/demo.txt" 2>&1; echo "demo rc $?" | tee "$OUT/summary.txt"
C="$tmp/d/runs/rl/config.resolved.toml"
H=(--set 'mode="reasoning"' --set n=16 --set prompts_per_step=64 --set mini_batch_prompts=32
   --set rollout_batch=16 --set max_response_tokens=128 --set steps=3 --set rl_eval_every=0
   --set checkpoint_every=100)
run() {
    local name=$1; shift; local t0; t0=$(date +%s%N)
    timeout 600 "$G" rl --config "$C" "${H[@]}" "$@" --out "$tmp/$name" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "$name rc $rc wall $(( ($(date +%s%N) - t0) / 1000000 )) ms" | tee -a "$OUT/summary.txt"
    cp "$tmp/$name/metrics.jsonl" "$OUT/$name.metrics.jsonl" 2>/dev/null
}
run one_gpu
run one_gpu_2threads --set system.rollout_workers=2
run two_pools --set 'system.rollout_adapters=["0","1"]'
port=$((20000 + RANDOM % 20000))
nats-server -js -a 127.0.0.1 -p $port -sd "$tmp/js" > "$OUT/nats.txt" 2>&1 & nats=$!
"$G" rollout-worker --nats nats://127.0.0.1:$port --run scaling --adapter 0 --name gpu0 > "$OUT/w0.txt" 2>&1 & w0=$!
"$G" rollout-worker --nats nats://127.0.0.1:$port --run scaling --adapter 1 --name gpu1 > "$OUT/w1.txt" 2>&1 & w1=$!
run remote2 --set "system.remote.url=\"nats://127.0.0.1:$port\"" --set 'system.remote.run="scaling"'
kill $w0 $w1 $nats 2>/dev/null
echo "tasks done: gpu0 $(grep -c ' done ' "$OUT/w0.txt") gpu1 $(grep -c ' done ' "$OUT/w1.txt")" | tee -a "$OUT/summary.txt"
python3 - "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, os, sys
for n in ["one_gpu", "one_gpu_2threads", "two_pools", "remote2"]:
    p = os.path.join(sys.argv[1], n + ".metrics.jsonl")
    if not os.path.exists(p):
        print(n, "no metrics"); continue
    rows = [json.loads(l) for l in open(p) if '"step_seconds"' in l]
    print(n, "step_s", [round(r["step_seconds"], 3) for r in rows],
          "reward", [round(r["reward_mean"], 4) for r in rows],
          "resp_len", [round(r["response_length"], 1) for r in rows],
          "generated", [r["responses_generated"] for r in rows],
          {k: rows[-1][k] for k in rows[-1] if k.startswith("net_")})
PY
rm -rf "$tmp"
