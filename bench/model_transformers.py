#!/usr/bin/env python3
"""The `grrm bench model` workloads through transformers + torch on CUDA, for the side-by-side
table of bench/run_model.sh. Random-initialised Qwen3 from a Qwen3Config (no downloads).

Phases (each its own peak-memory window, torch.cuda.max_memory_allocated, weights included):
  train_bf16, train_fp32  full steps at batch x seq: zero_grad, forward with labels (the
                          model's shifted cross-entropy), backward, clip_grad_norm_(1.0), torch
                          AdamW; warm-up steps untimed; CUDA synchronised around each step.
                          fp32 runs with TF32 off (the like-for-like row for grrm's f32).
  generate                model.generate(do_sample=True, temperature, top_p, top_k=0) on
                          left-padded prompts, a fixed number of new tokens (the config has no
                          EOS, so every sequence runs to the limit), bf16.
  beam                    constrained beam search: prefix_allowed_tokens_fn over a trie of
                          random semantic IDs, num_beams = num_return_sequences, bf16.

Prompts, training tokens and the catalogue come from the same splitmix64 streams as
model/src/bench_model/workload.rs, so both engines see identical inputs.
Writes JSON (--out) and prints a markdown table.
"""
import argparse
import gc
import json
import statistics
import sys
import time

import torch

M64 = (1 << 64) - 1
TRAIN_STREAM, SAMPLE_STREAM, CATALOGUE_STREAM, BEAM_STREAM = 1, 2, 3, 4

SHAPES = {
    "full": dict(layers=28, hidden=1024, heads=16, kv_heads=8, head_dim=128, ffn=3072, vocab=153216),
    "quick": dict(layers=2, hidden=64, heads=4, kv_heads=2, head_dim=16, ffn=192, vocab=2048),
}
WORKLOADS = {
    "full": dict(
        batch=8, seq=1024, warmup_steps=1, steps=3,
        gen_prompts=64, gen_prompt_len=256, gen_new_tokens=128, temperature=1.0, top_p=0.95,
        beam_users=64, beam_batch=16, beam_prompt_len=256, beams=10, items=4096, levels=4, codes=256,
    ),
    "quick": dict(
        batch=2, seq=64, warmup_steps=1, steps=2,
        gen_prompts=4, gen_prompt_len=16, gen_new_tokens=8, temperature=1.0, top_p=0.95,
        beam_users=4, beam_batch=2, beam_prompt_len=16, beams=10, items=500, levels=3, codes=16,
    ),
}
PHASES = ["train_bf16", "train_fp32", "generate", "beam"]


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & M64

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & M64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def below(self, n):
        return self.next_u64() % max(n, 1)


def token_rows(seed, rows, length, vocab):
    r = SplitMix64(seed)
    return [[r.below(vocab) for _ in range(length)] for _ in range(rows)]


def catalogue_ids(seed, items, levels, codes, vocab):
    base = vocab - levels * codes
    assert base > 0 and items <= codes**levels / 2, "catalogue does not fit the vocabulary"
    r = SplitMix64(seed)
    seen, ids = set(), []
    while len(ids) < items:
        item = tuple(base + level * codes + r.below(codes) for level in range(levels))
        if item not in seen:
            seen.add(item)
            ids.append(item)
    return ids, base


def left_padded(rows, pad_id):
    """input_ids and attention_mask for prompts of any lengths, padded on the left."""
    width = max(len(r) for r in rows)
    ids = [[pad_id] * (width - len(r)) + list(r) for r in rows]
    mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    return (torch.tensor(ids, device="cuda"), torch.tensor(mask, device="cuda"))


def build_model(shape, dtype, max_positions, seed):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["ffn"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"],
        max_position_embeddings=max(40960, max_positions),
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        attention_bias=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
        attn_implementation="sdpa",
    )
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = Qwen3ForCausalLM(cfg)
    model.to(dtype)
    params = sum(p.numel() for p in model.parameters())
    return model, params


def sync_time():
    torch.cuda.synchronize()
    return time.perf_counter()


def phase_train(shape, w, seed, dtype, log):
    model, params = build_model(shape, dtype, w["seq"], seed)
    model.train()
    model.config.use_cache = False
    ids = torch.tensor(token_rows(seed + TRAIN_STREAM, w["batch"], w["seq"], shape["vocab"]), device="cuda")
    torch.cuda.reset_peak_memory_stats()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, fused=True)
    times, losses = [], []
    for i in range(w["warmup_steps"] + w["steps"]):
        start = sync_time()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        seconds = sync_time() - start
        losses.append(loss.item())
        warm = i < w["warmup_steps"]
        if not warm:
            times.append(seconds)
        log(f"train {dtype} step {i + 1}: {seconds:.3f} s, loss {losses[-1]:.4f}{' (warm-up)' if warm else ''}")
    tokens = w["batch"] * w["seq"]
    return dict(
        batch=w["batch"], seq=w["seq"], dtype=str(dtype).replace("torch.", ""),
        warmup_steps=w["warmup_steps"], steps=w["steps"], step_seconds=times,
        median_step_seconds=statistics.median(times),
        tokens_per_s=tokens * len(times) / sum(times),
        loss_first=losses[0], loss_last=losses[-1], parameters=params,
        peak_bytes=torch.cuda.max_memory_allocated(),
        peak_reserved_bytes=torch.cuda.max_memory_reserved(),
    )


def phase_generate(shape, w, seed, log):
    model, params = build_model(shape, torch.bfloat16, w["gen_prompt_len"] + w["gen_new_tokens"], seed)
    model.eval()
    prompts = token_rows(seed + SAMPLE_STREAM, w["gen_prompts"], w["gen_prompt_len"], shape["vocab"])
    ids, mask = left_padded(prompts, 0)
    kwargs = dict(
        do_sample=True, temperature=w["temperature"], top_p=w["top_p"], top_k=0,
        pad_token_id=0, eos_token_id=None,
    )
    with torch.no_grad():
        start = sync_time()
        # Warm-up on every prompt (as grrm's): kernels and their choices depend on the batch.
        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, **kwargs)
        log(f"generate: warm-up {sync_time() - start:.2f} s")
        torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(seed)
        start = sync_time()
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=w["gen_new_tokens"], **kwargs
        )
        seconds = sync_time() - start
    generated = (out.shape[1] - ids.shape[1]) * out.shape[0]
    log(f"generate: {generated} tokens in {seconds:.2f} s = {generated / seconds:.1f} tok/s")
    return dict(
        prompts=w["gen_prompts"], prompt_len=w["gen_prompt_len"], new_tokens=w["gen_new_tokens"],
        temperature=w["temperature"], top_p=w["top_p"], dtype="bfloat16", seconds=seconds,
        generated_tokens=generated, tokens_per_s=generated / seconds, parameters=params,
        peak_bytes=torch.cuda.max_memory_allocated(),
        peak_reserved_bytes=torch.cuda.max_memory_reserved(),
    )


def phase_beam(shape, w, seed, log):
    levels, beams = w["levels"], w["beams"]
    model, params = build_model(shape, torch.bfloat16, w["beam_prompt_len"] + levels, seed)
    model.eval()
    ids, base = catalogue_ids(seed + CATALOGUE_STREAM, w["items"], levels, w["codes"], shape["vocab"])
    children = {}
    for item in ids:
        for depth in range(levels):
            children.setdefault(item[:depth], set()).add(item[depth])
    trie = {prefix: sorted(next_tokens) for prefix, next_tokens in children.items()}
    prompts = token_rows(seed + BEAM_STREAM, w["beam_users"], w["beam_prompt_len"], base)
    per_call = max(1, w["beam_batch"])

    def search(rows):
        input_ids, mask = left_padded(rows, 0)
        width = input_ids.shape[1]

        def allowed(_batch_id, seq):
            return trie.get(tuple(seq[width:].tolist()), [0])

        out = model.generate(
            input_ids=input_ids, attention_mask=mask, num_beams=beams, num_return_sequences=beams,
            max_new_tokens=levels, do_sample=False, length_penalty=0.0, early_stopping=True,
            prefix_allowed_tokens_fn=allowed, pad_token_id=0, eos_token_id=None,
        )
        return out[:, width:].reshape(len(rows), beams, -1)

    with torch.no_grad():
        start = sync_time()
        # Two warm-up calls, as `grrm bench model` makes (its first compiles pipelines).
        for _ in range(2):
            search(prompts[:per_call])
        log(f"beam: warm-up {sync_time() - start:.2f} s")
        torch.cuda.reset_peak_memory_stats()
        start = sync_time()
        valid = set(ids)
        min_results = beams
        for k in range(0, len(prompts), per_call):
            got = search(prompts[k:k + per_call]).tolist()
            for user in got:
                distinct = {tuple(seq) for seq in user if tuple(seq) in valid}
                min_results = min(min_results, len(distinct))
        seconds = sync_time() - start
    users = len(prompts)
    log(f"beam: {users} users in {seconds:.2f} s = {users / seconds:.2f} users/s")
    return dict(
        users=users, batch_users=per_call, prompt_len=w["beam_prompt_len"], beams=beams,
        catalogue=dict(items=w["items"], levels=levels, codes=w["codes"]), dtype="bfloat16",
        seconds=seconds, users_per_s=users / seconds, min_results=min_results, parameters=params,
        peak_bytes=torch.cuda.max_memory_allocated(),
        peak_reserved_bytes=torch.cuda.max_memory_reserved(),
    )


def markdown(report):
    mib = lambda b: b / 2**20
    lines = [
        f"torch {report['torch']}, transformers {report['transformers']}, {report['device']}\n",
        "| phase | workload | throughput | time | peak allocated (MiB) |",
        "|---|---|---:|---:|---:|",
    ]
    for key in ("train_bf16", "train_fp32"):
        t = report.get(key)
        if t and "error" not in t:
            lines.append(
                f"| training ({t['dtype']}, AdamW) | batch {t['batch']} x {t['seq']}, {t['steps']} timed steps "
                f"| {t['tokens_per_s']:.0f} tok/s | {t['median_step_seconds']:.3f} s/step | {mib(t['peak_bytes']):.1f} |"
            )
        elif t:
            lines.append(f"| training ({key[6:]}) | {t['error']} | | | |")
    g = report.get("generate")
    if g and "error" not in g:
        lines.append(
            f"| sampling (bf16) | {g['prompts']} prompts x {g['prompt_len']} + {g['new_tokens']} new, top-p {g['top_p']} "
            f"| {g['tokens_per_s']:.1f} new tok/s | {g['seconds']:.2f} s | {mib(g['peak_bytes']):.1f} |"
        )
    elif g:
        lines.append(f"| sampling | {g['error']} | | | |")
    b = report.get("beam")
    if b and "error" not in b:
        lines.append(
            f"| constrained beam search (bf16) | {b['users']} users, {b['beams']} beams, {b['batch_users']} per call "
            f"| {b['users_per_s']:.2f} users/s | {b['seconds']:.2f} s | {mib(b['peak_bytes']):.1f} |"
        )
    elif b:
        lines.append(f"| beam search | {b['error']} | | | |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated: " + ",".join(PHASES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the JSON report here")
    ap.add_argument("--table", help="write the markdown table here")
    for key in SHAPES["full"]:
        ap.add_argument("--" + key.replace("_", "-"), type=int)
    for key, value in WORKLOADS["full"].items():
        ap.add_argument("--" + key.replace("_", "-"), type=type(value))
    args = ap.parse_args()
    size = "quick" if args.quick else "full"
    shape = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in SHAPES[size].items()}
    w = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in WORKLOADS[size].items()}
    phases = [p for p in args.phases.split(",") if p]
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        sys.exit(f"unknown phase(s) {unknown}; choose from {PHASES}")
    if not torch.cuda.is_available():
        sys.exit("CUDA is not available to torch")
    try:
        import transformers
        from transformers import Qwen3Config  # noqa: F401 (Qwen3 needs transformers >= 4.51)
    except ImportError as e:
        sys.exit(f"transformers with Qwen3 is not available: {e}")

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    log = lambda line: print(f"[transformers] {line}", file=sys.stderr, flush=True)
    report = dict(
        engine="transformers", torch=torch.__version__, transformers=transformers.__version__,
        cuda=torch.version.cuda, device=torch.cuda.get_device_name(0), shape=shape, seed=args.seed,
    )
    for phase in phases:
        log(f"phase {phase}")
        try:
            if phase == "train_bf16":
                report[phase] = phase_train(shape, w, args.seed, torch.bfloat16, log)
            elif phase == "train_fp32":
                report[phase] = phase_train(shape, w, args.seed, torch.float32, log)
            elif phase == "generate":
                report[phase] = phase_generate(shape, w, args.seed, log)
            else:
                report[phase] = phase_beam(shape, w, args.seed, log)
        except torch.cuda.OutOfMemoryError as e:
            log(f"{phase}: out of memory: {e}")
            report[phase] = dict(error="out of memory")
        gc.collect()
        torch.cuda.empty_cache()
    table = markdown(report)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.table:
        with open(args.table, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
