#!/usr/bin/env python3
"""Combines the JSON reports of `grrm bench model` and bench/model_transformers.py (one file per
phase or one for all) and the nvidia-smi peaks that bench/run_model.sh polled into one markdown
page. Standard library only.

Usage: model_table.py --grrm a.json [b.json ...] [--grrm-recompute r.json] --torch c.json [...]
                      [--smi smi.tsv]
                      [--card NAME] [--driver VER] [--date D] [--out page.md]
smi.tsv lines: <run name> <exit code> <idle MiB> <peak MiB> <seconds>.
"""
import argparse
import json
import os
import platform


def merge(paths):
    """One dict from several reports: phase keys from every file, header keys from the first."""
    out = {}
    for path in paths:
        if not os.path.exists(path):
            continue
        try:
            with open(path) as f:
                report = json.load(f)
        except (OSError, ValueError):
            continue
        for key, value in report.items():
            if value is not None and (key not in out or out[key] is None):
                out[key] = value
    return out


def read_smi(path):
    runs = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 5:
                    name, rc, idle, peak, seconds = parts
                    runs[name] = dict(rc=rc, idle=idle, peak=peak, seconds=seconds)
    return runs


def mib(b):
    m = b / 2**20
    return f"{m:,.0f}" if m >= 100 else f"{m:.1f}"


def smi_delta(runs, name):
    r = runs.get(name)
    if not r:
        return "-"
    try:
        return f"{int(r['peak']) - int(r['idle']):,}"
    except ValueError:
        return "-"


def cell(phase, fmt):
    if phase is None:
        return "not run"
    if "error" in phase:
        return phase["error"]
    return fmt(phase)


def inference_note(train_dtype):
    """Inference multiplies in the precision training does (one `matmul_precision` per model)."""
    if "tensor-core" in train_dtype:
        return ("inference: f16 tensor-core products (steps of 256+ rows with per-tensor scales, "
                "decode steps with per-row scales), f16 KV cache, f32 elsewhere")
    if "emulated" in train_dtype:
        return "inference: f16-emulated products, f16 KV cache"
    return "inference f32"


def page(g, t, runs, card, driver, date, recompute=None):
    gt, gg, gb = g.get("train"), g.get("generate"), g.get("beam")
    gr = (recompute or {}).get("train")
    tb, tf, tg, tbeam = t.get("train_bf16"), t.get("train_fp32"), t.get("generate"), t.get("beam")
    shape = g.get("shape") or t.get("shape") or {}
    lines = [
        f"# Model benchmark: {card}",
        "",
        f"- date: {date} (UTC)",
        f"- driver: {driver or 'unknown'}",
        f"- host: {platform.system()} {platform.release()} {platform.machine()}",
        f"- grrm: {g.get('adapter', 'not run')} through {g.get('backend', '?')} ({g.get('driver', '?')}), "
        f"f32 weights, gradients, AdamW moments and activations; training matmuls: {(gt or {}).get('dtype', '?')}; "
        f"{inference_note((gt or {}).get('dtype', ''))}",
        f"- transformers {t.get('transformers', 'not run')}, torch {t.get('torch', '?')}, CUDA {t.get('cuda', '?')}, "
        "sdpa attention, TF32 off",
        "- model: Qwen3, "
        + ", ".join(f"{k} {v}" for k, v in shape.items())
        + f", tied embeddings, random weights; {g.get('parameters') or '?'} parameters",
        "- inputs: identical token ids and semantic-ID catalogue for both engines (splitmix64 streams)",
        "",
    ]
    train_work = f"batch {gt['batch']} x {gt['seq']}" if gt and "batch" in gt else "training"
    gen_work = (
        f"{gg['prompts']} prompts x {gg['prompt_len']} + {gg['new_tokens']} new, T {gg['temperature']}, top-p {gg['top_p']}"
        if gg and "prompts" in gg else "sampling"
    )
    beam_work = (
        f"{gb['users']} users x {gb['prompt_len']} tokens, {gb['beams']} beams, {gb['batch_users']} users per call, "
        f"{gb['catalogue']['items']} IDs of {gb['catalogue']['levels']} tokens"
        if gb and "users" in gb else "beam search"
    )
    rows = [
        ("training tokens/s (" + train_work + ")",
         cell(gt, lambda p: f"{p['tokens_per_s']:,.0f}"),
         cell(tb, lambda p: f"{p['tokens_per_s']:,.0f}"),
         cell(tf, lambda p: f"{p['tokens_per_s']:,.0f}")),
        ("training step, median (s)",
         cell(gt, lambda p: f"{p['median_step_seconds']:.3f}"),
         cell(tb, lambda p: f"{p['median_step_seconds']:.3f}"),
         cell(tf, lambda p: f"{p['median_step_seconds']:.3f}")),
        ("training peak, engine's count (MiB)",
         cell(gt, lambda p: mib(p["peak_bytes"])),
         cell(tb, lambda p: mib(p["peak_bytes"])),
         cell(tf, lambda p: mib(p["peak_bytes"]))),
        ("training peak, nvidia-smi over idle (MiB)",
         smi_delta(runs, "grrm-train"), smi_delta(runs, "torch-train_bf16"), smi_delta(runs, "torch-train_fp32")),
        ("training memory plan, grrm MemoryPlan (MiB)",
         cell(gt, lambda p: mib(p["plan_bytes"])), "-", "-"),
        ("training tokens/s, grrm with recomputed activations",
         cell(gr, lambda p: f"{p['tokens_per_s']:,.0f}"), "-", "-"),
        ("training peak with recomputation, engine's count (MiB)",
         cell(gr, lambda p: mib(p["peak_bytes"])), "-", "-"),
        ("training peak with recomputation, nvidia-smi over idle (MiB)",
         smi_delta(runs, "grrm-train_recompute"), "-", "-"),
        ("training memory plan with recomputation (MiB)",
         cell(gr, lambda p: mib(p["plan_bytes"])), "-", "-"),
        ("sampled generation new tokens/s (" + gen_work + ")",
         cell(gg, lambda p: f"{p['tokens_per_s']:,.1f}"),
         cell(tg, lambda p: f"{p['tokens_per_s']:,.1f}"), "-"),
        ("sampling peak, engine's count (MiB)",
         cell(gg, lambda p: mib(p["peak_bytes"])), cell(tg, lambda p: mib(p["peak_bytes"])), "-"),
        ("sampling peak, nvidia-smi over idle (MiB)",
         smi_delta(runs, "grrm-generate"), smi_delta(runs, "torch-generate"), "-"),
        ("constrained beam search users/s (" + beam_work + ")",
         cell(gb, lambda p: f"{p['users_per_s']:,.2f}"),
         cell(tbeam, lambda p: f"{p['users_per_s']:,.2f}"), "-"),
        ("beam search peak, engine's count (MiB)",
         cell(gb, lambda p: mib(p["peak_bytes"])), cell(tbeam, lambda p: mib(p["peak_bytes"])), "-"),
        ("beam search peak, nvidia-smi over idle (MiB)",
         smi_delta(runs, "grrm-beam"), smi_delta(runs, "torch-beam"), "-"),
    ]
    grrm_col = "grrm (WGSL)"
    lines += [
        f"| measurement | {grrm_col} | transformers bf16 | transformers fp32 |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += [
        "",
        "Engine's count: grrm's live/peak byte counter over its tensor buffers; torch's",
        "`max_memory_allocated`. Both include the weights and reset per phase. nvidia-smi: the card's",
        "`memory.used` polled every 200 ms while the phase's process ran, minus its value before the",
        "process started (so it includes the CUDA context or Vulkan driver and allocator caches).",
        "grrm's sampling chooses tokens on the GPU (kernels::sample: only token ids and log-probs are",
        "read back, a step behind: the next step reads the chosen tokens on the GPU); beam search",
        "gathers the trie-allowed tokens' log-probs on the GPU (kernels::gather), its beams read their",
        "user's prompt from the prefill's cache, and it reorders only the tokens beams add between",
        "two small caches it keeps across calls.",
        "",
    ]
    if runs:
        lines += ["| run | exit code | wall (s) | idle MiB | peak MiB |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {n} | {r['rc']} | {r['seconds']} | {r['idle']} | {r['peak']} |" for n, r in runs.items()]
        lines.append("")
    for label, tr in (("", gt), (" with recomputation", gr)):
        if tr and "plan" in tr:
            parts = [f"{k} {mib(v)}" for k, v in tr["plan"].items() if isinstance(v, int) and not isinstance(v, bool)]
            lines.append(f"grrm training memory plan{label} (MiB): " + ", ".join(parts))
            lines.append("")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grrm", nargs="*", default=[])
    ap.add_argument("--grrm-recompute", help="grrm's training report with --recompute")
    ap.add_argument("--torch", nargs="*", default=[])
    ap.add_argument("--smi")
    ap.add_argument("--card", default="unknown card")
    ap.add_argument("--driver", default="")
    ap.add_argument("--date", default="")
    ap.add_argument("--out")
    args = ap.parse_args()
    recompute = merge([args.grrm_recompute]) if args.grrm_recompute else None
    text = page(
        merge(args.grrm), merge(args.torch), read_smi(args.smi), args.card, args.driver, args.date, recompute
    )
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
