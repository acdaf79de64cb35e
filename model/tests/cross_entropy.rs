//! Fused cross-entropy against an f64 reference: per-row lse, target log-prob, loss and entropy;
//! the in-place gradient (fused and two-pass) against the analytic gradient
//! coef / T * (softmax - onehot) and against finite differences of the GPU forward; ignored rows;
//! temperatures; V = 1, 7, 1000 and one row of 153,217; the row-window path.
//!
//! Tolerance, from the arithmetic (eps = 1.2e-7): the row sum of exp carries a relative error up
//! to tol = (max|z| + 10 + V / 256) eps (rounded z, exp, V / 256 sequential terms per invocation
//! and an 8-level tree), so
//!   lse, logprob, loss: |err| <= tol + eps |want|,
//!   entropy:            |err| <= tol (1 + max|z - m|)  (E_p[z - m] carries the same relative error),
//!   gradient:           |err| <= |coef| / T * tol * (p_v + [v == target]) + 1e-12
//!                       (p_v's error, and the rounding of p_v - 1 at the target).
//! Finite differences (h = 1e-2, central): truncation h^2 / 6 |loss'''| <= 5e-5 for these
//! logits, and f32 rounding of the loss ~ 8 eps |loss| / (2h) <= 5e-4: |err| <= 1e-3 |coef| / T.

mod common;

use common::*;
use grrm_model::kernels::cross_entropy::{
    cross_entropy_backward, cross_entropy_forward, cross_entropy_fused, CeStats, IGNORE_INDEX,
};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use rand::Rng;

const EPS: f64 = 1.2e-7;

struct Reference {
    lse: Vec<f64>,
    logprob: Vec<f64>,
    entropy: Vec<f64>,
    grad: Vec<f64>,
    /// |coef| / T * (p_v + [v == target]): the gradient tolerance's scale.
    grad_scale: Vec<f64>,
    /// max |z - m| per row.
    spread: Vec<f64>,
}

fn reference(x: &[f32], v: usize, targets: &[u32], coef: &[f32], t: f32) -> Reference {
    let rows = targets.len();
    let t = t as f64;
    let mut r = Reference {
        lse: vec![0.0; rows],
        logprob: vec![0.0; rows],
        entropy: vec![0.0; rows],
        grad: vec![0.0; rows * v],
        grad_scale: vec![0.0; rows * v],
        spread: vec![0.0; rows],
    };
    for (i, row) in x.chunks(v).enumerate() {
        let z: Vec<f64> = row.iter().map(|&a| a as f64 / t).collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|a| (a - m).exp()).sum::<f64>().ln();
        let p: Vec<f64> = z.iter().map(|a| (a - lse).exp()).collect();
        r.lse[i] = lse;
        r.entropy[i] = -p
            .iter()
            .zip(&z)
            .map(|(pv, zv)| pv * (zv - lse))
            .sum::<f64>();
        r.spread[i] = z.iter().map(|a| (a - m).abs()).fold(0.0, f64::max);
        let tg = targets[i];
        if tg != IGNORE_INDEX {
            r.logprob[i] = z[tg as usize] - lse;
        }
        let c = coef[i] as f64 / t;
        for (j, &pj) in p.iter().enumerate() {
            let k = i * v + j;
            let hit = if j == tg as usize { 1.0 } else { 0.0 };
            if tg != IGNORE_INDEX {
                r.grad[k] = c * (pj - hit);
            }
            r.grad_scale[k] = c.abs() * (pj + hit);
        }
    }
    r
}

struct Case {
    rows: usize,
    v: usize,
    t: f32,
    seed: u64,
}

fn inputs(c: &Case) -> (Vec<f32>, Vec<u32>, Vec<f32>) {
    let mut r = rng(c.seed);
    let x: Vec<f32> = (0..c.rows * c.v)
        .map(|_| r.random_range(-6.0f32..6.0))
        .collect();
    // Every third row is ignored (when there is more than one row).
    let targets: Vec<u32> = (0..c.rows)
        .map(|i| {
            if c.rows > 1 && i % 3 == 1 {
                IGNORE_INDEX
            } else {
                r.random_range(0..c.v as u32)
            }
        })
        .collect();
    let coef: Vec<f32> = (0..c.rows).map(|_| r.random_range(-2.0f32..2.0)).collect();
    (x, targets, coef)
}

fn check_stats(what: &str, s: &CeStats, want: &Reference, c: &Case) {
    let tol = (6.0 / c.t as f64 + 10.0 + c.v as f64 / 256.0) * EPS;
    let lse = s.lse.to_f32_vec().unwrap();
    let lp = s.logprob.to_f32_vec().unwrap();
    let loss = s.loss.to_f32_vec().unwrap();
    let ent = s.entropy.to_f32_vec().unwrap();
    let neg: Vec<f64> = want.logprob.iter().map(|a| -a).collect();
    assert_close(&format!("{what} lse"), &lse, &want.lse, tol, EPS, None);
    assert_close(
        &format!("{what} logprob"),
        &lp,
        &want.logprob,
        tol,
        EPS,
        None,
    );
    assert_close(&format!("{what} loss"), &loss, &neg, tol, EPS, None);
    let ent_scale: Vec<f64> = want.spread.iter().map(|s| 1.0 + s).collect();
    assert_close(
        &format!("{what} entropy"),
        &ent,
        &want.entropy,
        0.0,
        tol,
        Some(&ent_scale),
    );
}

fn run(ctx: &GpuContext, c: &Case) {
    let (x, targets, coef) = inputs(c);
    let want = reference(&x, c.v, &targets, &coef, c.t);
    let tol = (6.0 / c.t as f64 + 10.0 + c.v as f64 / 256.0) * EPS;
    let what = format!("ce rows {} V {} T {}", c.rows, c.v, c.t);
    let tt = Tensor::from_u32(ctx, &[c.rows], &targets).unwrap();
    let tc = Tensor::from_f32(ctx, &[c.rows], &coef).unwrap();

    // Forward only: statistics, logits untouched.
    let logits = Tensor::from_f32(ctx, &[c.rows, c.v], &x).unwrap();
    let fwd = CeStats::poisoned(ctx, c.rows).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    cross_entropy_forward(&mut rec, &logits, &tt, &fwd, c.t).unwrap();
    rec.submit().unwrap();
    check_stats(&format!("{what} forward"), &fwd, &want, c);
    assert_eq!(
        logits.to_f32_vec().unwrap(),
        x,
        "{what}: forward changed the logits"
    );

    // Second pass: gradient from the stored lse.
    let mut rec = Recorder::new(ctx, "test");
    cross_entropy_backward(&mut rec, &logits, &tt, &tc, &fwd.lse, c.t).unwrap();
    rec.submit().unwrap();
    let g = logits.to_f32_vec().unwrap();
    assert_close(
        &format!("{what} backward"),
        &g,
        &want.grad,
        1e-12,
        tol,
        Some(&want.grad_scale),
    );

    // Fused: statistics and gradient in one pass.
    let logits = Tensor::from_f32(ctx, &[c.rows, c.v], &x).unwrap();
    let fused = CeStats::poisoned(ctx, c.rows).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    cross_entropy_fused(&mut rec, &logits, &tt, &tc, &fused, c.t).unwrap();
    rec.submit().unwrap();
    check_stats(&format!("{what} fused"), &fused, &want, c);
    let g = logits.to_f32_vec().unwrap();
    assert_close(
        &format!("{what} fused grad"),
        &g,
        &want.grad,
        1e-12,
        tol,
        Some(&want.grad_scale),
    );
}

#[test]
fn cross_entropy_odd_sizes_with_ignored_rows() {
    let ctx = ctx();
    let mut seed = 1;
    for (rows, v) in [(1, 1), (5, 7), (7, 1000), (4, 300)] {
        for t in [1.0, 0.8] {
            run(&ctx, &Case { rows, v, t, seed });
            seed += 1;
        }
    }
}

#[test]
fn cross_entropy_one_row_of_the_full_vocabulary() {
    let ctx = ctx();
    run(
        &ctx,
        &Case {
            rows: 1,
            v: 153_217,
            t: 1.0,
            seed: 40,
        },
    );
}

#[test]
fn cross_entropy_rows_in_windows_when_larger_than_a_binding() {
    // 16 KiB bindings hold 4 rows of 1000; windows start mid-alignment.
    let small = ctx().with_binding_limit(16 << 10);
    run(
        &small,
        &Case {
            rows: 11,
            v: 1000,
            t: 0.9,
            seed: 50,
        },
    );
}

#[test]
fn cross_entropy_gradient_matches_finite_differences() {
    // Row 0 holds the logits; rows 1 + 2j and 2 + 2j perturb logit j by +h and -h. One forward
    // gives every loss; the gradient of coef * loss comes from the fused kernel on row 0.
    let ctx = ctx();
    let (v, t, h, coef) = (33usize, 0.7f32, 1e-2f32, 0.37f32);
    let mut r = rng(70);
    let base: Vec<f32> = (0..v).map(|_| r.random_range(-2.0f32..2.0)).collect();
    let target = 11u32;
    let rows = 1 + 2 * v;
    let mut x = Vec::with_capacity(rows * v);
    x.extend_from_slice(&base);
    for j in 0..v {
        for s in [h, -h] {
            let mut row = base.clone();
            row[j] += s;
            x.extend_from_slice(&row);
        }
    }
    let targets = vec![target; rows];
    let logits = Tensor::from_f32(&ctx, &[rows, v], &x).unwrap();
    let tt = Tensor::from_u32(&ctx, &[rows], &targets).unwrap();
    let stats = CeStats::poisoned(&ctx, rows).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    cross_entropy_forward(&mut rec, &logits, &tt, &stats, t).unwrap();
    rec.submit().unwrap();
    let loss = stats.loss.to_f32_vec().unwrap();
    // The perturbation actually applied, in f32.
    let fd: Vec<f64> = (0..v)
        .map(|j| {
            let dx = (base[j] + h) as f64 - (base[j] - h) as f64;
            coef as f64 * (loss[1 + 2 * j] as f64 - loss[2 + 2 * j] as f64) / dx
        })
        .collect();

    let one = Tensor::from_f32(&ctx, &[1, v], &base).unwrap();
    let t1 = Tensor::from_u32(&ctx, &[1], &[target]).unwrap();
    let c1 = Tensor::from_f32(&ctx, &[1], &[coef]).unwrap();
    let s1 = CeStats::poisoned(&ctx, 1).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    cross_entropy_fused(&mut rec, &one, &t1, &c1, &s1, t).unwrap();
    rec.submit().unwrap();
    let grad = one.to_f32_vec().unwrap();
    let tol = 1e-3 * coef as f64 / t as f64;
    assert_close(
        "ce gradient vs finite differences",
        &grad,
        &fd,
        tol,
        0.0,
        None,
    );
}

#[test]
fn cross_entropy_masked_logits_are_excluded() {
    // -inf logits (a constrained vocabulary) behave as if the entries were absent: the stats
    // equal those of the compacted row, their gradient is exactly 0.
    let ctx = ctx();
    let inf = f32::NEG_INFINITY;
    let x = [inf, 0.5, inf, 1.0, -0.3, inf, 2.0];
    let kept: Vec<usize> = (0..x.len()).filter(|&j| x[j].is_finite()).collect();
    let compact: Vec<f32> = kept.iter().map(|&j| x[j]).collect();
    let (t, coef) = (0.9f32, 0.6f32);
    let want = reference(&compact, compact.len(), &[1], &[coef], t);
    let logits = Tensor::from_f32(&ctx, &[1, x.len()], &x).unwrap();
    let tt = Tensor::from_u32(&ctx, &[1], &[kept[1] as u32]).unwrap();
    let tc = Tensor::from_f32(&ctx, &[1], &[coef]).unwrap();
    let s = CeStats::poisoned(&ctx, 1).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    cross_entropy_fused(&mut rec, &logits, &tt, &tc, &s, t).unwrap();
    rec.submit().unwrap();
    let c = Case {
        rows: 1,
        v: compact.len(),
        t,
        seed: 0,
    };
    check_stats("ce masked", &s, &want, &c);
    let g = logits.to_f32_vec().unwrap();
    let mut want_g = vec![0f64; x.len()];
    let mut scale = vec![0f64; x.len()];
    for (i, &j) in kept.iter().enumerate() {
        want_g[j] = want.grad[i];
        scale[j] = want.grad_scale[i];
    }
    let tol = 20.0 * EPS;
    assert_close("ce masked grad", &g, &want_g, 1e-12, tol, Some(&scale));
}

#[test]
fn cross_entropy_out_of_range_target_is_nan_not_silent() {
    let ctx = ctx();
    let logits = Tensor::from_f32(&ctx, &[2, 3], &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).unwrap();
    let tt = Tensor::from_u32(&ctx, &[2], &[3, IGNORE_INDEX]).unwrap();
    let tc = Tensor::from_f32(&ctx, &[2], &[1.0, 1.0]).unwrap();
    let s = CeStats::poisoned(&ctx, 2).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    cross_entropy_fused(&mut rec, &logits, &tt, &tc, &s, 1.0).unwrap();
    rec.submit().unwrap();
    let lp = s.logprob.to_f32_vec().unwrap();
    assert!(lp[0].is_nan() && lp[1] == 0.0, "{lp:?}");
    let g = logits.to_f32_vec().unwrap();
    assert!(g[..3].iter().all(|a| a.is_nan()), "{g:?}");
    assert_eq!(&g[3..], &[0.0, 0.0, 0.0], "ignored row has zero gradient");
}

#[test]
fn cross_entropy_shape_errors_name_the_op() {
    let ctx = ctx();
    let logits = Tensor::zeros(&ctx, &[4, 9], DType::F32).unwrap();
    let t3 = Tensor::zeros(&ctx, &[3], DType::U32).unwrap();
    let t4 = Tensor::zeros(&ctx, &[4], DType::U32).unwrap();
    let c4 = Tensor::zeros(&ctx, &[4], DType::F32).unwrap();
    let s4 = CeStats::zeros(&ctx, 4).unwrap();
    let s5 = CeStats::zeros(&ctx, 5).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let msg = cross_entropy_forward(&mut rec, &logits, &t3, &s4, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("cross_entropy_forward: targets must be u32 [R]"),
        "{msg}"
    );
    assert!(msg.contains("[4, 9]") && msg.contains("[3]"), "{msg}");
    let msg = cross_entropy_fused(&mut rec, &logits, &t4, &c4, &s5, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("cross_entropy_fused: lse must be f32 [R]"),
        "{msg}"
    );
    assert!(msg.contains("[5]"), "{msg}");
    let msg = cross_entropy_backward(&mut rec, &logits, &t4, &c4, &s4.lse, -1.0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("cross_entropy_backward: temperature -1"),
        "{msg}"
    );
    let flat = Tensor::zeros(&ctx, &[36], DType::F32).unwrap();
    let msg = cross_entropy_forward(&mut rec, &flat, &t4, &s4, 1.0)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("cross_entropy_forward: logits must be [R, V]"),
        "{msg}"
    );
    assert!(rec.is_empty());
}
