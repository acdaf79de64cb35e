//! The decode matmul pair: `quantize_rows` (per-row power-of-two f16 cast) and `matmul_rows`
//! (tensor-core product of those rows with an f16 weight).
//!
//! - quantize_rows against a CPU reference built on the `half` crate: per-row scale words, f16
//!   bits and the dequantized f32 output, bit-exact (tolerance 0); rows of magnitudes from 1e-30
//!   to 1e30, an all-zero row, inf and NaN; odd row counts; padding rows zero; outputs poisoned.
//! - quantize_rows_normed (the cast fused with RMSNorm) against rmsnorm followed by
//!   quantize_rows: bit-exact (tolerance 0) in both output types.
//! - matmul_rows' split and SwiGLU outputs against its single output (and swiglu.wgsl on it):
//!   bit-exact.
//! - matmul_rows_cast (the reduction fused with the next product's row cast) against
//!   matmul_rows_to followed by quantize_rows / quantize_rows_normed: the f32 output, the f16
//!   rows (padding included) and the scales bit-exact, with bias and accumulate, SwiGLU, forced
//!   splits; its shape checks on every adapter.
//! - matmul_rows (adapters with 16x16x16 f16 cooperative matrices only) against an f64 product
//!   of the same f16 values with the same scales: the default and forced K splits (1, 2, 3 with
//!   a short last split), odd M (1, 37, 100: partial 16- and 64-row blocks), N a multiple of 16
//!   that is not one of 32 and N that is not one of 16 (the last block overlaps its neighbour),
//!   K a multiple of 32 that is not one of 64 (a half round),
//!   bias and accumulate, and the weight split into windows by a small binding limit.
//!   Tolerance: the products are exact in f32, so only the f32 summation order differs:
//!   |err| <= 1e-5 * sum_k |a_k b_k| (+ 1e-6 for accumulated C).

mod common;

use common::*;
use grrm_model::kernels::cast_scaled::{cast_scaled, scale_log2};
use grrm_model::kernels::matmul::coop16_available;
use grrm_model::kernels::matmul_rows::{
    matmul_rows_cast, matmul_rows_to, RowCast, RowsOperand, RowsOut,
};
use grrm_model::kernels::quantize_rows::{padded_rows, quantize_rows, quantize_rows_normed};
use grrm_model::kernels::rmsnorm::rmsnorm;
use grrm_model::kernels::swiglu::swiglu;
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use half::f16;
use rand::Rng;

/// Rows of random values, row r scaled by its own magnitude (some far outside f16's range).
fn rows_of_magnitudes(r: &mut impl Rng, m: usize, k: usize) -> Vec<f32> {
    let mags = [1e-30f32, 1e-7, 3e-3, 1.0, 7.5, 2e4, 1e30];
    (0..m)
        .flat_map(|i| {
            let mag = mags[i % mags.len()];
            randn(r, k).into_iter().map(move |x| x * mag)
        })
        .collect()
}

/// (f16 bits of x s, 1/s) of one row, as quantize_rows defines them.
fn reference_row(x: &[f32]) -> (Vec<f16>, f32) {
    let bits = x
        .iter()
        .map(|v| v.to_bits() & 0x7fff_ffff)
        .max()
        .unwrap_or(0);
    let e = scale_log2(bits);
    let s = 2f32.powi(e);
    (
        x.iter().map(|v| f16::from_f32(v * s)).collect(),
        2f32.powi(-e),
    )
}

/// The bits of every element of an f32 or f16 tensor (f16 widened to u32), for bit-exact
/// comparisons.
fn words(t: &Tensor) -> Vec<u32> {
    match t.dtype() {
        DType::F16 => t
            .to_f16_vec()
            .unwrap()
            .iter()
            .map(|h| h.to_bits() as u32)
            .collect(),
        _ => t
            .to_f32_vec()
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
    }
}

/// `x` `[m, K]` cast per row by quantize_rows into poisoned outputs, recorded into `rec`: the f16
/// rows `[m_pad, K]` and their inverse scales `[m_pad]`.
fn cast_operand(ctx: &GpuContext, rec: &mut Recorder, x: &Tensor) -> (Tensor, Tensor) {
    let (m, k) = (x.shape()[0], x.shape()[1]);
    let m_pad = padded_rows(m);
    let a = Tensor::poisoned(ctx, &[m_pad, k], DType::F16).unwrap();
    let inv = Tensor::poisoned(ctx, &[m_pad], DType::F32).unwrap();
    quantize_rows(rec, x, &a, &inv).unwrap();
    (a, inv)
}

fn check_quantize(ctx: &GpuContext, x: &[f32], m: usize, k: usize, what: &str) {
    let m_pad = padded_rows(m);
    let tx = Tensor::from_f32(ctx, &[m, k], x).unwrap();
    let h = Tensor::poisoned(ctx, &[m_pad, k], DType::F16).unwrap();
    let d = Tensor::poisoned(ctx, &[m_pad, k], DType::F32).unwrap();
    let inv_h = Tensor::poisoned(ctx, &[m_pad], DType::F32).unwrap();
    let inv_d = Tensor::poisoned(ctx, &[m_pad], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    quantize_rows(&mut rec, &tx, &h, &inv_h).unwrap();
    quantize_rows(&mut rec, &tx, &d, &inv_d).unwrap();
    rec.submit().unwrap();
    let (gh, gd) = (h.to_f16_vec().unwrap(), d.to_f32_vec().unwrap());
    let (ih, id) = (inv_h.to_f32_vec().unwrap(), inv_d.to_f32_vec().unwrap());
    for r in 0..m_pad {
        let (want_h, want_inv) = if r < m {
            reference_row(&x[r * k..(r + 1) * k])
        } else {
            (vec![f16::ZERO; k], 0.0)
        };
        assert_eq!(
            ih[r].to_bits(),
            want_inv.to_bits(),
            "{what}: row {r} 1/s (f16 out)"
        );
        assert_eq!(
            id[r].to_bits(),
            want_inv.to_bits(),
            "{what}: row {r} 1/s (f32 out)"
        );
        for j in 0..k {
            let (g, w) = (gh[r * k + j], want_h[j]);
            let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
            assert!(same, "{what}: row {r} col {j}: f16 {g} want {w}");
            let wd = if r < m { w.to_f32() * want_inv } else { 0.0 };
            let gdv = gd[r * k + j];
            let same = gdv.to_bits() == wd.to_bits() || (gdv.is_nan() && wd.is_nan());
            assert!(same, "{what}: row {r} col {j}: dequantized {gdv} want {wd}");
        }
    }
}

#[test]
fn quantize_rows_matches_half_per_row() {
    let ctx = ctx();
    let mut r = rng(5);
    for (m, k) in [(1, 2), (37, 250), (19, 1030)] {
        let mut x = rows_of_magnitudes(&mut r, m, k);
        if m > 10 {
            x[2 * k..3 * k].fill(0.0);
            x[4 * k + 3] = f32::INFINITY;
            x[5 * k + 1] = f32::NAN;
            x[6 * k + 7] = -1e-42; // subnormal f32
        }
        check_quantize(&ctx, &x, m, k, &format!("{m}x{k}"));
    }
}

#[test]
fn quantize_rows_normed_equals_rmsnorm_then_quantize_rows() {
    let ctx = ctx();
    let mut r = rng(8);
    for (m, k) in [(1, 64), (37, 250), (19, 1030)] {
        let x = rows_of_magnitudes(&mut r, m, k);
        let w: Vec<f32> = randn(&mut r, k).iter().map(|v| 2.0 * v).collect();
        let m_pad = padded_rows(m);
        let tx = Tensor::from_f32(&ctx, &[m, k], &x).unwrap();
        let tw = Tensor::from_f32(&ctx, &[k], &w).unwrap();
        let y = Tensor::poisoned(&ctx, &[m, k], DType::F32).unwrap();
        let rstd = Tensor::poisoned(&ctx, &[m], DType::F32).unwrap();
        let mut rec = Recorder::new(&ctx, "test");
        rmsnorm(&mut rec, &tx, &tw, 1e-6, &y, &rstd).unwrap();
        for dtype in [DType::F16, DType::F32] {
            let two = [0, 1].map(|_| {
                (
                    Tensor::poisoned(&ctx, &[m_pad, k], dtype).unwrap(),
                    Tensor::poisoned(&ctx, &[m_pad], DType::F32).unwrap(),
                )
            });
            quantize_rows(&mut rec, &y, &two[0].0, &two[0].1).unwrap();
            quantize_rows_normed(&mut rec, &tx, &tw, 1e-6, &two[1].0, &two[1].1).unwrap();
            rec.submit().unwrap();
            assert_eq!(
                words(&two[0].0),
                words(&two[1].0),
                "{m}x{k} {dtype:?} values"
            );
            assert_eq!(words(&two[0].1), words(&two[1].1), "{m}x{k} scales");
        }
    }
}

#[test]
fn quantize_rows_rejects_bad_shapes() {
    let ctx = ctx();
    let x = Tensor::zeros(&ctx, &[5, 7], DType::F32).unwrap();
    let h = Tensor::zeros(&ctx, &[16, 7], DType::F16).unwrap();
    let inv = Tensor::zeros(&ctx, &[16], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let err = quantize_rows(&mut rec, &x, &h, &inv)
        .unwrap_err()
        .to_string();
    assert!(err.contains("even k"), "{err}");
    let short = Tensor::zeros(&ctx, &[4, 7], DType::F32).unwrap();
    assert!(quantize_rows(&mut rec, &x, &short, &inv).is_err());
}

/// The f16 weight and its scale words as the inference weights hold them (cast_scaled).
fn half_weight(ctx: &GpuContext, w: &[f32], n: usize, k: usize) -> (Tensor, Tensor, Vec<f64>) {
    let tw = Tensor::from_f32(ctx, &[n, k], w).unwrap();
    let h = Tensor::poisoned(ctx, &[n, k], DType::F16).unwrap();
    let s = Tensor::poisoned(ctx, &[2], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    cast_scaled(&mut rec, &tw, &s, &h).unwrap();
    rec.submit().unwrap();
    let inv = s.to_f32_vec().unwrap()[1] as f64;
    let vals = h
        .to_f16_vec()
        .unwrap()
        .iter()
        .map(|x| x.to_f64() * inv)
        .collect();
    (h, s, vals)
}

struct RowsCase {
    m: usize,
    n: usize,
    k: usize,
    splits: Option<usize>,
    bias: bool,
    accumulate: bool,
    binding_limit: Option<u64>,
}

fn check_matmul(ctx: &GpuContext, c: &RowsCase, seed: u64) {
    let what = format!(
        "{}x{}x{} splits {:?} bias {} acc {} limit {:?}",
        c.m, c.n, c.k, c.splits, c.bias, c.accumulate, c.binding_limit
    );
    let ctx = match c.binding_limit {
        Some(b) => ctx.with_binding_limit(b),
        None => ctx.clone(),
    };
    let (m, n, k) = (c.m, c.n, c.k);
    let mut r = rng(seed);
    // Row magnitudes within f32 products' comfortable range (the scales make them f16-safe).
    let x: Vec<f32> = (0..m)
        .flat_map(|i| {
            let mag = [1e-3f32, 1.0, 300.0, 7e4][i % 4];
            randn(&mut r, k).into_iter().map(move |v| v * mag)
        })
        .collect();
    let w = randn(&mut r, n * k);
    let bias: Vec<f32> = randn(&mut r, n);
    let old: Vec<f32> = randn(&mut r, m * n);
    let tx = Tensor::from_f32(&ctx, &[m, k], &x).unwrap();
    let (b, b_scale, wv) = half_weight(&ctx, &w, n, k);
    let tb = Tensor::from_f32(&ctx, &[n], &bias).unwrap();
    let out = if c.accumulate {
        Tensor::from_f32(&ctx, &[m, n], &old).unwrap()
    } else {
        Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap()
    };
    let mut rec = Recorder::new(&ctx, "test");
    let (a, inv) = cast_operand(&ctx, &mut rec, &tx);
    let op = RowsOperand {
        t: &a,
        inv: &inv,
        m,
    };
    let bias_t = c.bias.then_some(&tb);
    let to = RowsOut::One {
        c: &out,
        bias: bias_t,
        accumulate: c.accumulate,
    };
    matmul_rows_to(&mut rec, &op, &b, &b_scale, &to, c.splits).unwrap();
    rec.submit().unwrap();
    let got = out.to_f32_vec().unwrap();
    // Reference on the values the kernel multiplies: f16(x s_r) / s_r and f16(w s_w) / s_w.
    let ah = a.to_f16_vec().unwrap();
    let ai = inv.to_f32_vec().unwrap();
    let av: Vec<f64> = (0..m * k)
        .map(|i| ah[i].to_f64() * ai[i / k] as f64)
        .collect();
    let mut want = vec![0f64; m * n];
    let mut scale = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let (mut s, mut sa) = (0f64, 0f64);
            for t in 0..k {
                let p = av[i * k + t] * wv[j * k + t];
                s += p;
                sa += p.abs();
            }
            if c.bias {
                s += bias[j] as f64;
                sa += (bias[j] as f64).abs();
            }
            if c.accumulate {
                s += old[i * n + j] as f64;
                sa += (old[i * n + j] as f64).abs();
            }
            want[i * n + j] = s;
            scale[i * n + j] = sa;
        }
    }
    assert_close(&what, &got, &want, 1e-6, 1e-5, Some(&scale));
}

#[test]
fn matmul_rows_matches_f64_on_the_same_f16_values() {
    let ctx = ctx();
    if !coop16_available(&ctx) {
        eprintln!(
            "skipped: {} lacks 16x16x16 f16->f32 cooperative matrices with subgroups of 32",
            ctx.info().name
        );
        return;
    }
    let mut seed = 40;
    for splits in [None, Some(1), Some(2), Some(3)] {
        for (m, n, k) in [
            (1, 112, 160),
            (37, 208, 96),
            (100, 48, 224),
            (37, 50, 320),
            (5, 117, 32),
        ] {
            for (bias, accumulate) in [(false, false), (true, false), (true, true), (false, true)] {
                seed += 1;
                let case = RowsCase {
                    m,
                    n,
                    k,
                    splits,
                    bias,
                    accumulate,
                    binding_limit: None,
                };
                check_matmul(&ctx, &case, seed);
            }
        }
    }
    // The tiny generation model's products (hidden 32, kv 16, ffn 64, vocabulary 50) at its
    // prefill and decode row counts: N below one block, K below one round.
    for m in [64, 4] {
        for (n, k) in [(32, 32), (16, 32), (64, 32), (32, 64), (50, 32)] {
            seed += 1;
            let case = RowsCase {
                m,
                n,
                k,
                splits: None,
                bias: false,
                accumulate: false,
                binding_limit: None,
            };
            check_matmul(&ctx, &case, seed);
        }
    }
    // The weight in windows of 96 rows (a 32 KiB binding limit holds 102 rows of 160 f16).
    let case = RowsCase {
        m: 37,
        n: 213,
        k: 160,
        splits: None,
        bias: true,
        accumulate: false,
        binding_limit: Some(32 * 1024),
    };
    check_matmul(&ctx, &case, 99);
}

#[test]
fn matmul_rows_rejects_shapes_it_cannot_run() {
    let ctx = ctx();
    let a = Tensor::zeros(&ctx, &[16, 48], DType::F16).unwrap();
    let inv = Tensor::zeros(&ctx, &[16], DType::F32).unwrap();
    let b = Tensor::zeros(&ctx, &[32, 48], DType::F16).unwrap();
    let s = Tensor::zeros(&ctx, &[2], DType::F32).unwrap();
    let c = Tensor::zeros(&ctx, &[3, 32], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let op = RowsOperand {
        t: &a,
        inv: &inv,
        m: 3,
    };
    // K = 48 is not a multiple of 32 (and lavapipe has no cooperative matrices at all).
    let one = RowsOut::One {
        c: &c,
        bias: None,
        accumulate: false,
    };
    let err = matmul_rows_to(&mut rec, &op, &b, &s, &one, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("K % 32"), "{err}");
    let op = RowsOperand {
        t: &a,
        inv: &inv,
        m: 17,
    };
    assert!(matmul_rows_to(&mut rec, &op, &b, &s, &one, None).is_err());
}

#[test]
fn matmul_rows_split_and_swiglu_outputs_match_the_single_output() {
    let ctx = ctx();
    if !coop16_available(&ctx) {
        eprintln!("skipped: {} lacks cooperative matrices", ctx.info().name);
        return;
    }
    let (m, k) = (37, 96);
    let mut r = rng(61);
    let x = Tensor::from_f32(&ctx, &[m, k], &randn(&mut r, m * k)).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let (a, inv) = cast_operand(&ctx, &mut rec, &x);
    let op = RowsOperand {
        t: &a,
        inv: &inv,
        m,
    };
    // q, k, v widths 48, 16, 32.
    let n = 96;
    let (b, bs, _) = half_weight(&ctx, &randn(&mut r, n * k), n, k);
    let whole = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
    let parts: Vec<Tensor> = [48, 16, 32]
        .iter()
        .map(|&w| Tensor::poisoned(&ctx, &[m, w], DType::F32).unwrap())
        .collect();
    let one = RowsOut::One {
        c: &whole,
        bias: None,
        accumulate: false,
    };
    matmul_rows_to(&mut rec, &op, &b, &bs, &one, None).unwrap();
    let refs: Vec<&Tensor> = parts.iter().collect();
    matmul_rows_to(&mut rec, &op, &b, &bs, &RowsOut::Split(&refs), None).unwrap();
    // Gate and up of 48 each.
    let gate = Tensor::poisoned(&ctx, &[m, 48], DType::F32).unwrap();
    let up = Tensor::poisoned(&ctx, &[m, 48], DType::F32).unwrap();
    let want_h = Tensor::poisoned(&ctx, &[m, 48], DType::F32).unwrap();
    let got_h = Tensor::poisoned(&ctx, &[m, 48], DType::F32).unwrap();
    let gu: Vec<&Tensor> = vec![&gate, &up];
    matmul_rows_to(&mut rec, &op, &b, &bs, &RowsOut::Split(&gu), None).unwrap();
    swiglu(&mut rec, &gate, &up, &want_h).unwrap();
    matmul_rows_to(&mut rec, &op, &b, &bs, &RowsOut::Swiglu(&got_h), None).unwrap();
    rec.submit().unwrap();
    let w = words(&whole);
    let mut col = 0;
    for (t, width) in parts.iter().zip([48, 16, 32]) {
        let got = words(t);
        for i in 0..m {
            assert_eq!(
                &got[i * width..(i + 1) * width],
                &w[i * n + col..i * n + col + width],
                "split part at column {col}, row {i}"
            );
        }
        col += width;
    }
    assert_eq!(words(&got_h), words(&want_h), "SwiGLU output");
}

/// The f32 output, f16 rows and scales of `matmul_rows_cast` against `matmul_rows_to` then
/// `quantize_rows` (or `quantize_rows_normed`) on its output: the same kernels' arithmetic in
/// the same order, so bit for bit.
#[test]
fn matmul_rows_cast_equals_the_product_then_the_row_cast() {
    let ctx = ctx();
    if !coop16_available(&ctx) {
        eprintln!("skipped: {} lacks cooperative matrices", ctx.info().name);
        return;
    }
    let (m, k) = (37, 96);
    let m_pad = padded_rows(m);
    let mut r = rng(62);
    let x = Tensor::from_f32(&ctx, &[m, k], &rows_of_magnitudes(&mut r, m, k)).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let (a, inv) = cast_operand(&ctx, &mut rec, &x);
    let op = RowsOperand {
        t: &a,
        inv: &inv,
        m,
    };
    // (N, SwiGLU, bias and accumulate, normed, splits)
    let cases = [
        (80, false, true, true, None),
        (80, false, false, false, Some(3)),
        (112, false, true, false, Some(2)),
        (96, true, false, false, None),
        (96, true, false, false, Some(3)),
    ];
    for (case, &(n, swiglu_out, acc, normed, splits)) in cases.iter().enumerate() {
        let (b, bs, _) = half_weight(&ctx, &randn(&mut r, n * k), n, k);
        let width = if swiglu_out { n / 2 } else { n };
        let c0 = randn(&mut r, m * width);
        let bias = Tensor::from_f32(&ctx, &[n], &randn(&mut r, n)).unwrap();
        let w = Tensor::from_f32(&ctx, &[width], &randn(&mut r, width)).unwrap();
        let [want_c, got_c] = [0, 1].map(|_| Tensor::from_f32(&ctx, &[m, width], &c0).unwrap());
        let [want_x, got_x] =
            [0, 1].map(|_| Tensor::poisoned(&ctx, &[m_pad, width], DType::F16).unwrap());
        let [want_inv, got_inv] =
            [0, 1].map(|_| Tensor::poisoned(&ctx, &[m_pad], DType::F32).unwrap());
        let out = |c| {
            if swiglu_out {
                RowsOut::Swiglu(c)
            } else {
                RowsOut::One {
                    c,
                    bias: acc.then_some(&bias),
                    accumulate: acc,
                }
            }
        };
        let mut rec = Recorder::new(&ctx, "test");
        matmul_rows_to(&mut rec, &op, &b, &bs, &out(&want_c), splits).unwrap();
        if normed {
            quantize_rows_normed(&mut rec, &want_c, &w, 1e-6, &want_x, &want_inv).unwrap();
        } else {
            quantize_rows(&mut rec, &want_c, &want_x, &want_inv).unwrap();
        }
        let cast = RowCast {
            out: &got_x,
            inv: &got_inv,
            norm: normed.then_some((&w, 1e-6)),
        };
        matmul_rows_cast(&mut rec, &op, &b, &bs, &out(&got_c), &cast, splits).unwrap();
        rec.submit().unwrap();
        let what = format!("case {case}: N {n}, SwiGLU {swiglu_out}, splits {splits:?}");
        assert_eq!(words(&got_c), words(&want_c), "{what}: output");
        assert_eq!(words(&got_x), words(&want_x), "{what}: cast rows");
        assert_eq!(words(&got_inv), words(&want_inv), "{what}: scales");
    }
}

#[test]
fn matmul_rows_cast_rejects_what_it_cannot_fuse() {
    let ctx = ctx();
    let (m, k, n) = (5, 64, 32);
    let a = Tensor::zeros(&ctx, &[16, k], DType::F16).unwrap();
    let inv = Tensor::zeros(&ctx, &[16], DType::F32).unwrap();
    let op = RowsOperand {
        t: &a,
        inv: &inv,
        m,
    };
    let b = Tensor::zeros(&ctx, &[n, k], DType::F16).unwrap();
    let bs = Tensor::zeros(&ctx, &[2], DType::F32).unwrap();
    let c = Tensor::zeros(&ctx, &[m, n], DType::F32).unwrap();
    let x16 = Tensor::zeros(&ctx, &[16, n], DType::F16).unwrap();
    let inv2 = Tensor::zeros(&ctx, &[16], DType::F32).unwrap();
    let one = RowsOut::One {
        c: &c,
        bias: None,
        accumulate: false,
    };
    let err = |cast: &RowCast, out: &RowsOut| {
        let mut rec = Recorder::new(&ctx, "test");
        matmul_rows_cast(&mut rec, &op, &b, &bs, out, cast, None)
            .unwrap_err()
            .to_string()
    };
    // The A operand's own scale buffer.
    let same = RowCast {
        out: &x16,
        inv: &inv,
        norm: None,
    };
    let e = err(&same, &one);
    assert!(
        e.contains("matmul_rows_cast") && e.contains("A's own: true"),
        "{e}"
    );
    // A cast of the wrong width (SwiGLU's output is N / 2 wide).
    let (q, kk) = (
        Tensor::zeros(&ctx, &[m, 16], DType::F32).unwrap(),
        Tensor::zeros(&ctx, &[m, 16], DType::F32).unwrap(),
    );
    let cast = RowCast {
        out: &x16,
        inv: &inv2,
        norm: None,
    };
    let e = err(&cast, &RowsOut::Swiglu(&q));
    assert!(e.contains("k 16"), "{e}");
    // q/k/v split outputs are not cast.
    let refs = [&q, &kk];
    let e = err(&cast, &RowsOut::Split(&refs));
    assert!(e.contains("one output or SwiGLU's"), "{e}");
    // A norm weight of the wrong width.
    let w = Tensor::zeros(&ctx, &[n + 2], DType::F32).unwrap();
    let normed = RowCast {
        out: &x16,
        inv: &inv2,
        norm: Some((&w, 1e-6)),
    };
    let e = err(&normed, &one);
    assert!(e.contains(&format!("norm Some([{}])", n + 2)), "{e}");
}
