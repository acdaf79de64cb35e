//! Causal grouped-query attention against an f64 CPU reference (GQA, key padding with left and
//! right padding, fully padded sequences, odd sizes), the backward against the analytic
//! reference gradient and a finite-difference check of the GPU forward, decode against a KV
//! cache (equal to the training forward's rows; ragged lengths; capacity overflow), cache
//! append and beam gather, and shape errors. Every attention case runs through the three kernel
//! families (`Workgroup`, `Rows` and `Tiled`; `Tiled` skips D > 128, which it rejects), with
//! sizes that give the Rows kernel several workgroups per sequence and head (GQA groups 1, 2, 3
//! and 8; T 260 > its 256 key rows per workgroup) and the Tiled kernel several 64-row blocks
//! and 32-row tiles; the Tiled kernel also runs on odd batches, odd T, D 32/64/128/67/5 and
//! prefill chunks at start offsets (forward and backward, outputs poisoned before launch).
//! The `TensorCore` kernel (f16 operands on cooperative matrices) runs on adapters that have
//! them against the reference evaluated on its f16-rounded operands, including dout of a
//! token-mean loss's size and prefill chunks; elsewhere a forced call must be a clear error.
//! Single-token decode through the `SubgroupDecode` kernel (shaders/attention_decode.wgsl) runs
//! against an f64 reference and against the `Workgroup` and `Rows` kernels on GQA groups 1, 2,
//! 4 and 8, D 8/36/64/128/256, ragged starts, left padding, NaN in masked and unwritten cache
//! rows, a masked query and a query at Tmax; a plan test checks that `Auto` picks it wherever
//! the adapter allows (and that a forced `SubgroupDecode` that cannot run is an error).
//!
//! Tolerances (inputs uniform in [-1, 1], f32 arithmetic, sums over at most 33 keys x D <= 256):
//! - forward out: |err| <= 1e-5 (a convex combination of values in [-1, 1]; the softmax
//!   weights carry a few f32 roundings each, ~1e-6 in practice); lse: 1e-5 * (1 + |lse|).
//! - gradients: |err| <= 1e-5 + 1e-4 * mag, where mag is the f64 sum of the absolute values of
//!   the terms that make up the element (f32 accumulation of up to ~70 terms, each carrying a
//!   relative error of a few 1e-7, and the cancellation in dP - delta).
//! - finite differences (directional, central, eps 1e-2 on the f32 forward): |fd - <g,u>| <=
//!   2e-3 + 1e-2 * |<g,u>| (truncation O(eps^2) plus f32 rounding of the loss / 2 eps).
//! - decode rows vs training rows: 1e-6 (the same kernel visits the keys in the same order).
//! - SubgroupDecode vs the f64 reference: 1e-5 (as the forward); vs Workgroup and Rows: 2e-6
//!   (the same f32 function summed in another order; ~1e-7 in practice on lavapipe).

mod common;

use common::*;
use grrm_model::kernels::attention::{
    attention_backward, attention_decode, attention_decode_shared, attention_forward,
    kv_cache_append, kv_cache_gather, kv_cache_gather_keeping, planned_decode_shader,
    AttentionGrads, AttentionHeads, AttentionInputs, AttentionKernel, KvCache, PrefixTable,
    TILED_MAX_HEAD_DIM,
};

const KERNELS: [AttentionKernel; 3] = [
    AttentionKernel::Workgroup,
    AttentionKernel::Rows,
    AttentionKernel::Tiled,
];

/// Whether `kernel` takes head dim `d` (the Tiled kernel stops at 128).
fn takes(kernel: AttentionKernel, d: usize) -> bool {
    kernel != AttentionKernel::Tiled || d <= TILED_MAX_HEAD_DIM
}
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use half::f16;

#[derive(Clone, Copy, Debug)]
struct Dims {
    b: usize,
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    scale: f64,
    kernel: AttentionKernel,
}

impl Dims {
    fn heads(&self) -> AttentionHeads {
        AttentionHeads::new(self.hq, self.hkv, self.d)
            .with_scale(self.scale as f32)
            .with_kernel(self.kernel)
    }
    fn on(self, kernel: AttentionKernel) -> Self {
        Dims { kernel, ..self }
    }
    fn qi(&self, b: usize, i: usize, h: usize) -> usize {
        (b * self.t + i) * self.hq * self.d + h * self.d
    }
    fn ki(&self, b: usize, j: usize, g: usize) -> usize {
        (b * self.t + j) * self.hkv * self.d + g * self.d
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Softmax weights of query (b, i, h) over keys 0..=i; None for a padded query.
fn probs(
    x: &Dims,
    q: &[f32],
    k: &[f32],
    mask: &[u32],
    b: usize,
    i: usize,
    h: usize,
) -> Option<Vec<f64>> {
    if mask[b * x.t + i] == 0 {
        return None;
    }
    let g = h / (x.hq / x.hkv);
    let qr = &q[x.qi(b, i, h)..][..x.d];
    let s: Vec<f64> = (0..=i)
        .map(|j| {
            if mask[b * x.t + j] == 0 {
                f64::NEG_INFINITY
            } else {
                x.scale * dot(qr, &k[x.ki(b, j, g)..][..x.d])
            }
        })
        .collect();
    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
    let l: f64 = e.iter().sum();
    Some(e.into_iter().map(|v| v / l).chain([m + l.ln()]).collect())
}

/// (out, lse) in f64.
fn reference_forward(
    x: &Dims,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[u32],
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0f64; q.len()];
    let mut lse = vec![0f64; x.b * x.hq * x.t];
    for b in 0..x.b {
        for i in 0..x.t {
            for h in 0..x.hq {
                let Some(pr) = probs(x, q, k, mask, b, i, h) else {
                    continue;
                };
                let g = h / (x.hq / x.hkv);
                for j in 0..=i {
                    for dd in 0..x.d {
                        out[x.qi(b, i, h) + dd] += pr[j] * v[x.ki(b, j, g) + dd] as f64;
                    }
                }
                lse[(b * x.hq + h) * x.t + i] = pr[i + 1];
            }
        }
    }
    (out, lse)
}

struct RefGrads {
    g: [Vec<f64>; 3],
    mag: [Vec<f64>; 3],
}

/// Analytic gradients of sum(dout * out) with respect to q, k, v, and per-element magnitudes.
fn reference_backward(
    x: &Dims,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    mask: &[u32],
    dout: &[f32],
) -> RefGrads {
    let mut g = [
        vec![0f64; q.len()],
        vec![0f64; k.len()],
        vec![0f64; v.len()],
    ];
    let mut mag = g.clone();
    for b in 0..x.b {
        for i in 0..x.t {
            for h in 0..x.hq {
                let Some(pr) = probs(x, q, k, mask, b, i, h) else {
                    continue;
                };
                let kv = h / (x.hq / x.hkv);
                let (qi, go) = (x.qi(b, i, h), &dout[x.qi(b, i, h)..][..x.d]);
                let dp: Vec<f64> = (0..=i)
                    .map(|j| dot(go, &v[x.ki(b, j, kv)..][..x.d]))
                    .collect();
                let delta: f64 = (0..=i).map(|j| pr[j] * dp[j]).sum();
                let dmag: f64 = (0..=i).map(|j| pr[j] * dp[j].abs()).sum();
                for j in 0..=i {
                    let ds = pr[j] * (dp[j] - delta);
                    let dsm = pr[j] * (dp[j].abs() + dmag);
                    let kj = x.ki(b, j, kv);
                    for dd in 0..x.d {
                        let (qv, kvv, gv) = (q[qi + dd] as f64, k[kj + dd] as f64, go[dd] as f64);
                        g[0][qi + dd] += x.scale * ds * kvv;
                        mag[0][qi + dd] += x.scale * dsm * kvv.abs();
                        g[1][kj + dd] += x.scale * ds * qv;
                        mag[1][kj + dd] += x.scale * dsm * qv.abs();
                        g[2][kj + dd] += pr[j] * gv;
                        mag[2][kj + dd] += pr[j] * gv.abs();
                    }
                }
            }
        }
    }
    RefGrads { g, mag }
}

/// Sequence 0 all real; sequence 1 left-padded by ~T/6 and right-padded by ~T/10 (all
/// padding when T = 1).
fn padding_mask(b: usize, t: usize) -> Vec<u32> {
    let mut m = vec![1u32; b * t];
    if b > 1 {
        let (left, right) = if t == 1 {
            (1, 0)
        } else {
            (t.div_ceil(6), t / 10)
        };
        for i in 0..t {
            if i < left || i >= t - right {
                m[t + i] = 0;
            }
        }
    }
    m
}

struct Problem {
    x: Dims,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    mask: Option<Vec<u32>>,
}

impl Problem {
    fn random(x: Dims, masked: bool, seed: u64) -> Self {
        let mut r = rng(seed);
        let q = randn(&mut r, x.b * x.t * x.hq * x.d);
        let k = randn(&mut r, x.b * x.t * x.hkv * x.d);
        let v = randn(&mut r, x.b * x.t * x.hkv * x.d);
        Problem {
            x,
            q,
            k,
            v,
            mask: masked.then(|| padding_mask(x.b, x.t)),
        }
    }
    fn mask_or_ones(&self) -> Vec<u32> {
        self.mask
            .clone()
            .unwrap_or_else(|| vec![1; self.x.b * self.x.t])
    }
    fn upload(&self, ctx: &GpuContext) -> [Tensor; 4] {
        let x = &self.x;
        let rows = x.b * x.t;
        let m = self.mask_or_ones();
        [
            Tensor::from_f32(ctx, &[rows, x.hq * x.d], &self.q).unwrap(),
            Tensor::from_f32(ctx, &[rows, x.hkv * x.d], &self.k).unwrap(),
            Tensor::from_f32(ctx, &[rows, x.hkv * x.d], &self.v).unwrap(),
            Tensor::from_u32(ctx, &[rows], &m).unwrap(),
        ]
    }
}

/// GPU forward: (out, lse) tensors.
fn gpu_forward(ctx: &GpuContext, pb: &Problem, t: &[Tensor; 4]) -> (Tensor, Tensor) {
    let x = &pb.x;
    let out = Tensor::poisoned(ctx, &[x.b * x.t, x.hq * x.d], DType::F32).unwrap();
    let lse = Tensor::poisoned(ctx, &[x.b, x.hq, x.t], DType::F32).unwrap();
    let inputs = AttentionInputs {
        batch: x.b,
        q: &t[0],
        k: &t[1],
        v: &t[2],
        mask: pb.mask.is_some().then_some(&t[3]),
    };
    let mut rec = Recorder::new(ctx, "attn-test");
    attention_forward(&mut rec, &x.heads(), &inputs, &out, &lse).unwrap();
    rec.submit().unwrap();
    (out, lse)
}

fn check_forward(ctx: &GpuContext, pb: &Problem) {
    let t = pb.upload(ctx);
    let (out, lse) = gpu_forward(ctx, pb, &t);
    let (want_out, want_lse) = reference_forward(&pb.x, &pb.q, &pb.k, &pb.v, &pb.mask_or_ones());
    let what = format!("forward {:?} masked {}", pb.x, pb.mask.is_some());
    assert_close(
        &format!("{what} out"),
        &out.to_f32_vec().unwrap(),
        &want_out,
        1e-5,
        0.0,
        None,
    );
    let lse_scale: Vec<f64> = want_lse.iter().map(|v| 1.0 + v.abs()).collect();
    assert_close(
        &format!("{what} lse"),
        &lse.to_f32_vec().unwrap(),
        &want_lse,
        0.0,
        1e-5,
        Some(&lse_scale),
    );
}

fn dims(b: usize, t: usize, hq: usize, hkv: usize, d: usize) -> Dims {
    Dims {
        b,
        t,
        hq,
        hkv,
        d,
        scale: 1.0 / (d as f64).sqrt(),
        kernel: AttentionKernel::Auto,
    }
}

#[test]
fn forward_matches_reference_with_gqa_and_padding() {
    let ctx = ctx();
    for kernel in KERNELS {
        let mut seed = 10;
        for t in [1, 7, 33] {
            for d in [8, 16] {
                let x = dims(2, t, 4, 2, d).on(kernel);
                check_forward(&ctx, &Problem::random(x, true, seed));
                seed += 1;
            }
        }
        // More keys than one block of 64, multi-head attention without a mask, the largest
        // head dimension, an odd one, a GQA group of 8 over several Rows workgroups, and more
        // rows than one Rows workgroup holds.
        let cases = [
            (dims(1, 70, 2, 2, 8), false),
            (dims(2, 5, 2, 1, 256), true),
            (dims(1, 9, 3, 1, 67), true),
            (dims(2, 70, 8, 1, 4), true),
            (dims(2, 260, 2, 2, 4), true),
        ];
        for (x, masked) in cases {
            if takes(kernel, x.d) {
                check_forward(&ctx, &Problem::random(x.on(kernel), masked, seed));
            }
            seed += 1;
        }
    }
}

#[test]
fn forward_default_scale_is_inverse_sqrt_head_dim() {
    let h = AttentionHeads::new(4, 2, 16);
    assert_eq!(h.scale(), 0.25);
    assert_eq!(h.with_scale(0.5).scale(), 0.5);
}

#[test]
fn auto_kernel_is_rows_on_cpu_adapters_and_tensor_core_or_tiled_elsewhere() {
    let ctx = ctx();
    let cpu = ctx.on_cpu();
    let h = AttentionHeads::new(4, 2, 16);
    assert_eq!(h.kernel, AttentionKernel::Auto);
    // D 16 fits the TensorCore kernel wherever the adapter has it.
    let tc = tensor_cores(&ctx);
    let want = if cpu {
        AttentionKernel::Rows
    } else if tc {
        AttentionKernel::TensorCore
    } else {
        AttentionKernel::Tiled
    };
    assert_eq!(h.resolved_kernel(&ctx), want);
    // A GQA group wider than one Rows workgroup falls back to Workgroup on CPU adapters (and
    // D 8 is no multiple of 16, so no TensorCore).
    let wide = AttentionHeads::new(65, 1, 8);
    let want = if cpu {
        AttentionKernel::Workgroup
    } else {
        AttentionKernel::Tiled
    };
    assert_eq!(wide.resolved_kernel(&ctx), want);
    // Head dims past the Tiled kernel's 128 fall back to Workgroup on GPUs.
    let big = AttentionHeads::new(4, 2, 256);
    if !cpu {
        assert_eq!(big.resolved_kernel(&ctx), AttentionKernel::Workgroup);
    }
    let forced = h.with_kernel(AttentionKernel::Workgroup);
    assert_eq!(forced.resolved_kernel(&ctx), AttentionKernel::Workgroup);
}

fn gpu_backward(ctx: &GpuContext, pb: &Problem, dout: &[f32]) -> [Vec<f32>; 3] {
    let x = &pb.x;
    let t = pb.upload(ctx);
    let (out, lse) = gpu_forward(ctx, pb, &t);
    let g: Vec<Tensor> = [&t[0], &t[1], &t[2]]
        .iter()
        .map(|s| Tensor::poisoned(ctx, s.shape(), DType::F32).unwrap())
        .collect();
    let go = Tensor::from_f32(ctx, t[0].shape(), dout).unwrap();
    let inputs = AttentionInputs {
        batch: x.b,
        q: &t[0],
        k: &t[1],
        v: &t[2],
        mask: pb.mask.is_some().then_some(&t[3]),
    };
    let grads = AttentionGrads {
        dq: &g[0],
        dk: &g[1],
        dv: &g[2],
    };
    let mut rec = Recorder::new(ctx, "attn-test");
    attention_backward(&mut rec, &x.heads(), &inputs, &out, &lse, &go, &grads).unwrap();
    rec.submit().unwrap();
    [0, 1, 2].map(|i| g[i].to_f32_vec().unwrap())
}

#[test]
fn backward_matches_analytic_reference() {
    let ctx = ctx();
    let cases = [
        (dims(2, 1, 4, 2, 8), true),
        (dims(2, 7, 4, 2, 16), true),
        (dims(2, 33, 4, 2, 8), true),
        (dims(1, 70, 2, 1, 8), false),
        (dims(2, 5, 2, 1, 256), true),
        (dims(1, 9, 3, 3, 67), true),
        (dims(2, 70, 8, 1, 4), true),
        (dims(2, 260, 2, 2, 4), true),
    ];
    let cases = KERNELS
        .iter()
        .flat_map(|&k| cases.iter().map(move |&(x, masked)| (x.on(k), masked)));
    for (n, (x, masked)) in cases.enumerate() {
        if takes(x.kernel, x.d) {
            check_backward(&ctx, x, masked, n as u64);
        }
    }
}

fn check_backward(ctx: &GpuContext, x: Dims, masked: bool, seed: u64) {
    let pb = Problem::random(x, masked, 40 + seed);
    let dout = randn(&mut rng(60 + seed), pb.q.len());
    let got = gpu_backward(ctx, &pb, &dout);
    let want = reference_backward(&x, &pb.q, &pb.k, &pb.v, &pb.mask_or_ones(), &dout);
    for (i, name) in ["dq", "dk", "dv"].iter().enumerate() {
        let what = format!("backward {x:?} masked {masked} {name}");
        assert_close(&what, &got[i], &want.g[i], 1e-5, 1e-4, Some(&want.mag[i]));
    }
}

/// The Tiled kernel on shapes chosen against its geometry (64-row blocks, 32-row tiles, 8
/// vec4 per slab, vec4 or scalar loads): odd batch and T over several blocks with a partial
/// last one, GQA groups 1-4, D 32, 64, 128, 67 (scalar loads, a partial slab) and 5. Same
/// tolerances as the other kernels.
#[test]
fn tiled_matches_reference_on_odd_shapes() {
    let ctx = ctx();
    let tiled = AttentionKernel::Tiled;
    let cases = [
        (dims(3, 131, 4, 2, 32), true),
        (dims(1, 97, 3, 1, 64), true),
        (dims(3, 65, 2, 2, 128), true),
        (dims(3, 33, 4, 1, 67), true),
        (dims(1, 129, 4, 4, 5), false),
        (dims(2, 1, 2, 1, 128), true),
    ];
    for (n, &(x, masked)) in cases.iter().enumerate() {
        let x = x.on(tiled);
        check_forward(&ctx, &Problem::random(x, masked, 200 + n as u64));
        check_backward(&ctx, x, masked, 220 + n as u64);
    }
    // Prefill chunks at start offsets: a chunk spanning two query blocks after earlier chunks.
    decode_matches_training(dims(3, 100, 4, 2, 32).on(tiled), &[3, 67, 30], 104);
}

#[test]
fn backward_matches_finite_differences_of_forward() {
    for kernel in KERNELS {
        finite_differences(kernel);
    }
}

fn finite_differences(kernel: AttentionKernel) {
    let ctx = ctx();
    let x = Dims {
        b: 2,
        t: 7,
        hq: 4,
        hkv: 2,
        d: 8,
        scale: 0.6,
        kernel,
    };
    let pb = Problem::random(x, true, 80);
    let w = randn(&mut rng(81), pb.q.len());
    let loss = |pb: &Problem| -> f64 {
        let t = pb.upload(&ctx);
        let out = gpu_forward(&ctx, pb, &t).0.to_f32_vec().unwrap();
        dot(&out, &w)
    };
    let grads = gpu_backward(&ctx, &pb, &w);
    let eps = 1e-2f32;
    for dir in 0..3u64 {
        let mut r = rng(90 + dir);
        let u = [pb.q.len(), pb.k.len(), pb.v.len()].map(|n| randn(&mut r, n));
        let analytic: f64 = (0..3).map(|i| dot(&grads[i], &u[i])).sum();
        let shifted = |sign: f32| {
            let mv = |a: &[f32], du: &[f32]| -> Vec<f32> {
                a.iter().zip(du).map(|(a, d)| a + sign * eps * d).collect()
            };
            Problem {
                x,
                q: mv(&pb.q, &u[0]),
                k: mv(&pb.k, &u[1]),
                v: mv(&pb.v, &u[2]),
                mask: pb.mask.clone(),
            }
        };
        let fd = (loss(&shifted(1.0)) - loss(&shifted(-1.0))) / (2.0 * eps as f64);
        let tol = 2e-3 + 1e-2 * analytic.abs();
        eprintln!("{kernel:?} direction {dir}: fd {fd:.6}, analytic {analytic:.6}");
        assert!(
            (fd - analytic).abs() <= tol,
            "{kernel:?} direction {dir}: fd {fd} vs analytic {analytic}"
        );
    }
    // Padded query rows of sequence 1 get exactly zero gradient.
    let m = pb.mask_or_ones();
    for i in (0..x.t).filter(|&i| m[x.t + i] == 0) {
        let row = &grads[0][x.qi(1, i, 0)..x.qi(1, i + 1, 0)];
        assert!(
            row.iter().all(|&g| g == 0.0),
            "{kernel:?}: dq of padded query {i}: {row:?}"
        );
        let krow = &grads[1][x.ki(1, i, 0)..x.ki(1, i + 1, 0)];
        assert!(
            krow.iter().all(|&g| g == 0.0),
            "{kernel:?}: dk of padded key {i}: {krow:?}"
        );
    }
}

/// Rows [p0, p0+s) of every sequence of a [B*T, W] matrix, as [B*s, W].
fn chunk_rows(a: &[f32], b: usize, t: usize, w: usize, p0: usize, s: usize) -> Vec<f32> {
    (0..b)
        .flat_map(|bi| a[(bi * t + p0) * w..(bi * t + p0 + s) * w].iter().copied())
        .collect()
}

fn poisoned_cache(ctx: &GpuContext, b: usize, hkv: usize, tmax: usize, d: usize) -> KvCache {
    let shape = [b, hkv, tmax, d];
    KvCache {
        k: Tensor::poisoned(ctx, &shape, DType::F32).unwrap(),
        v: Tensor::poisoned(ctx, &shape, DType::F32).unwrap(),
    }
}

#[test]
fn decode_after_prefill_equals_training_rows() {
    for kernel in KERNELS {
        // Prefill chunks then single tokens; a GQA group of 8 makes the 19-row chunk span
        // several Rows workgroups.
        decode_matches_training(dims(2, 12, 4, 2, 16).on(kernel), &[5, 4, 1, 1, 1], 16);
        decode_matches_training(dims(2, 20, 8, 1, 8).on(kernel), &[19, 1], 24);
    }
}

fn decode_matches_training(x: Dims, chunks: &[usize], tmax: usize) {
    let ctx = ctx();
    let pb = Problem::random(x, true, 100);
    let t = pb.upload(&ctx);
    let train = gpu_forward(&ctx, &pb, &t).0.to_f32_vec().unwrap();
    // Unwritten cache positions stay NaN: reading one would poison the output.
    let cache = poisoned_cache(&ctx, x.b, x.hkv, tmax, x.d);
    let m = pb.mask_or_ones();
    let m = &m;
    let key_mask: Vec<u32> = (0..x.b)
        .flat_map(|b| (0..tmax).map(move |j| if j < x.t { m[b * x.t + j] } else { 1 }))
        .collect();
    let key_mask = Tensor::from_u32(&ctx, &[x.b, tmax], &key_mask).unwrap();
    let (qw, kw) = (x.hq * x.d, x.hkv * x.d);
    let mut rec = Recorder::new(&ctx, "decode-test");
    let mut outs = Vec::new();
    let mut p0 = 0;
    for &s in chunks {
        let up = |a: &[f32], w: usize| {
            Tensor::from_f32(&ctx, &[x.b * s, w], &chunk_rows(a, x.b, x.t, w, p0, s)).unwrap()
        };
        let (q, kn, vn) = (up(&pb.q, qw), up(&pb.k, kw), up(&pb.v, kw));
        let start = Tensor::from_u32(&ctx, &[x.b], &vec![p0 as u32; x.b]).unwrap();
        let out = Tensor::poisoned(&ctx, &[x.b * s, qw], DType::F32).unwrap();
        kv_cache_append(&mut rec, &cache, &kn, &vn, &start).unwrap();
        attention_decode(
            &mut rec,
            &x.heads(),
            &cache,
            &q,
            &start,
            Some(&key_mask),
            &out,
        )
        .unwrap();
        outs.push((p0, s, out, [q, kn, vn, start]));
        p0 += s;
    }
    rec.submit().unwrap();
    for (p0, s, out, _) in &outs {
        let want: Vec<f64> = chunk_rows(&train, x.b, x.t, qw, *p0, *s)
            .into_iter()
            .map(f64::from)
            .collect();
        let got = out.to_f32_vec().unwrap();
        assert_close(
            &format!("{:?} decode chunk at {p0} of {s}", x.kernel),
            &got,
            &want,
            1e-6,
            0.0,
            None,
        );
    }
}

#[test]
fn decode_ragged_lengths_against_reference_and_append_contents() {
    for kernel in KERNELS {
        decode_ragged(kernel);
    }
}

fn decode_ragged(kernel: AttentionKernel) {
    let ctx = ctx();
    let (b, hq, hkv, d, tmax, s) = (3, 4, 1, 8, 20, 3);
    let heads = AttentionHeads::new(hq, hkv, d).with_kernel(kernel);
    let scale = heads.scale() as f64;
    // Sequence 2 starts two rows before the capacity: its third new row is dropped and its
    // query gets a zero row. Sequence 1 starts empty. Sequence 0 has left padding.
    let starts = [7usize, 0, 18];
    let mut r = rng(120);
    let mut mask = vec![1u32; b * tmax];
    mask[0] = 0;
    mask[1] = 0;
    mask[2 * tmax + 4] = 0;
    let per = hkv * tmax * d;
    let mut host_k = vec![f32::NAN; b * per];
    let mut host_v = vec![f32::NAN; b * per];
    for (bi, &len) in starts.iter().enumerate() {
        for j in 0..len {
            for g in 0..hkv {
                let at = ((bi * hkv + g) * tmax + j) * d;
                host_k[at..at + d].copy_from_slice(&randn(&mut r, d));
                host_v[at..at + d].copy_from_slice(&randn(&mut r, d));
            }
        }
    }
    let q = randn(&mut r, b * s * hq * d);
    let kn = randn(&mut r, b * s * hkv * d);
    let vn = randn(&mut r, b * s * hkv * d);
    let shape = [b, hkv, tmax, d];
    let cache = KvCache {
        k: Tensor::from_f32(&ctx, &shape, &host_k).unwrap(),
        v: Tensor::from_f32(&ctx, &shape, &host_v).unwrap(),
    };
    let tq = Tensor::from_f32(&ctx, &[b * s, hq * d], &q).unwrap();
    let tk = Tensor::from_f32(&ctx, &[b * s, hkv * d], &kn).unwrap();
    let tv = Tensor::from_f32(&ctx, &[b * s, hkv * d], &vn).unwrap();
    let st: Vec<u32> = starts.iter().map(|&v| v as u32).collect();
    let start = Tensor::from_u32(&ctx, &[b], &st).unwrap();
    let tmask = Tensor::from_u32(&ctx, &[b, tmax], &mask).unwrap();
    let out = Tensor::poisoned(&ctx, &[b * s, hq * d], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "decode-test");
    kv_cache_append(&mut rec, &cache, &tk, &tv, &start).unwrap();
    attention_decode(&mut rec, &heads, &cache, &tq, &start, Some(&tmask), &out).unwrap();
    rec.submit().unwrap();

    // The cache after the append, on the host.
    for (bi, &len) in starts.iter().enumerate() {
        for si in 0..s {
            let pos = len + si;
            if pos >= tmax {
                continue;
            }
            for g in 0..hkv {
                let at = ((bi * hkv + g) * tmax + pos) * d;
                let from = ((bi * s + si) * hkv + g) * d;
                host_k[at..at + d].copy_from_slice(&kn[from..from + d]);
                host_v[at..at + d].copy_from_slice(&vn[from..from + d]);
            }
        }
    }
    for (name, got, want) in [("k", &cache.k, &host_k), ("v", &cache.v, &host_v)] {
        let got = got.to_f32_vec().unwrap();
        for (i, (g, w)) in got.iter().zip(want.iter()).enumerate() {
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "cache {name}[{i}]: {g} vs {w}"
            );
        }
    }

    let mut want = vec![0f64; b * s * hq * d];
    for (bi, &len) in starts.iter().enumerate() {
        for si in 0..s {
            let qpos = len + si;
            if qpos >= tmax || mask[bi * tmax + qpos] == 0 {
                continue;
            }
            for h in 0..hq {
                let g = h / (hq / hkv);
                let qr = &q[((bi * s + si) * hq + h) * d..][..d];
                let keys: Vec<usize> = (0..=qpos).filter(|&j| mask[bi * tmax + j] != 0).collect();
                let row = |j: usize| ((bi * hkv + g) * tmax + j) * d;
                let sc: Vec<f64> = keys
                    .iter()
                    .map(|&j| scale * dot(qr, &host_k[row(j)..][..d]))
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|v| (v - mx).exp()).collect();
                let l: f64 = e.iter().sum();
                for (n, &j) in keys.iter().enumerate() {
                    for dd in 0..d {
                        want[((bi * s + si) * hq + h) * d + dd] +=
                            e[n] / l * host_v[row(j) + dd] as f64;
                    }
                }
            }
        }
    }
    assert_close(
        &format!("{kernel:?} decode ragged"),
        &out.to_f32_vec().unwrap(),
        &want,
        1e-5,
        0.0,
        None,
    );
}

#[test]
fn beam_gather_copies_and_fans_out_cache_rows() {
    let ctx = ctx();
    let (sb, hkv, tmax, d) = (3, 2, 5, 8);
    let per = hkv * tmax * d;
    let mut r = rng(140);
    let (k, v) = (randn(&mut r, sb * per), randn(&mut r, sb * per));
    let shape = [sb, hkv, tmax, d];
    let src = KvCache {
        k: Tensor::from_f32(&ctx, &shape, &k).unwrap(),
        v: Tensor::from_f32(&ctx, &shape, &v).unwrap(),
    };
    let index = [2u32, 0, 2, 1, 7];
    let dst = poisoned_cache(&ctx, index.len(), hkv, tmax, d);
    let ti = Tensor::from_u32(&ctx, &[index.len()], &index).unwrap();
    let mut rec = Recorder::new(&ctx, "gather-test");
    kv_cache_gather(&mut rec, &src, &ti, &dst).unwrap();
    rec.submit().unwrap();
    for (name, got, from) in [("k", &dst.k, &k), ("v", &dst.v, &v)] {
        let got = got.to_f32_vec().unwrap();
        for (bi, &si) in index.iter().enumerate() {
            let want: Vec<f32> = if (si as usize) < sb {
                from[si as usize * per..][..per].to_vec()
            } else {
                vec![0.0; per]
            };
            assert_eq!(
                &got[bi * per..][..per],
                &want[..],
                "dst {name}[{bi}] from {si}"
            );
        }
    }
}

/// A gather that keeps each destination row's first `keep[b]` positions and everything from
/// `end` on: those stay as they were (here: poison, checked as NaN), the rest are the source
/// row's.
#[test]
fn beam_gather_keeps_prefix_positions() {
    let ctx = ctx();
    let (sb, hkv, tmax, d) = (3, 2, 7, 8);
    let per = hkv * tmax * d;
    let mut r = rng(141);
    let (k, v) = (randn(&mut r, sb * per), randn(&mut r, sb * per));
    let shape = [sb, hkv, tmax, d];
    let src = KvCache {
        k: Tensor::from_f32(&ctx, &shape, &k).unwrap(),
        v: Tensor::from_f32(&ctx, &shape, &v).unwrap(),
    };
    let index = [2u32, 0, 1, 2];
    let keep = [0u32, 3, 7, 5];
    let dst = poisoned_cache(&ctx, index.len(), hkv, tmax, d);
    let ti = Tensor::from_u32(&ctx, &[index.len()], &index).unwrap();
    let tk = Tensor::from_u32(&ctx, &[keep.len()], &keep).unwrap();
    let mut rec = Recorder::new(&ctx, "gather-keep-test");
    kv_cache_gather_keeping(&mut rec, &src, &ti, Some((&tk, 0)), tmax, &dst).unwrap();
    // The same with the grid starting at the smallest keep (3 of row 1 is not the minimum 0 of
    // row 0, so check a second destination whose keeps are all at least 3).
    let keep2 = [3u32, 3, 7, 5];
    let dst2 = poisoned_cache(&ctx, index.len(), hkv, tmax, d);
    let tk2 = Tensor::from_u32(&ctx, &[keep2.len()], &keep2).unwrap();
    kv_cache_gather_keeping(&mut rec, &src, &ti, Some((&tk2, 3)), tmax, &dst2).unwrap();
    // And stopping at position 5 (a capacity beyond the longest source row).
    let dst3 = poisoned_cache(&ctx, index.len(), hkv, tmax, d);
    kv_cache_gather_keeping(&mut rec, &src, &ti, Some((&tk2, 3)), 5, &dst3).unwrap();
    rec.submit().unwrap();
    let cases = [
        ("k", &dst.k, &k, keep, tmax),
        ("v", &dst.v, &v, keep, tmax),
        ("k from 3", &dst2.k, &k, keep2, tmax),
        ("v from 3", &dst2.v, &v, keep2, tmax),
        ("k from 3 to 5", &dst3.k, &k, keep2, 5),
        ("v from 3 to 5", &dst3.v, &v, keep2, 5),
    ];
    for (name, got, from, keep, end) in cases {
        let got = got.to_f32_vec().unwrap();
        for (bi, (&si, &kb)) in index.iter().zip(&keep).enumerate() {
            for e in 0..per {
                let pos = (e / d) % tmax;
                let g = got[bi * per + e];
                if pos < kb as usize || pos >= end {
                    assert!(g.is_nan(), "dst {name}[{bi}] position {pos} was written");
                } else {
                    let w = from[si as usize * per + e];
                    assert_eq!(g, w, "dst {name}[{bi}] element {e} from {si}");
                }
            }
        }
    }
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let ctx = ctx();
    let f = |shape: &[usize]| Tensor::zeros(&ctx, shape, DType::F32).unwrap();
    let u = |shape: &[usize]| Tensor::zeros(&ctx, shape, DType::U32).unwrap();
    let (q, k, v) = (f(&[14, 32]), f(&[14, 16]), f(&[14, 16]));
    let (out, lse) = (f(&[14, 32]), f(&[2, 4, 7]));
    let heads = AttentionHeads::new(4, 2, 8);
    let mut rec = Recorder::new(&ctx, "test");
    let msg = |e: grrm_model::GpuError| e.to_string();

    let bad_heads = AttentionHeads::new(3, 2, 8);
    let x = AttentionInputs {
        batch: 2,
        q: &q,
        k: &k,
        v: &v,
        mask: None,
    };
    let e = msg(attention_forward(&mut rec, &bad_heads, &x, &out, &lse).unwrap_err());
    assert!(
        e.starts_with("attention_forward:") && e.contains("Hq 3, Hkv 2"),
        "{e}"
    );

    let wide = AttentionHeads::new(130, 2, 8).with_kernel(AttentionKernel::Rows);
    let e = msg(attention_forward(&mut rec, &wide, &x, &out, &lse).unwrap_err());
    assert!(
        e.starts_with("attention_forward:") && e.contains("Rows kernel holds at most 64"),
        "{e}"
    );

    let wide_d = AttentionHeads::new(1, 1, 256).with_kernel(AttentionKernel::Tiled);
    let (q256, k256) = (f(&[14, 256]), f(&[14, 256]));
    let x256 = AttentionInputs {
        batch: 2,
        q: &q256,
        k: &k256,
        v: &k256,
        mask: None,
    };
    let lse256 = f(&[2, 1, 7]);
    let e = msg(attention_forward(&mut rec, &wide_d, &x256, &q256, &lse256).unwrap_err());
    assert!(
        e.starts_with("attention_forward:") && e.contains("Tiled kernel holds at most D 128"),
        "{e}"
    );

    let k_bad = f(&[14, 24]);
    let x = AttentionInputs {
        batch: 2,
        q: &q,
        k: &k_bad,
        v: &v,
        mask: None,
    };
    let e = msg(attention_forward(&mut rec, &heads, &x, &out, &lse).unwrap_err());
    assert!(
        e.starts_with("attention_forward: k and v") && e.contains("[14, 24]"),
        "{e}"
    );

    let fmask = f(&[14]);
    let x = AttentionInputs {
        batch: 2,
        q: &q,
        k: &k,
        v: &v,
        mask: Some(&fmask),
    };
    let e = msg(attention_forward(&mut rec, &heads, &x, &out, &lse).unwrap_err());
    assert!(
        e.contains("mask must be u32") && e.contains("mask F32 [14]"),
        "{e}"
    );

    let x = AttentionInputs {
        batch: 2,
        q: &q,
        k: &k,
        v: &v,
        mask: None,
    };
    let lse_bad = f(&[2, 7, 4]);
    let grads = AttentionGrads {
        dq: &out,
        dk: &k,
        dv: &v,
    };
    let e =
        msg(attention_backward(&mut rec, &heads, &x, &out, &lse_bad, &out, &grads).unwrap_err());
    assert!(
        e.starts_with("attention_backward: lse must be f32 [2, 4, 7]"),
        "{e}"
    );

    let cache = KvCache::new(&ctx, 2, 1, 8, 8).unwrap();
    let (q1, out1, start) = (f(&[2, 32]), f(&[2, 32]), u(&[2]));
    let e = msg(attention_decode(&mut rec, &heads, &cache, &q1, &start, None, &out1).unwrap_err());
    assert!(
        e.starts_with("attention_decode:") && e.contains("cache k F32 [2, 1, 8, 8]"),
        "{e}"
    );

    let kn = f(&[2, 8]);
    let e = msg(kv_cache_append(&mut rec, &cache, &kn, &kn, &u(&[3])).unwrap_err());
    assert!(
        e.starts_with("kv_cache_append:") && e.contains("start U32 [3]"),
        "{e}"
    );

    let e = msg(kv_cache_gather(&mut rec, &cache, &u(&[2]), &cache).unwrap_err());
    assert!(
        e.starts_with("kv_cache_gather: need distinct caches"),
        "{e}"
    );
    assert!(rec.is_empty());
}

/// Timing on Qwen3-0.6B head shapes (Hq 16, Hkv 8, D 128); run by hand on a real GPU with
/// `cargo test --test attention -- --ignored --nocapture` (far too slow for lavapipe).
#[test]
#[ignore]
fn timing_qwen3_shapes() {
    use std::time::Instant;
    let ctx = ctx();
    eprintln!("adapter: {}", ctx.info().name);
    let time = |label: &str, reps: usize, work: f64, unit: &str, f: &dyn Fn(&mut Recorder)| {
        let mut rec = Recorder::new(&ctx, "timing");
        f(&mut rec);
        rec.submit().unwrap();
        ctx.wait_idle().unwrap();
        let t0 = Instant::now();
        for _ in 0..reps {
            f(&mut rec);
        }
        rec.submit().unwrap();
        ctx.wait_idle().unwrap();
        let s = t0.elapsed().as_secs_f64() / reps as f64;
        eprintln!("{label}: {:.3} ms, {:.1} {unit}", s * 1e3, work / s / 1e9);
    };
    let (hq, hkv, d) = (16, 8, 128);
    let shapes = [(8usize, 1024usize), (2, 2048), (8, 512)];
    // TensorCore fails (an error, not a timing) on adapters without cooperative matrices.
    let mut kernels = vec![AttentionKernel::Workgroup, AttentionKernel::Tiled];
    if tensor_cores(&ctx) {
        kernels.push(AttentionKernel::TensorCore);
    }
    for ((b, t), kernel) in shapes
        .into_iter()
        .flat_map(|s| kernels.iter().map(move |&k| (s, k)))
    {
        let heads = AttentionHeads::new(hq, hkv, d).with_kernel(kernel);
        let x = Dims {
            b,
            t,
            hq,
            hkv,
            d,
            scale: heads.scale() as f64,
            kernel,
        };
        let pb = Problem::random(x, true, 7);
        let tt = pb.upload(&ctx);
        let (out, lse) = gpu_forward(&ctx, &pb, &tt);
        let inputs = AttentionInputs {
            batch: b,
            q: &tt[0],
            k: &tt[1],
            v: &tt[2],
            mask: Some(&tt[3]),
        };
        // Causal: about half of the T x T scores; 2 matmuls forward, 5 backward.
        let pairs = (b * hq) as f64 * (t * (t + 1) / 2) as f64;
        let fwd_flop = 4.0 * pairs * d as f64;
        time(
            &format!("{kernel:?} forward B{b} T{t}"),
            5,
            fwd_flop,
            "GFLOP/s",
            &|rec| attention_forward(rec, &heads, &inputs, &out, &lse).unwrap(),
        );
        let g: Vec<Tensor> = [&tt[0], &tt[1], &tt[2]]
            .iter()
            .map(|s| Tensor::zeros(&ctx, s.shape(), DType::F32).unwrap())
            .collect();
        let grads = AttentionGrads {
            dq: &g[0],
            dk: &g[1],
            dv: &g[2],
        };
        time(
            &format!("{kernel:?} backward B{b} T{t}"),
            3,
            2.5 * fwd_flop,
            "GFLOP/s",
            &|rec| attention_backward(rec, &heads, &inputs, &out, &lse, &out, &grads).unwrap(),
        );
    }
    for (b, len, tmax) in [
        (64usize, 1024usize, 2048usize),
        (8, 2000, 2048),
        (64, 383, 384),
    ] {
        let cache = KvCache::new(&ctx, b, hkv, tmax, d).unwrap();
        let q = Tensor::zeros(&ctx, &[b, hq * d], DType::F32).unwrap();
        let out = Tensor::zeros(&ctx, &[b, hq * d], DType::F32).unwrap();
        let start = Tensor::from_u32(&ctx, &[b], &vec![len as u32; b]).unwrap();
        let bytes = (2 * b * hkv * (len + 1) * d * 4) as f64;
        for kernel in [AttentionKernel::Workgroup, AttentionKernel::SubgroupDecode] {
            let heads = AttentionHeads::new(hq, hkv, d).with_kernel(kernel);
            if heads.decode_kernel(&ctx, 1).is_err() {
                continue;
            }
            time(
                &format!("{kernel:?} decode B{b} len {len}"),
                20,
                bytes,
                "GB/s (K+V read)",
                &|rec| attention_decode(rec, &heads, &cache, &q, &start, None, &out).unwrap(),
            );
        }
        let dst = KvCache::new(&ctx, b, hkv, tmax, d).unwrap();
        let idx = Tensor::from_u32(&ctx, &[b], &(0..b as u32).rev().collect::<Vec<_>>()).unwrap();
        let gbytes = (4 * b * hkv * tmax * d * 4) as f64;
        time(&format!("gather B{b}"), 20, gbytes, "GB/s", &|rec| {
            kv_cache_gather(rec, &cache, &idx, &dst).unwrap()
        });
    }
}

/// One single-token decode problem against a cache `[B, Hkv, Tmax, D]`: sequence b's query sits
/// at `starts[b]` and the cache holds data at positions 0..=starts[b] (below Tmax); later
/// positions are NaN, as are masked positions when `nan_masked` (kernels that skip masked keys
/// must not read them).
struct DecodeCase {
    hq: usize,
    hkv: usize,
    d: usize,
    tmax: usize,
    starts: Vec<usize>,
    /// Masked (0) positions per sequence; `None` binds no key mask.
    masked: Option<Vec<Vec<usize>>>,
    nan_masked: bool,
}

struct DecodeData {
    k: Vec<f32>,
    v: Vec<f32>,
    q: Vec<f32>,
    mask: Option<Vec<u32>>,
}

impl DecodeCase {
    fn b(&self) -> usize {
        self.starts.len()
    }
    fn row(&self, b: usize, g: usize, j: usize) -> usize {
        ((b * self.hkv + g) * self.tmax + j) * self.d
    }
    fn data(&self, seed: u64) -> DecodeData {
        let (b, d, tmax) = (self.b(), self.d, self.tmax);
        let mut r = rng(seed);
        let mask = self.masked.as_ref().map(|m| {
            let mut v = vec![1u32; b * tmax];
            for (bi, js) in m.iter().enumerate() {
                for &j in js {
                    v[bi * tmax + j] = 0;
                }
            }
            v
        });
        let n = b * self.hkv * tmax * d;
        let (mut k, mut v) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        for (bi, &s) in self.starts.iter().enumerate() {
            for j in 0..=s.min(tmax - 1) {
                let skip = self.nan_masked && mask.as_ref().is_some_and(|m| m[bi * tmax + j] == 0);
                for g in 0..self.hkv {
                    let at = self.row(bi, g, j);
                    let (kr, vr) = (randn(&mut r, d), randn(&mut r, d));
                    if !skip {
                        k[at..at + d].copy_from_slice(&kr);
                        v[at..at + d].copy_from_slice(&vr);
                    }
                }
            }
        }
        let q = randn(&mut r, b * self.hq * d);
        DecodeData { k, v, q, mask }
    }

    /// f64 softmax(scale q.k) v over keys j <= start whose mask is 1; zero rows for a masked
    /// query or one at or beyond Tmax.
    fn reference(&self, x: &DecodeData) -> Vec<f64> {
        let (hq, d, tmax) = (self.hq, self.d, self.tmax);
        let scale = 1.0 / (d as f64).sqrt();
        let visible = |b: usize, j: usize| x.mask.as_ref().is_none_or(|m| m[b * tmax + j] != 0);
        let mut want = vec![0f64; self.b() * hq * d];
        for (b, &qpos) in self.starts.iter().enumerate() {
            if qpos >= tmax || !visible(b, qpos) {
                continue;
            }
            for h in 0..hq {
                let g = h / (hq / self.hkv);
                let qr = &x.q[(b * hq + h) * d..][..d];
                let keys: Vec<usize> = (0..=qpos).filter(|&j| visible(b, j)).collect();
                let sc: Vec<f64> = keys
                    .iter()
                    .map(|&j| scale * dot(qr, &x.k[self.row(b, g, j)..][..d]))
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = sc.iter().map(|v| (v - mx).exp()).collect();
                let l: f64 = e.iter().sum();
                for (n, &j) in keys.iter().enumerate() {
                    for dd in 0..d {
                        want[(b * hq + h) * d + dd] +=
                            e[n] / l * x.v[self.row(b, g, j) + dd] as f64;
                    }
                }
            }
        }
        want
    }

    /// attention_decode of the case's single query rows through `kernel`, output poisoned first.
    fn run(&self, ctx: &GpuContext, x: &DecodeData, kernel: AttentionKernel) -> Vec<f32> {
        self.run_on(ctx, x, kernel, DType::F32)
    }

    /// `run` with the cache held as `dtype` (f16: the values rounded to nearest).
    fn run_on(
        &self,
        ctx: &GpuContext,
        x: &DecodeData,
        kernel: AttentionKernel,
        dtype: DType,
    ) -> Vec<f32> {
        let (b, hq, d) = (self.b(), self.hq, self.d);
        let heads = AttentionHeads::new(hq, self.hkv, d).with_kernel(kernel);
        let shape = [b, self.hkv, self.tmax, d];
        let upload = |a: &[f32]| match dtype {
            DType::F16 => {
                let h: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
                Tensor::from_f16(ctx, &shape, &h).unwrap()
            }
            _ => Tensor::from_f32(ctx, &shape, a).unwrap(),
        };
        let cache = KvCache {
            k: upload(&x.k),
            v: upload(&x.v),
        };
        let q = Tensor::from_f32(ctx, &[b, hq * d], &x.q).unwrap();
        let st: Vec<u32> = self.starts.iter().map(|&s| s as u32).collect();
        let start = Tensor::from_u32(ctx, &[b], &st).unwrap();
        let mask = x
            .mask
            .as_ref()
            .map(|m| Tensor::from_u32(ctx, &[b, self.tmax], m).unwrap());
        let out = Tensor::poisoned(ctx, &[b, hq * d], DType::F32).unwrap();
        let mut rec = Recorder::new(ctx, "decode-test");
        attention_decode(&mut rec, &heads, &cache, &q, &start, mask.as_ref(), &out).unwrap();
        rec.submit().unwrap();
        out.to_f32_vec().unwrap()
    }

    fn label(&self) -> String {
        format!(
            "Hq {} Hkv {} D {} Tmax {} starts {:?}",
            self.hq, self.hkv, self.d, self.tmax, self.starts
        )
    }
}

/// Single-token decode cases over GQA groups 1, 2, 4 and 8, D 8 to 256 (D 36: lanes of a
/// subgroup partly idle; group 8 and D 256: the kernel's bounds, each with a merge buffer that
/// fits lavapipe's 32 KiB of workgroup memory), cache lengths that are multiples
/// of nothing, ragged starts from an empty cache (one key) to more keys than one pass of a
/// workgroup's subgroups covers, left padding, a masked query (zero row) and a query at Tmax
/// (zero row).
fn decode_cases() -> Vec<DecodeCase> {
    vec![
        DecodeCase {
            hq: 3,
            hkv: 3,
            d: 8,
            tmax: 37,
            starts: vec![0, 20, 36, 37],
            masked: Some(vec![vec![], vec![0, 1, 2, 3, 4], vec![5, 36], vec![]]),
            nan_masked: true,
        },
        DecodeCase {
            hq: 4,
            hkv: 2,
            d: 36,
            tmax: 203,
            starts: vec![200, 3, 77],
            masked: Some(vec![(0..9).collect(), vec![], vec![1, 2]]),
            nan_masked: true,
        },
        DecodeCase {
            hq: 8,
            hkv: 2,
            d: 64,
            tmax: 151,
            starts: vec![150, 0, 64, 129, 151],
            masked: Some(vec![
                vec![0, 1],
                vec![],
                vec![64],
                (0..30).collect(),
                vec![],
            ]),
            nan_masked: true,
        },
        DecodeCase {
            hq: 4,
            hkv: 2,
            d: 128,
            tmax: 97,
            starts: vec![96, 13],
            masked: None,
            nan_masked: false,
        },
        DecodeCase {
            hq: 8,
            hkv: 1,
            d: 64,
            tmax: 71,
            starts: vec![70, 33],
            masked: Some(vec![vec![3, 4], vec![0]]),
            nan_masked: true,
        },
        DecodeCase {
            hq: 4,
            hkv: 2,
            d: 256,
            tmax: 45,
            starts: vec![44, 17, 3],
            masked: Some(vec![vec![], vec![0, 1, 2, 3], vec![2]]),
            nan_masked: true,
        },
    ]
}

/// Tolerance: |err| <= 1e-5 (a convex combination of values in [-1, 1]; f32 partial dots of
/// D/SG terms summed across lanes, softmax weights with a few roundings each).
#[test]
fn subgroup_decode_matches_reference() {
    let ctx = ctx();
    let kernel = AttentionKernel::SubgroupDecode;
    if AttentionHeads::new(4, 2, 128)
        .with_kernel(kernel)
        .decode_kernel(&ctx, 1)
        .is_err()
    {
        eprintln!("skipped: the adapter has no fixed subgroup size");
        return;
    }
    for (i, c) in decode_cases().iter().enumerate() {
        let x = c.data(300 + i as u64);
        let got = c.run(&ctx, &x, kernel);
        assert_close(
            &format!("SubgroupDecode {}", c.label()),
            &got,
            &c.reference(&x),
            1e-5,
            0.0,
            None,
        );
    }
}

/// The new kernel against the older decode paths on the same inputs (masked rows finite: the
/// Rows kernel reads them). Tolerance 2e-6: the same function summed in different orders.
#[test]
fn subgroup_decode_equals_older_kernels() {
    let ctx = ctx();
    let new = AttentionKernel::SubgroupDecode;
    if AttentionHeads::new(4, 2, 128)
        .with_kernel(new)
        .decode_kernel(&ctx, 1)
        .is_err()
    {
        eprintln!("skipped: the adapter has no fixed subgroup size");
        return;
    }
    for (i, mut c) in decode_cases().into_iter().enumerate() {
        c.nan_masked = false;
        let x = c.data(400 + i as u64);
        let got = c.run(&ctx, &x, new);
        for old in [AttentionKernel::Workgroup, AttentionKernel::Rows] {
            let want: Vec<f64> = c.run(&ctx, &x, old).into_iter().map(f64::from).collect();
            assert_close(
                &format!("SubgroupDecode vs {old:?} {}", c.label()),
                &got,
                &want,
                2e-6,
                0.0,
                None,
            );
        }
    }
}

/// An f16 cache decodes exactly as an f32 cache holding its rounded values: through the
/// subgroup kernel (which widens the halves as it loads them) and through Workgroup and Rows
/// (which run on an f32 copy made by kv_widen). Tolerance 0 (bit for bit).
#[test]
fn f16_cache_decodes_as_an_f32_cache_of_its_rounded_values() {
    use AttentionKernel::{Rows, SubgroupDecode, Workgroup};
    let ctx = ctx();
    let subgroup = AttentionHeads::new(4, 2, 128)
        .with_kernel(SubgroupDecode)
        .decode_kernel(&ctx, 1)
        .is_ok();
    for (i, mut c) in decode_cases().into_iter().enumerate() {
        c.nan_masked = false;
        let mut x = c.data(500 + i as u64);
        for a in [&mut x.k, &mut x.v] {
            a.iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32());
        }
        let kernels = if subgroup {
            vec![SubgroupDecode, Workgroup, Rows]
        } else {
            vec![Workgroup, Rows]
        };
        for kernel in kernels {
            let bits = |t: DType| -> Vec<u32> {
                c.run_on(&ctx, &x, kernel, t)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect()
            };
            assert_eq!(
                bits(DType::F16),
                bits(DType::F32),
                "{kernel:?} {}",
                c.label()
            );
        }
    }
}

/// Rows that read their first keys from a shared prefix cache (beam search) attend exactly as
/// rows holding all their keys: each decode case's rows, paired up so that rows 2u and 2u + 1
/// read prefix row u (of a cache with more positions than the own caches), with prefix lengths
/// from 0 to the query's own position, own caches holding only the rest (NaN past it, and NaN
/// in the prefix rows past their longest use: nothing unseen may be read), outputs poisoned.
/// Bit for bit against `attention_decode` of the assembled rows through the same kernel (same
/// keys in the same order), f32 and f16 caches; and within 1e-5 of the f64 reference.
#[test]
fn shared_prefix_decode_equals_decode_over_assembled_rows() {
    use AttentionKernel::SubgroupDecode;
    let ctx = ctx();
    let probe = AttentionHeads::new(4, 2, 128).with_kernel(SubgroupDecode);
    if !probe.decodes_shared_prefix(&ctx) {
        eprintln!("skipped: the adapter has no fixed subgroup size");
        return;
    }
    for (i, mut c) in decode_cases().into_iter().enumerate() {
        c.masked = None;
        c.nan_masked = false;
        c.starts.retain(|&s| s < c.tmax);
        let (b, hkv, d, tmax) = (c.b(), c.hkv, c.d, c.tmax);
        let mut x = c.data(700 + i as u64);
        for a in [&mut x.k, &mut x.v] {
            a.iter_mut().for_each(|v| *v = f16::from_f32(*v).to_f32());
        }
        // Prefix lengths: the whole row but its query, none, half, and one position.
        let lens: Vec<usize> = (0..b)
            .map(|bi| {
                let s = c.starts[bi];
                let want = [s, 0, s / 2, 1.min(s)][bi % 4];
                // Row 2u + 1 reads row 2u's data: no further than row 2u has any.
                if bi % 2 == 1 {
                    want.min(c.starts[bi - 1] + 1)
                } else {
                    want
                }
            })
            .collect();
        // Prefix row u = row 2u's keys; row 2u + 1 takes them over for its prefix positions.
        let users = b.div_ceil(2);
        let ptmax = tmax + 3;
        let prow = |u: usize, g: usize, j: usize| ((u * hkv + g) * ptmax + j) * d;
        let mut pk = vec![f32::NAN; users * hkv * ptmax * d];
        let mut pv = pk.clone();
        for u in 0..users {
            let used = (2 * u..(2 * u + 2).min(b))
                .map(|r| lens[r])
                .max()
                .unwrap_or(0);
            for g in 0..hkv {
                for j in 0..used {
                    let (from, to) = (c.row(2 * u, g, j), prow(u, g, j));
                    pk[to..to + d].copy_from_slice(&x.k[from..from + d]);
                    pv[to..to + d].copy_from_slice(&x.v[from..from + d]);
                }
            }
        }
        for bi in (1..b).step_by(2) {
            for g in 0..hkv {
                for j in 0..lens[bi] {
                    let (from, to) = (prow(bi / 2, g, j), c.row(bi, g, j));
                    x.k[to..to + d].copy_from_slice(&pk[from..from + d]);
                    x.v[to..to + d].copy_from_slice(&pv[from..from + d]);
                }
            }
        }
        let otmax = (0..b).map(|bi| c.starts[bi] - lens[bi]).max().unwrap() + 3;
        let orow = |bi: usize, g: usize, j: usize| ((bi * hkv + g) * otmax + j) * d;
        let mut own_k = vec![f32::NAN; b * hkv * otmax * d];
        let mut own_v = own_k.clone();
        for (bi, &plen) in lens.iter().enumerate() {
            for g in 0..hkv {
                for j in plen..=c.starts[bi] {
                    let (from, to) = (c.row(bi, g, j), orow(bi, g, j - plen));
                    own_k[to..to + d].copy_from_slice(&x.k[from..from + d]);
                    own_v[to..to + d].copy_from_slice(&x.v[from..from + d]);
                }
            }
        }
        let heads = AttentionHeads::new(c.hq, hkv, d).with_kernel(SubgroupDecode);
        for dtype in [DType::F32, DType::F16] {
            let upload = |a: &[f32], shape: &[usize]| match dtype {
                DType::F16 => {
                    let h: Vec<f16> = a.iter().map(|&v| f16::from_f32(v)).collect();
                    Tensor::from_f16(&ctx, shape, &h).unwrap()
                }
                _ => Tensor::from_f32(&ctx, shape, a).unwrap(),
            };
            let prefix = KvCache {
                k: upload(&pk, &[users, hkv, ptmax, d]),
                v: upload(&pv, &[users, hkv, ptmax, d]),
            };
            let own = KvCache {
                k: upload(&own_k, &[b, hkv, otmax, d]),
                v: upload(&own_v, &[b, hkv, otmax, d]),
            };
            let qpos: Vec<u32> = c.starts.iter().map(|&s| s as u32).collect();
            let rows: Vec<u32> = (0..b as u32).map(|r| r / 2).collect();
            let l32: Vec<u32> = lens.iter().map(|&l| l as u32).collect();
            let table = PrefixTable::new(&ctx, &qpos, &rows, &l32).unwrap();
            let q = Tensor::from_f32(&ctx, &[b, c.hq * d], &x.q).unwrap();
            let out = Tensor::poisoned(&ctx, &[b, c.hq * d], DType::F32).unwrap();
            let mut rec = Recorder::new(&ctx, "shared-prefix-test");
            attention_decode_shared(&mut rec, &heads, &own, &prefix, &table, &q, &out).unwrap();
            rec.submit().unwrap();
            let got = out.to_f32_vec().unwrap();
            let whole = c.run_on(&ctx, &x, SubgroupDecode, dtype);
            let what = format!("{dtype:?} {} prefix lengths {lens:?}", c.label());
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&whole), "{what}");
            assert_close(&what, &got, &c.reference(&x), 1e-5, 0.0, None);
        }
    }
}

/// A prefix table is checked where it is made and against the caches it is used with: a
/// prefix longer than the query's position, a prefix row or length beyond the prefix cache,
/// or caches of different element types are errors naming the op.
#[test]
fn shared_prefix_rejects_tables_outside_its_caches() {
    let ctx = ctx();
    let heads = AttentionHeads::new(4, 2, 8);
    let err = PrefixTable::new(&ctx, &[3, 5], &[0, 1], &[4, 2])
        .err()
        .unwrap();
    assert!(err.to_string().contains("prefix_table"), "{err}");
    assert!(PrefixTable::new(&ctx, &[3], &[0, 1], &[1]).is_err());
    if !heads.decodes_shared_prefix(&ctx) {
        eprintln!("skipped the cache checks: the adapter has no fixed subgroup size");
        return;
    }
    let own = KvCache::new(&ctx, 2, 2, 4, 8).unwrap();
    let q = Tensor::zeros(&ctx, &[2, 32], DType::F32).unwrap();
    let out = Tensor::zeros(&ctx, &[2, 32], DType::F32).unwrap();
    let prefix = KvCache::new(&ctx, 2, 2, 6, 8).unwrap();
    let half = KvCache::with_dtype(&ctx, DType::F16, 2, 2, 6, 8).unwrap();
    let run = |prefix: &KvCache, rows: &[u32], lens: &[u32]| {
        let table = PrefixTable::new(&ctx, &[9, 9], rows, lens).unwrap();
        let mut rec = Recorder::new(&ctx, "shared-prefix-errors");
        attention_decode_shared(&mut rec, &heads, &own, prefix, &table, &q, &out)
    };
    run(&prefix, &[0, 1], &[6, 3]).unwrap();
    for (p, rows, lens) in [
        (&prefix, [0u32, 2], [6u32, 3]),
        (&prefix, [0, 1], [6, 7]),
        (&half, [0, 1], [6, 3]),
    ] {
        let err = run(p, &rows, &lens).err().unwrap();
        assert!(err.to_string().contains("attention_decode_shared"), "{err}");
    }
}

/// kv_cache_append into an f16 cache writes f16::from_f32 of each new value (round to nearest
/// even, overflow to inf) at its position, drops rows past Tmax and leaves every other word as
/// it was; a gather copies f16 rows word for word.
#[test]
fn f16_cache_append_rounds_and_gather_copies() {
    let ctx = ctx();
    let (b, hkv, tmax, d, s) = (3, 2, 11, 6, 4);
    let mut r = rng(160);
    let mags = [1.0f32, 3e-6, 7e4, 300.0];
    let new: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            randn(&mut r, b * s * hkv * d)
                .iter()
                .enumerate()
                .map(|(i, v)| v * mags[i % mags.len()])
                .collect()
        })
        .collect();
    let starts = [0usize, 5, 9];
    let shape = [b, hkv, tmax, d];
    let cache = KvCache {
        k: Tensor::poisoned(&ctx, &shape, DType::F16).unwrap(),
        v: Tensor::poisoned(&ctx, &shape, DType::F16).unwrap(),
    };
    let poison = cache.k.to_f16_vec().unwrap();
    let kn = Tensor::from_f32(&ctx, &[b * s, hkv * d], &new[0]).unwrap();
    let vn = Tensor::from_f32(&ctx, &[b * s, hkv * d], &new[1]).unwrap();
    let st: Vec<u32> = starts.iter().map(|&v| v as u32).collect();
    let start = Tensor::from_u32(&ctx, &[b], &st).unwrap();
    let index = Tensor::from_u32(&ctx, &[2], &[2, 0]).unwrap();
    let dst = KvCache {
        k: Tensor::poisoned(&ctx, &[2, hkv, tmax, d], DType::F16).unwrap(),
        v: Tensor::poisoned(&ctx, &[2, hkv, tmax, d], DType::F16).unwrap(),
    };
    let mut rec = Recorder::new(&ctx, "f16-cache-test");
    kv_cache_append(&mut rec, &cache, &kn, &vn, &start).unwrap();
    kv_cache_gather(&mut rec, &cache, &index, &dst).unwrap();
    rec.submit().unwrap();
    let per = hkv * tmax * d;
    for (name, t, src, gathered) in [
        ("k", &cache.k, &new[0], &dst.k),
        ("v", &cache.v, &new[1], &dst.v),
    ] {
        let got = t.to_f16_vec().unwrap();
        let mut want = poison.clone();
        for bi in 0..b {
            for si in 0..s {
                let pos = starts[bi] + si;
                if pos >= tmax {
                    continue;
                }
                for g in 0..hkv {
                    for dd in 0..d {
                        let x = src[((bi * s + si) * hkv + g) * d + dd];
                        want[bi * per + (g * tmax + pos) * d + dd] = f16::from_f32(x);
                    }
                }
            }
        }
        let bits = |a: &[f16]| a.iter().map(|h| h.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want), "appended {name}");
        let g = gathered.to_f16_vec().unwrap();
        assert_eq!(
            bits(&g[..per]),
            bits(&got[2 * per..]),
            "gathered {name} row 0"
        );
        assert_eq!(bits(&g[per..]), bits(&got[..per]), "gathered {name} row 1");
    }
}

/// Which shader decodes: the subgroup kernel for single tokens wherever the adapter's subgroup
/// size is fixed (power of two, 8..=128), D % 4 == 0 and Hq/Hkv <= 8; the older kernels
/// otherwise, for prefill chunks, and when forced. A forced SubgroupDecode that cannot run is
/// an error, never a silent fallback.
#[test]
fn decode_plans_the_subgroup_kernel_where_it_fits() {
    use AttentionKernel::{Rows, SubgroupDecode, Workgroup};
    let ctx = ctx();
    let fits = ctx
        .caps()
        .fixed_subgroup_size()
        .is_some_and(|s| s.is_power_of_two() && (8..=128).contains(&s));
    let cpu = ctx.on_cpu();
    eprintln!(
        "adapter {}, fixed subgroup size {:?}",
        ctx.info().name,
        ctx.caps().fixed_subgroup_size()
    );
    let old = if cpu {
        "attention_rows.wgsl"
    } else {
        "attention.wgsl"
    };
    let plan = |h: AttentionHeads, s: usize| planned_decode_shader(&ctx, &h, s).unwrap();
    // The merge buffer: G x (4 D + 8) bytes a subgroup, for at least one subgroup (the
    // launch code halves the subgroups until it fits).
    let memory_fits = |g: usize, d: usize| {
        g * (4 * d + 8) <= ctx.limits().max_compute_workgroup_storage_size as usize
    };
    for (hq, hkv, d) in [(16, 8, 128), (4, 1, 64), (8, 1, 256), (3, 3, 8), (4, 2, 36)] {
        let h = AttentionHeads::new(hq, hkv, d);
        let takes = fits && memory_fits(hq / hkv, d);
        let single = if takes {
            "attention_decode_f32.wgsl"
        } else {
            old
        };
        assert_eq!(plan(h, 1), single, "Hq {hq} Hkv {hkv} D {d}");
        let want = if takes {
            SubgroupDecode
        } else {
            h.resolved_kernel(&ctx)
        };
        assert_eq!(h.decode_kernel(&ctx, 1).unwrap(), want);
    }
    // Prefill chunks, D not a multiple of 4, groups over 8: the older kernels.
    assert_eq!(plan(AttentionHeads::new(16, 8, 128), 2), old);
    assert_eq!(plan(AttentionHeads::new(4, 2, 6), 1), old);
    assert_eq!(plan(AttentionHeads::new(16, 1, 8), 1), old);
    // Forcing an older kernel decodes with it.
    let h = AttentionHeads::new(16, 8, 128);
    assert_eq!(plan(h.with_kernel(Workgroup), 1), "attention.wgsl");
    assert_eq!(plan(h.with_kernel(Rows), 1), "attention_rows.wgsl");

    let msg =
        |h: AttentionHeads, s: usize| planned_decode_shader(&ctx, &h, s).unwrap_err().to_string();
    let forced = |hq, hkv, d| AttentionHeads::new(hq, hkv, d).with_kernel(SubgroupDecode);
    if fits {
        assert_eq!(plan(forced(4, 2, 8), 1), "attention_decode_f32.wgsl");
        let e = msg(forced(4, 2, 8), 2);
        assert!(e.contains("one query row per sequence; got 2"), "{e}");
        let e = msg(forced(4, 2, 6), 1);
        assert!(e.contains("multiple of 4"), "{e}");
        let e = msg(forced(16, 1, 8), 1);
        assert!(e.contains("1..=8 query heads per kv head"), "{e}");
        if !memory_fits(8, 256) {
            let e = msg(forced(8, 1, 256), 1);
            assert!(e.contains("bytes of workgroup memory"), "{e}");
        }
    } else {
        let e = msg(forced(4, 2, 8), 1);
        assert!(e.contains("subgroup"), "{e}");
    }
    // Training calls reject it.
    let f = |shape: &[usize]| Tensor::zeros(&ctx, shape, DType::F32).unwrap();
    let (q, k) = (f(&[6, 32]), f(&[6, 16]));
    let x = AttentionInputs {
        batch: 2,
        q: &q,
        k: &k,
        v: &k,
        mask: None,
    };
    let mut rec = Recorder::new(&ctx, "test");
    let e = attention_forward(&mut rec, &forced(4, 2, 8), &x, &q, &f(&[2, 4, 3]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("attention_forward:") && e.contains("SubgroupDecode kernel runs"),
        "{e}"
    );
    assert!(rec.is_empty());
}

/// Whether the adapter runs the TensorCore kernel (`Auto` picks it at D 32 exactly then).
fn tensor_cores(ctx: &GpuContext) -> bool {
    AttentionHeads::new(2, 1, 32).resolved_kernel(ctx) == AttentionKernel::TensorCore
}

fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// The power of two the TensorCore backward scales dout by: max |dout| s in [1, 2).
fn dout_scale(dout: &[f32]) -> f32 {
    let m = dout.iter().fold(0f32, |m, v| m.max(v.abs()));
    let e = ((m.to_bits() >> 23) & 0xff) as i32;
    if m == 0.0 || e == 255 {
        return 1.0;
    }
    2f32.powi(127 - e)
}

/// The TensorCore kernel (f16 operands, f32 accumulation) against the f64 reference evaluated
/// on the operands it multiplies: q, k, v rounded to f16, and dout rounded to f16 after the
/// kernel's power-of-two scale (so the reference sees `f16(dout s) / s`). Shapes are chosen
/// against its geometry (64-row blocks of 4 x 16-row subgroups, 32-row tiles, D/16 fragments):
/// odd batches and T with partial blocks and tiles, GQA groups 1-8, D 16/32/64/128, one-row
/// sequences, padding; dout of 1e-7 (a token-mean loss's size, deep in f16's subnormals
/// without the scale); scores whose row max keeps growing (the forward's rescale); prefill chunks at start offsets equal to the training rows. Adapters
/// without cooperative matrices (lavapipe in CI) check only that a forced TensorCore call is a
/// clear error; the GPU machine runs the rest.
///
/// Tolerances. What the reference does not model is the rounding of the softmax weights to f16
/// (P <= 2^8 under the lazy rescale, relative 2^-11) and f32 accumulation: forward out
/// |err| <= 1e-3 (a convex combination of values in [-1, 1] with weights off by 4.9e-4
/// relative), lse 1e-5 (1 + |lse|) (f32 scores of the same f16 operands); gradients
/// |err| <= 5e-3 * mag + 1e-3 * max |want| (P and dS each rounded once, relative 4.9e-4, and
/// delta taken from the kernel's own output).
#[test]
fn tensor_core_matches_reference_on_rounded_operands() {
    let ctx = ctx();
    let tc = AttentionKernel::TensorCore;
    if !tensor_cores(&ctx) {
        let x = dims(1, 8, 2, 1, 32).on(tc);
        let pb = Problem::random(x, false, 1);
        let t = pb.upload(&ctx);
        let out = Tensor::zeros(&ctx, &[8, 64], DType::F32).unwrap();
        let lse = Tensor::zeros(&ctx, &[1, 2, 8], DType::F32).unwrap();
        let inputs = AttentionInputs {
            batch: 1,
            q: &t[0],
            k: &t[1],
            v: &t[2],
            mask: None,
        };
        let mut rec = Recorder::new(&ctx, "attn-test");
        let err = attention_forward(&mut rec, &x.heads(), &inputs, &out, &lse).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("attention_forward") && msg.contains("TensorCore"),
            "{msg}"
        );
        eprintln!("no tensor-core attention on {}: {msg}", ctx.info().name);
        return;
    }
    let cases = [
        (dims(3, 131, 4, 2, 32), true, 1.0),
        (dims(1, 97, 3, 1, 64), true, 1.0),
        (dims(3, 65, 2, 2, 128), true, 1.0),
        (dims(2, 1, 2, 1, 128), true, 1.0),
        (dims(2, 70, 8, 1, 16), true, 1.0),
        (dims(1, 129, 4, 4, 48), false, 1.0),
        (dims(2, 100, 4, 2, 128), true, 1e-7),
        (dims(2, 150, 2, 1, 64), false, 1.0),
    ];
    for (n, &(x, masked, dscale)) in cases.iter().enumerate() {
        let x = x.on(tc);
        let mut exact = Problem::random(x, masked, 300 + n as u64);
        if n == cases.len() - 1 {
            // Keys that grow along the sequence against large queries: each row's max moves by
            // more than 2^8 several times, so the forward's rescale path runs.
            let kw = x.hkv * x.d;
            for (i, v) in exact.k.iter_mut().enumerate() {
                *v *= 1.0 + 6.0 * ((i / kw) % x.t) as f32 / x.t as f32;
            }
            exact.q.iter_mut().for_each(|v| *v *= 4.0);
        }
        let rounded = |a: &[f32]| a.iter().map(|&v| f16_round(v)).collect::<Vec<_>>();
        let pb = Problem {
            q: rounded(&exact.q),
            k: rounded(&exact.k),
            v: rounded(&exact.v),
            ..exact
        };
        let what = format!("tensor-core {x:?} masked {masked} dout x{dscale:e}");
        let t = pb.upload(&ctx);
        let (out, lse) = gpu_forward(&ctx, &pb, &t);
        let (want_out, want_lse) = reference_forward(&x, &pb.q, &pb.k, &pb.v, &pb.mask_or_ones());
        assert_close(
            &format!("{what} out"),
            &out.to_f32_vec().unwrap(),
            &want_out,
            1e-3,
            0.0,
            None,
        );
        let lse_scale: Vec<f64> = want_lse.iter().map(|v| 1.0 + v.abs()).collect();
        assert_close(
            &format!("{what} lse"),
            &lse.to_f32_vec().unwrap(),
            &want_lse,
            0.0,
            1e-5,
            Some(&lse_scale),
        );

        let dout: Vec<f32> = randn(&mut rng(320 + n as u64), pb.q.len())
            .into_iter()
            .map(|v| v * dscale)
            .collect();
        let s = dout_scale(&dout);
        let dout_r: Vec<f32> = dout.iter().map(|&v| f16_round(v * s) / s).collect();
        let got = gpu_backward(&ctx, &pb, &dout);
        let want = reference_backward(&x, &pb.q, &pb.k, &pb.v, &pb.mask_or_ones(), &dout_r);
        let tops = want
            .g
            .clone()
            .map(|g| g.iter().fold(0f64, |m, v| m.max(v.abs())));
        assert!(tops[2] > 0.0, "{what}: the case has no gradient");
        for (i, name) in ["dq", "dk", "dv"].iter().enumerate() {
            let top = tops[i];
            assert_close(
                &format!("{what} {name}"),
                &got[i],
                &want.g[i],
                1e-3 * top,
                5e-3,
                Some(&want.mag[i]),
            );
        }
    }
    // Prefill chunks at start offsets (a chunk spanning two query blocks after earlier ones)
    // give the training rows: same tiles, same operands.
    decode_matches_training(dims(3, 100, 4, 2, 32).on(tc), &[3, 67, 30], 104);
}
