//! Benchmark rows for the non-matmul kernel families at the Qwen3-0.6B training shapes
//! (8 x 1024 tokens, hidden 1024, 16/8 heads of 128, FFN 3072, vocabulary 153,216), or small
//! shapes with `quick`. Bytes count each tensor read or written once per launch (the minimum
//! traffic); FLOPs count multiply-adds as two.

use crate::bench::{data, Case, Launch};
use crate::gpu::{Recorder, Result, Tensor};
use crate::kernels::adamw::{adamw_step, AdamWConfig, AdamWState};
use crate::kernels::attention::{
    attention_backward, attention_decode, attention_forward, kv_cache_append, AttentionGrads,
    AttentionHeads, AttentionInputs, AttentionKernel, KvCache,
};
use crate::kernels::cross_entropy::{cross_entropy_fused, CeStats};
use crate::kernels::elementwise::add;
use crate::kernels::embedding::embedding;
use crate::kernels::rmsnorm::rmsnorm;
use crate::kernels::rope::{rope, RopeTable};
use crate::kernels::softmax::{softmax, SoftmaxOpts};
use crate::kernels::swiglu::swiglu;
use crate::{DType, GpuContext};

/// A seeded f32 tensor of `shape` (`bench::data`).
pub(crate) fn f32t(ctx: &GpuContext, shape: &[usize], seed: u32) -> Result<Tensor> {
    Tensor::from_f32(ctx, shape, &data(shape.iter().product(), seed))
}

fn launch(f: impl FnMut(&mut Recorder) -> Result<()> + 'static) -> Result<Launch> {
    Ok(Box::new(f))
}

pub fn op_cases(quick: bool) -> Vec<Case> {
    let (tokens, hidden, ffn, vocab_rows, vocab) = if quick {
        (256, 128, 384, 16, 16_384)
    } else {
        (8192, 1024, 3072, 64, 153_216)
    };
    let (b, t, hq, hkv, d) = if quick {
        (2, 128, 4, 2, 32)
    } else {
        (8, 1024, 16, 8, 128)
    };
    let params = if quick { 1 << 20 } else { 600_000_000 / 4 };
    let f = 4.0;
    let mut v = Vec::new();

    let (n, h) = (tokens, hidden);
    v.push(Case::new(
        "rmsnorm",
        format!("{n}x{h}"),
        4.0 * (n * h) as f64,
        f * (2 * n * h + h + n) as f64,
        20,
        move |ctx| {
            let (x, w, y, r) = (
                f32t(ctx, &[n, h], 1)?,
                f32t(ctx, &[h], 2)?,
                Tensor::zeros(ctx, &[n, h], DType::F32)?,
                Tensor::zeros(ctx, &[n], DType::F32)?,
            );
            launch(move |rec| rmsnorm(rec, &x, &w, 1e-6, &y, &r))
        },
    ));
    let (qd, hd) = (hq * d, d);
    v.push(Case::new(
        "rope",
        format!("{n}x{hq}x{hd}"),
        3.0 * (n * qd) as f64,
        f * (2 * n * qd) as f64,
        20,
        move |ctx| {
            let table = RopeTable::new(ctx, hd, 1e6, 4096)?;
            let pos: Vec<u32> = (0..n).map(|i| (i % 1024) as u32).collect();
            let (x, p, y) = (
                f32t(ctx, &[n, qd], 3)?,
                Tensor::from_u32(ctx, &[n], &pos)?,
                Tensor::zeros(ctx, &[n, qd], DType::F32)?,
            );
            launch(move |rec| rope(rec, &table, &x, &p, Some(&y), false))
        },
    ));
    let ff = ffn;
    v.push(Case::new(
        "swiglu",
        format!("{n}x{ff}"),
        6.0 * (n * ff) as f64,
        f * (3 * n * ff) as f64,
        20,
        move |ctx| {
            let (g, u, o) = (
                f32t(ctx, &[n, ff], 4)?,
                f32t(ctx, &[n, ff], 5)?,
                Tensor::zeros(ctx, &[n, ff], DType::F32)?,
            );
            launch(move |rec| swiglu(rec, &g, &u, &o))
        },
    ));
    v.push(Case::new(
        "residual add",
        format!("{n}x{h}"),
        (n * h) as f64,
        f * (3 * n * h) as f64,
        20,
        move |ctx| {
            let (a, c, o) = (
                f32t(ctx, &[n, h], 6)?,
                f32t(ctx, &[n, h], 7)?,
                Tensor::zeros(ctx, &[n, h], DType::F32)?,
            );
            launch(move |rec| add(rec, &a, &c, &o))
        },
    ));
    let vv = vocab;
    v.push(Case::new(
        "embedding gather",
        format!("{n} of {vv}x{h}"),
        0.0,
        f * (2 * n * h + n) as f64,
        20,
        move |ctx| {
            let ids: Vec<u32> = (0..n).map(|i| ((i * 7919) % vv) as u32).collect();
            let (tab, idt, o) = (
                f32t(ctx, &[vv, h], 8)?,
                Tensor::from_u32(ctx, &[n], &ids)?,
                Tensor::zeros(ctx, &[n, h], DType::F32)?,
            );
            launch(move |rec| embedding(rec, &tab, &idt, &o))
        },
    ));
    let r = vocab_rows;
    v.push(Case::new(
        "log-softmax",
        format!("{r}x{vv}"),
        4.0 * (r * vv) as f64,
        f * (2 * r * vv) as f64,
        10,
        move |ctx| {
            let (x, y) = (
                f32t(ctx, &[r, vv], 9)?,
                Tensor::zeros(ctx, &[r, vv], DType::F32)?,
            );
            launch(move |rec| softmax(rec, &x, &y, SoftmaxOpts::log()))
        },
    ));
    v.push(Case::new(
        "cross-entropy fused (+grad)",
        format!("{r}x{vv}"),
        6.0 * (r * vv) as f64,
        f * (2 * r * vv) as f64,
        10,
        move |ctx| {
            let tg: Vec<u32> = (0..r).map(|i| ((i * 31) % vv) as u32).collect();
            let (x, tgt, coef, st) = (
                f32t(ctx, &[r, vv], 10)?,
                Tensor::from_u32(ctx, &[r], &tg)?,
                f32t(ctx, &[r], 11)?,
                CeStats::zeros(ctx, r)?,
            );
            launch(move |rec| cross_entropy_fused(rec, &x, &tgt, &coef, &st, 1.0))
        },
    ));
    // Causal attention through each kernel family (TensorCore fails, a reported row, on
    // adapters without cooperative matrices), at the main shape and (quick) the demo's
    // SFT shape, and decode of one token per sequence against a cache.
    let mut shapes = vec![(b, t, hq, hkv, d)];
    if quick {
        shapes.push((8, 100, 4, 2, 32));
    }
    for (b, t, hq, hkv, d) in shapes {
        for kernel in [
            AttentionKernel::Workgroup,
            AttentionKernel::Rows,
            AttentionKernel::Tiled,
            AttentionKernel::TensorCore,
        ] {
            v.extend(attention_cases(b, t, hq, hkv, d, kernel));
        }
    }
    let (db, len, tmax) = if quick {
        (8, 100, 128)
    } else {
        (64, 1024, 2048)
    };
    // SubgroupDecode fails (a reported row) on adapters without a fixed subgroup size.
    for kernel in [
        AttentionKernel::Workgroup,
        AttentionKernel::Rows,
        AttentionKernel::SubgroupDecode,
    ] {
        v.push(decode_case(db, len, tmax, hq, hkv, d, kernel));
    }
    let np = params;
    v.push(Case::new(
        "adamw",
        format!("{np} params"),
        12.0 * np as f64,
        f * (7 * np) as f64,
        5,
        move |ctx| {
            let (p, g) = (f32t(ctx, &[np], 16)?, f32t(ctx, &[np], 17)?);
            let st = AdamWState::zeros_like(&p)?;
            let cfg = AdamWConfig::default();
            let mut step = 0;
            launch(move |rec| {
                step += 1;
                adamw_step(rec, &cfg, step, &p, &g, &st, None)
            })
        },
    ));
    v
}

fn kernel_name(kernel: AttentionKernel) -> &'static str {
    match kernel {
        AttentionKernel::Auto => "auto",
        AttentionKernel::Workgroup => "workgroup",
        AttentionKernel::Rows => "rows",
        AttentionKernel::Tiled => "tiled",
        AttentionKernel::TensorCore => "tensor-core",
        AttentionKernel::SubgroupDecode => "subgroup-decode",
    }
}

/// Training forward and backward rows of one shape and kernel family.
fn attention_cases(
    b: usize,
    t: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    kernel: AttentionKernel,
) -> [Case; 2] {
    // Causal: half of the T x T scores, 2 matmuls of D per score.
    let flops = 2.0 * 2.0 * (b * hq * t * t * d) as f64 / 2.0;
    let bytes = 4.0 * (b * t * (2 * hq * d + 2 * hkv * d)) as f64;
    let name = kernel_name(kernel);
    let shape = format!("B{b} T{t} H{hq}/{hkv} D{d}");
    let fwd = Case::new(
        format!("attention fwd {name}"),
        shape.clone(),
        flops,
        bytes,
        5,
        move |ctx| {
            let a = AttnBench::new(ctx, b, t, hq, hkv, d, kernel)?;
            launch(move |rec| a.forward(rec))
        },
    );
    let bwd = Case::new(
        format!("attention bwd {name}"),
        shape,
        2.5 * flops,
        2.0 * bytes,
        3,
        move |ctx| {
            let a = AttnBench::new(ctx, b, t, hq, hkv, d, kernel)?;
            let dout = f32t(ctx, a.q.shape(), 15)?;
            let (dq, dk, dv) = (
                Tensor::zeros(ctx, a.q.shape(), DType::F32)?,
                Tensor::zeros(ctx, a.k.shape(), DType::F32)?,
                Tensor::zeros(ctx, a.k.shape(), DType::F32)?,
            );
            // The backward reads the forward's output and logsumexp: compute them once.
            let mut rec = Recorder::new(ctx, "bench-attn-fwd");
            a.forward(&mut rec)?;
            rec.submit()?;
            launch(move |rec| {
                let g = AttentionGrads {
                    dq: &dq,
                    dk: &dk,
                    dv: &dv,
                };
                attention_backward(rec, &a.heads, &a.inputs(), &a.out, &a.lse, &dout, &g)
            })
        },
    );
    [fwd, bwd]
}

/// One new token per sequence attending to `len` cached positions (plus its own).
fn decode_case(
    b: usize,
    len: usize,
    tmax: usize,
    hq: usize,
    hkv: usize,
    d: usize,
    kernel: AttentionKernel,
) -> Case {
    let keys = len + 1;
    Case::new(
        format!("attention decode {}", kernel_name(kernel)),
        format!("B{b} len {len} H{hq}/{hkv} D{d}"),
        4.0 * (b * hq * keys * d) as f64,
        4.0 * (2 * b * hkv * keys * d + 2 * b * hq * d) as f64,
        20,
        move |ctx| {
            let heads = AttentionHeads::new(hq, hkv, d).with_kernel(kernel);
            let cache = KvCache::new(ctx, b, hkv, tmax, d)?;
            let start = Tensor::from_u32(ctx, &[b], &vec![len as u32; b])?;
            let (q, k, v) = (
                f32t(ctx, &[b, hq * d], 18)?,
                f32t(ctx, &[b, hkv * d], 19)?,
                f32t(ctx, &[b, hkv * d], 20)?,
            );
            // Earlier positions hold data, not zeros: fill the cache once.
            let fill_k = f32t(ctx, &[b * tmax, hkv * d], 21)?;
            let fill_v = f32t(ctx, &[b * tmax, hkv * d], 22)?;
            let zero = Tensor::from_u32(ctx, &[b], &vec![0; b])?;
            let mut rec = Recorder::new(ctx, "bench-decode-fill");
            kv_cache_append(&mut rec, &cache, &fill_k, &fill_v, &zero)?;
            kv_cache_append(&mut rec, &cache, &k, &v, &start)?;
            rec.submit()?;
            let out = Tensor::zeros(ctx, &[b, hq * d], DType::F32)?;
            launch(move |rec| attention_decode(rec, &heads, &cache, &q, &start, None, &out))
        },
    )
}

/// Random q, k, v and the forward's outputs for one attention benchmark shape.
struct AttnBench {
    heads: AttentionHeads,
    batch: usize,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    out: Tensor,
    lse: Tensor,
}

impl AttnBench {
    fn new(
        ctx: &GpuContext,
        b: usize,
        t: usize,
        hq: usize,
        hkv: usize,
        d: usize,
        kernel: AttentionKernel,
    ) -> Result<Self> {
        Ok(AttnBench {
            heads: AttentionHeads::new(hq, hkv, d).with_kernel(kernel),
            batch: b,
            q: f32t(ctx, &[b * t, hq * d], 12)?,
            k: f32t(ctx, &[b * t, hkv * d], 13)?,
            v: f32t(ctx, &[b * t, hkv * d], 14)?,
            out: Tensor::zeros(ctx, &[b * t, hq * d], DType::F32)?,
            lse: Tensor::zeros(ctx, &[b, hq, t], DType::F32)?,
        })
    }

    fn inputs(&self) -> AttentionInputs<'_> {
        AttentionInputs {
            batch: self.batch,
            q: &self.q,
            k: &self.k,
            v: &self.v,
            mask: None,
        }
    }

    fn forward(&self, rec: &mut Recorder) -> Result<()> {
        attention_forward(rec, &self.heads, &self.inputs(), &self.out, &self.lse)
    }
}
