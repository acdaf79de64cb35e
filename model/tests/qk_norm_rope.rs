//! The fused per-head q/k RMSNorm + rotary embedding of inference (`qk_norm_rope`) against
//! `rmsnorm` over the heads followed by `rope`, the kernels training runs: bit-exact
//! (tolerance 0; NaN compared as NaN), with and without the norm, odd token counts, head dims
//! below and above the 64-lane workgroup (12, 130), a position off the table (NaN rows),
//! outputs of the reference path poisoned. `qk_norm_rope_append` against `qk_norm_rope`
//! followed by `kv_cache_append`: q, k and both caches bit-exact, f32 and f16 caches (poisoned
//! before), several sequences of several rows (a prefill chunk) and of one row (decode), rows
//! past Tmax dropped, k and v at offsets inside one buffer.

mod common;

use common::*;
use grrm_model::kernels::attention::{kv_cache_append, KvCache};
use grrm_model::kernels::qk_norm_rope::{qk_norm_rope, qk_norm_rope_append, AppendTo, QkNorm};
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

/// `qk_norm_rope_append` on `b` sequences of `s` rows each (D `d`, Hq/Hkv `hq`/`hkv`) starting
/// at cache positions `starts`, against `qk_norm_rope` then `kv_cache_append`.
#[allow(clippy::too_many_arguments)]
fn check_append(
    ctx: &GpuContext,
    (b, s): (usize, usize),
    (hq, hkv, d): (usize, usize, usize),
    starts: &[u32],
    tmax: usize,
    dtype: DType,
    with_norm: bool,
    seed: u64,
) {
    let t = b * s;
    let what = format!("B{b} S{s} Hq{hq} Hkv{hkv} D{d} Tmax{tmax} {dtype:?} norm {with_norm}");
    let mut r = rng(seed);
    let table = RopeTable::new(ctx, d, 1e6, 64).unwrap();
    let (q0, k0, v0) = (
        randn(&mut r, t * hq * d),
        randn(&mut r, t * hkv * d),
        randn(&mut r, t * hkv * d),
    );
    let wq = Tensor::from_f32(ctx, &[d], &randn(&mut r, d)).unwrap();
    let wk = Tensor::from_f32(ctx, &[d], &randn(&mut r, d)).unwrap();
    let norm = QkNorm {
        q: &wq,
        k: &wk,
        eps: 1e-6,
    };
    let norm = with_norm.then_some(&norm);
    let pos: Vec<u32> = (0..t).map(|i| starts[i / s] + (i % s) as u32 + 3).collect();
    let shape = [b, hkv, tmax, d];
    let cache = || KvCache {
        k: Tensor::poisoned(ctx, &shape, dtype).unwrap(),
        v: Tensor::poisoned(ctx, &shape, dtype).unwrap(),
    };
    let mut rec = Recorder::new(ctx, "test");
    // Reference: separate tensors, the two kernels.
    let (want_q, want_k, want_v) = (
        Tensor::from_f32(ctx, &[t, hq * d], &q0).unwrap(),
        Tensor::from_f32(ctx, &[t, hkv * d], &k0).unwrap(),
        Tensor::from_f32(ctx, &[t, hkv * d], &v0).unwrap(),
    );
    let want_cache = cache();
    let pos_t = Tensor::from_u32(ctx, &[t], &pos).unwrap();
    let start_t = Tensor::from_u32(ctx, &[b], starts).unwrap();
    qk_norm_rope(&mut rec, &table, &want_q, &want_k, &pos_t, norm).unwrap();
    kv_cache_append(&mut rec, &want_cache, &want_k, &want_v, &start_t).unwrap();
    // Fused: k and v views of one buffer, k not at its start.
    let n = t * hkv * d;
    // (Views start on 256-byte boundaries: 64 f32.)
    let (k_at, v_at) = (64, (64 + n).next_multiple_of(64));
    let kv = Tensor::poisoned(ctx, &[v_at + n], DType::F32).unwrap();
    let (k, v) = (
        kv.view(k_at, &[t, hkv * d]).unwrap(),
        kv.view(v_at, &[t, hkv * d]).unwrap(),
    );
    k.write_f32(&k0).unwrap();
    v.write_f32(&v0).unwrap();
    let q = Tensor::from_f32(ctx, &[t, hq * d], &q0).unwrap();
    let got_cache = cache();
    let pos_start: Vec<u32> = pos.iter().chain(starts).copied().collect();
    let pos_start = Tensor::from_u32(ctx, &[t + b], &pos_start).unwrap();
    let to = AppendTo {
        kv: &kv,
        v: &v,
        cache: &got_cache,
        batch: b,
    };
    qk_norm_rope_append(&mut rec, &table, &q, &k, &pos_start, norm, &to).unwrap();
    rec.submit().unwrap();
    let words = |x: &Tensor| -> Vec<u32> {
        match x.dtype() {
            DType::F16 => x
                .to_f16_vec()
                .unwrap()
                .iter()
                .map(|h| h.to_bits() as u32)
                .collect(),
            _ => x
                .to_f32_vec()
                .unwrap()
                .iter()
                .map(|f| f.to_bits())
                .collect(),
        }
    };
    for (name, got, want) in [
        ("q", &q, &want_q),
        ("k", &k, &want_k),
        ("v", &v, &want_v),
        ("cache k", &got_cache.k, &want_cache.k),
        ("cache v", &got_cache.v, &want_cache.v),
    ] {
        assert_eq!(words(got), words(want), "{what}: {name}");
    }
    // Something was appended, and rows past Tmax were not (the caches stay poisoned there).
    assert_ne!(
        words(&got_cache.k),
        words(&cache().k),
        "{what}: nothing appended"
    );
}

#[test]
fn fused_append_equals_qk_norm_rope_then_kv_cache_append() {
    let ctx = ctx();
    let mut seed = 100;
    for dtype in [DType::F32, DType::F16] {
        for with_norm in [true, false] {
            // A prefill chunk of 3 sequences x 5 rows, the last running past Tmax 9.
            seed += 1;
            check_append(
                &ctx,
                (3, 5),
                (4, 2, 12),
                &[0, 2, 6],
                9,
                dtype,
                with_norm,
                seed,
            );
            // Decode: 4 sequences of one row each, one at Tmax (dropped); D above 64 lanes.
            seed += 1;
            check_append(
                &ctx,
                (4, 1),
                (2, 1, 130),
                &[5, 0, 7, 8],
                8,
                dtype,
                with_norm,
                seed,
            );
        }
    }
}
