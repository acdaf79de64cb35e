"""torch scaled_dot_product_attention at grrm's attention benchmark shape, for comparison with
`grrm bench kernels --filter attention` (same FLOP counting: causal pairs T(T+1)/2 per head,
forward 4*D flops a pair, backward 2.5x that).

Usage: python3 bench/attn_torch.py [B T Hq Hkv D]
"""
import sys
import time

import torch
import torch.nn.functional as F

B, T, HQ, HKV, D = (int(a) for a in sys.argv[1:6]) if len(sys.argv) > 5 else (8, 1024, 16, 8, 128)


def timed(fn, reps):
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main():
    dev = "cuda"
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    pairs = B * HQ * T * (T + 1) / 2
    fwd_flop = 4.0 * pairs * D
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for dtype in (torch.bfloat16, torch.float32):
        g = torch.Generator(device=dev).manual_seed(0)
        q = torch.randn(B, HQ, T, D, device=dev, dtype=dtype, generator=g, requires_grad=True)
        k = torch.randn(B, HKV, T, D, device=dev, dtype=dtype, generator=g, requires_grad=True)
        v = torch.randn(B, HKV, T, D, device=dev, dtype=dtype, generator=g, requires_grad=True)
        do = torch.randn(B, HQ, T, D, device=dev, dtype=dtype, generator=g)

        def fwd():
            with torch.no_grad():
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

        def bwd():
            torch.autograd.grad(out, (q, k, v), do, retain_graph=True)

        tf = timed(fwd, 10)
        tb = timed(bwd, 10)
        name = str(dtype).replace("torch.", "")
        print(f"torch sdpa {name} fwd B{B} T{T} H{HQ}/{HKV} D{D}: {tf*1e3:.3f} ms, "
              f"{fwd_flop/tf/1e12:.2f} TFLOP/s")
        print(f"torch sdpa {name} bwd B{B} T{T} H{HQ}/{HKV} D{D}: {tb*1e3:.3f} ms, "
              f"{2.5*fwd_flop/tb/1e12:.2f} TFLOP/s")


if __name__ == "__main__":
    main()
