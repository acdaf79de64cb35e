//! The fused per-head q/k RMSNorm + rotary embedding of inference (`qk_norm_rope`) against
//! `rmsnorm` over the heads followed by `rope`, the kernels training runs: bit-exact
//! (tolerance 0; NaN compared as NaN), with and without the norm, odd token counts, head dims
//! below and above the 64-lane workgroup (12, 130), a position off the table (NaN rows),
//! outputs of the reference path poisoned.

mod common;

use common::*;
use grrm_model::kernels::qk_norm_rope::{qk_norm_rope, QkNorm};
use grrm_model::kernels::rmsnorm::rmsnorm;
use grrm_model::kernels::rope::{rope, RopeTable};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

fn check(ctx: &GpuContext, t: usize, hq: usize, hkv: usize, d: usize, with_norm: bool, seed: u64) {
    let what = format!("T{t} Hq{hq} Hkv{hkv} D{d} norm {with_norm}");
    let mut r = rng(seed);
    let table = RopeTable::new(ctx, d, 1e6, 40).unwrap();
    let q0 = randn(&mut r, t * hq * d);
    let k0: Vec<f32> = randn(&mut r, t * hkv * d)
        .iter()
        .map(|v| v * 30.0)
        .collect();
    let wq = randn(&mut r, d);
    let wk = randn(&mut r, d);
    // The last token sits past the table's 40 positions: NaN, as rope writes it.
    let pos: Vec<u32> = (0..t)
        .map(|i| if i + 1 == t { 45 } else { (i * 7 % 40) as u32 })
        .collect();
    let pos_t = Tensor::from_u32(ctx, &[t], &pos).unwrap();
    let (wq_t, wk_t) = (
        Tensor::from_f32(ctx, &[d], &wq).unwrap(),
        Tensor::from_f32(ctx, &[d], &wk).unwrap(),
    );
    let mut rec = Recorder::new(ctx, "test");
    // Reference: rmsnorm on [T*H, D] into poisoned tensors, then rope in place.
    let mut want = Vec::new();
    for (x, h, w) in [(&q0, hq, &wq_t), (&k0, hkv, &wk_t)] {
        let xt = Tensor::from_f32(ctx, &[t, h * d], x).unwrap();
        let y = if with_norm {
            let y = Tensor::poisoned(ctx, &[t, h * d], DType::F32).unwrap();
            let rstd = Tensor::poisoned(ctx, &[t * h], DType::F32).unwrap();
            let rows = |z: &Tensor| z.reshape(&[t * h, d]).unwrap();
            rmsnorm(&mut rec, &rows(&xt), w, 1e-6, &rows(&y), &rstd).unwrap();
            y
        } else {
            xt
        };
        rope(&mut rec, &table, &y, &pos_t, None, false).unwrap();
        want.push(y);
    }
    let q = Tensor::from_f32(ctx, &[t, hq * d], &q0).unwrap();
    let k = Tensor::from_f32(ctx, &[t, hkv * d], &k0).unwrap();
    let norm = QkNorm {
        q: &wq_t,
        k: &wk_t,
        eps: 1e-6,
    };
    qk_norm_rope(&mut rec, &table, &q, &k, &pos_t, with_norm.then_some(&norm)).unwrap();
    rec.submit().unwrap();
    for (name, got, want) in [("q", &q, &want[0]), ("k", &k, &want[1])] {
        let (g, w) = (got.to_f32_vec().unwrap(), want.to_f32_vec().unwrap());
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            let same = a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
            assert!(same, "{what} {name}[{i}]: {a} want {b}");
        }
        let nan_rows = g
            .chunks(g.len() / t)
            .filter(|row| row.iter().all(|v| v.is_nan()))
            .count();
        assert_eq!(
            nan_rows, 1,
            "{what} {name}: the off-table token, and only it, is NaN"
        );
    }
}

#[test]
fn fused_qk_norm_rope_equals_rmsnorm_then_rope() {
    let ctx = ctx();
    let mut seed = 0;
    for (t, hq, hkv, d) in [(7, 3, 2, 12), (5, 4, 1, 130), (1, 2, 2, 64)] {
        for with_norm in [true, false] {
            seed += 1;
            check(&ctx, t, hq, hkv, d, with_norm, seed);
        }
    }
}

#[test]
fn qk_norm_rope_rejects_mismatched_shapes() {
    let ctx = ctx();
    let table = RopeTable::new(&ctx, 8, 1e4, 16).unwrap();
    let q = Tensor::zeros(&ctx, &[3, 16], DType::F32).unwrap();
    let k = Tensor::zeros(&ctx, &[2, 8], DType::F32).unwrap();
    let pos = Tensor::from_u32(&ctx, &[3], &[0, 1, 2]).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let err = qk_norm_rope(&mut rec, &table, &q, &k, &pos, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("qk_norm_rope"), "{err}");
}
