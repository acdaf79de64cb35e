//! Selfcheck of training attention (forward and backward) with the kernel `Auto` picks on the
//! adapter, so a GPU whose driver mis-compiles the tensor-core kernel (the kind of fault
//! bench/NOTES.md records for workgroup-variable alignment) is caught before training.

use std::time::Instant;

use rand::{Rng, SeedableRng};

use super::CheckResult;
use crate::gpu::Result;
use crate::kernels::attention::{
    attention_backward, attention_forward, AttentionGrads, AttentionHeads, AttentionInputs,
    AttentionKernel,
};
use crate::{DType, GpuContext, Recorder, Tensor};

const B: usize = 2;
const T: usize = 77;
const HQ: usize = 4;
const HKV: usize = 2;
const D: usize = 64;

/// Causal attention of B sequences of T tokens in f64: (out, dq, dk, dv) for output gradient
/// `dout`, layouts as the kernels' ([B*T, H*D]).
fn reference(q: &[f32], k: &[f32], v: &[f32], dout: &[f32], scale: f64) -> [Vec<f64>; 4] {
    let (qw, kw) = (HQ * D, HKV * D);
    let mut out = vec![0f64; q.len()];
    let mut dq = vec![0f64; q.len()];
    let mut dk = vec![0f64; k.len()];
    let mut dv = vec![0f64; v.len()];
    let dot =
        |a: &[f32], b: &[f32]| -> f64 { a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum() };
    for b in 0..B {
        for h in 0..HQ {
            let g = h / (HQ / HKV);
            for i in 0..T {
                let qi = (b * T + i) * qw + h * D;
                let key = |j: usize| (b * T + j) * kw + g * D;
                let s: Vec<f64> = (0..=i)
                    .map(|j| scale * dot(&q[qi..qi + D], &k[key(j)..key(j) + D]))
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let l: f64 = s.iter().map(|x| (x - m).exp()).sum();
                let p: Vec<f64> = s.iter().map(|x| (x - m).exp() / l).collect();
                let dp: Vec<f64> = (0..=i)
                    .map(|j| dot(&dout[qi..qi + D], &v[key(j)..key(j) + D]))
                    .collect();
                let delta: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
                for j in 0..=i {
                    let ds = p[j] * (dp[j] - delta);
                    for e in 0..D {
                        out[qi + e] += p[j] * v[key(j) + e] as f64;
                        dq[qi + e] += scale * ds * k[key(j) + e] as f64;
                        dk[key(j) + e] += scale * ds * q[qi + e] as f64;
                        dv[key(j) + e] += p[j] * dout[qi + e] as f64;
                    }
                }
            }
        }
    }
    [out, dq, dk, dv]
}

/// max |got - want| / max |want|: the error relative to the tensor's scale; NaN is infinite.
fn rel_to_max(got: &[f32], want: &[f64]) -> f64 {
    let top = want.iter().fold(0f64, |m, w| m.max(w.abs())).max(1e-30);
    got.iter()
        .zip(want)
        .map(|(g, w)| {
            let e = (*g as f64 - w).abs() / top;
            if e.is_nan() {
                f64::INFINITY
            } else {
                e
            }
        })
        .fold(0.0, f64::max)
}

/// Forward and backward of a GQA problem with odd T (several 64-row blocks, a partial tile).
pub(super) fn check_attention(ctx: &GpuContext) -> Result<Vec<CheckResult>> {
    let heads = AttentionHeads::new(HQ, HKV, D);
    let kernel = heads.resolved_kernel(ctx);
    // f16 operands (tensor cores) round q, k, v and dout to 11 bits; the f32 kernels sum in f32.
    let tolerance = if kernel == AttentionKernel::TensorCore {
        1e-2
    } else {
        1e-4
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(77);
    let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (q, k, v, dout) = (
        draw(B * T * HQ * D),
        draw(B * T * HKV * D),
        draw(B * T * HKV * D),
        draw(B * T * HQ * D),
    );
    let t = |shape: &[usize], x: &[f32]| Tensor::from_f32(ctx, shape, x);
    let (qt, kt, vt, dt) = (
        t(&[B * T, HQ * D], &q)?,
        t(&[B * T, HKV * D], &k)?,
        t(&[B * T, HKV * D], &v)?,
        t(&[B * T, HQ * D], &dout)?,
    );
    let out = Tensor::poisoned(ctx, &[B * T, HQ * D], DType::F32)?;
    let lse = Tensor::poisoned(ctx, &[B, HQ, T], DType::F32)?;
    let grads = [qt.shape(), kt.shape(), vt.shape()].map(|s| Tensor::poisoned(ctx, s, DType::F32));
    let [dq, dk, dv] = grads;
    let (dq, dk, dv) = (dq?, dk?, dv?);
    let inputs = AttentionInputs {
        batch: B,
        q: &qt,
        k: &kt,
        v: &vt,
        mask: None,
    };
    let t0 = Instant::now();
    let mut rec = Recorder::new(ctx, "selfcheck-attention");
    attention_forward(&mut rec, &heads, &inputs, &out, &lse)?;
    let g = AttentionGrads {
        dq: &dq,
        dk: &dk,
        dv: &dv,
    };
    attention_backward(&mut rec, &heads, &inputs, &out, &lse, &dt, &g)?;
    rec.submit()?;
    let got = [
        out.to_f32_vec()?,
        dq.to_f32_vec()?,
        dk.to_f32_vec()?,
        dv.to_f32_vec()?,
    ];
    let millis = t0.elapsed().as_secs_f64() * 1e3;
    let want = reference(&q, &k, &v, &dout, heads.scale() as f64);
    let names = ["out", "dq", "dk", "dv"];
    Ok((0..4)
        .map(|i| CheckResult {
            name: format!(
                "attention {kernel:?} B{B} T{T} {HQ}/{HKV} D{D} {}",
                names[i]
            ),
            max_rel_err: rel_to_max(&got[i], &want[i]),
            tolerance,
            millis: if i == 0 { millis } else { 0.0 },
        })
        .collect())
}
