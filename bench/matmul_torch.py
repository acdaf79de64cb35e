#!/usr/bin/env python3
"""The matmul shapes of `grrm bench kernels` through PyTorch on the same card: cuBLAS f32 with
TF32 disabled (the honest f32 baseline), TF32, f16 and bf16. Prints a markdown table.

C[M, N] = A[M, K] @ B[N, K]^T (a Linear layer), random data, median of CUDA-event timings
after warm-up. 
"""
import argparse
import statistics

import torch

SHAPES = [(4096, 4096, 4096), (8192, 3072, 1024), (8192, 1024, 3072), (4096, 153216, 1024)]
QUICK = [(256, 256, 256), (128, 1024, 256)]


def time_mm(m, n, k, dtype, tf32, samples=5):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    a = torch.randn(m, k, device="cuda", dtype=dtype)
    b = torch.randn(n, k, device="cuda", dtype=dtype)
    c = torch.empty(m, n, device="cuda", dtype=dtype)
    flops = 2.0 * m * n * k
    reps = max(1, min(20, round(1e12 / flops)))
    for _ in range(2):
        torch.matmul(a, b.t(), out=c)
    torch.cuda.synchronize()
    times = []
    for _ in range(samples):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            torch.matmul(a, b.t(), out=c)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3 / reps)
    del a, b, c
    torch.cuda.empty_cache()
    return statistics.median(times), flops


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args()
    props = torch.cuda.get_device_properties(0)
    lines = [
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, {props.name}\n",
        "| kernel | shape | time (ms) | GFLOP/s |",
        "|---|---|---:|---:|",
    ]
    variants = [
        ("cuBLAS f32 (TF32 off)", torch.float32, False),
        ("cuBLAS tf32", torch.float32, True),
        ("cuBLAS f16", torch.float16, False),
        ("cuBLAS bf16", torch.bfloat16, False),
    ]
    for m, n, k in QUICK if args.quick else SHAPES:
        for name, dtype, tf32 in variants:
            try:
                t, flops = time_mm(m, n, k, dtype, tf32)
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                lines.append(f"| {name} | {m}x{n}x{k} NT | out of memory | |")
                continue
            lines.append(f"| {name} | {m}x{n}x{k} NT | {t * 1e3:.3f} | {flops / t / 1e9:.1f} |")
        print("\n".join(lines[-len(variants):]), flush=True)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
